//! [`Balancer`]: which endpoint of a cluster takes the next request, on one worker.
//!
//! A pick goes: subset (when `lb_subset_config` is set) -> priority -> locality (when
//! locality-weighted) -> host by the cluster's policy. Everything a pick needs is built by
//! [`Balancer::new`] and [`Balancer::set_health`], so a pick does not allocate.
//!
//! - **Priority load** (Envoy's, overprovisioning factor 1.4): a priority with `h` healthy
//!   of `n` hosts has health `min(100, 140 * h / n)`; priorities take load in order, each its
//!   health in percent of what is left, scaled up when the sum of healths is under 100; any
//!   rounding remainder goes to the first priority with health. The priority is chosen with
//!   the request hash when there is one (so hashing stays consistent), else the random value.
//!   Host counts, not weights, measure health (as Envoy).
//! - **Panic threshold**: a priority whose healthy share is below `panic_threshold_percent`
//!   balances over all its hosts, healthy or not (0 disables panic). When no priority has a
//!   healthy host, all load goes to the first priority, in panic unless the threshold is 0
//!   (then the pick finds nothing: 503). Envoy's newer "all priorities in panic" spreading
//!   is not modelled.
//! - **Locality-weighted** (RR, LR, RANDOM only; spar-config refuses it with hashing
//!   policies): a locality's effective weight is `weight * min(100, 140 * h / n)`; a locality
//!   is drawn by effective weight, then a host among its healthy ones. In panic mode
//!   localities are not used.
//! - **LEAST_REQUEST**: equal weights: `choice_count` uniform samples, fewest active requests
//!   wins (power of two choices by default). Unequal weights: Envoy switches to weighted
//!   scheduling by `weight / (active + 1)^bias`; Spar keeps the sampling but draws the
//!   samples by weight and keeps the one with the fewest active requests per unit of weight
//!   (`active / weight`, ties keep the earlier sample). With no load the picks follow the
//!   weights exactly (the first sample wins every tie); under load active requests settle in
//!   proportion to the weights, which is what weighted least request aims at; the cost stays
//!   O(choice_count) with no scheduler state to maintain per request.
//! - **RING_HASH / MAGLEV**: the request hash picks the host (the random value when the
//!   request has no hash, as Envoy). Spar's hash of a host differs from Envoy's (see
//!   `picker::hash_bytes`).
//! - **avoid** (retry previous hosts): a host in `avoid` is re-drawn up to
//!   `AVOID_ATTEMPTS` (3) times, then the first other host of the same candidate list is
//!   taken; the avoided host is returned only when it is the only candidate.
//! - **Subsets**: every selector's key set, with every combination of values found among
//!   endpoints that have all those keys, is a subset with its own priorities and pickers. A
//!   request whose `metadata_match` equals a subset's pairs balances in it; one with no
//!   `metadata_match`, or with no such subset, takes the fallback (none, the whole cluster,
//!   or the default subset), as Envoy.

mod picker;

use crate::{Cluster, LbPolicy, Metadata, SubsetFallback, mix};
use picker::{Picker, hash_bytes};

/// A subset's metadata pairs, sorted by key.
type Pairs = Vec<(String, String)>;

/// Re-draws for a host in `PickRequest::avoid` before walking the candidate list (Envoy's
/// `host_selection_retry_max_attempts` default is 1; 3 makes a repeat rare on small clusters
/// without costing much).
pub(crate) const AVOID_ATTEMPTS: u32 = 3;

/// What a pick may read from a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest<'a> {
    /// The route's hash policy result (RING_HASH, MAGLEV; also chooses the priority).
    pub hash: Option<u64>,
    /// A fresh random value per pick.
    pub random: u64,
    /// Hosts to avoid if possible (retry previous hosts), endpoint indices.
    pub avoid: &'a [usize],
    /// The route's `metadata_match` for subset selection.
    pub metadata_match: Option<&'a Metadata>,
}

/// Per-worker load balancer over one cluster. Not shared between threads.
#[derive(Debug, Clone)]
pub struct Balancer {
    seed: u64,
    policy: LbPolicy,
    /// Configured Unhealthy/Draining, folded into every `set_health`.
    configured: Vec<bool>,
    /// Least-request counts by endpoint index (this worker's requests).
    active: Vec<u32>,
    all: HostSet,
    subsets: Option<Subsets>,
}

