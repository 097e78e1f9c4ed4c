//! Fetch counters: plain atomics, written by the rotation task on the control thread and
//! read by the metrics endpoint. Nothing on a worker's request path touches them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::FailureReason;

/// Certificates installed and fetches failed, by reason.
#[derive(Debug, Default)]
pub struct Stats {
    successes: AtomicU64,
    failures: [AtomicU64; FailureReason::ALL.len()],
}

impl Stats {
    /// Certificates fetched and installed.
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Fetches that failed for `reason`.
    pub fn failures(&self, reason: FailureReason) -> u64 {
        self.failures[reason.index()].load(Ordering::Relaxed)
    }

    /// Fetches that failed for any reason.
    pub fn total_failures(&self) -> u64 {
        FailureReason::ALL.iter().map(|r| self.failures(*r)).sum()
    }

    /// Every counter now, for a metrics endpoint.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            successes: self.successes(),
            failures: FailureReason::ALL
                .iter()
                .map(|r| (*r, self.failures(*r)))
                .collect(),
        }
    }

    pub(crate) fn success(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self, reason: FailureReason) {
        self.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// [`Stats`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub successes: u64,
    /// Every reason, zero counts included.
    pub failures: Vec<(FailureReason, u64)>,
}
