//! Consecutive-failure outlier detection (Envoy's consecutive 5xx, consecutive gateway
//! failure and consecutive local-origin failure detectors), one detector per worker: each
//! worker ejects from what it sees, so nothing here is shared or locked.
//!
//! Semantics, with Envoy's where they differ:
//! - Results: any 5xx counts towards `consecutive_5xx`; 502, 503 and 504 also towards
//!   `consecutive_gateway_failure`; any other status resets the counter it does not feed.
//!   Local-origin failures (connect failure, timeout, reset before a response) count as a
//!   503 unless `split_external_local_origin_errors`, in which case they feed
//!   `consecutive_local_origin_failure` instead, and local-origin successes reset it.
//!   Without the split, local-origin successes are ignored (the response that follows counts).
//! - When a counter reaches its threshold the host is ejected with probability
//!   `enforcing_*`% (drawn from the `random` argument), and that counter restarts from zero
//!   either way (Envoy fires exactly at the threshold and restarts only on a success, so a
//!   non-enforced detection there blocks further detections until a success; restarting is
//!   the intent of ramping enforcement up and is what Spar does).
//! - `max_ejection_percent`: a host is ejected only while `100 * ejected / hosts` is below
//!   the percentage *before* this ejection, as Envoy does. So with any non-zero percentage at
//!   least one host can always be ejected (10 % of 3 hosts ejects one), and 0 ejects none.
//! - Ejection time: `base_ejection_time * times ejected`, capped at
//!   `max(max_ejection_time, base_ejection_time)`, plus a random jitter in
//!   `[0, max_ejection_time_jitter]`.
//! - Un-ejection happens at the interval sweeps ([`OutlierDetector::tick`]), as in Envoy:
//!   a host comes back at the first sweep after its time is up. At each sweep a host that is
//!   not ejected has its ejection count decreased by one, so a host that stays healthy is
//!   ejected for shorter times again.
//! - Sweeps are anchored at the detector's first activity and follow every `interval`.
//! - Not implemented: success-rate and failure-percentage detection (spar-config refuses
//!   configs that enforce them). Envoy's default `enforcing_success_rate` is 100, so Envoy
//!   runs success-rate ejection by default once at least 5 hosts each saw at least 100
//!   requests in an interval; spar-proxy does not.
//! - A successful active health check does not un-eject a host (Envoy's
//!   `successful_active_health_check_uneject_host`, default true, is not modelled yet).

use std::time::{Duration, Instant};

/// Envoy `OutlierDetection`, consecutive detectors only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Time between sweeps (Envoy default 10 s).
    pub interval: Duration,
    /// Ejection time per ejection so far (Envoy default 30 s).
    pub base_ejection_time: Duration,
    /// Longest ejection time (Envoy default 300 s).
    pub max_ejection_time: Duration,
    /// Most hosts ejected at once, percent of the cluster (Envoy default 10).
    pub max_ejection_percent: u32,
    /// Consecutive 5xx before detection; 0 disables (Envoy default 5).
    pub consecutive_5xx: u32,
    /// Percent chance a 5xx detection ejects (Envoy default 100).
    pub enforcing_consecutive_5xx: u32,
    /// Consecutive 502/503/504 before detection; 0 disables (Envoy default 5).
    pub consecutive_gateway_failure: u32,
    /// Percent chance a gateway detection ejects (Envoy default 0).
    pub enforcing_consecutive_gateway_failure: u32,
    /// Keep local-origin failures apart from HTTP statuses (Envoy default false).
    pub split_external_local_origin_errors: bool,
    /// Consecutive local-origin failures before detection (split mode; Envoy default 5).
    pub consecutive_local_origin_failure: u32,
    /// Percent chance a local-origin detection ejects (Envoy default 100).
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Most random time added to an ejection (Envoy default 0).
    pub max_ejection_time_jitter: Duration,
}

impl Default for OutlierConfig {
    /// Envoy's defaults.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            max_ejection_time_jitter: Duration::ZERO,
        }
    }
}

/// What one request to a host ended with.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OutlierResult {
    /// The host answered with this HTTP status.
    Status(u16),
    /// Connect failure, timeout or reset before a response (the proxy's side saw it fail).
    LocalOriginFailure,
    /// The connection to the host was established.
    LocalOriginSuccess,
}

#[derive(Clone, Debug, Default)]
struct Host {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    /// Times ejected, decayed by one per sweep while not ejected.
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// Outlier state of one cluster on one worker. Host indices are `Cluster::endpoints`
/// indices.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    cfg: OutlierConfig,
    hosts: Vec<Host>,
    ejected_now: usize,
    ejections_total: u64,
    next_sweep: Option<Instant>,
}

impl OutlierDetector {
    /// Nothing ejected; `hosts` endpoints.
    pub fn new(cfg: &OutlierConfig, hosts: usize) -> Self {
        Self {
            cfg: cfg.clone(),
            hosts: vec![Host::default(); hosts],
            ejected_now: 0,
            ejections_total: 0,
            next_sweep: None,
        }
    }

