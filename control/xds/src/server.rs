//! The tonic ADS service: one task per stream drives the sans-I/O state with requests and
//! snapshot changes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::cache::Cache;
use crate::delta::DeltaStream;
use crate::sotw::SotwStream;
use crate::status::{Outcome, RequestKind};

/// Responses queued per stream before the stream task waits for the client to read.
const STREAM_QUEUE: usize = 16;

/// The ADS service over a [`Cache`].
#[derive(Clone, Debug)]
pub struct AdsServer {
    cache: Arc<Cache>,
}

impl AdsServer {
    /// A service that serves `cache`.
    pub fn new(cache: Arc<Cache>) -> Self {
        AdsServer { cache }
    }

    /// The tonic service, ready to add to a server.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

/// Errors of [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("xDS server: bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("xDS server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves ADS for `cache` on `addr` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    cache: Arc<Cache>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, cache, shutdown).await
}

/// Serves ADS on a bound listener (bind port 0 and read its address, in tests).
pub async fn serve_on(
    listener: TcpListener,
    cache: Arc<Cache>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(AdsServer::new(cache).into_service(), incoming, shutdown)
        .await?;
    Ok(())
}

/// Responses for the client, as the stream type tonic wants.
#[derive(Debug)]
pub struct ResponseStream<T> {
    rx: mpsc::Receiver<Result<T, Status>>,
}

impl<T> futures_core::Stream for ResponseStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The two stream flavours, for the shared loop.
trait Protocol: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    fn node(req: &Self::Req) -> Option<&Node>;
    fn type_url(req: &Self::Req) -> &str;
    fn on_request(&mut self, req: &Self::Req, snap: &crate::Snapshot) -> Outcome<Self::Resp>;
    fn on_snapshot(&mut self, snap: &crate::Snapshot) -> Vec<Self::Resp>;
    fn status(&self) -> std::collections::BTreeMap<String, crate::TypeStatus>;
}

impl Protocol for SotwStream {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }
    fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snap: &crate::Snapshot,
    ) -> Outcome<Self::Resp> {
        SotwStream::on_request(self, req, snap)
    }
    fn on_snapshot(&mut self, snap: &crate::Snapshot) -> Vec<Self::Resp> {
        SotwStream::on_snapshot(self, snap)
    }
    fn status(&self) -> std::collections::BTreeMap<String, crate::TypeStatus> {
        SotwStream::status(self)
    }
}

impl Protocol for DeltaStream {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }
    fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snap: &crate::Snapshot,
    ) -> Outcome<Self::Resp> {
        DeltaStream::on_request(self, req, snap)
    }
    fn on_snapshot(&mut self, snap: &crate::Snapshot) -> Vec<Self::Resp> {
        DeltaStream::on_snapshot(self, snap)
    }
    fn status(&self) -> std::collections::BTreeMap<String, crate::TypeStatus> {
        DeltaStream::status(self)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let id = self.cache.next_stream_id();
        Ok(Response::new(start(
            self.cache.clone(),
            request.into_inner(),
            SotwStream::new(id),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let id = self.cache.next_stream_id();
        Ok(Response::new(start(
            self.cache.clone(),
            request.into_inner(),
            DeltaStream::new(id),
        )))
    }
}

fn start<P: Protocol>(
    cache: Arc<Cache>,
    requests: Streaming<P::Req>,
    state: P,
) -> ResponseStream<P::Resp>
where
    P::Req: prost::Message + Default,
{
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(run(cache, requests, state, tx));
    ResponseStream { rx }
}

/// Counts a stream as connected for as long as it lives.
struct Connected<'a> {
    cache: &'a Cache,
    node_id: String,
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.cache.disconnect(&self.node_id);
    }
}

async fn run<P: Protocol>(
    cache: Arc<Cache>,
    mut requests: Streaming<P::Req>,
    mut state: P,
    tx: mpsc::Sender<Result<P::Resp, Status>>,
) where
    P::Req: prost::Message + Default,
{
    let first = match requests.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(status) => {
            debug!(%status, "xds stream failed before its first request");
            return;
        }
    };
    let Some(node) = P::node(&first).cloned() else {
        let _ = tx
            .send(Err(Status::invalid_argument(
                "the first request of a stream must carry the node",
            )))
            .await;
        return;
    };
    let mut snapshots = cache.connect(&node);
    let _connected = Connected {
        cache: &cache,
        node_id: node.id.clone(),
    };
    debug!(node = %node.id, "xds stream connected");
    // The snapshot this stream is at: requests are answered from it, and only the debounced
    // push moves it on, so an ACK arriving just after a change does not bypass the debounce.
    let mut current = snapshots.borrow_and_update().clone();
    let mut next = Some(first);
    let mut push_at: Option<Instant> = None;
    let mut last_push: Option<Instant> = None;
    loop {
        if let Some(request) = next.take() {
            let outcome = state.on_request(&request, &current.snapshot);
            if let RequestKind::Nack(error) = &outcome.kind {
                debug!(node = %node.id, type_url = P::type_url(&request), %error, "xds NACK");
                cache.metrics().nack(P::type_url(&request));
            }
            cache.record_status(&node.id, state.status());
            if let Some(response) = outcome.response
                && tx.send(Ok(response)).await.is_err()
            {
                return;
            }
            continue;
        }
        tokio::select! {
            message = requests.message() => match message {
                Ok(Some(request)) => next = Some(request),
                Ok(None) => return,
                Err(status) => {
                    debug!(node = %node.id, %status, "xds stream ended");
                    return;
                }
            },
            changed = snapshots.changed(), if push_at.is_none() => {
                if changed.is_err() {
                    return;
                }
                push_at = Some(push_at_for(last_push, Instant::now(), cache.debounce()));
            }
            () = sleep_until(push_at), if push_at.is_some() => {
                push_at = None;
                last_push = Some(Instant::now());
                current = snapshots.borrow_and_update().clone();
                let responses = state.on_snapshot(&current.snapshot);
                cache.record_status(&node.id, state.status());
                for response in responses {
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                    cache.metrics().push_latency(current.set_at.elapsed());
                }
            }
            () = tx.closed() => return,
        }
    }
}

/// When a stream that last pushed at `last_push` pushes a change it sees at `now`.
///
/// Leading edge: the first change after a quiet period (no push within `debounce`) goes out
/// at once; later ones wait until a debounce has passed since the last push, and go out
/// together (at most one push per debounce).
fn push_at_for(last_push: Option<Instant>, now: Instant, debounce: Duration) -> Instant {
    last_push.map_or(now, |last| (last + debounce).max(now))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_after_a_quiet_period_goes_out_at_once_and_a_burst_waits_a_debounce() {
        let debounce = Duration::from_millis(100);
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        // (last push, change seen at, pushed at), as offsets from t0.
        let cases = [
            (None, ms(0), ms(0)),              // nothing pushed yet: at once
            (Some(ms(0)), ms(500), ms(500)),   // quiet since the last push: at once
            (Some(ms(0)), ms(100), ms(100)),   // a debounce since the last push: at once
            (Some(ms(0)), ms(1), ms(100)),     // right after a push: a debounce after it
            (Some(ms(0)), ms(99), ms(100)),    // late in the window: still its end
            (Some(ms(200)), ms(250), ms(300)), // the window follows the last push
        ];
        for (last, now, want) in cases {
            let got = push_at_for(last.map(|l| t0 + l), t0 + now, debounce);
            assert_eq!(got, t0 + want, "last push {last:?}, change at {now:?}");
        }
    }
}