#[derive(Debug, Clone)]
struct Subsets {
    fallback: SubsetFallback,
    /// (hash of the pairs, index into `sets`), sorted, for lookups without allocation.
    index: Vec<(u64, usize)>,
    sets: Vec<(Pairs, HostSet)>,
    default: Option<HostSet>,
}

/// Some endpoints of a cluster, by priority.
#[derive(Debug, Clone)]
struct HostSet {
    levels: Vec<Level>,
    /// Cumulative load in percent per level; the last is 100 (or all 0 when empty).
    cumulative: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Level {
    hosts: Vec<usize>,
    /// Every host of the level (panic mode, and normal mode when all are healthy).
    all: Picker,
    /// Healthy hosts; `None` when every host is healthy (`all` serves).
    healthy: Option<Picker>,
    healthy_count: usize,
    panic: bool,
    /// Locality-weighted mode: (cumulative effective weight, picker over the locality's
    /// healthy hosts). Empty when not in that mode.
    localities: Vec<(u64, Picker)>,
}

impl Balancer {
    /// Builds every host set, subset and picker for `cluster`, with its configured health.
    /// `seed` staggers round-robin starting points between workers.
    pub fn new(cluster: &Cluster, seed: u64) -> Self {
        let configured = cluster.configured_unhealthy();
        let every: Vec<usize> = (0..cluster.endpoints.len()).collect();
        let subsets = cluster.subsets.as_ref().map(|cfg| {
            let mut sets: Vec<(Pairs, Vec<usize>)> = Vec::new();
            for keys in &cfg.selectors {
                for (i, e) in cluster.endpoints.iter().enumerate() {
                    let pairs: Option<Pairs> = keys
                        .iter()
                        .map(|k| e.metadata.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    let Some(mut pairs) = pairs else { continue };
                    pairs.sort();
                    pairs.dedup();
                    match sets.iter_mut().find(|(p, _)| *p == pairs) {
                        Some((_, hosts)) => {
                            if !hosts.contains(&i) {
                                hosts.push(i);
                            }
                        }
                        None => sets.push((pairs, vec![i])),
                    }
                }
            }
            sets.sort();
            let default = (cfg.fallback == SubsetFallback::DefaultSubset).then(|| {
                let hosts: Vec<usize> = cluster
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| {
                        cfg.default_subset
                            .iter()
                            .all(|(k, v)| e.metadata.get(k) == Some(v))
                    })
                    .map(|(i, _)| i)
                    .collect();
                HostSet::new(cluster, &hosts, seed, &configured)
            });
            let sets: Vec<(Pairs, HostSet)> = sets
                .into_iter()
                .map(|(pairs, hosts)| {
                    let set = HostSet::new(cluster, &hosts, seed, &configured);
                    (pairs, set)
                })
                .collect();
            let mut index: Vec<(u64, usize)> = sets
                .iter()
                .enumerate()
                .map(|(i, (pairs, _))| {
                    (
                        pairs_hash(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                        i,
                    )
                })
                .collect();
            index.sort_unstable();
            Subsets {
                fallback: cfg.fallback,
                index,
                sets,
                default,
            }
        });
        Self {
            seed,
            policy: cluster.lb,
            all: HostSet::new(cluster, &every, seed, &configured),
            active: vec![0; cluster.endpoints.len()],
            configured,
            subsets,
        }
    }

    /// Rebuilds host sets after health changes: `unhealthy[i]` = active HC failed OR
    /// outlier ejected OR configured Unhealthy/Draining (the configured part is folded in
    /// here too). Missing entries count as healthy.
    pub fn set_health(&mut self, cluster: &Cluster, unhealthy: &[bool]) {
        if cluster.endpoints.len() != self.active.len() || cluster.lb != self.policy {
            *self = Self::new(cluster, self.seed);
        }
        let merged: Vec<bool> = self
            .configured
            .iter()
            .enumerate()
            .map(|(i, c)| *c || unhealthy.get(i).copied().unwrap_or(false))
            .collect();
        self.all.set_health(cluster, &merged, self.seed);
        if let Some(s) = &mut self.subsets {
            for (_, set) in &mut s.sets {
                set.set_health(cluster, &merged, self.seed);
            }
            if let Some(d) = &mut s.default {
                d.set_health(cluster, &merged, self.seed);
            }
        }
    }

    /// Endpoint index, or `None` when the cluster (or the chosen subset) has no usable
    /// endpoint.
    pub fn pick(&mut self, cluster: &Cluster, req: &PickRequest<'_>) -> Option<usize> {
        if cluster.endpoints.len() != self.active.len() {
            // Not the cluster this balancer was built for; a caller bug, but stay correct.
            *self = Self::new(cluster, self.seed);
        }
        let active = &self.active;
        let set = match &mut self.subsets {
            None => &mut self.all,
            Some(s) => {
                let found = req.metadata_match.and_then(|m| {
                    let pairs = || m.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                    let h = pairs_hash(pairs());
                    let from = s.index.partition_point(|(x, _)| *x < h);
                    s.index[from..]
                        .iter()
                        .take_while(|(x, _)| *x == h)
                        .map(|(_, i)| *i)
                        .find(|i| {
                            s.sets.get(*i).is_some_and(|(p, _)| {
                                p.iter().map(|(k, v)| (k.as_str(), v.as_str())).eq(pairs())
                            })
                        })
                });
                match (found, s.fallback) {
                    (Some(i), _) => &mut s.sets.get_mut(i)?.1,
                    (None, SubsetFallback::NoFallback) => return None,
                    (None, SubsetFallback::AnyEndpoint) => &mut self.all,
                    (None, SubsetFallback::DefaultSubset) => s.default.as_mut()?,
                }
            }
        };
        set.pick(req, active)
    }

    /// A request to `host` started (least-request bookkeeping, this worker only).
    pub fn request_started(&mut self, host: usize) {
        if let Some(a) = self.active.get_mut(host) {
            *a = a.saturating_add(1);
        }
    }

    /// A request to `host` finished.
    pub fn request_finished(&mut self, host: usize) {
        if let Some(a) = self.active.get_mut(host) {
            *a = a.saturating_sub(1);
        }
    }

    /// Active requests to `host` on this worker.
    pub fn active_requests(&self, host: usize) -> u32 {
        self.active.get(host).copied().unwrap_or(0)
    }
}

/// Hash of metadata pairs in key order (both sides iterate sorted pairs).
fn pairs_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = 0u64;
    for (k, v) in pairs {
        h = mix(h ^ hash_bytes(k.as_bytes()));
        h = mix(h ^ hash_bytes(v.as_bytes()));
    }
    h
}

impl HostSet {
    fn new(cluster: &Cluster, hosts: &[usize], seed: u64, unhealthy: &[bool]) -> Self {
        let mut priorities: Vec<u32> = hosts
            .iter()
            .filter_map(|&i| cluster.endpoints.get(i).map(|e| e.priority))
            .collect();
        priorities.sort_unstable();
        priorities.dedup();
        let levels = priorities
            .into_iter()
            .map(|p| {
                let hosts: Vec<usize> = hosts
                    .iter()
                    .copied()
                    .filter(|&i| cluster.endpoints.get(i).is_some_and(|e| e.priority == p))
                    .collect();
                Level {
                    all: Picker::new(cluster.lb, cluster, &hosts, seed),
                    healthy_count: hosts.len(),
                    hosts,
                    healthy: None,
                    panic: false,
                    localities: Vec::new(),
                }
            })
            .collect();
        let mut set = Self {
            levels,
            cumulative: Vec::new(),
        };
        set.set_health(cluster, unhealthy, seed);
        set
    }

