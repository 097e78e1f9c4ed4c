// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use prost::Message;
use spar_istio::{Options, load};

use super::*;
use crate::{Note, ProxyKind, ProxyNode, Registry, Translation, translate};

fn run(yaml: &str, kind: ProxyKind, labels: &[(&str, &str)]) -> Translation {
    let loaded = load("t.yaml", yaml, &Options::default());
    assert!(
        loaded
            .messages
            .iter()
            .all(|m| m.level != spar_istio::Level::Error),
        "{:?}",
        loaded.messages
    );
    let registry = Registry::from_resources(&loaded.resources);
    let proxy = ProxyNode {
        kind,
        namespace: "default".to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    translate(&loaded.resources, &registry, &proxy)
}

fn sidecar(yaml: &str) -> Translation {
    run(yaml, ProxyKind::Sidecar, &[("app", "sleep")])
}

fn listener<'a>(t: &'a Translation, name: &str) -> &'a Listener {
    t.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}: {:?}", names(t)))
}

fn names(t: &Translation) -> Vec<&str> {
    t.listeners.iter().map(|l| l.name.as_str()).collect()
}

/// A chain's SNI names and TCP proxy clusters.
type ChainView = (Vec<String>, Vec<(String, u32)>);

/// The TCP proxy of a chain: its clusters with weights (1 for a single cluster).
fn proxy(chain: &FilterChain) -> Vec<(String, u32)> {
    let last = chain.filters.last().unwrap();
    assert_eq!(last.name, TCP_PROXY_FILTER);
    let Some(filter::ConfigType::TypedConfig(any)) = &last.config_type else {
        panic!("no typed config")
    };
    let p = TcpProxy::decode(any.value.as_slice()).unwrap();
    match p.cluster_specifier.unwrap() {
        tcp_proxy::ClusterSpecifier::Cluster(c) => vec![(c, 1)],
        tcp_proxy::ClusterSpecifier::WeightedClusters(w) => {
            w.clusters.into_iter().map(|c| (c.name, c.weight)).collect()
        }
    }
}

fn messages(notes: &[Note]) -> Vec<String> {
    notes
        .iter()
        .map(|n| format!("{}: {}", n.path, n.message))
        .collect()
}

/// Two TCP services and a Sidecar whose egress listener on 127.0.0.1:`port` imports `hosts`.
fn mesh(port: u32, hosts: &str, bind: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{ name: db, namespace: default }}
spec:
  selector: {{ app: db }}
  ports: [{{ name: tcp, port: 5432 }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: cache, namespace: default }}
spec:
  selector: {{ app: cache }}
  ports: [{{ name: tcp, port: 6379 }}, {{ name: tcp-admin, port: 6380 }}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: db, namespace: default }}
spec:
  host: db
  subsets: [{{ name: v1, labels: {{ version: v1 }} }}, {{ name: v2, labels: {{ version: v2 }} }}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{ name: sleep, namespace: default }}
spec:
  workloadSelector: {{ labels: {{ app: sleep }} }}
  egress:
  - port: {{ number: {port}, protocol: TCP, name: tcp }}
    bind: {bind}
    captureMode: NONE
    hosts: [{hosts}]
"#
    )
}

#[test]
fn egress_tcp_listener_forwards_to_the_imported_service() {
    let t = sidecar(&mesh(15432, "./db.default.svc.cluster.local", "127.0.0.1"));
    let l = listener(&t, "127.0.0.1_15432");
    assert_eq!(l.filter_chains.len(), 1);
    // The service's only port, whatever the listener's.
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [("outbound|5432||db.default.svc.cluster.local".to_owned(), 1)]
    );
    assert!(t.notes.is_empty(), "{:?}", messages(&t.notes));
    assert!(
        t.clusters
            .iter()
            .any(|c| c.name == "outbound|5432|v1|db.default.svc.cluster.local"),
        "the service's clusters are built"
    );
}

#[test]
fn tcp_routes_in_order_with_static_matches_and_weights() {
    let vs = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tcp:
  - match: [{ port: 9999 }]
    route: [{ destination: { host: db, subset: v1 } }]
  - match: [{ sourceLabels: { app: other } }]
    route: [{ destination: { host: db, subset: v1 } }]
  - match: [{ destinationSubnets: ["10.0.0.0/8"] }]
    route: [{ destination: { host: db, subset: v1 } }]
  - match: [{ port: 15432, sourceLabels: { app: sleep } }]
    route:
    - { destination: { host: db, subset: v1 }, weight: 80 }
    - { destination: { host: db, subset: v2 }, weight: 20 }
    - { destination: { host: cache, port: { number: 6380 } }, weight: 0 }
  - route: [{ destination: { host: db, subset: v2 } }]
"#;
    let t = sidecar(&(mesh(15432, "./db.default.svc.cluster.local", "127.0.0.1") + vs));
    let l = listener(&t, "127.0.0.1_15432");
    // Wrong port, other source labels, and a subnet without the bind address: skipped; the
    // fourth route takes everything, weight 0 left out.
    assert_eq!(l.filter_chains.len(), 1, "{l:?}");
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [
            (
                "outbound|5432|v1|db.default.svc.cluster.local".to_owned(),
                80
            ),
            (
                "outbound|5432|v2|db.default.svc.cluster.local".to_owned(),
                20
            )
        ]
    );
    assert!(t.notes.is_empty(), "{:?}", messages(&t.notes));
}

