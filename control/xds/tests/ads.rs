//! ADS end to end: envoy-types' tonic client against `serve_on` on 127.0.0.1:0.
// Test helpers outside #[test] functions unwrap too: a failure here is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use spar_xds::{Cache, Snapshot, serve_on, type_url};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::Streaming;

/// Generous: a loaded CI machine, never a timing assertion.
const RECV_TIMEOUT: Duration = Duration::from_secs(20);
const NODE: &str = "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local";

/// A client request stream fed by a channel.
struct Outbound<T>(mpsc::UnboundedReceiver<T>);

impl<T> futures_core::Stream for Outbound<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

struct Server {
    addr: SocketAddr,
    cache: Arc<Cache>,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Server {
    start_with(Duration::from_millis(10)).await
}

/// A server whose streams push at most once per `debounce`.
async fn start_with(debounce: Duration) -> Server {
    let cache = Arc::new(Cache::new(debounce));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_on(listener, cache.clone(), async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        cache,
        _stop: stop,
    }
}

fn node() -> Option<Node> {
    Some(Node {
        id: NODE.to_owned(),
        ..Default::default()
    })
}

fn cluster(name: &str, timeout_s: i64) -> Cluster {
    Cluster {
        name: name.to_owned(),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: timeout_s,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn snapshot(version: &str, clusters: &[(&str, i64)], listeners: &[&str]) -> Snapshot {
    let mut s = Snapshot::new(version);
    for (name, t) in clusters {
        s.insert_message(*name, &cluster(name, *t));
    }
    for name in listeners {
        s.insert_message(
            *name,
            &Listener {
                name: (*name).to_owned(),
                ..Default::default()
            },
        );
    }
    s
}

async fn next<T: Message + Default>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(RECV_TIMEOUT, stream.message())
        .await
        .expect("timed out waiting for a response")
        .expect("stream error")
        .expect("stream ended")
}

/// Polls `check` until it holds, for at most `RECV_TIMEOUT`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn cluster_names(resources: &[envoy_types::pb::google::protobuf::Any]) -> Vec<String> {
    resources
        .iter()
        .map(|a| Cluster::decode(a.value.as_slice()).unwrap().name)
        .collect()
}

#[tokio::test]
async fn sotw_push_ack_change_and_nack() {
    let server = start().await;
    server
        .cache
        .set_snapshot(NODE, snapshot("v1", &[("a", 1), ("b", 1)], &["l"]));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let request = |type_url: &str, version: &str, nonce: &str| DiscoveryRequest {
        version_info: version.to_owned(),
        node: node(),
        type_url: type_url.to_owned(),
        response_nonce: nonce.to_owned(),
        ..Default::default()
    };
    tx.send(request(type_url::CLUSTER, "", "")).unwrap();
    let mut responses = client
        .stream_aggregated_resources(Outbound(rx))
        .await
        .unwrap()
        .into_inner();

    // Initial push of clusters, then of listeners.
    let cds = next(&mut responses).await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(cds.version_info, "v1");
    assert_eq!(cluster_names(&cds.resources), ["a", "b"]);
    tx.send(request(type_url::CLUSTER, "v1", &cds.nonce))
        .unwrap();
    tx.send(request(type_url::LISTENER, "", "")).unwrap();
    let lds = next(&mut responses).await;
    assert_eq!(lds.type_url, type_url::LISTENER);
    assert_eq!(lds.resources.len(), 1);
    tx.send(request(type_url::LISTENER, "v1", &lds.nonce))
        .unwrap();

    let cache = server.cache.clone();
    eventually("both types ACKed at v1", || {
        let status = cache.status();
        let Some(node) = status.get(NODE) else {
            return false;
        };
        [type_url::CLUSTER, type_url::LISTENER]
            .iter()
            .all(|t| node.types.get(*t).and_then(|s| s.acked_version.as_deref()) == Some("v1"))
    })
    .await;
    assert_eq!(cache.metrics().connected_proxies(), 1);

    // A cluster changes: only CDS is pushed, at the new version.
    server
        .cache
        .set_snapshot(NODE, snapshot("v2", &[("a", 2), ("b", 1)], &["l"]));
    let cds2 = next(&mut responses).await;
    assert_eq!(cds2.type_url, type_url::CLUSTER);
    assert_eq!(cds2.version_info, "v2");
    assert_ne!(cds2.nonce, cds.nonce);

    // The proxy rejects it.
    tx.send(DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: "cluster a: unsupported field".to_owned(),
            details: vec![],
        }),
        ..request(type_url::CLUSTER, "v1", &cds2.nonce)
    })
    .unwrap();
    eventually("NACK recorded", || {
        cache
            .status()
            .get(NODE)
            .and_then(|n| n.types.get(type_url::CLUSTER).cloned())
            .and_then(|s| s.nack)
            .is_some_and(|n| n.version == "v2" && n.error == "cluster a: unsupported field")
    })
    .await;
    let status = cache.status()[NODE].types[type_url::CLUSTER].clone();
    assert_eq!(status.acked_version.as_deref(), Some("v1"));
    assert_eq!(cache.metrics().nacks(type_url::CLUSTER), 1);
    assert!(cache.metrics().pushes() >= 1);
    let text = cache.render_metrics();
    assert!(text.contains("spar_xds_connected_proxies 1"), "{text}");

    // The proxy goes away: it is no longer listed.
    drop(tx);
    drop(responses);
    eventually("disconnected", || cache.status().is_empty()).await;
    eventually("gauge back to 0", || {
        cache.metrics().connected_proxies() == 0
    })
    .await;
}

