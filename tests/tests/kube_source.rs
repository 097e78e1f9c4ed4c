//! spar-control's Kubernetes source end to end: a fake API server (spar_tests::fake_kube)
//! holds Istio CRDs, Services, EndpointSlices and Pods; spar-control watches it
//! (`--source kubernetes`) and feeds a gateway spar-proxy over ADS; real upstreams answer.
//! Changes, deletes, broken watches, 410 Gone, invalid objects and an API server that is
//! down at start must all converge, without needless relists or pushes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use spar_tests::fake_kube::{self, FakeKube};
use spar_tests::proc::{Process, SparProxy, bin, metric_sum};
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http};

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

fn gateway(port: u16) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "edge", "namespace": "default"},
           "spec": {"selector": {"istio": "ingressgateway"},
                    "servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"},
                                 "hosts": ["*"]}]}})
}

/// VirtualService `reviews` on the gateway: `/reviews` split v1/v2 by weight.
fn virtual_service(v1: u32, v2: u32) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "default"},
           "spec": {"hosts": ["*"], "gateways": ["edge"],
                    "http": [{"match": [{"uri": {"prefix": "/reviews"}}],
                              "route": [
                                {"destination": {"host": "reviews", "subset": "v1"}, "weight": v1},
                                {"destination": {"host": "reviews", "subset": "v2"}, "weight": v2}]}]}})
}

fn destination_rule() -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
           "metadata": {"name": "reviews", "namespace": "default"},
           "spec": {"host": "reviews",
                    "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                {"name": "v2", "labels": {"version": "v2"}}]}})
}

/// One replica of reviews `version` at `addr`: its Pod and its own EndpointSlice (each
/// replica listens on its own loopback port, and a slice has one port set).
fn replica(fake: &FakeKube, pod: &str, version: &str, addr: SocketAddr) {
    fake.apply(fake_kube::pod(
        pod,
        "default",
        &[("app", "reviews"), ("version", version)],
    ));
    fake.apply(fake_kube::endpoint_slice(
        &format!("reviews-{pod}"),
        "default",
        "reviews",
        "http",
        addr.port(),
        &[("127.0.0.1", pod)],
    ));
}

/// Everything a test starts (dropped in this order: the gateway, spar-control, the fake).
struct Mesh {
    gateway: SparProxy,
    control: Process,
    fake: FakeKube,
    monitoring: u16,
    addr: SocketAddr,
}

impl Mesh {
    fn answer(&self) -> String {
        match http::get(self.addr, "/reviews/1") {
            Ok(r) => format!("{} {}", r.status, r.body_text()),
            Err(e) => format!("error: {e}"),
        }
    }

    fn metrics(&self) -> String {
        http::get(
            format!("127.0.0.1:{}", self.monitoring).parse().unwrap(),
            "/metrics",
        )
        .map(|r| r.body_text())
        .unwrap_or_default()
    }

    fn metric(&self, name: &str, labels: &str) -> i64 {
        metric_sum(&self.metrics(), name, labels)
    }

    fn proxy_config(&self, kind: &str) -> String {
        let out = Command::new(bin("sparctl"))
            .args([
                "proxy-config",
                kind,
                "--admin",
                &self.gateway.admin.to_string(),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn control_alive(&mut self) -> bool {
        matches!(self.control.child.try_wait(), Ok(None))
    }
}

/// The fake (on `api_port`, or already running), spar-control on it, a gateway fed by it.
fn start_mesh(fake: FakeKube, gateway_port: u16) -> Mesh {
    let (xds, monitoring) = (free_port(), free_port());
    let control = fake_kube::spar_control(&fake.url(), xds, monitoring);
    let bootstrap = spar_tests::ads_bootstrap(
        "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local",
        "istio-system",
        "istio: ingressgateway",
        xds,
    );
    let gateway = SparProxy::start(&bootstrap, &[]);
    Mesh {
        fake,
        control,
        gateway,
        monitoring,
        addr: format!("127.0.0.1:{gateway_port}").parse().unwrap(),
    }
}

/// The objects of the reviews app: gateway, routing (100% v1), subsets, Service, replicas.
fn seed(fake: &FakeKube, gateway_port: u16, v1: SocketAddr, v2: SocketAddr) {
    fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}));
    fake.apply(gateway(gateway_port));
    fake.apply(virtual_service(100, 0));
    fake.apply(destination_rule());
    fake.apply(fake_kube::service("reviews", "default", &[("http", 9080)]));
    replica(fake, "reviews-v1-a", "v1", v1);
    replica(fake, "reviews-v2-a", "v2", v2);
}

