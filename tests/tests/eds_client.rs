//! spar-proxy's EDS, fed by the control plane's xDS server (spar-xds, in this test): EDS
//! clusters reach the endpoints their ClusterLoadAssignment names; a CLA-only push moves
//! the traffic with no failed request under steady load and no CDS push; a new EDS cluster
//! whose CLA comes late is held (warming: the previous config keeps serving) instead of
//! failing requests for want of endpoints; a bad CLA is NACKed and the old endpoints serve.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use spar_tests::load::Load;
use spar_tests::proc::SparProxy;
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http};
use spar_xds::{Cache, Snapshot, type_url};

const NODE: &str = "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local";
/// Generous: a loaded machine, never a timing assertion.
const WITHIN: Duration = Duration::from_secs(20);

/// An upstream answering every request with `tag` as the body, on keep-alive connections.
fn upstream(tag: &'static str) -> Scripted {
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

/// The EDS clusters `names` and an HTTP listener on `port` routing everything to
/// `route_to`, read from YAML with spar-config's loader.
fn resources(port: u16, names: &[&str], route_to: &str) -> (Vec<Cluster>, Vec<Listener>) {
    resources_with(port, names, route_to, "")
}

/// [`resources`] with `extra` fields in every `eds_config`.
fn resources_with(
    port: u16,
    names: &[&str],
    route_to: &str,
    extra: &str,
) -> (Vec<Cluster>, Vec<Listener>) {
    let clusters: String = names
        .iter()
        .map(|n| {
            format!(
                "  - name: {n}\n    type: EDS\n    connect_timeout: 1s\n    eds_cluster_config: {{ service_name: {n}-svc, eds_config: {{ ads: {{}}, resource_api_version: V3{extra} }} }}\n"
            )
        })
        .collect();
    let yaml = format!(
        r#"static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: eds
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                route: {{ cluster: {route_to} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}"#
    );
    // The subset check only: EDS clusters are refused in a static bootstrap by compile.
    let b = spar_config::load_bootstrap_str(&yaml, "resources.yaml", spar_config::Format::Yaml)
        .expect("resource YAML");
    let sr = b.envoy.static_resources.unwrap();
    (sr.clusters, sr.listeners)
}

/// A CLA named `name` with one endpoint at `ip:port`.
fn cla(name: &str, ip: &str, port: u16) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            address: ip.into(),
                            port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                port.into(),
                            )),
                            ..SocketAddress::default()
                        })),
                    }),
                    ..Endpoint::default()
                })),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

fn snapshot(
    version: &str,
    (clusters, listeners): &(Vec<Cluster>, Vec<Listener>),
    clas: &[ClusterLoadAssignment],
) -> Snapshot {
    let mut s = Snapshot::new(version);
    for c in clusters {
        s.insert_message(c.name.clone(), c);
    }
    for l in listeners {
        s.insert_message(l.name.clone(), l);
    }
    for la in clas {
        s.insert_message(la.cluster_name.clone(), la);
    }
    s
}

/// spar-xds on 127.0.0.1:0 in a thread of its own, with a short debounce.
fn start_server() -> (SocketAddr, Arc<Cache>) {
    let cache = Arc::new(Cache::new(Duration::from_millis(10)));
    let (tx, rx) = std::sync::mpsc::channel();
    let served = cache.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            spar_xds::serve_on(listener, served, std::future::pending())
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), cache)
}

fn bootstrap(xds: SocketAddr) -> String {
    spar_tests::ads_bootstrap(NODE, "default", "app: app", xds.port())
}

/// The node's sync state for one type: (sent version, acked version, NACK error).
fn sync(cache: &Cache, type_url: &str) -> (Option<String>, Option<String>, Option<String>) {
    let status = cache.status();
    let Some(t) = status.get(NODE).and_then(|n| n.types.get(type_url)) else {
        return (None, None, None);
    };
    (
        t.sent_version.clone(),
        t.acked_version.clone(),
        t.nack.as_ref().map(|n| n.error.clone()),
    )
}

#[test]
fn a_cla_only_push_moves_traffic_with_no_failed_request_and_no_cds_push() {
    let (a, b) = (upstream("A"), upstream("B"));
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (xds, cache) = start_server();
    let res = resources(port, &["svc"], "svc");
    cache.set_snapshot(
        NODE,
        snapshot("v1", &res, &[cla("svc-svc", "127.0.0.1", a.addr.port())]),
    );
    let proxy = SparProxy::start(&bootstrap(xds), &[]);
    assert_eventually(WITHIN, "the EDS cluster reaches its endpoint", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200 && r.body_text() == "A")
    });
    assert_eventually(WITHIN, "the CLA is ACKed", || {
        sync(&cache, type_url::ENDPOINT).1.as_deref() == Some("v1")
    });

    // Steady load while the endpoint moves by a CLA-only push.
    let load = Load::start(addr);
    assert_eventually(WITHIN, "the load is running", || load.last().is_some());
    cache.set_snapshot(
        NODE,
        snapshot("v2", &res, &[cla("svc-svc", "127.0.0.1", b.addr.port())]),
    );
    assert_eventually(WITHIN, "requests go to the new endpoint", || {
        load.last().as_deref() == Some("B")
    });
    // A little longer under load after the move, then stop.
    let until = load.count() + 50;
    assert_eventually(WITHIN, "50 more requests", || load.count() >= until);
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );

    // Only EDS moved: CDS was neither sent nor ACKed again.
    assert_eventually(WITHIN, "the new CLA is ACKed", || {
        sync(&cache, type_url::ENDPOINT).1.as_deref() == Some("v2")
    });
    let cds = sync(&cache, type_url::CLUSTER);
    assert_eq!(
        (cds.0.as_deref(), cds.1.as_deref()),
        (Some("v1"), Some("v1")),
        "no CDS push"
    );
    // /config_dump shows the CLA in force as Envoy's EndpointsConfigDump.
    let dump: serde_json::Value =
        serde_json::from_str(&http::get(proxy.admin, "/config_dump").unwrap().body_text()).unwrap();
    let endpoints = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump")
        .expect("an EndpointsConfigDump");
    let la = &endpoints["dynamic_endpoint_configs"][0]["endpoint_config"];
    assert_eq!(la["cluster_name"], "svc-svc");
    assert_eq!(
        la["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"],
        b.addr.port()
    );
}