    fn set_health(&mut self, cluster: &Cluster, unhealthy: &[bool], seed: u64) {
        let bad = |i: &usize| unhealthy.get(*i).copied().unwrap_or(false);
        let hashing = matches!(
            cluster.lb,
            LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }
        );
        for level in &mut self.levels {
            let healthy: Vec<usize> = level.hosts.iter().copied().filter(|i| !bad(i)).collect();
            level.healthy_count = healthy.len();
            level.healthy = (healthy.len() != level.hosts.len())
                .then(|| Picker::new(cluster.lb, cluster, &healthy, seed));
            let share = 100.0 * healthy.len() as f64 / level.hosts.len().max(1) as f64;
            level.panic = share < cluster.panic_threshold_percent;
            level.localities.clear();
            if cluster.locality_weighted && !hashing {
                let mut localities: Vec<u32> = level
                    .hosts
                    .iter()
                    .filter_map(|&i| cluster.endpoints.get(i).map(|e| e.locality))
                    .collect();
                localities.sort_unstable();
                localities.dedup();
                let mut acc = 0u64;
                for l in localities {
                    let of_l =
                        |i: &usize| cluster.endpoints.get(*i).is_some_and(|e| e.locality == l);
                    let total = level.hosts.iter().filter(|i| of_l(i)).count() as u64;
                    let good: Vec<usize> = healthy.iter().copied().filter(|i| of_l(i)).collect();
                    let weight =
                        u64::from(cluster.localities.get(l as usize).map_or(0, |x| x.weight));
                    let effective = weight * (140 * good.len() as u64 / total.max(1)).min(100);
                    if effective == 0 {
                        continue;
                    }
                    acc += effective;
                    level
                        .localities
                        .push((acc, Picker::new(cluster.lb, cluster, &good, seed)));
                }
            }
        }
        // Priority load.
        let health: Vec<u32> = self
            .levels
            .iter()
            .map(|l| (140 * l.healthy_count / l.hosts.len().max(1)).min(100) as u32)
            .collect();
        let total: u32 = health.iter().sum::<u32>().min(100);
        let mut load = vec![0u32; self.levels.len()];
        if let Some(nonzero) = std::num::NonZeroU32::new(total) {
            let mut remaining = 100u32;
            for (l, h) in load.iter_mut().zip(&health) {
                *l = remaining.min(h * 100 / nonzero);
                remaining -= *l;
            }
            if let Some(p) = health.iter().position(|h| *h > 0) {
                load[p] += remaining;
            }
        } else {
            if let Some(first) = load.first_mut() {
                *first = 100;
            }
            // No healthy host anywhere: the first priority takes all, in panic unless off.
            if let Some(l) = self.levels.first_mut() {
                l.panic = cluster.panic_threshold_percent > 0.0;
            }
        }
        self.cumulative = load
            .iter()
            .scan(0u32, |acc, l| {
                *acc += l;
                Some(*acc)
            })
            .collect();
    }

