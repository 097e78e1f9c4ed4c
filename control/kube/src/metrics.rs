//! The Kubernetes source's counters, rendered in Prometheus text format for spar-control's
//! monitoring port: requests per kind (lists, watches), failures, relists after 410 Gone,
//! invalid objects, configurations published.
//!
//! What it does not do: no HTTP serving (spar-control's monitor appends [`Metrics::render`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounters {
    /// LIST requests sent.
    pub lists: u64,
    /// WATCH requests sent.
    pub watches: u64,
    /// Requests or streams that failed (server down, bad answer, broken connection).
    pub errors: u64,
    /// Relists forced by 410 Gone (the watch's resourceVersion was too old).
    pub gone: u64,
    /// ADDED, MODIFIED and DELETED events received.
    pub events: u64,
}

/// Counters shared by the source's tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    kinds: Mutex<BTreeMap<&'static str, KindCounters>>,
    discovery_errors: AtomicU64,
    rejected: AtomicU64,
    invalid: AtomicU64,
    published: AtomicU64,
}

impl Metrics {
    fn update(&self, kind: &'static str, f: impl FnOnce(&mut KindCounters)) {
        // A panic while holding the lock leaves plain counters behind: still usable.
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        f(kinds.entry(kind).or_default());
    }

    pub(crate) fn list(&self, kind: &'static str) {
        self.update(kind, |c| c.lists += 1);
    }

    pub(crate) fn watch(&self, kind: &'static str) {
        self.update(kind, |c| c.watches += 1);
    }

    pub(crate) fn error(&self, kind: &'static str) {
        self.update(kind, |c| c.errors += 1);
    }

    pub(crate) fn gone(&self, kind: &'static str) {
        self.update(kind, |c| c.gone += 1);
    }

    pub(crate) fn event(&self, kind: &'static str) {
        self.update(kind, |c| c.events += 1);
    }

    pub(crate) fn discovery_error(&self) {
        self.discovery_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, n: usize) {
        self.rejected
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn set_invalid(&self, n: usize) {
        self.invalid
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of one kind.
    pub fn kind(&self, kind: &str) -> KindCounters {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds.get(kind).copied().unwrap_or_default()
    }

    /// Configurations handed to the control plane.
    pub fn configurations(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner()).clone();
        type Family = (&'static str, &'static str, fn(&KindCounters) -> u64);
        let families: [Family; 5] = [
            ("lists", "LIST requests sent to the API server.", |c| {
                c.lists
            }),
            ("watches", "WATCH requests sent to the API server.", |c| {
                c.watches
            }),
            ("errors", "Failed requests and broken watches.", |c| {
                c.errors
            }),
            (
                "gone",
                "Relists forced by 410 Gone (resourceVersion too old).",
                |c| c.gone,
            ),
            (
                "events",
                "Watch events (ADDED, MODIFIED, DELETED) received.",
                |c| c.events,
            ),
        ];
        // Writing to a String cannot fail; the results are ignored for that reason.
        for (name, help, get) in families {
            let _ = writeln!(
                out,
                "# HELP spar_kube_{name}_total {help}\n# TYPE spar_kube_{name}_total counter"
            );
            for (kind, c) in &kinds {
                let _ = writeln!(out, "spar_kube_{name}_total{{kind=\"{kind}\"}} {}", get(c));
            }
        }
        let scalars = [
            (
                "spar_kube_discovery_errors_total",
                "counter",
                "Failed API discovery requests.",
                &self.discovery_errors,
            ),
            (
                "spar_kube_rejected_objects_total",
                "counter",
                "Objects found invalid and left out of the configuration.",
                &self.rejected,
            ),
            (
                "spar_kube_invalid_objects",
                "gauge",
                "Objects currently left out as invalid.",
                &self.invalid,
            ),
            (
                "spar_kube_configurations_total",
                "counter",
                "Configurations handed to the control plane.",
                &self.published,
            ),
        ];
        for (name, kind, help, v) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_kind_and_scalars() {
        let m = Metrics::default();
        m.list("Service");
        m.watch("Service");
        m.watch("Service");
        m.rejected(2);
        m.set_invalid(1);
        let text = m.render();
        assert!(
            text.contains("spar_kube_lists_total{kind=\"Service\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("spar_kube_watches_total{kind=\"Service\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("spar_kube_rejected_objects_total 2"),
            "{text}"
        );
        assert!(text.contains("spar_kube_invalid_objects 1"), "{text}");
        assert_eq!(m.kind("Service").watches, 2);
        assert_eq!(m.kind("Pod"), KindCounters::default());
    }
}