#[test]
fn a_late_cla_holds_the_new_cluster_and_a_bad_cla_is_nacked() {
    let (a, b) = (upstream("A"), upstream("B"));
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (xds, cache) = start_server();
    let first = resources(port, &["old"], "old");
    let a_cla = cla("old-svc", "127.0.0.1", a.addr.port());
    cache.set_snapshot(NODE, snapshot("v1", &first, std::slice::from_ref(&a_cla)));
    let _proxy = SparProxy::start(&bootstrap(xds), &[]);
    assert_eventually(WITHIN, "the first cluster serves", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200 && r.body_text() == "A")
    });

    // A new cluster and a route to it, its CLA not there yet: the update warms and the old
    // config keeps serving (no request fails for want of endpoints).
    let load = Load::start(addr);
    let second = resources(port, &["old", "new"], "new");
    cache.set_snapshot(NODE, snapshot("v2", &second, std::slice::from_ref(&a_cla)));
    assert_eventually(WITHIN, "the new cluster's CLA is asked for", || {
        sync(&cache, type_url::CLUSTER).0.as_deref() == Some("v2")
    });
    std::thread::sleep(Duration::from_millis(500)); // a window in which nothing may change
    assert_eq!(
        sync(&cache, type_url::CLUSTER).1.as_deref(),
        Some("v1"),
        "a warming CDS update is not ACKed"
    );
    assert_eq!(load.last().as_deref(), Some("A"), "the old config serves");

    // The CLA arrives: clusters, listener and CLA apply as one swap.
    let b_cla = cla("new-svc", "127.0.0.1", b.addr.port());
    cache.set_snapshot(
        NODE,
        snapshot("v3", &second, &[a_cla.clone(), b_cla.clone()]),
    );
    assert_eventually(WITHIN, "traffic moves to the warmed cluster", || {
        load.last().as_deref() == Some("B")
    });
    // The held CDS response (v2; v3 changed no cluster, so none was sent) is ACKed now.
    assert_eventually(WITHIN, "the held CDS update is ACKed", || {
        sync(&cache, type_url::CLUSTER).1.as_deref() == Some("v2")
    });

    // A CLA spar-proxy cannot run: NACKed with its name and field; the old endpoints serve.
    let bad = cla("new-svc", "backend.local", 80);
    cache.set_snapshot(NODE, snapshot("v4", &second, &[a_cla, bad]));
    assert_eventually(WITHIN, "the bad CLA is NACKed", || {
        sync(&cache, type_url::ENDPOINT).2.is_some()
    });
    let (_, acked, error) = sync(&cache, type_url::ENDPOINT);
    assert_eq!(acked.as_deref(), Some("v3"));
    let error = error.unwrap();
    assert!(error.contains("ClusterLoadAssignment `new-svc`"), "{error}");
    assert!(error.contains("not an IP address"), "{error}");
    let until = load.count() + 20;
    assert_eventually(WITHIN, "20 more requests", || load.count() >= until);
    assert_eq!(load.last().as_deref(), Some("B"));
    let (sent, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
}

#[test]
fn a_cla_that_never_comes_times_out_and_the_cluster_runs_without_endpoints() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (xds, cache) = start_server();
    let res = resources_with(port, &["svc"], "svc", ", initial_fetch_timeout: 1s");
    cache.set_snapshot(NODE, snapshot("v1", &res, &[]));
    let proxy = SparProxy::start(&bootstrap(xds), &[]);
    // Held for the timeout, then applied (as Envoy: the cluster has no endpoints, so 503).
    assert_eventually(WITHIN, "the warming timeout applies the update", || {
        sync(&cache, type_url::CLUSTER).1.as_deref() == Some("v1")
    });
    assert_eventually(WITHIN, "the listener serves, with no endpoint", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 503)
    });
    assert_eq!(proxy.metric("spar_xds_eds_warming_timeouts_total", ""), 1);
    // The CLA arriving later fills the cluster.
    let up = upstream("late");
    cache.set_snapshot(
        NODE,
        snapshot("v2", &res, &[cla("svc-svc", "127.0.0.1", up.addr.port())]),
    );
    assert_eventually(WITHIN, "the late CLA serves", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200 && r.body_text() == "late")
    });
}
