//! Endpoints over EDS from spar-control: a spar-proxy gateway fed by spar-control follows
//! an endpoint change (a Deployment's `spar.dev/endpoints` edited in the YAML) under a
//! steady request loop with no failed request, and the change travels as a
//! ClusterLoadAssignment alone: spar-control's sync status shows the EDS version moving
//! while CDS and LDS were neither sent nor ACKed again. `sparctl proxy-config endpoints`
//! shows the new endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use spar_tests::load::Load;
use spar_tests::proc::{SparProxy, bin, scratch_dir, spar_control};
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http, kube_deployment, kube_service};

const GATEWAY: &str = "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Generous: a loaded machine, never a timing assertion.
const WITHIN: Duration = Duration::from_secs(30);

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

/// The service `reviews` with its one replica at `at`.
fn services(at: SocketAddr) -> String {
    let mut y = kube_service("reviews", 9080);
    y.push_str(&kube_deployment("reviews-v1", "reviews", "v1", at));
    y
}

fn routing(gateway_port: u16) -> String {
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
  - route:
    - destination: {{ host: reviews }}
"#
    )
}

/// The gateway's (sent, acked) version of one type, from spar-control's `/debug/syncz`.
fn sync(monitoring: SocketAddr, type_url: &str) -> (Option<String>, Option<String>) {
    let Ok(r) = http::get(monitoring, "/debug/syncz") else {
        return (None, None);
    };
    let v: serde_json::Value = serde_json::from_str(&r.body_text()).unwrap_or_default();
    let proxies = v["proxies"].as_array().cloned().unwrap_or_default();
    let Some(p) = proxies.iter().find(|p| p["id"] == GATEWAY) else {
        return (None, None);
    };
    let t = &p["types"][type_url];
    let s = |f: &str| t[f].as_str().map(str::to_owned);
    (s("sent"), s("acked"))
}

#[test]
fn an_endpoint_edit_reaches_the_proxy_as_eds_alone_with_no_failed_request() {
    let (a, b) = (tagged("A"), tagged("B"));
    let dir = scratch_dir("control-eds");
    let gateway_port = free_port();
    std::fs::write(dir.join("services.yaml"), services(a.addr)).unwrap();
    std::fs::write(dir.join("routing.yaml"), routing(gateway_port)).unwrap();
    let (xds, monitoring) = (free_port(), free_port());
    let _control = spar_control(&dir, xds, monitoring);
    let monitoring: SocketAddr = format!("127.0.0.1:{monitoring}").parse().unwrap();
    let gateway = SparProxy::start(
        &spar_tests::ads_bootstrap(GATEWAY, "istio-system", "istio: ingressgateway", xds),
        &[],
    );
    let addr: SocketAddr = format!("127.0.0.1:{gateway_port}").parse().unwrap();
    assert_eventually(WITHIN, "the gateway routes to A", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200 && r.body_text() == "A")
    });
    let synced = |t: &str| {
        let (sent, acked) = sync(monitoring, t);
        (sent.is_some() && sent == acked).then_some(acked).flatten()
    };
    assert_eventually(WITHIN, "CDS, EDS and LDS ACKed", || {
        [CLUSTER, ENDPOINT, LISTENER]
            .iter()
            .all(|t| synced(t).is_some())
    });
    let (cds, lds, eds) = (synced(CLUSTER), synced(LISTENER), synced(ENDPOINT));

    // Steady load while the replica moves from A to B in the YAML.
    let load = Load::start(addr);
    assert_eventually(WITHIN, "the load is running", || load.last().is_some());
    std::fs::write(dir.join("services.yaml"), services(b.addr)).unwrap();
    assert_eventually(WITHIN, "requests go to the new endpoint", || {
        load.last().as_deref() == Some("B")
    });
    let until = load.count() + 50;
    assert_eventually(WITHIN, "50 more requests", || load.count() >= until);
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );

    // The change was one EDS push: its version moved, CDS and LDS were not sent again.
    assert_eventually(WITHIN, "the new assignment is ACKed", || {
        synced(ENDPOINT).is_some_and(|v| Some(v) != eds)
    });
    assert_eq!(sync(monitoring, CLUSTER), (cds.clone(), cds), "no CDS push");
    assert_eq!(
        sync(monitoring, LISTENER),
        (lds.clone(), lds),
        "no LDS push"
    );

    // `sparctl proxy-config endpoints` reads the EDS cluster's endpoints.
    let out = Command::new(bin("sparctl"))
        .args([
            "proxy-config",
            "endpoints",
            "--admin",
            &gateway.admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let endpoints = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        endpoints.lines().any(|l| l.contains(&b.addr.to_string())
            && l.contains("outbound|9080||reviews.default.svc.cluster.local")),
        "{endpoints}"
    );
    assert!(!endpoints.contains(&a.addr.to_string()), "{endpoints}");
}
