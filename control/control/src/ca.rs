//! The certificate authority inside spar-control, as istiod embeds Citadel: spar-ca's
//! CreateCertificate over gRPC with TLS on `--ca-address` (15012), its root in `--ca-dir`
//! (or an operator's CA from `--ca-plugin-certs`). Callers prove their identity with a
//! token spar-ca issued (`spar-ca token --dir DIR ...`, the local mesh) or, with
//! `--source kubernetes`, a service-account token the API server vouches for.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use spar_ca::{Authenticator, Ca, Policy, TokenReviewer};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::monitor::Extra;
use crate::{Args, CaAddress, source};

/// The running CA.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    ca: Arc<Ca>,
    pub(crate) task: JoinHandle<()>,
}

impl Running {
    /// The CA's counters (issued, refused by reason) for the monitoring port.
    pub(crate) fn metrics(&self) -> Extra {
        let ca = self.ca.clone();
        Arc::new(move || ca.stats().prometheus())
    }
}

/// Loads or creates the CA and serves it until `shutdown`; None with `--ca-address off`.
pub(crate) async fn start(
    args: &Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<Running>> {
    let CaAddress::On(addr) = args.ca_address else {
        return Ok(None);
    };
    let ca = match &args.ca_plugin_certs {
        Some(plugin) => Ca::load_plugin(plugin, &args.ca_dir)
            .with_context(|| format!("CA: plug-in certificates in {}", plugin.display()))?,
        None => Ca::load_or_create(&args.ca_dir)
            .with_context(|| format!("CA: state directory {}", args.ca_dir.display()))?,
    };
    spar_ca::SpiffeId::new(&args.trust_domain, "ns", "sa")
        .with_context(|| format!("--trust-domain {:?}", args.trust_domain))?;
    let ca = Arc::new(ca.with_policy(Policy {
        trust_domain: args.trust_domain.clone(),
        ..Policy::default()
    }));
    let authenticator = match args.source {
        source::Kind::Files => Authenticator::local(),
        // Workloads in the cluster show their service-account tokens; the API server the
        // config comes from reviews them (in-cluster or the kubeconfig without a URL).
        source::Kind::Kubernetes => Authenticator::with_kube(
            TokenReviewer::connect(args.kube_api_server.as_deref())
                .await
                .context("CA: the Kubernetes client for TokenReviews")?,
        ),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("CA: cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    info!(%addr, roots = ca.roots().len(), dir = %args.ca_dir.display(), "CA serving");
    let task = tokio::spawn({
        let ca = ca.clone();
        async move {
            if let Err(e) = spar_ca::serve(listener, ca, authenticator, shutdown).await {
                error!(error = %e, "the CA stopped");
            }
        }
    });
    Ok(Some(Running { addr, ca, task }))
}
