use super::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::google::protobuf::{Struct, Value};
use spar_xds::type_url::{CLUSTER, ENDPOINT, LISTENER};

#[test]
fn istio_node_ids_and_metadata() {
    let node = Node {
        id: "router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local".into(),
        ..Node::default()
    };
    let p = proxy_node(&node);
    assert_eq!(p.kind, ProxyKind::Router);
    assert_eq!(p.namespace, "istio-system");
    let label = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let labels = Struct {
        fields: [("app".to_owned(), label("reviews"))].into_iter().collect(),
    };
    let node = Node {
        id: "sidecar~10.0.0.2~reviews-v1.default~default.svc.cluster.local".into(),
        metadata: Some(Struct {
            fields: [
                ("NAMESPACE".to_owned(), label("bookinfo")),
                (
                    "LABELS".to_owned(),
                    Value {
                        kind: Some(Kind::StructValue(labels)),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        }),
        ..Node::default()
    };
    let p = proxy_node(&node);
    assert_eq!(p.kind, ProxyKind::Sidecar);
    assert_eq!(p.namespace, "bookinfo");
    assert_eq!(p.labels.get("app").map(String::as_str), Some("reviews"));
}

fn sidecar_node(id: &str, namespace: &str, labels: &[(&str, &str)]) -> Node {
    let string = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let labels = Struct {
        fields: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), string(v)))
            .collect(),
    };
    Node {
        id: format!("sidecar~10.0.0.1~{id}.{namespace}~{namespace}.svc.cluster.local"),
        metadata: Some(Struct {
            fields: [
                ("NAMESPACE".to_owned(), string(namespace)),
                (
                    "LABELS".to_owned(),
                    Value {
                        kind: Some(Kind::StructValue(labels)),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        }),
        ..Node::default()
    }
}

/// Two services, a namespace-wide Sidecar, one for `app: special` only, and an
/// AuthorizationPolicy for `app: guarded`.
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
    metadata: { labels: { app: reviews, version: v1 } }
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
    captureMode: NONE
  egress:
  - port: { number: 15001, protocol: HTTP, name: http }
    captureMode: NONE
    hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: special, namespace: default }
spec:
  workloadSelector:
    labels: { app: special }
  egress:
  - port: { number: 15002, protocol: HTTP, name: http }
    captureMode: NONE
    hosts: ["./details.default.svc.cluster.local"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: guarded, namespace: default }
spec:
  selector:
    matchLabels: { app: guarded }
  action: ALLOW
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/reviews"] } }]
"#;

/// A snapshot's clusters, assignments and listeners decoded: their bytes may differ where a
/// message holds a map (endpoint metadata), which prost encodes in the map's iteration
/// order.
fn decoded(s: &Snapshot) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>, Vec<Listener>) {
    use prost::Message as _;
    let of = |t: &str| {
        s.of_type(t)
            .into_iter()
            .flatten()
            .map(|(_, e)| e.resource.value.as_slice())
    };
    (
        of(CLUSTER).map(|b| Cluster::decode(b).unwrap()).collect(),
        of(ENDPOINT)
            .map(|b| ClusterLoadAssignment::decode(b).unwrap())
            .collect(),
        of(LISTENER).map(|b| Listener::decode(b).unwrap()).collect(),
    )
}

fn holds(entry: &spar_xds::Entry, text: &str) -> bool {
    entry
        .resource
        .value
        .windows(text.len())
        .any(|w| w == text.as_bytes())
}

fn world(yaml: &str) -> World {
    crate::world::Loader::default()
        .load_texts(vec![("mesh.yaml".to_owned(), yaml.to_owned())])
        .unwrap()
}

fn mesh(yaml: &str) -> (Arc<Cache>, Arc<Mesh>) {
    let cache = Arc::new(Cache::default());
    let mesh = Arc::new(Mesh::new(cache.clone()));
    mesh.set_world(world(yaml));
    (cache, mesh)
}

#[test]
fn proxies_of_one_scope_share_one_translation() {
    let (_, mesh) = mesh(MESH);
    let provider = mesh.provider();
    let a = provider(&sidecar_node(
        "a",
        "default",
        &[("app", "web"), ("version", "v1")],
    ));
    let b = provider(&sidecar_node("b", "default", &[("app", "shop")]));
    assert!(Arc::ptr_eq(&a, &b), "same selected resources: one snapshot");
    assert!(!a.resources.is_empty());
    let special = provider(&sidecar_node("s", "default", &[("app", "special")]));
    assert!(!Arc::ptr_eq(&a, &special), "its own Sidecar");
    assert_ne!(a.resources, special.resources);
    let guarded = provider(&sidecar_node("g", "default", &[("app", "guarded")]));
    assert!(!Arc::ptr_eq(&a, &guarded), "its own AuthorizationPolicy");
    assert_ne!(a.resources, guarded.resources);
    let elsewhere = provider(&sidecar_node("e", "other", &[("app", "web")]));
    assert!(!Arc::ptr_eq(&a, &elsewhere), "another namespace");
    assert_eq!(
        lock(&mesh.state).served.as_ref().map(|s| s.scopes.len()),
        Some(4)
    );
}

#[test]
fn an_endpoint_change_gives_every_node_what_a_full_translation_would() {
    let (cache, mesh) = mesh(MESH);
    let provider = mesh.provider();
    let nodes = [
        sidecar_node("a", "default", &[("app", "web")]),
        sidecar_node("b", "default", &[("app", "shop")]),
        sidecar_node("s", "default", &[("app", "special")]),
        sidecar_node("g", "default", &[("app", "guarded")]),
    ];
    for n in &nodes {
        cache.set_shared(&n.id, provider(n));
    }
    let before = mesh.version();
    let moved = MESH.replace("10.0.0.2:9080", "10.9.9.9:9080");
    mesh.set_world(world(&moved));
    assert_ne!(mesh.version(), before);
    // The same nodes on a control plane that starts with the new config.
    let (_, fresh) = self::mesh(&moved);
    let fresh_provider = fresh.provider();
    for n in &nodes {
        let got = cache.snapshot(&n.id).unwrap();
        assert_eq!(got.version, mesh.version());
        assert_eq!(decoded(&got), decoded(&fresh_provider(n)), "{}", n.id);
    }
    let a = cache.snapshot(&nodes[0].id).unwrap();
    let reviews = &a.resources[ENDPOINT]["outbound|9080||reviews.default.svc.cluster.local"];
    assert!(holds(reviews, "10.9.9.9"));
    // The same config again: nothing for any proxy, the version stays.
    let version = mesh.version();
    mesh.set_world(world(&moved));
    assert_eq!(mesh.version(), version);
}

#[test]
fn a_node_connecting_after_a_change_gets_the_newest() {
    let (_, mesh) = mesh(MESH);
    let provider = mesh.provider();
    let first = provider(&sidecar_node("a", "default", &[("app", "web")]));
    mesh.set_world(world(
        &MESH.replace("\"./*\"", "\"./reviews.default.svc.cluster.local\""),
    ));
    let later = provider(&sidecar_node("b", "default", &[("app", "web")]));
    assert_eq!(later.version, mesh.version());
    assert_ne!(first.resources, later.resources);
}

#[test]
fn an_endpoint_move_changes_one_assignment_and_no_cluster() {
    let (cache, mesh) = mesh(MESH);
    let node = sidecar_node("a", "default", &[("app", "web")]);
    cache.set_shared(&node.id, mesh.provider()(&node));
    let before = cache.snapshot(&node.id).unwrap();
    let reviews = "outbound|9080||reviews.default.svc.cluster.local";
    assert!(
        !holds(&before.resources[CLUSTER][reviews], "10.0.0.2"),
        "the cluster carries no endpoints"
    );
    mesh.set_world(world(&MESH.replace("10.0.0.2:9080", "10.9.9.9:9080")));
    let after = cache.snapshot(&node.id).unwrap();
    assert_ne!(after.version, before.version);
    // Entries compared whole (bytes and versions): what the xDS server compares to decide
    // what to push.
    assert_eq!(after.resources[CLUSTER], before.resources[CLUSTER]);
    assert_eq!(after.resources[LISTENER], before.resources[LISTENER]);
    let changed: Vec<&String> = after.resources[ENDPOINT]
        .iter()
        .filter(|(name, e)| before.resources[ENDPOINT].get(*name) != Some(*e))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(changed, [reviews]);
    assert!(holds(&after.resources[ENDPOINT][reviews], "10.9.9.9"));
    assert!(holds(&before.resources[ENDPOINT][reviews], "10.0.0.2"));
}

#[test]
fn an_endpoint_change_that_turns_auto_mtls_updates_the_cluster() {
    let meshed = MESH.replace(
        "labels: { app: reviews, version: v1 }",
        "labels: { app: reviews, version: v1, security.istio.io/tlsMode: istio }",
    );
    let (cache, mesh) = mesh(&meshed);
    let node = sidecar_node("a", "default", &[("app", "web")]);
    cache.set_shared(&node.id, mesh.provider()(&node));
    let before = cache.snapshot(&node.id).unwrap();
    // The endpoints lose their sidecar: the same addresses, plain text now.
    mesh.set_world(world(MESH));
    let after = cache.snapshot(&node.id).unwrap();
    let reviews = "outbound|9080||reviews.default.svc.cluster.local";
    let changed = |t: &str| -> Vec<&String> {
        after.resources[t]
            .iter()
            .filter(|(name, e)| before.resources[t].get(*name) != Some(*e))
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(changed(CLUSTER), [reviews]);
    assert_eq!(changed(ENDPOINT), [reviews], "the labels in the metadata");
    let tls = |s: &Snapshot| {
        use prost::Message as _;
        Cluster::decode(s.resources[CLUSTER][reviews].resource.value.as_slice())
            .unwrap()
            .transport_socket
            .is_some()
    };
    assert!(tls(&before), "auto mTLS to endpoints with a sidecar");
    assert!(!tls(&after), "plain text to endpoints without one");
    let (_, fresh) = self::mesh(MESH);
    assert_eq!(decoded(&after), decoded(&fresh.provider()(&node)));
}
