//! spar-proxy as an xDS client: a bootstrap with `dynamic_resources` (ADS over
//! gRPC to a static cluster) gets its clusters and listeners from a scripted
//! ADS server, serves them, NACKs what it cannot run with a precise
//! `error_detail`, and keeps serving the last good config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use spar_tests::proc::SparProxy;
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http};
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// Envoy resources written as a bootstrap's static_resources, read with
/// spar-config's loader, and packed as xDS `Any`s by type.
fn resources(yaml: &str) -> (Vec<Any>, Vec<Any>) {
    let b = spar_config::load_bootstrap_str(yaml, "resources.yaml", spar_config::Format::Yaml)
        .expect("resource YAML");
    let sr = b.envoy.static_resources.unwrap();
    let pack = |type_url: &str, bytes: Vec<u8>| Any {
        type_url: type_url.into(),
        value: bytes,
    };
    (
        sr.clusters
            .iter()
            .map(|c| pack(CDS, c.encode_to_vec()))
            .collect(),
        sr.listeners
            .iter()
            .map(|l| pack(LDS, l.encode_to_vec()))
            .collect(),
    )
}

fn resource_yaml(port: u16, upstream: SocketAddr, route_to: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: xds
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
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {up} }} }} }}
"#,
        up = upstream.port()
    )
}

/// Sends each queued response on every stream and records every request.
#[derive(Clone, Default)]
struct Script {
    queue: Arc<Mutex<Vec<DiscoveryResponse>>>,
    seen: Arc<Mutex<Vec<DiscoveryRequest>>>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponses = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Script {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let script = self.clone();
        tokio::spawn(async move {
            let mut sent = 0usize;
            let mut reader = tokio::spawn({
                let seen = script.seen.clone();
                async move {
                    while let Ok(Some(r)) = incoming.message().await {
                        seen.lock().unwrap().push(r);
                    }
                }
            });
            loop {
                let next = script.queue.lock().unwrap().get(sent).cloned();
                match next {
                    Some(r) => {
                        if tx.send(Ok(r)).await.is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                if reader.is_finished() {
                    break;
                }
            }
            reader.abort();
            let _ = (&mut reader).await;
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

fn response(type_url: &str, version: &str, nonce: &str, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        type_url: type_url.into(),
        nonce: nonce.into(),
        resources,
        ..DiscoveryResponse::default()
    }
}

fn start_server(script: Script) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(script))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    rx.recv().unwrap()
}

fn bootstrap(xds: SocketAddr) -> String {
    spar_tests::ads_bootstrap(
        "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local",
        "default",
        "app: app",
        xds.port(),
    )
}

#[test]
fn listeners_and_clusters_arrive_over_ads_and_bad_ones_are_nacked() {
    let upstream = Scripted::start(|mut c| {
        while c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nvia-xds");
        }
    });
    let port = free_port();
    let (clusters, listeners) = resources(&resource_yaml(port, upstream.addr, "backend"));
    let script = Script::default();
    script.queue.lock().unwrap().extend([
        response(CDS, "c1", "n1", clusters),
        response(LDS, "l1", "n2", listeners),
    ]);
    let server = start_server(script.clone());
    let _proxy = SparProxy::start(&bootstrap(server), &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eventually(Duration::from_secs(20), "the xDS listener serves", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200 && r.body_text() == "via-xds")
    });
    // The ACKs follow the apply: on a loaded machine the listener may serve first.
    assert_eventually(Duration::from_secs(20), "both updates are ACKed", || {
        let seen = script.seen.lock().unwrap();
        seen.iter().filter(|r| !r.response_nonce.is_empty()).count() >= 2
    });
    {
        let seen = script.seen.lock().unwrap();
        let node = seen[0].node.as_ref().unwrap();
        assert_eq!(
            node.id,
            "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local"
        );
        let acks: Vec<(&str, &str)> = seen
            .iter()
            .filter(|r| !r.response_nonce.is_empty())
            .map(|r| (r.version_info.as_str(), r.response_nonce.as_str()))
            .collect();
        assert_eq!(acks, [("c1", "n1"), ("l1", "n2")]);
        assert!(seen.iter().all(|r| r.error_detail.is_none()));
    }

    // A listener spar-proxy cannot run: NACKed, naming it and the field; the
    // last good listener keeps serving.
    let (_, bad) = resources(&resource_yaml(port, upstream.addr, "missing"));
    script
        .queue
        .lock()
        .unwrap()
        .push(response(LDS, "l2", "n3", bad));
    assert_eventually(
        Duration::from_secs(20),
        "the bad listener is NACKed",
        || {
            script
                .seen
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.response_nonce == "n3")
        },
    );
    let seen = script.seen.lock().unwrap().clone();
    let nack = seen.iter().find(|r| r.response_nonce == "n3").unwrap();
    assert_eq!(
        nack.version_info, "l1",
        "a NACK claims the version in force"
    );
    let detail = &nack.error_detail.as_ref().expect("error_detail").message;
    assert!(detail.contains("listener `http`"), "{detail}");
    assert!(
        detail.contains("cluster `missing` is not defined"),
        "{detail}"
    );
    let r = http::get(addr, "/").unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (200, "via-xds"));
}
