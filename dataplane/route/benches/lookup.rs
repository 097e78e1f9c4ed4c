//! Route lookup over 10,000 virtual hosts of 100 routes each (mixed prefix, exact and
//! header-matched routes): a hit on the last route of the last virtual host, a hit on the
//! first, and a miss; plus a weighted cluster pick and a request hash.
//!
//! Run: `cargo bench -p spar-route --bench lookup -- --warm-up-time 1 --measurement-time 3`

use std::borrow::Cow;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use spar_route::*;

struct Req {
    authority: Vec<u8>,
    path: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

impl RequestView for Req {
    fn method(&self) -> &[u8] {
        b"GET"
    }
    fn authority(&self) -> &[u8] {
        &self.authority
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn scheme(&self) -> &[u8] {
        b"http"
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        self.headers
            .iter()
            .find(|(n, _)| *n == lower_name)
            .map(|(_, v)| Cow::Borrowed(v.as_slice()))
    }
}

fn cluster(i: u32) -> ClusterRef {
    ClusterRef {
        id: ClusterId(i),
        name: format!("c{i}"),
    }
}

fn route(path: PathMatch, headers: Vec<HeaderMatcher>, cluster_id: u32) -> Route {
    Route {
        name: String::new(),
        r#match: RouteMatch {
            path,
            case_sensitive: true,
            headers,
            query: Vec::new(),
        },
        action: Action::Forward(RouteAction {
            target: Target::Cluster(cluster(cluster_id)),
            timeout: Some(DEFAULT_ROUTE_TIMEOUT),
            idle_timeout: None,
            grpc_timeout_max: None,
            connect_terminate: false,
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: None,
            retry: None,
            hash_policy: Vec::new(),
            mirrors: Vec::new(),
            metadata_match: None,
            upgrades: Vec::new(),
        }),
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        fault: None,
        cors: None,
    }
}

/// Route `j` of a virtual host: exact, prefix, or prefix plus a header matcher, in turn.
fn routes() -> Vec<Route> {
    (0..100u32)
        .map(|j| match j % 3 {
            0 => route(
                PathMatch::Exact(format!("/api/v1/resource{j}")),
                Vec::new(),
                j,
            ),
            1 => route(
                PathMatch::Prefix(format!("/api/v1/prefix{j}/")),
                Vec::new(),
                j,
            ),
            _ => route(
                PathMatch::Prefix(format!("/api/v1/hdr{j}/")),
                vec![HeaderMatcher {
                    name: "x-version".into(),
                    rule: HeaderRule::Value(StringMatcher {
                        kind: StringMatch::Exact(format!("v{j}")),
                        ignore_case: false,
                    }),
                    invert: false,
                    treat_missing_as_empty: false,
                }],
                j,
            ),
        })
        .collect()
}

fn table() -> RouteTable {
    let routes = routes();
    let vhosts = (0..10_000)
        .map(|i| VirtualHost {
            name: format!("vh{i}"),
            domains: vec![
                DomainMatch::Exact(format!("svc{i}.ns.svc.cluster.local")),
                DomainMatch::Exact(format!("svc{i}.ns.svc.cluster.local:80")),
            ],
            routes: routes.clone(),
            ..VirtualHost::default()
        })
        .collect();
    RouteTable::new(vhosts, ConfigHeaders::default())
}

fn req(authority: &str, path: &str, version: Option<&str>) -> Req {
    Req {
        authority: authority.as_bytes().to_vec(),
        path: path.as_bytes().to_vec(),
        headers: version
            .map(|v| vec![("x-version", v.as_bytes().to_vec())])
            .unwrap_or_default(),
    }
}

fn bench(c: &mut Criterion) {
    let t = table();
    // Route 99 is a header-matched prefix route (99 % 3 == 0 is exact: use 98, the last
    // header route, and 99, the last route).
    let last = req(
        "svc9999.ns.svc.cluster.local:80",
        "/api/v1/resource99?x=1",
        None,
    );
    let last_hdr = req(
        "svc9999.ns.svc.cluster.local",
        "/api/v1/hdr98/items",
        Some("v98"),
    );
    let first = req("svc0.ns.svc.cluster.local", "/api/v1/resource0", None);
    let miss = req("svc5000.ns.svc.cluster.local", "/nothing/here", Some("v1"));
    assert!(t.route(&last).is_some() && t.route(&last_hdr).is_some());
    assert!(t.route(&first).is_some() && t.route(&miss).is_none());
    let mut g = c.benchmark_group("route");
    g.bench_function("hit_last_vhost_last_route", |b| {
        b.iter(|| t.route(black_box(&last)).is_some())
    });
    g.bench_function("hit_last_vhost_header_route", |b| {
        b.iter(|| t.route(black_box(&last_hdr)).is_some())
    });
    g.bench_function("hit_first_vhost_first_route", |b| {
        b.iter(|| t.route(black_box(&first)).is_some())
    });
    g.bench_function("miss_all_100_routes", |b| {
        b.iter(|| t.route(black_box(&miss)).is_none())
    });
    g.finish();

    let weighted = WeightedClusters {
        clusters: (0..4u32)
            .map(|i| WeightedCluster {
                cluster: cluster(i),
                weight: 25,
                request_headers: HeaderMutation::default(),
                response_headers: HeaderMutation::default(),
                host_rewrite: None,
                metadata_match: None,
            })
            .collect(),
        total: 100,
    };
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    c.bench_function("weighted_pick_4", |b| {
        b.iter(|| {
            random = random
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            weighted.pick(black_box(random)).weight
        })
    });

    let policies = vec![
        HashPolicyEntry {
            policy: HashPolicy::Header {
                name: "x-user".into(),
            },
            terminal: true,
        },
        HashPolicyEntry {
            policy: HashPolicy::SourceIp,
            terminal: false,
        },
    ];
    let hashed = Req {
        authority: b"a".to_vec(),
        path: b"/".to_vec(),
        headers: vec![("x-user", b"user-1234567890".to_vec())],
    };
    let source = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    c.bench_function("request_hash_header", |b| {
        b.iter(|| request_hash(black_box(&policies), black_box(&hashed), source, 0).hash)
    });
    let cookie = vec![HashPolicyEntry {
        policy: HashPolicy::Cookie {
            name: "lb".into(),
            ttl: Some(Duration::from_secs(60)),
            path: None,
        },
        terminal: false,
    }];
    c.bench_function("request_hash_cookie_generated", |b| {
        b.iter(|| request_hash(black_box(&cookie), black_box(&hashed), source, 7).set_cookie)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