    /// Folds one result in. True when the host was ejected by it (the caller then rebuilds
    /// its balancer with [`crate::Balancer::set_health`]).
    pub fn record(&mut self, host: usize, r: OutlierResult, now: Instant, random: u64) -> bool {
        if self.next_sweep.is_none() {
            self.next_sweep = now.checked_add(self.cfg.interval);
        }
        let cfg = &self.cfg;
        let Some(h) = self.hosts.get_mut(host) else {
            return false;
        };
        if h.ejected_until.is_some() {
            return false; // late results of requests sent before the ejection
        }
        let status = match r {
            OutlierResult::Status(s) => Some(s),
            OutlierResult::LocalOriginFailure if cfg.split_external_local_origin_errors => {
                h.consecutive_local += 1;
                None
            }
            OutlierResult::LocalOriginFailure => Some(503),
            OutlierResult::LocalOriginSuccess => {
                if cfg.split_external_local_origin_errors {
                    h.consecutive_local = 0;
                }
                None
            }
        };
        if let Some(s) = status {
            if (500..600).contains(&s) {
                h.consecutive_5xx += 1;
            } else {
                h.consecutive_5xx = 0;
            }
            if (502..=504).contains(&s) {
                h.consecutive_gateway += 1;
            } else {
                h.consecutive_gateway = 0;
            }
        }
        // Every detector looks at every result (Envoy): one that fires but is not enforced
        // must not keep another from firing on the same response. Each enforcement roll
        // takes its own bits of `random`.
        let mut roll = random;
        let mut enforce = |fired: bool, enforcing: u32| {
            let hit = fired && roll % 100 < u64::from(enforcing);
            roll = crate::mix(roll);
            hit
        };
        let fired_5xx = cfg.consecutive_5xx > 0 && h.consecutive_5xx >= cfg.consecutive_5xx;
        if fired_5xx {
            h.consecutive_5xx = 0;
        }
        let fired_gateway = cfg.consecutive_gateway_failure > 0
            && h.consecutive_gateway >= cfg.consecutive_gateway_failure;
        if fired_gateway {
            h.consecutive_gateway = 0;
        }
        let fired_local = cfg.split_external_local_origin_errors
            && cfg.consecutive_local_origin_failure > 0
            && h.consecutive_local >= cfg.consecutive_local_origin_failure;
        if fired_local {
            h.consecutive_local = 0;
        }
        let eject = enforce(fired_5xx, cfg.enforcing_consecutive_5xx)
            | enforce(fired_gateway, cfg.enforcing_consecutive_gateway_failure)
            | enforce(fired_local, cfg.enforcing_consecutive_local_origin_failure);
        if eject {
            self.eject(host, now, crate::mix(roll))
        } else {
            false
        }
    }

    fn eject(&mut self, host: usize, now: Instant, random: u64) -> bool {
        let total = self.hosts.len() as u64;
        // Envoy: allowed while the share ejected *before* this one is under the maximum.
        if 100 * self.ejected_now as u64 >= u64::from(self.cfg.max_ejection_percent) * total {
            return false;
        }
        let cfg = &self.cfg;
        let Some(h) = self.hosts.get_mut(host) else {
            return false;
        };
        h.ejections = h.ejections.saturating_add(1);
        let cap = cfg.max_ejection_time.max(cfg.base_ejection_time);
        let time = cfg.base_ejection_time.saturating_mul(h.ejections).min(cap);
        let jitter_ns = u64::try_from(cfg.max_ejection_time_jitter.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(random % jitter_ns.saturating_add(1));
        h.ejected_until = Some(
            now.checked_add(time.saturating_add(jitter))
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        );
        h.consecutive_5xx = 0;
        h.consecutive_gateway = 0;
        h.consecutive_local = 0;
        self.ejected_now += 1;
        self.ejections_total += 1;
        true
    }

    /// Runs the sweep when it is due: un-ejects hosts whose time is up and decays the
    /// ejection counts of hosts that are not ejected. True when a host came back.
    pub fn tick(&mut self, now: Instant) -> bool {
        let Some(due) = self.next_sweep else {
            self.next_sweep = now.checked_add(self.cfg.interval);
            return false;
        };
        if now < due {
            return false;
        }
        let mut next = due.checked_add(self.cfg.interval);
        if next.is_some_and(|n| n <= now) {
            next = now.checked_add(self.cfg.interval); // far behind: re-anchor
        }
        self.next_sweep = next;
        let mut changed = false;
        for h in &mut self.hosts {
            match h.ejected_until {
                Some(until) if until <= now => {
                    h.ejected_until = None;
                    self.ejected_now -= 1;
                    changed = true;
                }
                Some(_) => {}
                None => h.ejections = h.ejections.saturating_sub(1),
            }
        }
        changed
    }

    /// Host `host` is ejected now.
    pub fn is_ejected(&self, host: usize) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.ejected_until.is_some())
    }

    /// When [`Self::tick`] has work next: the next sweep while any host is ejected or has an
    /// ejection count to decay; `None` when there is nothing to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let busy = self
            .hosts
            .iter()
            .any(|h| h.ejected_until.is_some() || h.ejections > 0);
        if busy { self.next_sweep } else { None }
    }

    /// Ejections since creation (for `envoy_cluster_outlier_detection_ejections_enforced_total`).
    pub fn ejections_total(&self) -> u64 {
        self.ejections_total
    }

    /// Hosts ejected now.
    pub fn ejected_now(&self) -> usize {
        self.ejected_now
    }

    /// Times host `host` has been ejected, after decay (for tests and admin output).
    pub fn ejection_count(&self, host: usize) -> u32 {
        self.hosts.get(host).map_or(0, |h| h.ejections)
    }
}

#[cfg(test)]
mod tests;