#[test]
fn destination_subnets_are_decided_against_the_bind_address() {
    let vs = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tcp:
  - match: [{ destinationSubnets: ["127.0.0.0/8"] }]
    route: [{ destination: { host: db, subset: v1 } }]
  - match: [{ destinationSubnets: ["127.0.0.7/32"] }]
    route: [{ destination: { host: db, subset: v2 } }]
"#;
    let on = |bind: &str| {
        let t = sidecar(&(mesh(15432, "./db.default.svc.cluster.local", bind) + vs));
        let l = listener(&t, &format!("{bind}_15432")).clone();
        (l, messages(&t.notes))
    };
    // The longest prefix holding the bind address wins, as Envoy's prefix_ranges would.
    let (l, _) = on("127.0.0.7");
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [(
            "outbound|5432|v2|db.default.svc.cluster.local".to_owned(),
            1
        )]
    );
    let (l, _) = on("127.0.0.1");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [(
            "outbound|5432|v1|db.default.svc.cluster.local".to_owned(),
            1
        )]
    );
    // A wildcard bind: undecidable here, reported; the service's default chain remains.
    let (l, notes) = on("0.0.0.0");
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [("outbound|5432||db.default.svc.cluster.local".to_owned(), 1)]
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("destinationSubnets on a listener bound to a wildcard")),
        "{notes:?}"
    );
}

#[test]
fn services_sharing_a_port_the_first_keeps_it_and_the_others_are_noted() {
    let t = sidecar(&mesh(16000, "./*", "127.0.0.1"));
    let l = listener(&t, "127.0.0.1_16000");
    assert_eq!(l.filter_chains.len(), 1);
    // cache (before db by host name) has two ports and none is 16000: Istio's cluster for
    // the listener port, which has no endpoints.
    assert_eq!(
        proxy(&l.filter_chains[0]),
        [(
            "outbound|16000||cache.default.svc.cluster.local".to_owned(),
            1
        )]
    );
    let notes = messages(&t.notes);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("spec.egress[0].hosts: db.default.svc.cluster.local share port 16000"),
        "{notes:?}"
    );
}

#[test]
fn egress_tls_port_routes_by_sni() {
    let yaml = mesh(443, "./*", "127.0.0.1").replace("protocol: TCP", "protocol: TLS")
        + r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tls:
  - match: [{ sniHosts: [db.example.com, a.example.com] }]
    route: [{ destination: { host: db, subset: v1 } }]
"#;
    let t = sidecar(&yaml);
    let l = listener(&t, "127.0.0.1_443");
    let chains: Vec<ChainView> = l
        .filter_chains
        .iter()
        .map(|c| {
            let sni = c
                .filter_chain_match
                .as_ref()
                .map(|m| m.server_names.clone())
                .unwrap_or_default();
            (sni, proxy(c))
        })
        .collect();
    // cache has no tls route: its own chain, without SNI, first by host name; db's route
    // by SNI, sorted. db gets no default chain: its tls route took it.
    assert_eq!(
        chains,
        [
            (
                vec![],
                vec![(
                    "outbound|443||cache.default.svc.cluster.local".to_owned(),
                    1
                )]
            ),
            (
                vec!["a.example.com".to_owned(), "db.example.com".to_owned()],
                vec![(
                    "outbound|5432|v1|db.default.svc.cluster.local".to_owned(),
                    1
                )]
            ),
        ]
    );
    assert_eq!(l.listener_filters.len(), 1, "the TLS inspector reads SNI");
}

const GATEWAY: &str = r#"apiVersion: v1
kind: Service
metadata: { name: a, namespace: default }
spec:
  selector: { app: a }
  ports: [{ name: tls, port: 443 }]
---
apiVersion: v1
kind: Service
metadata: { name: b, namespace: default }
spec:
  selector: { app: b }
  ports: [{ name: tls, port: 443 }, { name: tcp, port: 9000 }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 8443, name: tls, protocol: TLS }
    hosts: ["*.example.com"]
    tls: { mode: PASSTHROUGH }
  - port: { number: 9000, name: tcp, protocol: TCP }
    hosts: ["*"]
  - port: { number: 9443, name: tls-term, protocol: TLS }
    hosts: ["*"]
    tls: { mode: SIMPLE, credentialName: cert }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: sni, namespace: default }
