//! The mesh loop: Istio YAML in a directory → spar-control (validation, translation,
//! xDS) → spar-proxy as a gateway → real upstreams. Editing the YAML changes routing
//! live; an invalid edit is refused and the proxy keeps the last good config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use spar_tests::proc::{SparProxy, bin, scratch_dir, spar_control};
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http, kube_deployment, kube_service};

fn tagged(tag: &'static str) -> Scripted {
    Scripted::start(move |mut c| {
        while c.read_head().is_some() {
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{tag}",
                tag.len()
            );
            if !c.write(reply.as_bytes()) {
                return;
            }
        }
    })
}

fn services(v1: SocketAddr, v2: SocketAddr) -> String {
    let mut y = kube_service("reviews", 9080);
    y.push_str(&kube_deployment("reviews-v1", "reviews", "v1", v1));
    y.push_str(&kube_deployment("reviews-v2", "reviews", "v2", v2));
    y.push_str(
        r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
"#,
    );
    y
}

fn routing(gateway_port: u16, subset: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge, namespace: default }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: {gateway_port}, name: http, protocol: HTTP }}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: reviews, namespace: default }}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match: [{{ uri: {{ prefix: /reviews }} }}]
    route:
    - destination: {{ host: reviews, subset: {subset} }}
"#
    )
}

fn gateway_bootstrap(xds: u16) -> String {
    spar_tests::ads_bootstrap(
        "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local",
        "istio-system",
        "istio: ingressgateway",
        xds,
    )
}

fn answer(addr: SocketAddr) -> String {
    match http::get(addr, "/reviews/1") {
        Ok(r) => format!("{} {}", r.status, r.body_text()),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn yaml_edits_reroute_a_gateway_live_and_bad_edits_are_refused() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let dir = scratch_dir("mesh");
    let gateway_port = free_port();
    std::fs::write(dir.join("services.yaml"), services(v1.addr, v2.addr)).unwrap();
    std::fs::write(dir.join("routing.yaml"), routing(gateway_port, "v1")).unwrap();
    let (xds, monitoring) = (free_port(), free_port());
    let _control = spar_control(&dir, xds, monitoring);
    let gateway = SparProxy::start(&gateway_bootstrap(xds), &[]);
    let addr: SocketAddr = format!("127.0.0.1:{gateway_port}").parse().unwrap();
    assert_eventually(Duration::from_secs(30), "the gateway routes to v1", || {
        answer(addr) == "200 v1"
    });
    // `sparctl proxy-status` shows the gateway in sync.
    assert_eventually(
        Duration::from_secs(10),
        "proxy-status shows the gateway synced",
        || {
            let out = Command::new(bin("sparctl"))
                .args([
                    "proxy-status",
                    "--control",
                    &format!("127.0.0.1:{monitoring}"),
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // CDS, LDS and EDS (the service clusters' endpoints); no RDS.
            text.lines()
                .any(|l| l.starts_with("gw-1.istio-system") && l.matches("SYNCED").count() == 3)
        },
    );

    // `sparctl proxy-config` shows what the gateway runs.
    let config = |kind: &str| {
        let out = Command::new(bin("sparctl"))
            .args(["proxy-config", kind, "--admin", &gateway.admin.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let clusters = config("clusters");
    assert!(
        clusters
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "reviews.default.svc.cluster.local",
                    "9080",
                    "v1",
                    "outbound",
                    "EDS"
                ]),
        "{clusters}"
    );
    let endpoints = config("endpoints");
    assert!(endpoints.contains(&v1.addr.to_string()), "{endpoints}");
    let listeners = config("listeners");
    assert!(listeners.contains(&gateway_port.to_string()), "{listeners}");
    assert!(config("routes").contains("/reviews*"));

    // A live edit: every request moves to v2.
    std::fs::write(dir.join("routing.yaml"), routing(gateway_port, "v2")).unwrap();
    assert_eventually(
        Duration::from_secs(30),
        "the edit reaches the gateway",
        || answer(addr) == "200 v2",
    );
    for _ in 0..20 {
        assert_eq!(answer(addr), "200 v2");
    }

    // An invalid edit (weights that do not add up, an unknown field) is refused by the
    // control plane; the gateway keeps the last good routing.
    let broken = routing(gateway_port, "v1").replace(
        "    - destination: { host: reviews, subset: v1 }",
        "    - destination: { host: reviews, subset: v1 }\n      weight: 30\n      wieght: 1",
    );
    std::fs::write(dir.join("routing.yaml"), broken).unwrap();
    std::thread::sleep(Duration::from_millis(500)); // several watch periods
    for _ in 0..20 {
        assert_eq!(answer(addr), "200 v2");
    }
}
