use super::*;
use spar_istio::{Options, load};

use crate::translate;

fn config(yaml: &str) -> (Vec<Resource>, Registry) {
    let resources = load("test.yaml", yaml, &Options::default()).resources;
    let registry = Registry::from_resources(&resources);
    (resources, registry)
}

fn sidecar(namespace: &str, labels: &[(&str, &str)]) -> ProxyNode {
    ProxyNode {
        kind: ProxyKind::Sidecar,
        namespace: namespace.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Services with endpoints and subsets, a namespace-wide Sidecar and one for productpage
/// only, and a selector of every kind that can tell proxies apart.
const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: default
  annotations: { spar.dev/endpoints: "10.0.0.1:9080,10.0.0.2:9080" }
spec:
  template:
    metadata: { labels: { app: reviews, version: v1, security.istio.io/tlsMode: istio } }
    spec: { serviceAccountName: reviews }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v2
  namespace: default
  annotations: { spar.dev/endpoints: "10.0.0.3:9080" }
spec:
  template:
    metadata: { labels: { app: reviews, version: v2, security.istio.io/tlsMode: istio } }
---
apiVersion: v1
kind: Service
metadata: { name: details, namespace: default }
spec:
  selector: { app: details }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: details-v1
  namespace: default
  annotations: { spar.dev/endpoints: "10.0.1.1:9080" }
spec:
  template:
    metadata: { labels: { app: details, version: v1 } }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: default }
spec:
  ingress:
  - port: { number: 9180, protocol: HTTP, name: http }
    defaultEndpoint: 127.0.0.1:9080
  egress:
  - port: { number: 15001, protocol: HTTP, name: http }
    captureMode: NONE
    hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: productpage, namespace: default }
