use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::test_rng::Rng;
use crate::{Endpoint, Locality, SubsetConfig};

/// (weight, priority, locality, metadata pairs)
type Spec<'a> = (u32, u32, u32, &'a [(&'a str, &'a str)]);

fn cluster(lb: LbPolicy, specs: &[Spec<'_>]) -> Cluster {
    let endpoints = specs
        .iter()
        .enumerate()
        .map(|(i, (weight, priority, locality, meta))| Endpoint {
            priority: *priority,
            locality: *locality,
            metadata: Arc::new(
                meta.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Endpoint::new(SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)), *weight)
        })
        .collect();
    Cluster {
        lb,
        ..Cluster::new("c", endpoints)
    }
}

fn weights(lb: LbPolicy, w: &[u32]) -> Cluster {
    let specs: Vec<Spec<'_>> = w.iter().map(|w| (*w, 0, 0, &[][..])).collect();
    cluster(lb, &specs)
}

const LR: LbPolicy = LbPolicy::LeastRequest { choice_count: 2 };
const RING: LbPolicy = LbPolicy::RingHash {
    min_ring: 1024,
    max_ring: 8 << 20,
};
const MAGLEV: LbPolicy = LbPolicy::Maglev { table_size: 65537 };
const ALL: [LbPolicy; 5] = [LbPolicy::RoundRobin, LR, LbPolicy::Random, RING, MAGLEV];

/// Pick counts per endpoint over `n` picks with random values (and random hashes for the
/// hashing policies, which then behave like random).
fn counts(b: &mut Balancer, c: &Cluster, n: usize, seed: u64) -> Vec<usize> {
    counts_with(b, c, n, seed, None)
}

fn counts_with(
    b: &mut Balancer,
    c: &Cluster,
    n: usize,
    seed: u64,
    metadata_match: Option<&Metadata>,
) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0; c.endpoints.len()];
    for _ in 0..n {
        let req = PickRequest {
            random: rng.next(),
            metadata_match,
            ..PickRequest::default()
        };
        if let Some(i) = b.pick(c, &req) {
            out[i] += 1;
        }
    }
    out
}

/// Each share within `tol` (absolute fraction) of `want` (relative weights).
fn assert_shares(got: &[usize], want: &[f64], tol: f64, what: &str) {
    let n: usize = got.iter().sum();
    let total: f64 = want.iter().sum();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let share = *g as f64 / n as f64;
        let expect = w / total;
        assert!(
            (share - expect).abs() <= tol,
            "{what}: endpoint {i} got {share:.3}, want {expect:.3} ({got:?})"
        );
    }
}

#[test]
fn weights_are_respected_by_every_policy() {
    let cases: &[&[u32]] = &[&[1, 1, 1], &[5, 1, 1], &[3, 2], &[1, 2, 3, 4], &[10, 1]];
    for lb in ALL {
        for w in cases {
            let c = weights(lb, w);
            let mut b = Balancer::new(&c, 0);
            let total: u32 = w.iter().sum();
            let n = total as usize * 2000;
            let got = counts(&mut b, &c, n, 42);
            let want: Vec<f64> = w.iter().map(|x| f64::from(*x)).collect();
            if lb == LbPolicy::RoundRobin {
                let exact: Vec<usize> = w.iter().map(|x| *x as usize * 2000).collect();
                assert_eq!(got, exact, "RR is exact for {w:?}");
            } else {
                assert_shares(&got, &want, 0.02, &format!("{lb:?} {w:?}"));
            }
        }
    }
}

#[test]
fn round_robin_is_smooth_and_staggered() {
    let c = weights(LbPolicy::RoundRobin, &[5, 1, 1]);
    let mut b = Balancer::new(&c, 0);
    let seq: Vec<usize> = (0..7)
        .filter_map(|_| b.pick(&c, &PickRequest::default()))
        .collect();
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    // Equal weights: seeds start workers at different hosts.
    let c = weights(LbPolicy::RoundRobin, &[1, 1, 1]);
    let first: Vec<Option<usize>> = (0..3)
        .map(|seed| Balancer::new(&c, seed).pick(&c, &PickRequest::default()))
        .collect();
    assert_eq!(first, [Some(0), Some(1), Some(2)]);
}

#[test]
fn least_request_prefers_idle_hosts() {
    let c = weights(LR, &[1, 1, 1, 1]);
    let mut b = Balancer::new(&c, 0);
    for _ in 0..10 {
        b.request_started(0);
    }
    b.request_started(1);
    let got = counts(&mut b, &c, 10_000, 1);
    // P2C: the busiest host wins only when both samples are it (1/16).
    assert!(got[0] < 10_000 / 16 + 200, "{got:?}");
    assert!(got[2] > got[1] && got[3] > got[1], "{got:?}");
    for _ in 0..10 {
        b.request_finished(0);
    }
    b.request_finished(1);
    b.request_finished(1); // extra finish saturates at 0
    assert_eq!(b.active_requests(1), 0);
}

