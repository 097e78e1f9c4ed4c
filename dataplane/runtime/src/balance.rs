//! A worker's view of one cluster: its load balancer, its outlier detector,
//! the shared active-health flags and circuit breaker, and its counters.
//!
//! Decisions are spar-cluster's; this file only feeds them (time, random
//! numbers, health) and keeps the balancer's host set in step with health.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use std::rc::Rc;

use spar_cluster::{
    Balancer, Breaker, Cluster, ConfiguredHealth, Metadata, OutlierDetector, OutlierResult,
    PickRequest, SharedHealth, Thresholds,
};
use spar_telemetry::ClusterStats;

/// State shared by all workers for one cluster, by cluster name, surviving
/// snapshot swaps (circuit-breaker counts are global, as in Envoy).
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) breaker: Arc<Breaker>,
    /// Written by the control thread's active health checker, when the
    /// cluster has health checks.
    pub(crate) health: Option<Arc<SharedHealth>>,
}

impl Shared {
    /// State for a cluster the registry did not see (never expected).
    pub(crate) fn detached() -> Shared {
        Shared {
            breaker: Arc::new(Breaker::new()),
            health: None,
        }
    }
}

/// The same shared objects (not equal contents).
impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        Arc::ptr_eq(&self.breaker, &other.breaker)
            && match (&self.health, &other.health) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

/// The control thread's registry of [`Shared`] state by cluster name: kept
/// across snapshots for clusters that stay, dropped for those that go.
pub(crate) struct Registry {
    breakers: std::collections::HashMap<String, Arc<Breaker>>,
    health: spar_health::HealthChecker,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            breakers: std::collections::HashMap::new(),
            health: spar_health::HealthChecker::new(),
        }
    }

    /// Shared state for each cluster of `snapshot`, by cluster index. Starts
    /// and stops active health checks to match (needs a tokio runtime when
    /// any cluster has health checks).
    pub(crate) fn sync(&mut self, snapshot: &spar_config::Snapshot) -> Arc<Vec<Shared>> {
        let health = self.health.sync(&snapshot.clusters);
        self.breakers
            .retain(|name, _| snapshot.clusters.iter().any(|c| &c.name == name));
        let shared = snapshot
            .clusters
            .iter()
            .map(|c| Shared {
                breaker: self
                    .breakers
                    .entry(c.name.clone())
                    .or_insert_with(|| Arc::new(Breaker::new()))
                    .clone(),
                health: health.get(&c.name).cloned(),
            })
            .collect();
        Arc::new(shared)
    }
}

/// Per-worker state of one cluster.
pub(crate) struct ClusterLocal {
    pub(crate) stats: Arc<ClusterStats>,
    pub(crate) shared: Shared,
    lb: RefCell<Balancer>,
    outlier: RefCell<Option<OutlierDetector>>,
    /// The active-health generation the balancer was last built for.
    health_seen: Cell<u64>,
    /// The next outlier-detection deadline, cached so a pick reads one
    /// `Option<Instant>` instead of borrowing the detector.
    outlier_due: Cell<Option<Instant>>,
    /// This worker's open connections per endpoint (pooled or busy).
    open: Vec<Rc<Cell<u32>>>,
    /// TLS and HTTP version towards the endpoints.
    pub(crate) transport: spar_config::ClusterTransport,
}

/// One admission under a circuit-breaker limit, given back when dropped
/// (also when the future holding it is dropped).
pub(crate) struct Admitted<'a> {
    breaker: &'a Breaker,
    kind: Limit,
}

#[derive(Clone, Copy)]
enum Limit {
    Request,
    Pending,
    Retry,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        match self.kind {
            Limit::Request => self.breaker.release_request(),
            Limit::Pending => self.breaker.release_pending(),
            Limit::Retry => self.breaker.release_retry(),
        }
    }
}

// The guards below are built lazily (`then`, never `then_some`): a guard
// built for a refused admission would give back a slot it never took.
impl Shared {
    pub(crate) fn request(&self, t: &Thresholds) -> Option<Admitted<'_>> {
        self.breaker.try_request(t).then(|| Admitted {
            breaker: &self.breaker,
            kind: Limit::Request,
        })
    }

    pub(crate) fn pending(&self, t: &Thresholds) -> Option<Admitted<'_>> {
        self.breaker.try_pending(t).then(|| Admitted {
            breaker: &self.breaker,
            kind: Limit::Pending,
        })
    }

    pub(crate) fn retry(&self, t: &Thresholds) -> Option<Admitted<'_>> {
        self.breaker.try_retry(t).then(|| Admitted {
            breaker: &self.breaker,
            kind: Limit::Retry,
        })
    }
}