/// Waits until the answer is `want` for 10 requests in a row.
fn converge(mesh: &Mesh, what: &str, want: &str) {
    assert_eventually(WITHIN, what, || (0..10).all(|_| mesh.answer() == want));
}

/// Waits until no push has happened for a second (the mesh is at rest), returns the count.
fn settled_pushes(mesh: &Mesh) -> i64 {
    let mut last = -1;
    let mut result = 0;
    assert_eventually(WITHIN, "xDS pushes settle", || {
        let now = mesh.metric("spar_xds_push_latency_seconds_count", "");
        let settled = now == last;
        last = now;
        result = now;
        if !settled {
            std::thread::sleep(Duration::from_secs(1));
        }
        settled
    });
    result
}

#[test]
fn crds_services_and_endpoint_slices_reach_a_gateway_and_follow_changes_and_deletes() {
    let (v1, v2, v2b) = (tagged("v1"), tagged("v2"), tagged("v2b"));
    let gateway_port = free_port();
    let fake = FakeKube::start();
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let mesh = start_mesh(fake, gateway_port);
    converge(&mesh, "the gateway routes to v1", "200 v1");
    let clusters = mesh.proxy_config("clusters");
    assert!(
        clusters.contains("reviews.default.svc.cluster.local"),
        "{clusters}"
    );

    // A weight change moves every request to v2.
    mesh.fake.apply(virtual_service(0, 100));
    converge(&mesh, "the weight change reaches the gateway", "200 v2");

    // A new endpoint (a second v2 replica) starts taking requests.
    replica(&mesh.fake, "reviews-v2-b", "v2", v2b.addr);
    assert_eventually(WITHIN, "the new v2 endpoint answers", || {
        mesh.answer() == "200 v2b"
    });

    // Deleting its slice takes it out again.
    assert!(mesh.fake.delete(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "default",
        "reviews-reviews-v2-b"
    ));
    assert_eventually(WITHIN, "the deleted endpoint leaves the gateway", || {
        !mesh
            .proxy_config("endpoints")
            .contains(&v2b.addr.to_string())
    });
    for _ in 0..20 {
        assert_eq!(mesh.answer(), "200 v2");
    }

    // Deleting the VirtualService removes the route.
    assert!(mesh.fake.delete(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "reviews"
    ));
    assert_eventually(WITHIN, "the deleted route leaves the gateway", || {
        !mesh.proxy_config("routes").contains("/reviews")
    });
    assert_ne!(mesh.answer(), "200 v2");
}

#[test]
fn broken_watches_resume_from_their_resource_version_without_relisting_or_pushing() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let gateway_port = free_port();
    let fake = FakeKube::start();
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let mut mesh = start_mesh(fake, gateway_port);
    converge(&mesh, "the gateway routes to v1", "200 v1");
    let pushes = settled_pushes(&mesh);
    let kinds = [
        "virtualservices",
        "destinationrules",
        "gateways",
        "services",
        "endpointslices",
        "pods",
        "namespaces",
        "peerauthentications",
    ];
    let lists: Vec<u64> = kinds.iter().map(|k| mesh.fake.lists(k)).collect();
    let watches: Vec<u64> = kinds.iter().map(|k| mesh.fake.watches(k)).collect();
    let open = mesh.fake.open_watches();
    assert_eq!(open, 13, "one watch per kind");

    for round in 1..=2u64 {
        mesh.fake.break_watches();
        assert_eventually(WITHIN, "every kind watches again", || {
            kinds
                .iter()
                .zip(&watches)
                .all(|(k, before)| mesh.fake.watches(k) >= before + round)
                && mesh.fake.open_watches() == open
        });
    }
    let after: Vec<u64> = kinds.iter().map(|k| mesh.fake.lists(k)).collect();
    assert_eq!(after, lists, "a resumed watch must not relist");
    // Nothing changed, so nothing is pushed: give a push every chance to happen first
    // (the source debounces 100 ms and the xDS server 100 ms).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        mesh.metric("spar_xds_push_latency_seconds_count", ""),
        pushes,
        "no push without a change"
    );
    assert!(mesh.control_alive());

    // The resumed watches still deliver changes.
    mesh.fake.apply(virtual_service(0, 100));
    converge(&mesh, "a change after the resumed watches", "200 v2");
    assert_eq!(
        kinds.iter().map(|k| mesh.fake.lists(k)).collect::<Vec<_>>(),
        lists
    );
}

