//! `spar-ca`: the certificate authority as its own process.
//!
//! ```text
//! spar-ca serve [--dir DIR] [--listen 127.0.0.1:15012] [--trust-domain cluster.local]
//!               [--plugin-certs DIR] [--kube-api-server URL|in-cluster]
//!               [--server-name NAME]... [--default-ttl 24h] [--max-ttl 90d]
//!               [--metrics 127.0.0.1:15014]
//! spar-ca token [--dir DIR] --namespace NS --service-account SA [--ttl 24h]
//! spar-ca root [--dir DIR] [--plugin-certs DIR]
//! ```
//!
//! `--dir` defaults to `$SPAR_CA_DIR`, else `.spar-ca` in the working directory.
//!
//! ```text
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use spar_ca::policy::{DEFAULT_TRUST_DOMAIN, parse_duration};
use spar_ca::{Authenticator, Ca, Policy, ServiceAccount, TokenReviewer};
use tracing::info;

/// The state directory when neither `--dir` nor `SPAR_CA_DIR` says.
const DEFAULT_DIR: &str = ".spar-ca";

#[derive(Parser)]
#[command(
    name = "spar-ca",
    about = "Spar's certificate authority: SPIFFE identities over Istio's CreateCertificate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve istio.v1.auth.IstioCertificateService over gRPC with TLS.
    Serve {
        /// State directory: the self-signed root (created on first start) and the token key.
        #[arg(long, env = "SPAR_CA_DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:15012")]
        listen: SocketAddr,
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// An operator's CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem,
        /// root-cert.pem, cert-chain.pem) instead of the self-signed root.
        #[arg(long)]
        plugin_certs: Option<PathBuf>,
        /// Also accept Kubernetes service-account tokens, checked with a TokenReview
        /// against this API server ("in-cluster" for the cluster spar-ca runs in).
        #[arg(long)]
        kube_api_server: Option<String>,
        /// A name (DNS or IP) in the CA's serving certificate; repeat for several
        /// (default: localhost, 127.0.0.1, spar-ca, istiod, istiod.istio-system.svc).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        default_ttl: Duration,
        #[arg(long, default_value = "90d", value_parser = parse_duration)]
        max_ttl: Duration,
        /// Serve the counters in Prometheus text at http://ADDR/metrics (istiod's
        /// monitoring port is 15014).
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Print a bearer token for a service account, signed by the CA's token key.
    Token {
        #[arg(long, env = "SPAR_CA_DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        service_account: String,
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Print the trust bundle (every trusted root, PEM).
    Root {
        #[arg(long, env = "SPAR_CA_DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
        #[arg(long)]
        plugin_certs: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(dir: &std::path::Path, plugin: Option<&std::path::Path>) -> anyhow::Result<Ca> {
    Ok(match plugin {
        Some(plugin) => Ca::load_plugin(plugin, dir)?,
        None => Ca::load_or_create(dir)?,
    })
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            dir,
            listen,
            trust_domain,
            plugin_certs,
            kube_api_server,
            server_names,
            default_ttl,
            max_ttl,
            metrics,
        } => {
            spar_ca::SpiffeId::new(&trust_domain, "ns", "sa")
                .with_context(|| format!("--trust-domain {trust_domain:?}"))?;
            let mut ca = load(&dir, plugin_certs.as_deref())?.with_policy(Policy {
                trust_domain,
                default_ttl,
                max_ttl,
            });
            if !server_names.is_empty() {
                ca = ca.with_server_names(server_names);
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            runtime.block_on(async move {
                let authenticator = match kube_api_server.as_deref() {
                    None => Authenticator::local(),
                    Some("in-cluster") => {
                        Authenticator::with_kube(TokenReviewer::connect(None).await?)
                    }
                    Some(url) => Authenticator::with_kube(TokenReviewer::connect(Some(url)).await?),
                };
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listen on {listen}"))?;
                info!(addr = %listener.local_addr()?, "spar-ca serving");
                let ca = Arc::new(ca);
                if let Some(addr) = metrics {
                    let metrics = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("metrics listen on {addr}"))?;
                    info!(addr = %metrics.local_addr()?, "metrics at /metrics");
                    tokio::spawn(spar_ca::serve_metrics(metrics, ca.clone()));
                }
                spar_ca::serve(listener, ca, authenticator, shutdown()).await?;
                info!("spar-ca stopped");
                Ok(())
            })
        }
        Command::Token {
            dir,
            namespace,
            service_account,
            ttl,
        } => {
            let account = ServiceAccount::new(&namespace, &service_account)?;
            let key = spar_ca::load_or_create_token_key(&dir)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .context("clock before 1970")?
                .as_secs();
            let token = key.mint(&account, now, ttl.as_secs())?;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
        Command::Root { dir, plugin_certs } => {
            let ca = load(&dir, plugin_certs.as_deref())?;
            write!(std::io::stdout(), "{}", ca.trust_bundle())?;
            Ok(())
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
