//! The xDS server's metrics, as plain atomics rendered in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the push latency buckets, in seconds: from a millisecond (an in-process
/// push without debounce) to ten seconds (a push stuck behind a slow proxy).
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters shared by every stream of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    connected: AtomicI64,
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    nacks: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Proxies with an open ADS stream.
    pub fn connected_proxies(&self) -> i64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// NACKs received for a type.
    pub fn nacks(&self, type_url: &str) -> u64 {
        let nacks = self.nacks.lock().unwrap_or_else(|e| e.into_inner());
        nacks.get(type_url).copied().unwrap_or(0)
    }

    /// Pushes observed by the latency histogram.
    pub fn pushes(&self) -> u64 {
        self.latency_count.load(Ordering::Relaxed)
    }

    pub(crate) fn connect(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnect(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn nack(&self, type_url: &str) {
        let mut nacks = self.nacks.lock().unwrap_or_else(|e| e.into_inner());
        *nacks.entry(type_url.to_owned()).or_default() += 1;
    }

    /// Records one push: time from the snapshot being set to the response being sent.
    pub(crate) fn push_latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "# HELP spar_xds_connected_proxies Proxies with an open ADS stream.\n\
             # TYPE spar_xds_connected_proxies gauge\n\
             spar_xds_connected_proxies {}",
            self.connected_proxies()
        );
        let _ = writeln!(
            out,
            "# HELP spar_xds_push_latency_seconds Time from a snapshot change to the response \
             that carries it.\n# TYPE spar_xds_push_latency_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "spar_xds_push_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum_us = self.latency_sum_us.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "spar_xds_push_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             spar_xds_push_latency_seconds_sum {}\n\
             spar_xds_push_latency_seconds_count {count}",
            sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP spar_xds_nacks_total Responses rejected by proxies, by type.\n\
             # TYPE spar_xds_nacks_total counter"
        );
        let nacks = self.nacks.lock().unwrap_or_else(|e| e.into_inner());
        for (type_url, n) in nacks.iter() {
            let _ = writeln!(out, "spar_xds_nacks_total{{type_url=\"{type_url}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_buckets_cumulatively() {
        let m = Metrics::default();
        m.connect();
        m.push_latency(Duration::from_millis(3));
        m.push_latency(Duration::from_millis(200));
        m.nack("t");
        let text = m.render();
        assert!(text.contains("spar_xds_connected_proxies 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.25\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("_count 2\n"), "{text}");
        assert!(
            text.contains("spar_xds_nacks_total{type_url=\"t\"} 1\n"),
            "{text}"
        );
    }
}
