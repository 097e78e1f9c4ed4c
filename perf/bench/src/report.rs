//! Statistics: per-thread recording, merging, and the JSON and table outputs.
//!
//! Each worker thread owns one [`Stats`] and records into it without locks;
//! the threads' stats are merged once, at the end of a run.

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lowest latency tracked, in microseconds. Anything faster is recorded as 1.
const LOWEST_US: u64 = 1;
/// Highest latency tracked, in microseconds (60 s); slower is clamped to it.
const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept: 0.1% value error, as wrk2 and fortio use.
const SIGFIG: u8 = 3;

/// Why a request did not produce a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Read,
    Write,
    Timeout,
    Parse,
}

/// Counts of failed requests, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    pub parse: u64,
    /// Complete responses whose status was not 2xx, by class.
    pub status: StatusErrors,
}

/// Non-2xx responses by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusErrors {
    #[serde(rename = "1xx")]
    pub s1xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    /// Codes outside 100..=599.
    pub other: u64,
}

impl StatusErrors {
    pub fn total(&self) -> u64 {
        self.s1xx + self.s3xx + self.s4xx + self.s5xx + self.other
    }
}

impl Errors {
    /// Requests that failed, including non-2xx responses.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.parse + self.status.total()
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.parse += o.parse;
        self.status.s1xx += o.status.s1xx;
        self.status.s3xx += o.status.s3xx;
        self.status.s4xx += o.status.s4xx;
        self.status.s5xx += o.status.s5xx;
        self.status.other += o.status.other;
    }
}

/// One thread's measurements. Only requests inside the measured window are
/// recorded here; warmup and requests cut at the end are not.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every complete response (any status), in microseconds.
    pub hist: Histogram<u64>,
    /// Complete responses with a 2xx status.
    pub ok: u64,
    pub errors: Errors,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            hist: new_histogram(),
            ok: 0,
            errors: Errors::default(),
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    /// Records one complete response.
    #[inline]
    pub fn response(&mut self, status: u16, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(LOWEST_US));
        match status {
            200..=299 => self.ok += 1,
            100..=199 => self.errors.status.s1xx += 1,
            300..=399 => self.errors.status.s3xx += 1,
            400..=499 => self.errors.status.s4xx += 1,
            500..=599 => self.errors.status.s5xx += 1,
            _ => self.errors.status.other += 1,
        }
    }

    /// Records one failed request.
    #[inline]
    pub fn error(&mut self, kind: ErrorKind) {
        let e = &mut self.errors;
        match kind {
            ErrorKind::Connect => e.connect += 1,
            ErrorKind::Read => e.read += 1,
            ErrorKind::Write => e.write += 1,
            ErrorKind::Timeout => e.timeout += 1,
            ErrorKind::Parse => e.parse += 1,
        }
    }

    /// Complete responses, any status.
    pub fn responses(&self) -> u64 {
        self.hist.len()
    }

    pub fn merge(&mut self, o: &Stats) {
        // Both histograms have the same bounds, so `add` cannot fail; if it
        // ever did, the values are clamped rather than lost.
        if self.hist.add(&o.hist).is_err() {
            for v in o.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.ok += o.ok;
        self.errors.merge(&o.errors);
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's preconditions
    // (low >= 1, high >= 2 * low, sigfig <= 5), so this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant histogram bounds")
}

/// Latency summary, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min: h.min(),
            mean: h.mean(),
            stdev: h.stdev(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What a load run measured; serialised as the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    /// `"closed"` (full speed) or `"open"` (fixed `--rate`).
    pub mode: &'static str,
    /// Target rate for open loop, requests/s.
    pub rate: Option<f64>,
    pub io: &'static str,
    pub threads: usize,
    pub connections: usize,
    pub new_conn: bool,
    /// Length of the measured window (after warmup), seconds.
    pub duration_s: f64,
    /// Complete responses, any status.
    pub requests: u64,
    /// Complete responses with a 2xx status.
    pub ok: u64,
    /// `requests / duration_s`.
    pub throughput_rps: f64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Open loop: measured from each request's intended send time.
    pub latency_us: Latency,
    pub errors: Errors,
    /// Sum of all error counts.
    pub errors_total: u64,
}

impl Report {
    /// True when not one request got a 2xx response.
    pub fn all_failed(&self) -> bool {
        self.ok == 0
    }

    pub fn to_json(&self) -> String {
        // Plain structs of numbers and strings: serialisation cannot fail, and
        // a NaN (impossible here: durations are > 0) would become null.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Writes the human-readable table.
    pub fn write_table(&self, w: &mut impl Write) -> io::Result<()> {
        let mode = match self.rate {
            Some(r) => format!("open loop, {r} req/s"),
            None => "closed loop".to_owned(),
        };
        writeln!(
            w,
            "{}  ({mode}, {} threads, {} connections{}, {})",
            self.url,
            self.threads,
            self.connections,
            if self.new_conn {
                ", new connection per request"
            } else {
                ""
            },
            self.io,
        )?;
        let l = &self.latency_us;
        writeln!(
            w,
            "  latency      p50      p90      p99    p99.9      max     mean"
        )?;
        writeln!(
            w,
            "           {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            us(l.p50 as f64),
            us(l.p90 as f64),
            us(l.p99 as f64),
            us(l.p99_9 as f64),
            us(l.max as f64),
            us(l.mean),
        )?;
        writeln!(
            w,
            "  {} requests in {:.2}s, {:.0} req/s, {} read, {} written",
            self.requests,
            self.duration_s,
            self.throughput_rps,
            bytes(self.bytes_read),
            bytes(self.bytes_written),
        )?;
        let e = &self.errors;
        if self.errors_total > 0 {
            writeln!(
                w,
                "  errors: connect {}, read {}, write {}, timeout {}, parse {}, \
                 status 1xx {} 3xx {} 4xx {} 5xx {} other {}",
                e.connect,
                e.read,
                e.write,
                e.timeout,
                e.parse,
                e.status.s1xx,
                e.status.s3xx,
                e.status.s4xx,
                e.status.s5xx,
                e.status.other,
            )?;
        } else {
            writeln!(w, "  errors: none")?;
        }
        Ok(())
    }
}

/// Formats microseconds with a unit that keeps 3-4 significant digits.
fn us(v: f64) -> String {
    if v < 1_000.0 {
        format!("{v:.0}us")
    } else if v < 1_000_000.0 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{:.2}s", v / 1e6)
    }
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n:.0}B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1}KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1}MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.2}GiB", n / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.response(200, Duration::from_micros(100));
        b.response(200, Duration::from_micros(300));
        b.response(503, Duration::from_micros(5));
        b.error(ErrorKind::Timeout);
        a.merge(&b);
        assert_eq!(a.responses(), 3);
        assert_eq!(a.ok, 2);
        assert_eq!(a.errors.status.s5xx, 1);
        assert_eq!(a.errors.timeout, 1);
        assert_eq!(a.errors.total(), 2);
        let l = Latency::of(&a.hist);
        assert!(l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max);
        assert!(l.max >= 299);
    }

    #[test]
    fn sub_microsecond_and_huge_latencies_are_clamped() {
        let mut s = Stats::new();
        s.response(200, Duration::from_nanos(10));
        s.response(200, Duration::from_secs(3600));
        assert_eq!(s.hist.min(), 1);
        assert!(s.hist.max() >= HIGHEST_US);
    }

    #[test]
    fn units() {
        assert_eq!(us(512.0), "512us");
        assert_eq!(us(1_500.0), "1.50ms");
        assert_eq!(us(2_000_000.0), "2.00s");
        assert_eq!(bytes(2048), "2.0KiB");
    }
}