#[tokio::test]
async fn delta_sends_only_changes_and_removals() {
    let server = start().await;
    server
        .cache
        .set_snapshot(NODE, snapshot("v1", &[("a", 1), ("b", 1), ("c", 1)], &[]));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(DeltaDiscoveryRequest {
        node: node(),
        type_url: type_url::CLUSTER.to_owned(),
        ..Default::default()
    })
    .unwrap();
    let mut responses = client
        .delta_aggregated_resources(Outbound(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut responses).await;
    assert_eq!(first.system_version_info, "v1");
    let names: Vec<&str> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(first.removed_resources.is_empty());
    tx.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.to_owned(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .unwrap();

    // b changes, a goes, c stays: only b and the removal of a are sent.
    server
        .cache
        .set_snapshot(NODE, snapshot("v2", &[("b", 2), ("c", 1)], &[]));
    let second = next(&mut responses).await;
    assert_eq!(second.system_version_info, "v2");
    let names: Vec<&str> = second.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["b"]);
    let b = Cluster::decode(
        second.resources[0]
            .resource
            .as_ref()
            .unwrap()
            .value
            .as_slice(),
    )
    .unwrap();
    assert_eq!(b.connect_timeout.unwrap().seconds, 2);
    assert_eq!(second.removed_resources, ["a"]);
    tx.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.to_owned(),
        response_nonce: second.nonce.clone(),
        ..Default::default()
    })
    .unwrap();
    let cache = server.cache.clone();
    eventually("delta ACK recorded", || {
        cache
            .status()
            .get(NODE)
            .and_then(|n| n.types.get(type_url::CLUSTER).cloned())
            .and_then(|s| s.acked_version)
            .as_deref()
            == Some("v2")
    })
    .await;
}

/// A push starts a debounce; changes within it go out as one push with the latest content.
/// The debounce is long next to the pause between the two changes (which lets the stream see
/// the first change on its own), and short next to `RECV_TIMEOUT`. Only contents are checked.
#[tokio::test]
async fn changes_within_the_debounce_window_go_out_as_one_push() {
    let server = start_with(Duration::from_secs(2)).await;
    let cache = server.cache.clone();
    cache.set_snapshot(NODE, snapshot("v1", &[("a", 1)], &[]));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(DiscoveryRequest {
        node: node(),
        type_url: type_url::CLUSTER.to_owned(),
        ..Default::default()
    })
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(Outbound(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut responses).await;
    assert_eq!(first.version_info, "v1");
    tx.send(DiscoveryRequest {
        version_info: "v1".to_owned(),
        type_url: type_url::CLUSTER.to_owned(),
        response_nonce: first.nonce,
        ..Default::default()
    })
    .unwrap();
    // The first change after a quiet period is pushed at once, and starts the debounce.
    cache.set_snapshot(NODE, snapshot("v2", &[("a", 2)], &[]));
    let pushed = next(&mut responses).await;
    assert_eq!(pushed.version_info, "v2");
    tx.send(DiscoveryRequest {
        version_info: "v2".to_owned(),
        type_url: type_url::CLUSTER.to_owned(),
        response_nonce: pushed.nonce,
        ..Default::default()
    })
    .unwrap();
    // Two changes with a pause between them: without the debounce, v3 would go out alone.
    cache.set_snapshot(NODE, snapshot("v3", &[("a", 3)], &[]));
    tokio::time::sleep(Duration::from_millis(20)).await;
    cache.set_snapshot(NODE, snapshot("v4", &[("a", 4)], &[]));
    let pushed = next(&mut responses).await;
    assert_eq!(
        pushed.version_info, "v4",
        "v3 was superseded before the push"
    );
    let a = Cluster::decode(pushed.resources[0].value.as_slice()).unwrap();
    assert_eq!(a.connect_timeout.unwrap().seconds, 4);
}

/// When a change waits for the debounce is `push_at_for`'s unit test; this checks the stream
/// uses it. No duration is measured: a change that waited for the hour-long debounce would
/// fail the receive timeout instead.
#[tokio::test]
async fn the_first_change_is_pushed_without_waiting_for_the_debounce() {
    let server = start_with(Duration::from_secs(3600)).await;
    let cache = server.cache.clone();
    cache.set_snapshot(NODE, snapshot("v1", &[("a", 1)], &[]));
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(DiscoveryRequest {
        node: node(),
        type_url: type_url::CLUSTER.to_owned(),
        ..Default::default()
    })
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(Outbound(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut responses).await;
    assert_eq!(first.version_info, "v1");
    tx.send(DiscoveryRequest {
        version_info: first.version_info.clone(),
        type_url: type_url::CLUSTER.to_owned(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .unwrap();

    cache.set_snapshot(NODE, snapshot("v2", &[("a", 2)], &[]));
    let pushed = next(&mut responses).await;
    assert_eq!(pushed.version_info, "v2");
    assert_ne!(pushed.nonce, first.nonce);
    let a = Cluster::decode(pushed.resources[0].value.as_slice()).unwrap();
    assert_eq!(a.connect_timeout.unwrap().seconds, 2);
}