spec:
  hosts: ["a.example.com", "b.example.com"]
  gateways: [edge]
  tls:
  - match: [{ sniHosts: [a.example.com], port: 8443 }]
    route: [{ destination: { host: a, port: { number: 443 } } }]
  - match: [{ sniHosts: [b.example.com] }]
    route: [{ destination: { host: b, port: { number: 443 } } }]
  - match: [{ sniHosts: [a.example.com] }]
    route: [{ destination: { host: b, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tcp, namespace: default }
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp:
  - match: [{ port: 1 }]
    route: [{ destination: { host: a } }]
  - match: [{ port: 9000, gateways: [default/edge] }]
    route: [{ destination: { host: b, port: { number: 9000 } } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: edge-deny, namespace: default }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: DENY
  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }]
"#;

#[test]
fn gateway_tls_passthrough_by_sni_and_tcp_servers() {
    let t = run(GATEWAY, ProxyKind::Router, &[("istio", "ingressgateway")]);
    let tls = listener(&t, "0.0.0.0_8443");
    let chains: Vec<ChainView> = tls
        .filter_chains
        .iter()
        .map(|c| (c.filter_chain_match.clone().unwrap().server_names, proxy(c)))
        .collect();
    assert_eq!(
        chains,
        [
            (
                vec!["a.example.com".to_owned()],
                vec![("outbound|443||a.default.svc.cluster.local".to_owned(), 1)]
            ),
            (
                vec!["b.example.com".to_owned()],
                vec![("outbound|443||b.default.svc.cluster.local".to_owned(), 1)]
            ),
        ],
        "the second a.example.com route is a duplicate SNI: skipped"
    );
    assert_eq!(tls.listener_filters.len(), 1, "the TLS inspector");
    // The gateway's policies as network RBAC, ahead of each TCP proxy.
    let first = &tls.filter_chains[0].filters[0];
    assert_eq!(first.name, crate::authz::NETWORK_RBAC_FILTER);
    let Some(filter::ConfigType::TypedConfig(any)) = &first.config_type else {
        panic!()
    };
    let rbac = NetworkRbac::decode(any.value.as_slice()).unwrap();
    assert!(
        rbac.rules
            .unwrap()
            .policies
            .contains_key("ns[default]-policy[edge-deny]-rule[0]")
    );

    let tcp = listener(&t, "0.0.0.0_9000");
    assert_eq!(tcp.filter_chains.len(), 1);
    assert_eq!(
        proxy(&tcp.filter_chains[0]),
        [("outbound|9000||b.default.svc.cluster.local".to_owned(), 1)]
    );
    assert!(
        !names(&t).contains(&"0.0.0.0_9443"),
        "TLS termination is not done"
    );
    let notes = messages(&t.notes);
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("spec.tls[2].match[0].sniHosts: skipped")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n
                .contains("spec.servers[2].tls: unsupported by spar-proxy yet: TLS termination")),
        "{notes:?}"
    );
}

#[test]
fn inbound_tcp_listener_is_secured_and_authorized() {
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: db, namespace: default }
spec:
  workloadSelector: { labels: { app: db } }
  ingress:
  - port: { number: 15432, protocol: TCP, name: tcp }
    defaultEndpoint: 127.0.0.1:5432
    captureMode: NONE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db-clients, namespace: default }
spec:
  selector: { matchLabels: { app: db } }
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/sleep"] } }]
"#;
    let t = run(yaml, ProxyKind::Sidecar, &[("app", "db")]);
    let l = listener(&t, "0.0.0.0_15432");
    assert_eq!(l.filter_chains.len(), 1, "STRICT: the mTLS chain only");
    let chain = &l.filter_chains[0];
    assert_eq!(
        chain
            .filter_chain_match
            .as_ref()
            .unwrap()
            .transport_protocol,
        "tls"
    );
    let filters: Vec<&str> = chain.filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [crate::authz::NETWORK_RBAC_FILTER, TCP_PROXY_FILTER]
    );
    assert_eq!(proxy(chain), [("inbound|15432||".to_owned(), 1)]);
    let socket = chain.transport_socket.as_ref().unwrap();
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &socket.config_type
    else {
        panic!()
    };
    let tls = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        tls.common_tls_context.unwrap().alpn_protocols,
        ["istio", "h2", "http/1.1"],
        "an Istio TCP client offers istio-peer-exchange and istio only"
    );
    assert!(
        t.clusters.iter().any(|c| c.name == "inbound|15432||"),
        "the inbound cluster"
    );
    assert!(t.notes.is_empty(), "{:?}", messages(&t.notes));
}

#[test]
fn a_single_destination_takes_the_destination_rule_idle_timeout() {
    let yaml = mesh(15432, "./db.default.svc.cluster.local", "127.0.0.1").replace(
        "  host: db\n",
        "  host: db\n  trafficPolicy: { connectionPool: { tcp: { idleTimeout: 30s } } }\n",
    );
    let t = sidecar(&yaml);
    let chain = &listener(&t, "127.0.0.1_15432").filter_chains[0];
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!()
    };
    let p = TcpProxy::decode(any.value.as_slice()).unwrap();
    assert_eq!(p.idle_timeout.map(|d| d.seconds), Some(30));
}