#[test]
fn gone_resource_version_relists_and_converges() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let gateway_port = free_port();
    let fake = FakeKube::start();
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let mut mesh = start_mesh(fake, gateway_port);
    converge(&mesh, "the gateway routes to v1", "200 v1");
    let lists = mesh.fake.lists("virtualservices");

    // The API server goes away; meanwhile the route changes and the history is compacted,
    // so the watches' resourceVersions are too old when it comes back.
    mesh.fake.set_available(false);
    mesh.fake.apply(virtual_service(0, 100));
    mesh.fake.compact();
    // Still serving the last good configuration.
    for _ in 0..5 {
        assert_eq!(mesh.answer(), "200 v1");
    }
    mesh.fake.set_available(true);
    converge(&mesh, "the relisted route reaches the gateway", "200 v2");
    assert!(
        mesh.fake.lists("virtualservices") > lists,
        "410 Gone relists"
    );
    assert!(mesh.metric("spar_kube_gone_total", "kind=\"VirtualService\"") >= 1);
    assert!(mesh.control_alive());
}

#[test]
fn invalid_virtual_service_is_left_out_and_counted_while_valid_ones_apply() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let gateway_port = free_port();
    let fake = FakeKube::start();
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let mesh = start_mesh(fake, gateway_port);
    converge(&mesh, "the gateway routes to v1", "200 v1");

    // A second VirtualService with an unknown field and weights that do not add up.
    let mut bad = virtual_service(30, 0);
    bad["metadata"]["name"] = json!("broken");
    bad["spec"]["http"][0]["route"][0]["wieght"] = json!(1);
    mesh.fake.apply(bad);
    // And a valid change in the same moment.
    mesh.fake.apply(virtual_service(0, 100));
    converge(&mesh, "the valid change applies", "200 v2");
    assert_eventually(WITHIN, "the invalid object is counted", || {
        let m = mesh.metrics();
        metric_sum(&m, "spar_kube_invalid_objects", "") == 1
            && metric_sum(&m, "spar_kube_rejected_objects_total", "") >= 1
    });

    // Fixing it brings it in; deleting it clears the gauge.
    assert!(mesh.fake.delete(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "broken"
    ));
    assert_eventually(WITHIN, "the gauge clears", || {
        mesh.metric("spar_kube_invalid_objects", "") == 0
    });
    for _ in 0..10 {
        assert_eq!(mesh.answer(), "200 v2");
    }
}

#[test]
fn api_server_down_at_start_then_up_converges() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let gateway_port = free_port();
    let api_port = free_port();
    let (xds, monitoring) = (free_port(), free_port());
    let mut control =
        fake_kube::spar_control(&format!("http://127.0.0.1:{api_port}"), xds, monitoring);
    let metrics = || {
        http::get(
            format!("127.0.0.1:{monitoring}").parse().unwrap(),
            "/metrics",
        )
        .map(|r| r.body_text())
        .unwrap_or_default()
    };
    assert_eventually(WITHIN, "spar-control counts failed discovery", || {
        metric_sum(&metrics(), "spar_kube_discovery_errors_total", "") >= 2
    });
    assert!(
        matches!(control.child.try_wait(), Ok(None)),
        "spar-control died"
    );

    let fake = FakeKube::start_on(api_port, &[]);
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let bootstrap = spar_tests::ads_bootstrap(
        "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local",
        "istio-system",
        "istio: ingressgateway",
        xds,
    );
    let gateway = SparProxy::start(&bootstrap, &[]);
    let mesh = Mesh {
        fake,
        control,
        gateway,
        monitoring,
        addr: format!("127.0.0.1:{gateway_port}").parse().unwrap(),
    };
    converge(
        &mesh,
        "the gateway routes to v1 once the API server is up",
        "200 v1",
    );
    assert!(mesh.fake.lists("virtualservices") >= 1);
}

#[test]
fn the_served_version_is_watched_when_v1_is_not() {
    let (v1, v2) = (tagged("v1"), tagged("v2"));
    let gateway_port = free_port();
    // An older Istio: networking.istio.io serves v1beta1 (preferred) and v1alpha3 only.
    let fake = FakeKube::start_on(
        free_port(),
        &[("networking.istio.io", &["v1beta1", "v1alpha3"])],
    );
    seed(&fake, gateway_port, v1.addr, v2.addr);
    let mesh = start_mesh(fake, gateway_port);
    converge(&mesh, "the gateway routes to v1", "200 v1");
    let paths = mesh.fake.list_paths();
    assert!(
        paths.contains_key("networking.istio.io/v1beta1/virtualservices"),
        "{paths:?}"
    );
    assert!(
        paths.contains_key("security.istio.io/v1/peerauthentications"),
        "{paths:?}"
    );
    assert!(
        !paths
            .keys()
            .any(|p| p.starts_with("networking.istio.io/v1/")),
        "{paths:?}"
    );
}
