#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::*;

fn node() -> Node {
    Node {
        id: "sidecar~127.0.0.1~app.default~default.svc.cluster.local".into(),
        ..Node::default()
    }
}

fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

fn clusters(version: &str, nonce: &str, names: &[&str]) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: CLUSTER_TYPE.into(),
        resources: names
            .iter()
            .map(|n| {
                any(
                    CLUSTER_TYPE,
                    &Cluster {
                        name: (*n).into(),
                        ..Cluster::default()
                    },
                )
            })
            .collect(),
        ..DiscoveryResponse::default()
    }
}

fn listeners(version: &str, nonce: &str, names: &[&str]) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: LISTENER_TYPE.into(),
        resources: names
            .iter()
            .map(|n| {
                any(
                    LISTENER_TYPE,
                    &Listener {
                        name: (*n).into(),
                        ..Listener::default()
                    },
                )
            })
            .collect(),
        ..DiscoveryResponse::default()
    }
}

/// The one request and the one outcome a response led to.
fn answer(
    s: &mut Session,
    response: &DiscoveryResponse,
    mut apply: impl FnMut(&Update) -> Result<(), String>,
) -> (DiscoveryRequest, Outcome) {
    let mut reply = s.on_response(response, &mut apply);
    assert_eq!(reply.requests.len(), 1, "{reply:?}");
    assert_eq!(reply.outcomes.len(), 1, "{reply:?}");
    (reply.requests.remove(0), reply.outcomes.remove(0))
}

/// Refuses any listener named `bad`, accepts the rest.
fn picky(u: &Update) -> Result<(), String> {
    match u.listeners.iter().find(|l| l.name == "bad") {
        Some(_) => Err("listener `bad`: not supported".into()),
        None => Ok(()),
    }
}

mod eds;

#[test]
fn subscriptions_claim_held_versions() {
    let mut s = Session::new(node());
    let first = s.subscriptions();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].type_url, CLUSTER_TYPE);
    assert_eq!(first[1].type_url, LISTENER_TYPE);
    assert!(
        first
            .iter()
            .all(|r| r.version_info.is_empty() && r.node.is_some())
    );
    answer(&mut s, &clusters("7", "n1", &["a"]), picky);
    let again = s.subscriptions();
    assert_eq!(again[0].version_info, "7");
    assert_eq!(again[1].version_info, "");
}

#[test]
fn ack_applies_and_nack_keeps_the_last_good_config() {
    let mut s = Session::new(node());
    let (ack, outcome) = answer(&mut s, &clusters("1", "n1", &["a", "b"]), picky);
    assert_eq!(
        (ack.version_info.as_str(), ack.response_nonce.as_str()),
        ("1", "n1")
    );
    assert!(ack.error_detail.is_none());
    assert!(matches!(outcome, Outcome::Applied { .. }));
    let (ack, _) = answer(&mut s, &listeners("1", "n2", &["http"]), picky);
    assert!(ack.error_detail.is_none());
    assert_eq!(s.current().listeners.len(), 1);

    // Refused by the caller: NACK with the reason and the version still in force.
    let (nack, outcome) = answer(&mut s, &listeners("2", "n3", &["http", "bad"]), picky);
    assert_eq!(nack.version_info, "1");
    assert_eq!(nack.response_nonce, "n3");
    let detail = nack.error_detail.unwrap();
    assert_eq!(detail.code, 3);
    assert!(detail.message.contains("listener `bad`"));
    assert!(matches!(outcome, Outcome::Rejected { .. }));
    assert_eq!(s.current().listeners.len(), 1);
    assert_eq!(s.version(LISTENER_TYPE), Some("1"));
}

