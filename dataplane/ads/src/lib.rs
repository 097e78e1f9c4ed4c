//! spar-proxy's xDS client: one aggregated (ADS) gRPC stream, state of the world, carrying
//! clusters (CDS) and listeners (LDS, routes inline) from a control plane such as
//! spar-control or istiod.
//!
//! What it does: [`run`] connects, subscribes to every cluster and listener, decodes each
//! response, hands the full set to the caller's `apply` (which compiles and swaps the
//! config, or says why not), then ACKs what was applied or NACKs with the caller's error as
//! `error_detail`, keeping the last good config. When the stream breaks it reconnects with
//! jittered exponential backoff and tells the server the versions it holds. The protocol
//! bookkeeping (what to ACK, what to NACK, what to resend) is the pure [`Session`], tested
//! without a network.
//!
//! What it does not do: delta xDS, RDS/EDS/SDS as separate resources (routes come inline
//! in listeners, endpoints inline in clusters), TLS to the control plane, config
//! compilation (the caller's `apply` does that).

#![forbid(unsafe_code)]

mod session;

use std::future::Future;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

pub use session::{CLUSTER_TYPE, LISTENER_TYPE, Outcome, Session, Update};

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct AdsConfig {
    /// `http://host:port` of the ADS server (plaintext gRPC).
    pub address: String,
    /// The node this proxy presents (Istio: `sidecar~IP~POD.NS~NS.svc.cluster.local`).
    pub node: Node,
    /// First reconnect delay; doubles up to `max_backoff`, with full jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl AdsConfig {
    pub fn new(address: impl Into<String>, node: Node) -> AdsConfig {
        AdsConfig {
            address: address.into(),
            node,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Runs the client until `shutdown` completes. `apply` gets every accepted update (all
/// clusters and all listeners the server sent so far) and returns Err(reason) to NACK it.
pub async fn run<A, S>(config: AdsConfig, mut apply: A, shutdown: S)
where
    A: FnMut(&Update) -> Result<(), String>,
    S: Future<Output = ()>,
{
    let mut session = Session::new(config.node.clone());
    let mut failures = 0u32;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let attempt = stream_once(&config, &mut session, &mut apply);
        let ended = tokio::select! {
            ended = attempt => ended,
            () = &mut shutdown => return,
        };
        match ended {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                warn!(address = %config.address, error = %e, "xDS stream failed; keeping the last good config");
            }
        }
        let wait = backoff(&config, failures);
        debug!(?wait, "reconnecting to the xDS server");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Full-jitter exponential backoff: uniform in [0, min(initial * 2^failures, max)].
fn backoff(config: &AdsConfig, failures: u32) -> Duration {
    let cap = config
        .initial_backoff
        .saturating_mul(1u32 << failures.min(16))
        .min(config.max_backoff);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos)).max(config.initial_backoff / 10)
}

/// One connection: subscribe, then answer every response until the stream ends.
async fn stream_once<A>(
    config: &AdsConfig,
    session: &mut Session,
    apply: &mut A,
) -> Result<(), String>
where
    A: FnMut(&Update) -> Result<(), String>,
{
    let mut client = AggregatedDiscoveryServiceClient::connect(config.address.clone())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<DiscoveryRequest>(16);
    for request in session.subscriptions() {
        tx.send(request)
            .await
            .map_err(|_| "request stream closed".to_owned())?;
    }
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("open stream: {e}"))?
        .into_inner();
    info!(address = %config.address, "xDS stream open");
    loop {
        let response = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Err("the server closed the stream".to_owned()),
            Err(status) => return Err(format!("stream: {status}")),
        };
        let (request, outcome) = session.on_response(&response, &mut *apply);
        match &outcome {
            Outcome::Applied { type_url, version } => {
                info!(%type_url, %version, "xDS config applied")
            }
            Outcome::Rejected { type_url, error } => {
                warn!(%type_url, %error, "xDS config rejected (NACK)")
            }
        }
        tx.send(request)
            .await
            .map_err(|_| "request stream closed".to_owned())?;
    }
}

#[cfg(test)]
mod tests;