#[test]
fn least_request_with_weights_under_load() {
    // Closed loop: 40 requests in flight, the oldest finishes per new pick. Active requests
    // per host settle in proportion to the weights, and so do the picks.
    let c = weights(LR, &[3, 1]);
    let mut b = Balancer::new(&c, 0);
    let mut rng = Rng::new(9);
    let mut in_flight = std::collections::VecDeque::new();
    let mut got = vec![0usize; 2];
    for step in 0..20_000 {
        let req = PickRequest {
            random: rng.next(),
            ..PickRequest::default()
        };
        let Some(h) = b.pick(&c, &req) else {
            panic!("no host")
        };
        b.request_started(h);
        in_flight.push_back(h);
        if in_flight.len() > 40
            && let Some(done) = in_flight.pop_front()
        {
            b.request_finished(done);
        }
        if step >= 1000 {
            got[h] += 1;
        }
    }
    assert_shares(&got, &[3.0, 1.0], 0.03, "weighted LR under load");
}

#[test]
fn hashing_policies_are_consistent() {
    for lb in [RING, MAGLEV] {
        let c = weights(lb, &[1, 1, 1, 1, 1]);
        let mut b = Balancer::new(&c, 0);
        let mut rng = Rng::new(3);
        let keys: Vec<u64> = (0..2000).map(|_| rng.next()).collect();
        let pick = |b: &mut Balancer, k: u64, random: u64| {
            b.pick(
                &c,
                &PickRequest {
                    hash: Some(k),
                    random,
                    ..PickRequest::default()
                },
            )
        };
        let before: Vec<Option<usize>> = keys.iter().map(|k| pick(&mut b, *k, 1)).collect();
        let again: Vec<Option<usize>> = keys.iter().map(|k| pick(&mut b, *k, 999)).collect();
        assert_eq!(before, again, "{lb:?}: same hash, same host");
        // Host 2 fails: only its keys move (panic threshold 50: 4 of 5 healthy, no panic).
        b.set_health(&c, &[false, false, true, false, false]);
        let after: Vec<Option<usize>> = keys.iter().map(|k| pick(&mut b, *k, 1)).collect();
        let mut moved_other = 0;
        for (x, y) in before.iter().zip(&after) {
            assert_ne!(*y, Some(2), "{lb:?}");
            if *x != Some(2) && x != y {
                moved_other += 1;
            }
        }
        // A few move: both structures are rebuilt from the healthy hosts, and the ring's
        // per-host entry count grows when a host leaves (Envoy's sizing does the same).
        assert!(moved_other < keys.len() / 8, "{lb:?} moved {moved_other}");
    }
}

#[test]
fn ring_size_bounds() {
    // A maximum below the minimum wins (64 entries: 16 and 48); weights still count.
    let c = weights(
        LbPolicy::RingHash {
            min_ring: 1024,
            max_ring: 64,
        },
        &[1, 3],
    );
    let mut b = Balancer::new(&c, 0);
    let got = counts(&mut b, &c, 40_000, 5);
    assert!(got.iter().all(|n| *n > 0), "{got:?}");
    assert!(got[1] > got[0], "{got:?}");
}

#[test]
fn priority_failover() {
    // 4 hosts at P0, 4 at P1, panic off; (unhealthy P0 hosts, P0 share)
    let specs: Vec<Spec<'_>> = (0..8).map(|i| (1, i / 4, 0, &[][..])).collect();
    let cases = [(0, 1.0), (1, 1.0), (2, 0.70), (3, 0.35), (4, 0.0)];
    for lb in ALL {
        let mut c = cluster(lb, &specs);
        c.panic_threshold_percent = 0.0;
        for (down, p0) in cases {
            let mut b = Balancer::new(&c, 0);
            let unhealthy: Vec<bool> = (0..8).map(|i| i < down).collect();
            b.set_health(&c, &unhealthy);
            let got = counts(&mut b, &c, 40_000, 11);
            assert!(got[..down].iter().all(|n| *n == 0), "{lb:?} {got:?}");
            let share = got[..4].iter().sum::<usize>() as f64 / 40_000.0;
            assert!(
                (share - p0).abs() < 0.02,
                "{lb:?} {down} down: P0 share {share}"
            );
        }
    }
}