impl ClusterLocal {
    pub(crate) fn new(
        cluster: &Cluster,
        transport: spar_config::ClusterTransport,
        stats: Arc<ClusterStats>,
        shared: Shared,
        seed: u64,
    ) -> ClusterLocal {
        let outlier = cluster
            .outlier
            .as_ref()
            .map(|o| OutlierDetector::new(o, cluster.endpoints.len()));
        let local = ClusterLocal {
            stats,
            shared,
            lb: RefCell::new(Balancer::new(cluster, seed)),
            outlier: RefCell::new(outlier),
            health_seen: Cell::new(u64::MAX),
            outlier_due: Cell::new(None),
            transport,
            open: (0..cluster.endpoints.len())
                .map(|_| Rc::new(Cell::new(0)))
                .collect(),
        };
        local.rebuild(cluster);
        local
    }

    /// An endpoint index, or None when no endpoint is usable.
    pub(crate) fn pick(
        &self,
        cluster: &Cluster,
        hash: Option<u64>,
        random: u64,
        avoid: &[usize],
        metadata_match: Option<&Metadata>,
    ) -> Option<usize> {
        self.refresh(cluster);
        let req = PickRequest {
            hash,
            random,
            avoid,
            metadata_match,
        };
        self.lb.borrow_mut().pick(cluster, &req)
    }

    pub(crate) fn started(&self, host: usize) {
        self.lb.borrow_mut().request_started(host);
    }

    pub(crate) fn finished(&self, host: usize) {
        self.lb.borrow_mut().request_finished(host);
    }

    /// This worker's open-connection count for endpoint `host`.
    pub(crate) fn open_to(&self, host: usize) -> Rc<Cell<u32>> {
        self.open
            .get(host)
            .cloned()
            .unwrap_or_else(|| Rc::new(Cell::new(0)))
    }

    /// Feeds an attempt's result to outlier detection (a no-op without it).
    pub(crate) fn record(
        &self,
        cluster: &Cluster,
        host: usize,
        result: OutlierResult,
        random: impl FnOnce() -> u64,
    ) {
        let changed = match self.outlier.borrow_mut().as_mut() {
            Some(o) => {
                let before = o.ejections_total();
                let changed = o.record(host, result, Instant::now(), random());
                let ejected = o.ejections_total() - before;
                if ejected > 0 {
                    self.stats
                        .outlier_detection_ejections_enforced_total
                        .add(ejected);
                }
                changed
            }
            None => false,
        };
        if changed {
            self.rebuild(cluster);
        }
    }

    /// Rebuilds the host set when active health changed or an ejection
    /// expired. Two loads and a compare when nothing did.
    fn refresh(&self, cluster: &Cluster) {
        let generation = self.shared.health.as_ref().map_or(0, |h| h.generation());
        let mut stale = generation != self.health_seen.get();
        if let Some(due) = self.outlier_due.get() {
            let now = Instant::now();
            if now >= due
                && let Some(o) = self.outlier.borrow_mut().as_mut()
            {
                stale |= o.tick(now);
                self.outlier_due.set(o.next_deadline());
            }
        }
        if stale {
            self.rebuild(cluster);
        }
    }

    fn rebuild(&self, cluster: &Cluster) {
        let health = self.shared.health.as_deref();
        self.health_seen.set(health.map_or(0, |h| h.generation()));
        let outlier = self.outlier.borrow();
        let unhealthy: Vec<bool> = cluster
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                matches!(
                    e.health,
                    ConfiguredHealth::Unhealthy | ConfiguredHealth::Draining
                ) || health.is_some_and(|h| h.is_failed(i))
                    || outlier.as_ref().is_some_and(|o| o.is_ejected(i))
            })
            .collect();
        if let Some(o) = outlier.as_ref() {
            self.outlier_due.set(o.next_deadline());
            let active = i64::try_from(o.ejected_now()).unwrap_or(i64::MAX);
            self.stats.outlier_detection_ejections_active.set(active);
        }
        drop(outlier);
        self.lb.borrow_mut().set_health(cluster, &unhealthy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_admission_gives_nothing_back() {
        let shared = Shared::detached();
        let t = Thresholds {
            max_requests: 1,
            max_pending_requests: 1,
            ..Thresholds::default()
        };
        let first = shared.request(&t);
        assert!(first.is_some());
        assert!(shared.request(&t).is_none());
        assert_eq!(shared.breaker.active().requests, 1);
        let pending = shared.pending(&t);
        assert!(shared.pending(&t).is_none());
        assert_eq!(shared.breaker.active().pending, 1);
        drop((first, pending));
        assert_eq!(shared.breaker.active().requests, 0);
        assert_eq!(shared.breaker.active().pending, 0);
    }
}
