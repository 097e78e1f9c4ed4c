//! Cost of one `Balancer::pick` per policy, for 3 and 100 equal-weight endpoints and for
//! 100 endpoints with mixed weights (1-4), all healthy, no subsets, no avoid list.
//! Run: `cargo bench -p spar-cluster --bench balance -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use spar_cluster::{Balancer, Cluster, Endpoint, LbPolicy, PickRequest};

fn cluster(lb: LbPolicy, n: usize, mixed: bool) -> Cluster {
    let endpoints = (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8080));
            Endpoint::new(addr, if mixed { (i % 4) as u32 + 1 } else { 1 })
        })
        .collect();
    Cluster {
        lb,
        ..Cluster::new("bench", endpoints)
    }
}

fn picks(c: &mut Criterion) {
    let policies = [
        ("round_robin", LbPolicy::RoundRobin),
        ("least_request", LbPolicy::LeastRequest { choice_count: 2 }),
        ("random", LbPolicy::Random),
        (
            "ring_hash",
            LbPolicy::RingHash {
                min_ring: 1024,
                max_ring: 8 << 20,
            },
        ),
        ("maglev", LbPolicy::Maglev { table_size: 65537 }),
    ];
    let mut g = c.benchmark_group("pick");
    for (name, lb) in policies {
        for (n, mixed) in [(3, false), (100, false), (100, true)] {
            let cl = cluster(lb, n, mixed);
            let mut b = Balancer::new(&cl, 1);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let id = format!("{name}/{n}{}", if mixed { "_weighted" } else { "" });
            g.bench_function(id, |bench| {
                bench.iter(|| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let req = PickRequest {
                        hash: Some(x),
                        random: x,
                        ..PickRequest::default()
                    };
                    black_box(b.pick(&cl, black_box(&req)))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
