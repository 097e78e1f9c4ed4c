//! Load balancing settings of a `Cluster`: `lb_policy` with its `*_lb_config`,
//! `common_lb_config` (panic threshold, locality-weighted balancing) and `lb_subset_config`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    self, common_lb_config, lb_subset_config,
};
use spar_cluster::{
    DEFAULT_CHOICE_COUNT, DEFAULT_MAGLEV_TABLE, DEFAULT_MAX_RING, DEFAULT_MIN_RING,
    DEFAULT_PANIC_THRESHOLD_PERCENT, LbPolicy, MAX_MAGLEV_TABLE, Metadata, SubsetConfig,
    SubsetFallback,
};

use super::Ctx;
use super::endpoints::struct_pairs;
use crate::error::FieldPath;

/// Envoy's largest ring (`maximum_ring_size` may not exceed 8M).
const MAX_RING: u64 = DEFAULT_MAX_RING;

pub(super) struct Lb {
    pub(super) policy: LbPolicy,
    pub(super) panic_threshold_percent: f64,
    pub(super) locality_weighted: bool,
    pub(super) subsets: Option<SubsetConfig>,
}

pub(super) fn compile(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Lb {
    let policy = policy(ctx, c, p);
    let mut out = Lb {
        policy,
        panic_threshold_percent: DEFAULT_PANIC_THRESHOLD_PERCENT,
        locality_weighted: false,
        subsets: None,
    };
    if let Some(common) = &c.common_lb_config {
        let cp = p.field("common_lb_config");
        if let Some(t) = &common.healthy_panic_threshold {
            if (0.0..=100.0).contains(&t.value) {
                out.panic_threshold_percent = t.value;
            } else {
                ctx.error(
                    &cp.field("healthy_panic_threshold").field("value"),
                    "healthy_panic_threshold must be from 0 to 100",
                );
            }
        }
        match &common.locality_config_specifier {
            Some(common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {
                if matches!(policy, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }) {
                    ctx.error(
                        &cp.field("locality_weighted_lb_config"),
                        "locality-weighted balancing works with ROUND_ROBIN, LEAST_REQUEST and RANDOM only",
                    );
                }
                out.locality_weighted = true;
            }
            Some(common_lb_config::LocalityConfigSpecifier::ZoneAwareLbConfig(_)) => ctx.error(
                &cp.field("zone_aware_lb_config"),
                "zone-aware balancing is not supported by spar-proxy yet",
            ),
            None => {}
        }
    }
    if let Some(s) = &c.lb_subset_config {
        out.subsets = Some(subsets(ctx, s, &p.field("lb_subset_config")));
    }
    out
}

fn policy(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> LbPolicy {
    use cluster::LbConfig;
    let lp = p.field("lb_policy");
    let name = cluster::LbPolicy::try_from(c.lb_policy).ok();
    // The `*_lb_config` set, with the policy it belongs to.
    let (config_name, config_policy) = match &c.lb_config {
        None => (None, None),
        Some(LbConfig::RingHashLbConfig(_)) => (
            Some("ring_hash_lb_config"),
            Some(cluster::LbPolicy::RingHash),
        ),
        Some(LbConfig::MaglevLbConfig(_)) => {
            (Some("maglev_lb_config"), Some(cluster::LbPolicy::Maglev))
        }
        Some(LbConfig::LeastRequestLbConfig(_)) => (
            Some("least_request_lb_config"),
            Some(cluster::LbPolicy::LeastRequest),
        ),
        Some(LbConfig::RoundRobinLbConfig(_)) => (
            Some("round_robin_lb_config"),
            Some(cluster::LbPolicy::RoundRobin),
        ),
        Some(LbConfig::OriginalDstLbConfig(_)) => (Some("original_dst_lb_config"), None),
    };
    if let Some(cfg) = config_name
        && config_policy != name
    {
        ctx.error(
            &p.field(cfg),
            format!(
                "{cfg} applies to lb_policy {}, not {}",
                config_policy.map_or("CLUSTER_PROVIDED", |p| p.as_str_name()),
                name.map_or("this one", |n| n.as_str_name())
            ),
        );
    }
    match (name, &c.lb_config) {
        (Some(cluster::LbPolicy::RoundRobin), _) => LbPolicy::RoundRobin,
        (Some(cluster::LbPolicy::Random), _) => LbPolicy::Random,
        (Some(cluster::LbPolicy::LeastRequest), cfg) => {
            let mut choice_count = DEFAULT_CHOICE_COUNT;
            if let Some(LbConfig::LeastRequestLbConfig(l)) = cfg
                && let Some(n) = l.choice_count
            {
                if n.value < 2 {
                    ctx.error(
                        &p.field("least_request_lb_config").field("choice_count"),
                        "choice_count must be at least 2",
                    );
                } else {
                    choice_count = n.value;
                }
            }
            LbPolicy::LeastRequest { choice_count }
        }
        (Some(cluster::LbPolicy::RingHash), cfg) => {
            let (mut min_ring, mut max_ring) = (DEFAULT_MIN_RING, DEFAULT_MAX_RING);
            if let Some(LbConfig::RingHashLbConfig(r)) = cfg {
                let rp = p.field("ring_hash_lb_config");
                for (v, field, slot) in [
                    (r.minimum_ring_size, "minimum_ring_size", &mut min_ring),
                    (r.maximum_ring_size, "maximum_ring_size", &mut max_ring),
                ] {
                    match v {
                        Some(v) if v.value == 0 || v.value > MAX_RING => ctx.error(
                            &rp.field(field),
                            format!("{field} must be from 1 to {MAX_RING}"),
                        ),
                        Some(v) => *slot = v.value,
                        None => {}
                    }
                }
                if min_ring > max_ring {
                    ctx.error(
                        &rp.field("minimum_ring_size"),
                        format!(
                            "minimum_ring_size {min_ring} is above maximum_ring_size {max_ring}"
                        ),
                    );
                }
            }
            LbPolicy::RingHash { min_ring, max_ring }
        }
        (Some(cluster::LbPolicy::Maglev), cfg) => {
            let mut table_size = DEFAULT_MAGLEV_TABLE;
            if let Some(LbConfig::MaglevLbConfig(m)) = cfg
                && let Some(v) = m.table_size
            {
                if v.value > MAX_MAGLEV_TABLE || !is_prime(v.value) {
                    ctx.error(
                        &p.field("maglev_lb_config").field("table_size"),
                        format!("table_size must be a prime number up to {MAX_MAGLEV_TABLE}"),
                    );
                } else {
                    table_size = v.value;
                }
            }
            LbPolicy::Maglev { table_size }
        }
        (other, _) => {
            ctx.error(
                &lp,
                format!(
                    "lb_policy {} not supported by spar-proxy yet",
                    other.map_or("?", |n| n.as_str_name())
                ),
            );
            LbPolicy::RoundRobin
        }
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn subsets(ctx: &mut Ctx<'_>, s: &cluster::LbSubsetConfig, p: &FieldPath) -> SubsetConfig {
    use lb_subset_config::LbSubsetFallbackPolicy as F;
    let fallback = match F::try_from(s.fallback_policy) {
        Ok(F::NoFallback) | Err(_) => SubsetFallback::NoFallback,
        Ok(F::AnyEndpoint) => SubsetFallback::AnyEndpoint,
        Ok(F::DefaultSubset) => SubsetFallback::DefaultSubset,
    };
    let default_subset = s.default_subset.as_ref().map_or_else(Metadata::new, |d| {
        struct_pairs(ctx, d, &p.field("default_subset"))
    });
    let sp = p.field("subset_selectors");
    let mut selectors: Vec<Vec<String>> = Vec::new();
    for (i, sel) in s.subset_selectors.iter().enumerate() {
        let mut keys = sel.keys.clone();
        keys.sort();
        keys.dedup();
        if keys.is_empty() || keys.iter().any(String::is_empty) {
            ctx.error(
                &sp.index(i).field("keys"),
                "a subset selector needs at least one non-empty key",
            );
            continue;
        }
        if !selectors.contains(&keys) {
            selectors.push(keys);
        }
    }
    SubsetConfig {
        fallback,
        default_subset,
        selectors,
    }
}

#[cfg(test)]
#[test]
fn primes() {
    let got: Vec<u64> = (0..30).filter(|n| is_prime(*n)).collect();
    assert_eq!(got, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(is_prime(65537) && is_prime(MAX_MAGLEV_TABLE) && !is_prime(65536));
}
