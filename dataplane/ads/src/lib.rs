//! spar-proxy's xDS client: one aggregated (ADS) gRPC stream, state of the world, carrying
//! clusters (CDS), their endpoints (EDS) and listeners (LDS, routes inline) from a control
//! plane such as spar-control or istiod.
//!
//! What it does: [`run`] connects, subscribes to every cluster and listener (wildcard) and,
//! by name, to the `ClusterLoadAssignment` of every EDS cluster it holds (the cluster's
//! `eds_cluster_config.service_name`, or else its name: [`cluster_assignment`]), decodes
//! each response, hands the config to the caller's [`Apply`] (which compiles and swaps it,
//! or says why not), then ACKs what was applied or NACKs with the caller's error as
//! `error_detail`, keeping the last good config. ACK and NACK are per type, with the
//! version in force and the response's nonce; every EDS request carries the whole list of
//! names, which follows the cluster set (removed clusters are unsubscribed).
//!
//! EDS follows Envoy's warming: a CDS update whose EDS clusters lack their assignment is
//! held, with any LDS update that follows it, until the assignments arrive or the
//! clusters' `initial_fetch_timeout` (default 15 s, `0s` waits for ever) passes; then
//! the lot is applied as one swap and ACKed. After the timeout, the clusters still waiting
//! run without endpoints until their assignment arrives; that is logged and counted
//! ([`Stats::warming_timeouts`]). An EDS response on its own applies at once, merged by name
//! into the assignments held: a state-of-the-world EDS response need not carry unchanged
//! assignments, so one it does not carry is kept. Each assignment is checked on its own
//! first ([`Apply::check_assignment`]); a bad one NACKs the response and the assignments
//! held stay in force.
//!
//! When the stream breaks it reconnects with jittered exponential backoff and tells the
//! server the versions it holds; an update held for warming is dropped (the server sends
//! its state again). The protocol bookkeeping (what to ACK, what to NACK, what to hold,
//! what to subscribe to) is the pure [`Session`], tested without a network or a clock.
//!
//! What it does not do: delta xDS, RDS/SDS as separate resources (routes come inline in
//! listeners), EDS clusters in the bootstrap (only those CDS sends are subscribed to),
//! TLS to the control plane, config compilation (the caller's [`Apply`] does that).

#![forbid(unsafe_code)]

mod session;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

pub use session::{
    Apply, CLUSTER_TYPE, DEFAULT_INITIAL_FETCH_TIMEOUT, ENDPOINT_TYPE, LISTENER_TYPE, Outcome,
    Reply, Session, Update, Warming, cluster_assignment,
};

/// Counters of the client, for the proxy's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// CDS updates applied after their warming timeout with assignments still missing
    /// (Envoy counts the same as `init_fetch_timeout`).
    pub warming_timeouts: AtomicU64,
}

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
    /// Where the client counts what it did.
    pub stats: Arc<Stats>,
}

impl AdsConfig {
    pub fn new(address: impl Into<String>, node: Node) -> AdsConfig {
        AdsConfig {
            address: address.into(),
            node,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            stats: Arc::default(),
        }
    }
}

/// Runs the client until `shutdown` completes. `apply` gets every update to run (all
/// clusters, listeners and assignments the server sent so far) and returns Err(reason) to
/// NACK it.
pub async fn run<A, S>(config: AdsConfig, mut apply: A, shutdown: S)
where
    A: Apply,
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
    A: Apply,
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
    // When the update held for warming started waiting.
    let mut warming_since: Option<tokio::time::Instant> = None;
    loop {
        let deadline = warming_deadline(session.warming().and_then(|w| w.timeout), warming_since);
        let reply = tokio::select! {
            response = responses.message() => match response {
                Ok(Some(r)) => session.on_response(&r, &mut *apply),
                Ok(None) => return Err("the server closed the stream".to_owned()),
                Err(status) => return Err(format!("stream: {status}")),
            },
            () = sleep_until(deadline) => session.on_warming_timeout(&mut *apply),
        };
        for outcome in &reply.outcomes {
            log(config, outcome);
        }
        warming_since = match session.warming() {
            Some(_) => warming_since.or_else(|| Some(tokio::time::Instant::now())),
            None => None,
        };
        for request in reply.requests {
            tx.send(request)
                .await
                .map_err(|_| "request stream closed".to_owned())?;
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn log(config: &AdsConfig, outcome: &Outcome) {
    match outcome {
        Outcome::Applied { type_url, version } => {
            info!(%type_url, %version, "xDS config applied")
        }
        Outcome::Rejected { type_url, error } => {
            warn!(%type_url, %error, "xDS config rejected (NACK)")
        }
        Outcome::Warming {
            type_url,
            version,
            waiting_for,
        } => {
            info!(%type_url, %version, waiting_for = ?waiting_for, "xDS config held while EDS clusters warm")
        }
        Outcome::TimedOut { missing } => {
            config
                .stats
                .warming_timeouts
                .fetch_add(1, Ordering::Relaxed);
            warn!(missing = ?missing, "EDS warming timed out: clusters run without endpoints until their ClusterLoadAssignment arrives")
        }
    }
}

/// When a held update stops waiting for its assignments: `since` plus the timeout, or never
/// (`None`) when there is no timeout or the sum does not fit in an `Instant` (a control plane
/// may send any `initial_fetch_timeout`; a huge one means "wait", never a panic).
fn warming_deadline(
    timeout: Option<Duration>,
    since: Option<tokio::time::Instant>,
) -> Option<tokio::time::Instant> {
    let (timeout, since) = timeout.zip(since)?;
    since.checked_add(timeout)
}

#[cfg(test)]
mod tests;