#[test]
fn panic_threshold() {
    // 4 hosts, one priority; (unhealthy, threshold, picks reach unhealthy hosts)
    let cases = [
        (2, 50.0, false), // 50 % healthy is not below 50
        (3, 50.0, true),  // 25 %: panic, all hosts
        (3, 20.0, false),
        (4, 50.0, true), // none healthy: panic over all
        (4, 0.0, false), // none healthy, panic off: nothing
    ];
    for lb in ALL {
        for (down, threshold, reach) in cases {
            let mut c = weights(lb, &[1, 1, 1, 1]);
            c.panic_threshold_percent = threshold;
            let mut b = Balancer::new(&c, 0);
            b.set_health(&c, &(0..4).map(|i| i < down).collect::<Vec<_>>());
            let got = counts(&mut b, &c, 8000, 2);
            let to_unhealthy: usize = got[..down].iter().sum();
            assert_eq!(
                to_unhealthy > 0,
                reach,
                "{lb:?} {down} down, {threshold}%: {got:?}"
            );
            if down == 4 && !reach {
                assert_eq!(got.iter().sum::<usize>(), 0);
            }
            if reach {
                assert_shares(&got, &[1.0; 4], 0.03, "panic spreads evenly");
            }
        }
    }
}

#[test]
fn all_lower_priority_and_panic_goes_to_first() {
    // P0 all down, P1 healthy: everything to P1 (no panic in P0 when P1 can take it).
    let specs: Vec<Spec<'_>> = (0..4).map(|i| (1, i / 2, 0, &[][..])).collect();
    let c = cluster(LbPolicy::Random, &specs);
    let mut b = Balancer::new(&c, 0);
    b.set_health(&c, &[true, true, false, false]);
    let got = counts(&mut b, &c, 4000, 1);
    assert_eq!(&got[..2], &[0, 0]);
}

#[test]
fn configured_health_is_folded_in() {
    let mut c = weights(LbPolicy::RoundRobin, &[1, 1, 1, 1]);
    c.endpoints[1].health = crate::ConfiguredHealth::Draining;
    let mut b = Balancer::new(&c, 0);
    assert_eq!(counts(&mut b, &c, 300, 1)[1], 0);
    b.set_health(&c, &[]); // the caller forgot the configured part
    assert_eq!(counts(&mut b, &c, 300, 1)[1], 0);
}

#[test]
fn locality_weighted() {
    // Locality 0 (weight 1): hosts 0-1; locality 1 (weight 3): hosts 2-5.
    let specs: Vec<Spec<'_>> = vec![
        (1, 0, 0, &[]),
        (1, 0, 0, &[]),
        (1, 0, 1, &[]),
        (1, 0, 1, &[]),
        (1, 0, 1, &[]),
        (1, 0, 1, &[]),
    ];
    for lb in [LbPolicy::RoundRobin, LR, LbPolicy::Random] {
        let mut c = cluster(lb, &specs);
        c.locality_weighted = true;
        c.localities = vec![
            Locality {
                weight: 1,
                ..Locality::default()
            },
            Locality {
                weight: 3,
                ..Locality::default()
            },
        ];
        let mut b = Balancer::new(&c, 0);
        let got = counts(&mut b, &c, 40_000, 4);
        let loc0 = (got[0] + got[1]) as f64 / 40_000.0;
        assert!((loc0 - 0.25).abs() < 0.02, "{lb:?} {got:?}");
        // Two of locality 1 down: its effective weight is 3 * 70 against 1 * 100.
        b.set_health(&c, &[false, false, true, true, false, false]);
        let got = counts(&mut b, &c, 40_000, 4);
        let loc0 = (got[0] + got[1]) as f64 / 40_000.0;
        assert!((loc0 - 100.0 / 310.0).abs() < 0.02, "{lb:?} {got:?}");
        assert_eq!(got[2] + got[3], 0);
    }
}

#[test]
fn avoid_previous_hosts() {
    for lb in ALL {
        let c = weights(lb, &[1, 1, 1]);
        let mut b = Balancer::new(&c, 0);
        let mut rng = Rng::new(8);
        for _ in 0..500 {
            let req = PickRequest {
                hash: Some(rng.next()),
                random: rng.next(),
                avoid: &[0, 1],
                metadata_match: None,
            };
            assert_eq!(b.pick(&c, &req), Some(2), "{lb:?}");
        }
        // Everything avoided: still a host.
        let req = PickRequest {
            avoid: &[0, 1, 2],
            ..PickRequest::default()
        };
        assert!(b.pick(&c, &req).is_some());
    }
}