    fn pick(&mut self, req: &PickRequest<'_>, active: &[u32]) -> Option<usize> {
        let pct = (req.hash.unwrap_or(req.random) % 100) as u32;
        let p = self.cumulative.partition_point(|c| *c <= pct);
        let level = self.levels.get_mut(p)?;
        let random = mix(req.random);
        let picker = if level.panic {
            &mut level.all
        } else if let Some(total) = level.localities.last().map(|(c, _)| *c) {
            let r = mix(random ^ 0x6c6f_6361_6c69_7479) % total;
            let at = level.localities.partition_point(|(c, _)| *c <= r);
            &mut level.localities.get_mut(at)?.1
        } else {
            match &mut level.healthy {
                Some(h) => h,
                None => &mut level.all,
            }
        };
        pick_avoiding(picker, random, req.hash, active, req.avoid)
    }
}

fn pick_avoiding(
    picker: &mut Picker,
    random: u64,
    hash: Option<u64>,
    active: &[u32],
    avoid: &[usize],
) -> Option<usize> {
    if picker.is_empty() {
        return None;
    }
    let mut r = random;
    let mut h = hash;
    let mut last = None;
    for _ in 0..=AVOID_ATTEMPTS {
        let host = picker.pick(r, h, active)?;
        if !avoid.contains(&host) {
            return Some(host);
        }
        last = Some(host);
        r = mix(r);
        h = h.map(mix);
    }
    let hosts = picker.hosts();
    let start = (r % hosts.len() as u64) as usize;
    hosts
        .iter()
        .cycle()
        .skip(start)
        .take(hosts.len())
        .find(|h| !avoid.contains(h))
        .copied()
        .or(last)
}

#[cfg(test)]
mod tests;
