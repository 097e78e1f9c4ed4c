use super::*;
use crate::Thresholds;
use std::collections::HashMap;
use std::net::SocketAddr;

fn cluster(weights: &[u32]) -> Cluster {
    let endpoints = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| {
            Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)), weight)
        })
        .collect();
    Cluster::new("c", endpoints)
}

fn picks(c: &Cluster, n: usize) -> Vec<u16> {
    let mut rr = RoundRobin::new();
    (0..n)
        .map(|_| rr.pick(c).map_or(0, |e| e.address.port() - 8000))
        .collect()
}

#[test]
fn distribution_matches_weights() {
    // (weights, picks): over whole cycles each endpoint is chosen exactly weight times.
    let cases: &[&[u32]] = &[
        &[1],
        &[1, 1, 1],
        &[5, 1, 1],
        &[3, 2],
        &[1, 0, 1],
        &[7, 3, 0, 10],
    ];
    for weights in cases {
        let total: u32 = weights.iter().sum();
        let c = cluster(weights);
        let mut counts: HashMap<u16, u32> = HashMap::new();
        for p in picks(&c, total as usize * 4) {
            *counts.entry(p).or_default() += 1;
        }
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(
                counts.get(&(i as u16)).copied().unwrap_or(0),
                w * 4,
                "{weights:?}"
            );
        }
    }
}

#[test]
fn smooth_not_bursty() {
    assert_eq!(picks(&cluster(&[5, 1, 1]), 7), vec![0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(picks(&cluster(&[1, 1, 1]), 5), vec![0, 1, 2, 0, 1]);
}

#[test]
fn no_endpoints_or_no_weight() {
    let mut rr = RoundRobin::new();
    assert!(rr.pick(&cluster(&[])).is_none());
    assert!(rr.pick(&cluster(&[0, 0])).is_none());
}

#[test]
fn state_resets_on_new_endpoint_list() {
    let mut rr = RoundRobin::new();
    let a = cluster(&[1, 1]);
    assert_eq!(rr.pick(&a).map(|e| e.address.port()), Some(8000));
    let b = cluster(&[1, 1, 1, 1]);
    assert_eq!(rr.pick(&b).map(|e| e.address.port()), Some(8000));
    assert_eq!(rr.pick(&b).map(|e| e.address.port()), Some(8001));
}

#[test]
fn defaults_are_envoys() {
    let t = Thresholds::default();
    assert_eq!(
        (
            t.max_connections,
            t.max_pending_requests,
            t.max_requests,
            t.max_retries,
            t.retry_budget
        ),
        (1024, 1024, 1024, 3, None)
    );
    let c = cluster(&[1]);
    assert_eq!(c.connect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.idle_timeout, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(c.buffer_limit_bytes, 1 << 20);
}
