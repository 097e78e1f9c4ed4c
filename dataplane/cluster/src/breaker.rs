//! Cluster-wide counters: circuit breaking ([`Breaker`]) and active health flags
//! ([`SharedHealth`]). These are the only atomics in the crate; both are shared between
//! workers on purpose (Envoy's limits are per cluster, not per worker).

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::Thresholds;

/// Circuit-breaker counters of one cluster, shared by every worker. Counts are global and
/// the limits come from the caller's current [`Thresholds`], so a config update changes the
/// limits without resetting what is in flight (Envoy semantics).
///
/// Orderings: the counters guard nothing but themselves (no data is published through
/// them), so every operation is `Relaxed`; each read-modify-write is still atomic, so two
/// workers can never both take the last slot.
#[derive(Debug, Default)]
pub struct Breaker {
    connections: Line,
    pending: Line,
    requests: Line,
    retries: Line,
}

/// One counter per cache line: the request counter changes on every request, and must
/// not drag the other three between cores with it.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line(AtomicU32);

impl std::ops::Deref for Line {
    type Target = AtomicU32;

    fn deref(&self) -> &AtomicU32 {
        &self.0
    }
}

/// A snapshot of [`Breaker`] counts (for stats and tests).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakerCounts {
    /// Open connections.
    pub connections: u32,
    /// Requests waiting for a connection.
    pub pending: u32,
    /// Requests in flight.
    pub requests: u32,
    /// Retries in flight.
    pub retries: u32,
}

/// Takes one slot when fewer than `limit` are taken.
fn acquire(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v < limit).then_some(v + 1)
        })
        .is_ok()
}

/// Gives one slot back; never wraps below zero (an unmatched release is a caller bug that
/// must not open the breaker for good).
fn release(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

impl Breaker {
    /// All counts zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits one more upstream connection under `max_connections`.
    pub fn try_connection(&self, t: &Thresholds) -> bool {
        acquire(&self.connections, t.max_connections)
    }

    /// Counts a connection opened over the limit (Envoy opens one anyway when a worker's
    /// pool for a host has none, so a host is never unreachable because other hosts' or
    /// other workers' connections hold every slot). Released like any other.
    pub fn force_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection admitted by [`Self::try_connection`] closed.
    pub fn release_connection(&self) {
        release(&self.connections);
    }

    /// Admits one more request waiting for a connection under `max_pending_requests`.
    pub fn try_pending(&self, t: &Thresholds) -> bool {
        acquire(&self.pending, t.max_pending_requests)
    }

    /// A pending request got a connection or gave up.
    pub fn release_pending(&self) {
        release(&self.pending);
    }

    /// Admits one more request in flight under `max_requests`.
    pub fn try_request(&self, t: &Thresholds) -> bool {
        acquire(&self.requests, t.max_requests)
    }

    /// A request admitted by [`Self::try_request`] finished.
    pub fn release_request(&self) {
        release(&self.requests);
    }

    /// Admits one more retry in flight. Without a budget the limit is `max_retries`; with
    /// one it is `max(min_retry_concurrency, floor(budget_percent% of (requests + pending)))`
    /// and `max_retries` is ignored (Envoy: "if a retry budget is set, max_retries is
    /// ignored").
    pub fn try_retry(&self, t: &Thresholds) -> bool {
        acquire(&self.retries, self.retry_limit(t))
    }

    /// A retry admitted by [`Self::try_retry`] finished.
    pub fn release_retry(&self) {
        release(&self.retries);
    }

    /// The retry limit right now (depends on the load when a budget is set).
    pub fn retry_limit(&self, t: &Thresholds) -> u32 {
        match t.retry_budget {
            None => t.max_retries,
            Some(b) => {
                let active = u64::from(self.requests.load(Ordering::Relaxed))
                    + u64::from(self.pending.load(Ordering::Relaxed));
                // f64 holds every u33 exactly; the float-to-int cast saturates.
                let budget = (b.budget_percent / 100.0 * active as f64) as u32;
                budget.max(b.min_retry_concurrency)
            }
        }
    }

    /// Current counts.
    pub fn active(&self) -> BreakerCounts {
        BreakerCounts {
            connections: self.connections.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// Active health-check results of one cluster: one flag per endpoint (index into
/// `Cluster::endpoints`), written by the health checker on the control thread, read by
/// workers. [`Self::generation`] changes after every flag change, so a worker compares one
/// number per request and rebuilds its balancer only when something changed.
///
/// Orderings: a flag is stored `Relaxed`, then the generation is bumped with `Release`;
/// a reader loads the generation with `Acquire` before reading flags, so it sees every flag
/// change that the generation it read accounts for.
#[derive(Debug)]
pub struct SharedHealth {
    failed: Box<[AtomicU8]>,
    generation: AtomicU64,
}

impl SharedHealth {
    /// `endpoints` flags, none failed, generation 0.
    pub fn new(endpoints: usize) -> Self {
        Self {
            failed: (0..endpoints).map(|_| AtomicU8::new(0)).collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// Number of endpoints covered.
    pub fn len(&self) -> usize {
        self.failed.len()
    }

    /// No endpoints.
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty()
    }

    /// Endpoint `i` failed its active health check (false for an index out of range).
    pub fn is_failed(&self, i: usize) -> bool {
        self.failed
            .get(i)
            .is_some_and(|f| f.load(Ordering::Relaxed) != 0)
    }

    /// Sets endpoint `i`'s flag; bumps the generation when it changed.
    pub fn set_failed(&self, i: usize, failed: bool) {
        let Some(flag) = self.failed.get(i) else {
            return;
        };
        if flag.swap(u8::from(failed), Ordering::Relaxed) != u8::from(failed) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Changes so far; read it before the flags.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