#[test]
fn malformed_responses_are_nacked_with_the_resource_named() {
    let mut s = Session::new(node());
    let mut wrong_type = clusters("1", "n1", &["a"]);
    wrong_type.resources[0].type_url = LISTENER_TYPE.into();
    let mut garbage = clusters("1", "n2", &["a"]);
    garbage.resources[0].value = vec![0xff, 0xff, 0xff];
    let twice = clusters("1", "n3", &["a", "a"]);
    let unnamed = clusters("1", "n4", &[""]);
    let mut unknown = clusters("1", "n5", &[]);
    unknown.type_url = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration".into();
    for (response, needle) in [
        (wrong_type, "resources[0]: type"),
        (garbage, "resources[0]: cannot decode"),
        (twice, "`a` is sent twice"),
        (unnamed, "without a name"),
        (unknown, "is not subscribed"),
    ] {
        let (nack, _) = answer(&mut s, &response, |_: &Update| Ok(()));
        let message = nack.error_detail.map(|d| d.message).unwrap_or_default();
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(s.current(), &Update::default());
}

/// A scripted ADS server: on each new stream it sends `script` in order, records every
/// request, then closes the stream after the last answer arrives.
#[derive(Clone)]
struct Fake {
    script: Vec<DiscoveryResponse>,
    seen: Arc<Mutex<Vec<DiscoveryRequest>>>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponses = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Fake {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (script, seen) = (self.script.clone(), self.seen.clone());
        tokio::spawn(async move {
            // The two subscriptions first.
            for _ in 0..2 {
                if let Ok(Some(r)) = incoming.message().await {
                    seen.lock().unwrap().push(r);
                }
            }
            for response in script {
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
                match incoming.message().await {
                    Ok(Some(r)) => seen.lock().unwrap().push(r),
                    _ => return,
                }
            }
            // Dropping `tx` ends the stream: the client must reconnect.
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(Status::unimplemented("delta"))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn acks_nacks_and_reconnects_against_a_server() {
    let fake = Fake {
        script: vec![
            clusters("c1", "n1", &["a"]),
            listeners("l1", "n2", &["http"]),
            listeners("l2", "n3", &["http", "bad"]),
        ],
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(fake.clone()))
        .serve_with_incoming(
            tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener),
        );
    tokio::spawn(server);

    let applied: Arc<Mutex<Vec<Update>>> = Arc::default();
    let record = applied.clone();
    let apply = move |u: &Update| {
        picky(u)?;
        record.lock().unwrap().push(u.clone());
        Ok(())
    };
    let mut config = AdsConfig::new(format!("http://{addr}"), node());
    config.initial_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(100);
    // Stop once the second stream has sent its subscriptions.
    let seen = fake.seen.clone();
    let done = async move {
        loop {
            if seen.lock().unwrap().len() >= 7 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run(config, apply, done))
        .await
        .expect("the client finished its script");

    let seen = fake.seen.lock().unwrap().clone();
    // Stream 1: two subscriptions, ACK c1, ACK l1, NACK l2.
    assert_eq!(seen[0].node.as_ref().unwrap().id, node().id);
    assert_eq!(
        (
            seen[2].version_info.as_str(),
            seen[2].response_nonce.as_str()
        ),
        ("c1", "n1")
    );
    assert!(seen[2].error_detail.is_none());
    assert_eq!(
        (
            seen[3].version_info.as_str(),
            seen[3].response_nonce.as_str()
        ),
        ("l1", "n2")
    );
    assert_eq!(
        seen[4].version_info, "l1",
        "a NACK claims the version in force"
    );
    assert_eq!(seen[4].response_nonce, "n3");
    assert!(
        seen[4]
            .error_detail
            .as_ref()
            .unwrap()
            .message
            .contains("bad")
    );
    // Stream 2 after the server closed: subscriptions claim the versions held.
    assert_eq!(seen[5].type_url, CLUSTER_TYPE);
    assert_eq!(seen[5].version_info, "c1");
    assert_eq!(seen[6].version_info, "l1");
    // The caller saw exactly the two accepted configs (then the same again on stream 2).
    let applied = applied.lock().unwrap();
    assert_eq!(applied[0].clusters.len(), 1);
    assert_eq!(applied[1].listeners.len(), 1);
}

#[test]
fn a_huge_initial_fetch_timeout_waits_rather_than_panics() {
    let now = tokio::time::Instant::now();
    // seconds: i64::MAX, as a control plane may send it.
    let huge = Duration::new(u64::try_from(i64::MAX).unwrap(), 999_999_999);
    assert_eq!(warming_deadline(Some(huge), Some(now)), None);
    assert_eq!(warming_deadline(Some(Duration::MAX), Some(now)), None);
    let second = Duration::from_secs(1);
    assert_eq!(
        warming_deadline(Some(second), Some(now)),
        Some(now + second)
    );
    assert_eq!(warming_deadline(None, Some(now)), None);
    assert_eq!(warming_deadline(Some(second), None), None);
}