spec:
  workloadSelector:
    labels: { app: productpage }
  egress:
  - port: { number: 15002, protocol: HTTP, name: http }
    captureMode: NONE
    hosts: ["./reviews.default.svc.cluster.local"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match: [{ sourceLabels: { version: canary } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: default }
spec:
  selector: { app: db }
  ports: [{ name: tcp, port: 5432 }, { name: tls, port: 5433 }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tcp:
  - match: [{ port: 5432, sourceLabels: { role: tcp-client } }]
    route: [{ destination: { host: db, port: { number: 5432 } } }]
  tls:
  - match: [{ port: 5433, sniHosts: [db.default.svc.cluster.local], sourceLabels: { role: tls-client } }]
    route: [{ destination: { host: db, port: { number: 5433 } } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: details-for-tester, namespace: default }
spec:
  host: details
  workloadSelector:
    matchLabels: { app: tester }
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ratings-only, namespace: default }
spec:
  selector:
    matchLabels: { app: ratings }
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/reviews"] } }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict-details, namespace: default }
spec:
  selector:
    matchLabels: { app: details }
  mtls: { mode: STRICT }
"#;

/// Label sets that the config's selectors tell apart in every way, and some they do not.
const LABELS: &[&[(&str, &str)]] = &[
    &[],
    &[("app", "web")],
    &[("app", "web"), ("version", "v1")],
    &[("app", "other"), ("team", "x")],
    &[("app", "productpage")],
    &[("app", "productpage"), ("version", "v2")],
    &[("app", "ratings")],
    &[("app", "ratings"), ("version", "v9")],
    &[("app", "details")],
    &[("app", "tester")],
    &[("app", "web"), ("version", "canary")],
    &[("app", "ratings"), ("version", "canary")],
    &[("app", "web"), ("role", "tcp-client")],
    &[("app", "web"), ("role", "tls-client")],
];

#[test]
fn proxies_selected_alike_share_a_key_and_a_translation() {
    let (resources, registry) = config(MESH);
    let key = |labels| ScopeKey::new(&resources, &sidecar("default", labels));
    // Different labels, the same selectors answering: one translation.
    let web = sidecar("default", &[("app", "web")]);
    let other = sidecar("default", &[("app", "other"), ("team", "x")]);
    assert_eq!(
        ScopeKey::new(&resources, &web),
        ScopeKey::new(&resources, &other)
    );
    assert_eq!(
        translate(&resources, &registry, &web),
        translate(&resources, &registry, &other)
    );
    // Selected by their own Sidecar, AuthorizationPolicy, PeerAuthentication,
    // DestinationRule or VirtualService source labels (HTTP, TCP and TLS matches): each a
    // scope of its own.
    let scopes = [
        key(&[("app", "web")]),
        key(&[("app", "productpage")]),
        key(&[("app", "ratings")]),
        key(&[("app", "details")]),
        key(&[("app", "tester")]),
        key(&[("app", "web"), ("version", "canary")]),
        key(&[("app", "web"), ("role", "tcp-client")]),
        key(&[("app", "web"), ("role", "tls-client")]),
    ];
    for (i, a) in scopes.iter().enumerate() {
        for b in &scopes[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let web = translate(
        &resources,
        &registry,
        &sidecar("default", &[("app", "web")]),
    );
    for labels in [&[("app", "productpage")][..], &[("app", "ratings")]] {
        assert_ne!(
            web,
            translate(&resources, &registry, &sidecar("default", labels)),
            "{labels:?}"
        );
    }
    // Kind and namespace are part of the key.
    let mut router = sidecar("default", &[("app", "web")]);
    router.kind = ProxyKind::Router;
    assert_ne!(key(&[("app", "web")]), ScopeKey::new(&resources, &router));
    assert_ne!(
        key(&[("app", "web")]),
        ScopeKey::new(&resources, &sidecar("other", &[("app", "web")]))
    );
}

#[test]
fn equal_keys_mean_equal_translations() {
    let (resources, registry) = config(MESH);
    for kind in [ProxyKind::Sidecar, ProxyKind::Router] {
        for ns in ["default", "other"] {
            let proxies: Vec<ProxyNode> = LABELS
                .iter()
                .map(|labels| ProxyNode {
                    kind,
                    ..sidecar(ns, labels)
                })
                .collect();
            for a in &proxies {
                for b in &proxies {
                    if ScopeKey::new(&resources, a) == ScopeKey::new(&resources, b) {
                        assert_eq!(
                            translate(&resources, &registry, a),
                            translate(&resources, &registry, b),
                            "{a:?} and {b:?} share a key"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn registry_kinds_reach_the_translation_only_through_the_registry() {
    // What lets `endpoints_changed` ignore them when it compares configs.
    let (resources, registry) = config(MESH);
    let rest: Vec<Resource> = resources
        .iter()
        .filter(|r| !registry_kind(&r.spec))
        .cloned()
        .collect();
    assert!(rest.len() < resources.len());
    for labels in LABELS {
        let proxy = sidecar("default", labels);
        assert_eq!(
            translate(&resources, &registry, &proxy),
            translate(&rest, &registry, &proxy)
        );
    }
}

fn moved(yaml: &str) -> String {
    yaml.replace("10.0.0.3:9080", "10.9.9.9:9080")
}

#[test]
fn endpoint_changes_are_told_apart_from_other_changes() {
    let (old_r, old_reg) = config(MESH);
    let same = |yaml: &str| {
        let (r, reg) = config(yaml);
        endpoints_changed((&old_r, &old_reg), (&r, &reg))
    };
    assert_eq!(same(MESH), Some(BTreeSet::new()));
    assert_eq!(
        same(&moved(MESH)),
        Some(BTreeSet::from([
            "reviews.default.svc.cluster.local".to_owned()
        ]))
    );
    // Routing, ports, selectors: translate again.
    assert_eq!(same(&MESH.replace("subset: v2", "subset: v1")), None);
    assert_eq!(
        same(&MESH.replace(
            "port: 9080 }]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: details",
            "port: 9081 }]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: details"
        )),
        None
    );
    assert_eq!(same(&MESH.replace("app: tester", "app: testers")), None);
}

#[test]
fn an_endpoint_patch_equals_a_full_retranslation() {
    let (old_r, old_reg) = config(MESH);
    // An endpoint moves; another loses its sidecar (auto mTLS turns off for its subset);
    // one joins a subset.
    let changed = moved(MESH)
        .replace(
            "labels: { app: reviews, version: v2, security.istio.io/tlsMode: istio }",
            "labels: { app: reviews, version: v2 }",
        )
        .replace("10.0.1.1:9080", "10.0.1.1:9080,10.0.1.2:9080");
    let (new_r, new_reg) = config(&changed);
    let hosts = endpoints_changed((&old_r, &old_reg), (&new_r, &new_reg)).expect("endpoints only");
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    for kind in [ProxyKind::Sidecar, ProxyKind::Router] {
        for labels in LABELS {
            let proxy = ProxyNode {
                kind,
                ..sidecar("default", labels)
            };
            let kept = ScopeTranslation::new(&old_r, &old_reg, &proxy);
            let (patched, changed) = kept.clone().with_endpoints(&new_r, &new_reg, &hosts);
            let full = translate(&new_r, &new_reg, &proxy);
            assert_eq!(patched.translation, full, "{proxy:?}");
            let differ = |a: Vec<(String, bool)>| -> BTreeSet<String> {
                a.into_iter().filter(|(_, d)| *d).map(|(n, _)| n).collect()
            };
            let clusters = differ(
                kept.translation
                    .clusters
                    .iter()
                    .zip(&full.clusters)
                    .map(|(a, b)| (a.name.clone(), a != b))
                    .collect(),
            );
            let endpoints = differ(
                kept.translation
                    .endpoints
                    .iter()
                    .zip(&full.endpoints)
                    .map(|(a, b)| (a.cluster_name.clone(), a != b))
                    .collect(),
            );
            assert_eq!(changed.clusters, clusters, "{proxy:?}");
            assert_eq!(changed.endpoints, endpoints, "{proxy:?}");
            if kind == ProxyKind::Sidecar && labels.is_empty() {
                // Auto mTLS turned off where a v2 endpoint lost its sidecar: those clusters
                // change; every other change is in the assignments alone.
                let reviews = |subset: &str| {
                    format!("outbound|9080|{subset}|reviews.default.svc.cluster.local")
                };
                assert_eq!(
                    changed.clusters,
                    BTreeSet::from([reviews(""), reviews("v2")]),
                    "{changed:?}"
                );
                assert_eq!(
                    changed.endpoints.len(),
                    3,
                    "v2, the default and details: {changed:?}"
                );
            }
        }
    }
}

#[test]
fn an_endpoint_move_changes_assignments_not_clusters() {
    let (old_r, old_reg) = config(MESH);
    let (new_r, new_reg) = config(&moved(MESH));
    let hosts = endpoints_changed((&old_r, &old_reg), (&new_r, &new_reg)).expect("endpoints only");
    let proxy = sidecar("default", &[]);
    let kept = ScopeTranslation::new(&old_r, &old_reg, &proxy);
    let (patched, changed) = kept.clone().with_endpoints(&new_r, &new_reg, &hosts);
    assert_eq!(patched.translation, translate(&new_r, &new_reg, &proxy));
    assert_eq!(patched.translation.clusters, kept.translation.clusters);
    let reviews =
        |subset: &str| format!("outbound|9080|{subset}|reviews.default.svc.cluster.local");
    assert_eq!(changed.clusters, BTreeSet::new());
    assert_eq!(
        changed.endpoints,
        BTreeSet::from([reviews(""), reviews("v2")])
    );
    // Every EDS cluster has its assignment, under its own name.
    let eds: BTreeSet<&str> = patched
        .translation
        .clusters
        .iter()
        .filter(|c| c.eds_cluster_config.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let assigned: BTreeSet<&str> = patched
        .translation
        .endpoints
        .iter()
        .map(|la| la.cluster_name.as_str())
        .collect();
    assert_eq!(eds, assigned);
    assert!(eds.contains(reviews("v2").as_str()));
}
