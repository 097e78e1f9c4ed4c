// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use prost::Message as _;
use spar_istio::{Options, load};

use super::*;
use crate::{ProxyKind, ProxyNode, Registry, translate};

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: api, namespace: default }
spec:
  selector: { app: api }
  ports: [{ name: http, port: 80 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: default
  annotations: { spar.dev/endpoints: "10.0.0.1:8080" }
spec:
  template:
    metadata: { labels: { app: api LABELS } }
    spec: { serviceAccountName: api-sa }
"#;

/// The cluster `outbound|80||api.default.svc.cluster.local` for a gateway, and the notes.
fn cluster(yaml: &str) -> (Cluster, Vec<crate::Note>) {
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
        kind: ProxyKind::Router,
        namespace: "default".to_owned(),
        labels: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
    };
    let gateway = r#"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 8080, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api, namespace: default }
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{ route: [{ destination: { host: api } }] }]
"#;
    let all = load("g.yaml", gateway, &Options::default());
    let mut resources = loaded.resources.clone();
    resources.extend(all.resources);
    let t = translate(&resources, &registry, &proxy);
    let c = t
        .clusters
        .iter()
        .find(|c| c.name == "outbound|80||api.default.svc.cluster.local")
        .expect("the service's cluster")
        .clone();
    (c, t.notes)
}

fn tls(c: &Cluster) -> Option<UpstreamTlsContext> {
    let ts = c.transport_socket.as_ref()?;
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        return None;
    };
    Some(UpstreamTlsContext::decode(any.value.as_slice()).unwrap())
}

fn sans(t: &UpstreamTlsContext) -> Vec<String> {
    let common = t.common_tls_context.as_ref().unwrap();
    let v = match common.validation_context_type.as_ref().unwrap() {
        common_tls_context::ValidationContextType::CombinedValidationContext(c) => {
            c.default_validation_context.clone().unwrap()
        }
        common_tls_context::ValidationContextType::ValidationContext(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    v.match_typed_subject_alt_names
        .iter()
        .map(|m| match &m.matcher.as_ref().unwrap().match_pattern {
            Some(string_matcher::MatchPattern::Exact(s)) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn auto_mtls_follows_the_workloads_sidecar_label() {
    // No sidecar label: plaintext, as Istio's auto mTLS does.
    let (c, _) = cluster(&SERVICE.replace(" LABELS", ""));
    assert!(c.transport_socket.is_none());
    // Injected workloads: mTLS with the mesh identity, expecting the workload's.
    let (c, notes) = cluster(&SERVICE.replace(" LABELS", ", security.istio.io/tlsMode: istio"));
    assert!(notes.is_empty(), "{notes:?}");
    let t = tls(&c).expect("mTLS");
    assert_eq!(t.sni, "outbound_.80_._.api.default.svc.cluster.local");
    assert_eq!(sans(&t), ["spiffe://cluster.local/ns/default/sa/api-sa"]);
    let common = t.common_tls_context.unwrap();
    assert_eq!(common.alpn_protocols, MESH_ALPN);
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
}

fn with_dr(tls: &str) -> String {
    format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{ name: api, namespace: default }}\nspec:\n  host: api\n  trafficPolicy:\n    tls: {tls}\n",
        SERVICE.replace(" LABELS", ", security.istio.io/tlsMode: istio")
    )
}

#[test]
fn destination_rule_tls_modes() {
    // DISABLE wins over auto mTLS.
    let (c, _) = cluster(&with_dr("{ mode: DISABLE }"));
    assert!(c.transport_socket.is_none());
    // ISTIO_MUTUAL with its own SANs and SNI.
    let (c, _) = cluster(&with_dr(
        "{ mode: ISTIO_MUTUAL, sni: api.test, subjectAltNames: [\"spiffe://cluster.local/ns/x/sa/y\"] }",
    ));
    let t = tls(&c).unwrap();
    assert_eq!(
        (t.sni.as_str(), sans(&t)),
        (
            "api.test",
            vec!["spiffe://cluster.local/ns/x/sa/y".to_owned()]
        )
    );
    // SIMPLE with a CA file, DNS and URI names.
    let (c, notes) = cluster(&with_dr(
        "{ mode: SIMPLE, caCertificates: /etc/ca.pem, sni: api.example.com, subjectAltNames: [api.example.com, \"spiffe://other/ns/a/sa/b\"] }",
    ));
    assert!(notes.is_empty(), "{notes:?}");
    let t = tls(&c).unwrap();
    assert_eq!(t.sni, "api.example.com");
    assert_eq!(sans(&t), ["api.example.com", "spiffe://other/ns/a/sa/b"]);
    // MUTUAL: the client certificate files.
    let (c, _) = cluster(&with_dr(
        "{ mode: MUTUAL, caCertificates: /ca.pem, clientCertificate: /c.pem, privateKey: /k.pem }",
    ));
    let t = tls(&c).unwrap();
    assert_eq!(t.common_tls_context.unwrap().tls_certificates.len(), 1);
    // What cannot be honoured is left out and said: no CA (no system trust store), a
    // MUTUAL without its files, a Kubernetes secret.
    for (dr, field) in [
        ("{ mode: SIMPLE }", "caCertificates"),
        (
            "{ mode: MUTUAL, caCertificates: /ca.pem }",
            "clientCertificate",
        ),
        (
            "{ mode: SIMPLE, credentialName: api-cert }",
            "credentialName",
        ),
    ] {
        let (c, notes) = cluster(&with_dr(dr));
        assert!(c.transport_socket.is_none(), "{dr}");
        assert!(
            notes.iter().any(|n| n.path.ends_with(field)),
            "{dr}: {notes:?}"
        );
    }
}