#[test]
fn no_usable_endpoint() {
    for lb in ALL {
        let c = weights(lb, &[]);
        assert_eq!(Balancer::new(&c, 0).pick(&c, &PickRequest::default()), None);
        let c = weights(lb, &[0, 0]);
        assert_eq!(Balancer::new(&c, 0).pick(&c, &PickRequest::default()), None);
        // Weight 0 next to others: never picked.
        let c = weights(lb, &[0, 1]);
        assert_eq!(counts(&mut Balancer::new(&c, 0), &c, 500, 1)[0], 0);
    }
}

fn md(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>()
}

#[test]
fn subsets() {
    let specs: Vec<Spec<'_>> = vec![
        (1, 0, 0, &[("version", "v1"), ("stage", "prod")]),
        (1, 0, 0, &[("version", "v1"), ("stage", "canary")]),
        (1, 0, 0, &[("version", "v2"), ("stage", "prod")]),
        (1, 0, 0, &[("version", "v2")]),
        (1, 0, 0, &[]),
    ];
    let v2 = md(&[("version", "v2")]);
    let v1_prod = md(&[("stage", "prod"), ("version", "v1")]);
    let v3 = md(&[("version", "v3")]);
    let stage_only = md(&[("stage", "prod")]);
    // (fallback, default subset, metadata_match, endpoints reached)
    let cases: Vec<(SubsetFallback, Metadata, Option<&Metadata>, Vec<usize>)> = vec![
        (SubsetFallback::NoFallback, md(&[]), Some(&v2), vec![2, 3]),
        (SubsetFallback::NoFallback, md(&[]), Some(&v1_prod), vec![0]),
        (SubsetFallback::NoFallback, md(&[]), Some(&v3), vec![]),
        (SubsetFallback::NoFallback, md(&[]), None, vec![]),
        // Keys must match a selector exactly: {stage} alone is no subset.
        (
            SubsetFallback::NoFallback,
            md(&[]),
            Some(&stage_only),
            vec![],
        ),
        (
            SubsetFallback::AnyEndpoint,
            md(&[]),
            Some(&v3),
            vec![0, 1, 2, 3, 4],
        ),
        (
            SubsetFallback::AnyEndpoint,
            md(&[]),
            None,
            vec![0, 1, 2, 3, 4],
        ),
        (
            SubsetFallback::DefaultSubset,
            md(&[("version", "v1")]),
            Some(&v3),
            vec![0, 1],
        ),
        (
            SubsetFallback::DefaultSubset,
            md(&[("stage", "prod")]),
            None,
            vec![0, 2],
        ),
        (
            SubsetFallback::DefaultSubset,
            md(&[]),
            None,
            vec![0, 1, 2, 3, 4],
        ),
        (
            SubsetFallback::DefaultSubset,
            md(&[("version", "v2")]),
            Some(&v2),
            vec![2, 3],
        ),
    ];
    for lb in ALL {
        for (fallback, default_subset, m, want) in &cases {
            let mut c = cluster(lb, &specs);
            c.subsets = Some(SubsetConfig {
                fallback: *fallback,
                default_subset: default_subset.clone(),
                selectors: vec![
                    vec!["version".into()],
                    vec!["stage".into(), "version".into()],
                ],
            });
            let mut b = Balancer::new(&c, 0);
            let got = counts_with(&mut b, &c, 2000, 6, *m);
            let reached: Vec<usize> = (0..got.len()).filter(|i| got[*i] > 0).collect();
            assert_eq!(&reached, want, "{lb:?} {fallback:?} {m:?}");
        }
    }
}

#[test]
fn subsets_follow_health() {
    let specs: Vec<Spec<'_>> = vec![
        (1, 0, 0, &[("version", "v1")]),
        (1, 0, 0, &[("version", "v1")]),
        (1, 0, 0, &[("version", "v1")]),
        (1, 0, 0, &[("version", "v2")]),
    ];
    let mut c = cluster(LbPolicy::RoundRobin, &specs);
    c.subsets = Some(SubsetConfig {
        fallback: SubsetFallback::NoFallback,
        default_subset: md(&[]),
        selectors: vec![vec!["version".into()]],
    });
    let v1 = md(&[("version", "v1")]);
    let mut b = Balancer::new(&c, 0);
    b.set_health(&c, &[true, false, false, false]);
    let got = counts_with(&mut b, &c, 300, 1, Some(&v1));
    assert_eq!(got, [0, 150, 150, 0]);
}

#[test]
fn rebuilds_for_another_cluster() {
    let a = weights(LbPolicy::RoundRobin, &[1, 1]);
    let b_cluster = weights(LbPolicy::RoundRobin, &[1, 1, 1, 1]);
    let mut b = Balancer::new(&a, 0);
    let got = counts(&mut b, &b_cluster, 400, 1);
    assert_eq!(got, [100; 4]);
}
