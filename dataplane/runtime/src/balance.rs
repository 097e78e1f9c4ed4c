//! A worker's view of one cluster: its load balancer, its outlier detector,
//! the shared active-health flags and circuit breaker, and its counters.
//!
//! Decisions are spar-cluster's; this file only feeds them (time, random
//! numbers, health) and keeps the balancer's host set in step with health.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use spar_cluster::{
    Balancer, Breaker, Cluster, ConfiguredHealth, Metadata, OutlierDetector, OutlierResult,
    PickRequest, SharedHealth,
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
}

impl ClusterLocal {
    pub(crate) fn new(
        cluster: &Cluster,
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

    /// Feeds an attempt's result to outlier detection.
    pub(crate) fn record(
        &self,
        cluster: &Cluster,
        host: usize,
        result: OutlierResult,
        random: u64,
    ) {
        let changed = match self.outlier.borrow_mut().as_mut() {
            Some(o) => {
                let before = o.ejections_total();
                let changed = o.record(host, result, Instant::now(), random);
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
