//! RBAC evaluation for an Istio-like sidecar: a DENY filter of 10 policies, then an ALLOW
//! filter of 50 policies with 3 permissions and 3 principals each (namespace regexes,
//! exact service accounts, methods, path prefixes, ports), run in filter order as the
//! proxy does. Two requests: one allowed (passes DENY, matches the last ALLOW policy,
//! so every earlier one is tried) and one denied by the last DENY policy.
//!
//! Run: `cargo bench -p spar-rbac --bench eval -- --warm-up-time 1 --measurement-time 3`

// A benchmark's fixed inputs are known good; a panic here is a broken benchmark.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use spar_rbac::{Action, Cidr, Context, Permission, Policy, Principal, Rbac};
use spar_route::{HeaderMatcher, HeaderRule, SafeRegex, StringMatch, StringMatcher};

struct Req {
    method: &'static [u8],
    path: &'static [u8],
    headers: Vec<(&'static str, &'static [u8])>,
    destination: SocketAddr,
    direct_remote: SocketAddr,
    principal: &'static str,
}

impl Context for Req {
    fn method(&self) -> &[u8] {
        self.method
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn header(&self, lower_name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.headers
            .iter()
            .find(|(n, _)| *n == lower_name)
            .map(|(_, v)| std::borrow::Cow::Borrowed(*v))
    }
    fn destination(&self) -> SocketAddr {
        self.destination
    }
    fn direct_remote(&self) -> SocketAddr {
        self.direct_remote
    }
    fn remote(&self) -> IpAddr {
        self.direct_remote.ip()
    }
    fn peer_principal(&self) -> Option<&str> {
        Some(self.principal)
    }
    fn requested_server_name(&self) -> Option<&str> {
        None
    }
    fn is_http(&self) -> bool {
        true
    }
}

fn sm(kind: StringMatch) -> StringMatcher {
    StringMatcher {
        kind,
        ignore_case: false,
    }
}

fn method(m: &str) -> Permission {
    Permission::Header(HeaderMatcher {
        name: ":method".into(),
        rule: HeaderRule::Value(sm(StringMatch::Exact(m.into()))),
        invert: false,
        treat_missing_as_empty: false,
    })
}

/// Istio's namespace principal: `spiffe://.*/ns/<ns>/sa/.*` as a safe regex.
fn namespace(ns: &str) -> Principal {
    let re = SafeRegex::new(&format!("spiffe://.*/ns/{ns}/sa/.*")).unwrap();
    Principal::Authenticated(Some(sm(StringMatch::Regex(re))))
}

fn service_account(ns: &str, sa: &str) -> Principal {
    Principal::Authenticated(Some(sm(StringMatch::Exact(format!(
        "spiffe://cluster.local/ns/{ns}/sa/{sa}"
    )))))
}

fn filters() -> (Rbac, Rbac) {
    let deny = (0..10)
        .map(|i| Policy {
            name: format!("ns[istio-system]-policy[deny-{i:02}]-rule[0]"),
            permissions: vec![Permission::And(vec![
                Permission::Or(vec![Permission::UrlPath(sm(StringMatch::Prefix(format!(
                    "/internal/{i}/"
                ))))]),
                Permission::Or(vec![method("POST"), method("DELETE")]),
            ])],
            principals: vec![Principal::Not(Box::new(namespace(&format!("ops{i}"))))],
        })
        .collect();
    let allow = (0..50)
        .map(|i| Policy {
            name: format!("ns[app]-policy[allow-{i:02}]-rule[0]"),
            permissions: vec![
                Permission::And(vec![
                    method("GET"),
                    Permission::UrlPath(sm(StringMatch::Prefix(format!("/api/{i}/")))),
                ]),
                Permission::And(vec![
                    method("POST"),
                    Permission::UrlPath(sm(StringMatch::Exact(format!("/api/{i}/submit")))),
                ]),
                Permission::And(vec![
                    Permission::DestinationPort(9000 + i),
                    Permission::DestinationIp(Cidr::new([10, 0, 0, 0].into(), 8).unwrap()),
                ]),
            ],
            principals: vec![
                service_account(&format!("team{i}"), "frontend"),
                namespace(&format!("team{i}")),
                Principal::RemoteIp(Cidr::new([192, 168, i as u8, 0].into(), 24).unwrap()),
            ],
        })
        .collect();
    (
        Rbac::new(Action::Deny, deny),
        Rbac::new(Action::Allow, allow),
    )
}

/// The proxy's filter chain: DENY first, then ALLOW; the first denial wins.
fn chain(deny: &Rbac, allow: &Rbac, req: &Req) -> bool {
    deny.evaluate(req).allowed && allow.evaluate(req).allowed
}

fn bench(c: &mut Criterion) {
    let (deny, allow) = filters();
    let base = || Req {
        method: b"GET",
        path: b"/api/49/items",
        headers: vec![
            (":authority", b"app.example.com"),
            ("user-agent", b"curl/8"),
            ("accept", b"*/*"),
        ],
        destination: "10.0.0.1:8080".parse().unwrap(),
        direct_remote: "10.0.0.7:40000".parse().unwrap(),
        principal: "spiffe://cluster.local/ns/team49/sa/frontend",
    };
    let allowed = base();
    let denied = Req {
        method: b"DELETE",
        path: b"/internal/9/cache",
        ..base()
    };
    assert!(chain(&deny, &allow, &allowed));
    assert_eq!(
        allow.evaluate(&allowed).matched_policy,
        Some("ns[app]-policy[allow-49]-rule[0]")
    );
    assert!(!chain(&deny, &allow, &denied));
    assert_eq!(
        deny.evaluate(&denied).matched_policy,
        Some("ns[istio-system]-policy[deny-09]-rule[0]")
    );

    c.bench_function("rbac/deny10+allow50/allowed", |b| {
        b.iter(|| chain(&deny, &allow, black_box(&allowed)))
    });
    c.bench_function("rbac/deny10+allow50/denied", |b| {
        b.iter(|| chain(&deny, &allow, black_box(&denied)))
    });
    let explain_req = denied;
    c.bench_function("rbac/explain_denied", |b| {
        b.iter(|| deny.evaluate(black_box(&explain_req)).explain(&explain_req))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
