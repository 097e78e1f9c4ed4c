//! Active health checking: probes every endpoint of every cluster that has `health_checks`,
//! on the control thread's tokio runtime, and publishes the results as
//! [`spar_cluster::SharedHealth`] flags that workers read.
//!
//! What it does: one task per (endpoint, health check). A task checks at once, then every
//! `interval` plus a random `[0, interval_jitter]`; each check gets `timeout` for connect,
//! request and answer. HTTP checks send `GET <path> HTTP/1.1` with `Host: <host or cluster
//! name>` and `Connection: close` (one connection per check; Envoy reuses one) and read the
//! status line; TCP checks connect, send the payload if any, and read until every expected
//! block arrived. Results go through [`spar_cluster::health::HealthState`] (thresholds,
//! first-result rule: see that module). An endpoint is failed while any of its checks says
//! so.
//!
//! What it does not do: gRPC or custom checks, TLS, `no_traffic_interval`, un-ejecting
//! outlier-ejected hosts on success; the decisions themselves (thresholds, matching) are
//! spar-cluster's.

#![forbid(unsafe_code)]

mod probe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use spar_cluster::health::{HealthCheck, HealthState};
use spar_cluster::{Cluster, SharedHealth};
use tokio::task::JoinHandle;
use tracing::debug;

/// Runs active health checks for every cluster that has them; writes [`SharedHealth`] flags.
#[derive(Debug, Default)]
pub struct HealthChecker {
    running: HashMap<String, Running>,
}

/// The checks of one cluster. Dropping it stops them.
#[derive(Debug)]
struct Running {
    endpoints: Vec<SocketAddr>,
    checks: Vec<HealthCheck>,
    shared: Arc<SharedHealth>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl HealthChecker {
    /// No clusters checked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts and stops checkers to match a snapshot's clusters. A cluster whose name,
    /// endpoint addresses and health checks are unchanged keeps its running checks and its
    /// [`SharedHealth`] (so health survives config reloads); any other cluster with checks
    /// starts afresh; checkers of clusters that are gone (or lost their checks) stop.
    ///
    /// Returns cluster name -> flags, for clusters that have health checks only: a cluster
    /// missing from the map is not actively checked (all its endpoints pass).
    /// Must be called inside a tokio runtime (it spawns tasks).
    pub fn sync(&mut self, clusters: &[Arc<Cluster>]) -> HashMap<String, Arc<SharedHealth>> {
        let mut old = std::mem::take(&mut self.running);
        let mut out = HashMap::new();
        for c in clusters {
            if c.health_checks.is_empty() || self.running.contains_key(&c.name) {
                continue;
            }
            let endpoints: Vec<SocketAddr> = c.endpoints.iter().map(|e| e.address).collect();
            let running = match old.remove(&c.name) {
                Some(r) if r.endpoints == endpoints && r.checks == c.health_checks => r,
                _ => start(c, endpoints),
            };
            out.insert(c.name.clone(), running.shared.clone());
            self.running.insert(c.name.clone(), running);
        }
        // `old` now holds clusters that went away or changed: dropping it stops them.
        drop(old);
        out
    }

    /// Clusters being checked.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// No cluster is being checked.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

fn start(c: &Cluster, endpoints: Vec<SocketAddr>) -> Running {
    let shared = Arc::new(SharedHealth::new(endpoints.len()));
    // Per endpoint, one bit per check that currently fails it.
    let failing = Arc::new(Mutex::new(vec![0u64; endpoints.len()]));
    let mut tasks = Vec::with_capacity(endpoints.len() * c.health_checks.len());
    for (ci, hc) in c.health_checks.iter().enumerate() {
        let bit = 1u64 << ci.min(63);
        for (i, addr) in endpoints.iter().enumerate() {
            let job = Job {
                cluster: c.name.clone(),
                index: i,
                address: *addr,
                hc: hc.clone(),
                bit,
                shared: shared.clone(),
                failing: failing.clone(),
            };
            tasks.push(tokio::spawn(job.run()));
        }
    }
    Running {
        endpoints,
        checks: c.health_checks.clone(),
        shared,
        tasks,
    }
}

struct Job {
    cluster: String,
    index: usize,
    address: SocketAddr,
    hc: HealthCheck,
    bit: u64,
    shared: Arc<SharedHealth>,
    failing: Arc<Mutex<Vec<u64>>>,
}

impl Job {
    async fn run(self) {
        let mut state = HealthState::new();
        loop {
            let result = probe::check(self.address, &self.hc, &self.cluster).await;
            if state.record(result, &self.hc) {
                debug!(
                    cluster = %self.cluster,
                    endpoint = %self.address,
                    failed = state.is_failed(),
                    "health changed"
                );
                let any = {
                    let mut f = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
                    let Some(mask) = f.get_mut(self.index) else {
                        return;
                    };
                    if state.is_failed() {
                        *mask |= self.bit;
                    } else {
                        *mask &= !self.bit;
                    }
                    *mask != 0
                };
                self.shared.set_failed(self.index, any);
            }
            tokio::time::sleep(next_delay(&self.hc)).await;
        }
    }
}

/// `interval` plus a uniform random jitter in `[0, interval_jitter]`.
fn next_delay(hc: &HealthCheck) -> Duration {
    let jitter_ns = u64::try_from(hc.interval_jitter.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if jitter_ns == 0 {
        0
    } else {
        fastrand::u64(0..=jitter_ns)
    };
    hc.interval.saturating_add(Duration::from_nanos(jitter))
}
