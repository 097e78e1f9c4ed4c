//! spar-control: Spar's control plane (istiod's job). Reads Istio config from a directory of
//! YAML or from a Kubernetes cluster, validates it like `istioctl analyze`, translates it for
//! each connecting proxy and serves the result over xDS (ADS) on 15010. The binary only
//! wires; the work is in spar-istio (validation), spar-kube (the Kubernetes source),
//! spar-translate (translation) and spar-xds (the server).

mod ca;
mod monitor;
mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tracing::{error, info};

/// Spar's control plane.
#[derive(Parser, Debug)]
#[command(name = "spar-control", version)]
struct Args {
    /// Where the configuration comes from.
    #[arg(long, value_enum, default_value = "files")]
    source: source::Kind,
    /// Directory of Istio and Kubernetes YAML (searched recursively), watched for changes
    /// (`--source files`).
    #[arg(long, default_value = "deploy/mesh")]
    config_dir: PathBuf,
    /// Kubernetes API server URL without credentials, e.g. `http://127.0.0.1:8080` for a
    /// test server (`--source kubernetes`; before `--kubeconfig` and in-cluster config).
    #[arg(long)]
    kube_api_server: Option<String>,
    /// Kubeconfig file (`--source kubernetes`); else in-cluster config when
    /// KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// API version to watch for a group instead of discovery's choice, e.g.
    /// `networking.istio.io=v1beta1` (repeatable).
    #[arg(long = "kube-api-version", value_name = "GROUP=VERSION", value_parser = parse_group_version)]
    kube_api_versions: Vec<(String, String)>,
    /// Address of the plaintext xDS server (Istio: 15010).
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Address of the monitoring port: /metrics and /debug/syncz (Istio: 15014).
    #[arg(long, default_value = "127.0.0.1:15014")]
    monitoring_address: SocketAddr,
    /// How often the directory is checked for changes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    watch_every: Duration,
    /// Address of the embedded certificate authority: Istio's CreateCertificate over gRPC
    /// with TLS (Istio: 15012); `off` runs no CA.
    #[arg(long, default_value = "127.0.0.1:15012", value_parser = parse_ca_address)]
    ca_address: CaAddress,
    /// The CA's state directory: its self-signed root, created on first start (0600 key
    /// files), and the key of the tokens it issues for the local mesh (`spar-ca token`).
    #[arg(long, env = "SPAR_CA_DIR", default_value = ".spar-ca")]
    ca_dir: PathBuf,
    /// An operator's CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem,
    /// cert-chain.pem) instead of the self-signed root.
    #[arg(long)]
    ca_plugin_certs: Option<PathBuf>,
    /// The mesh's trust domain: workload identities are spiffe://DOMAIN/ns/NS/sa/SA.
    #[arg(long, default_value = spar_ca::policy::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Log level (error, warn, info, debug, trace).
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| format!("`{s}`: not a duration"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(format!("`{s}`: use ms or s")),
    }
}

/// Where the embedded CA listens, if anywhere.
#[derive(Clone, Copy, Debug)]
enum CaAddress {
    Off,
    On(SocketAddr),
}

fn parse_ca_address(s: &str) -> Result<CaAddress, String> {
    if s == "off" {
        return Ok(CaAddress::Off);
    }
    s.parse()
        .map(CaAddress::On)
        .map_err(|e| format!("`{s}`: {e} (an address, or `off`)"))
}

fn parse_group_version(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((g, v)) if !g.is_empty() && !v.is_empty() => Ok((g.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}`: use GROUP=VERSION")),
    }
}

/// The log filter: `level`, with the kube client's per-request events silenced (the
/// Kubernetes source logs each failure itself, once, and counts every one) unless `level`
/// names kube_client itself.
fn log_filter(level: &str) -> String {
    if level.contains("kube_client") {
        level.to_owned()
    } else {
        format!("{level},kube_client=error,kube_client::client::builder=off")
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(
            &args.log_level,
        )))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %format!("{e:#}"), "spar-control failed");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let cache = Arc::new(spar_xds::Cache::default());
    let mesh = Arc::new(spar_control::node::Mesh::new(cache.clone()));
    let source = source::Source::start(&args, &mesh).await?;
    cache.set_provider(mesh.provider());
    let listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("xDS: cannot listen on {}", args.xds_address))?;
    let monitoring = tokio::net::TcpListener::bind(args.monitoring_address)
        .await
        .with_context(|| format!("monitoring: cannot listen on {}", args.monitoring_address))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let ca = ca::start(&args, stopped()).await?;
    let extra = monitor::join(source.metrics(), ca.as_ref().map(|c| c.metrics()));
    let _monitor = tokio::spawn(monitor::serve(monitoring, cache.clone(), extra));
    info!(
        xds = %args.xds_address,
        monitoring = %args.monitoring_address,
        ca = %ca.as_ref().map_or("off".to_owned(), |c| c.addr.to_string()),
        source = %source,
        "spar-control serving"
    );
    let server = tokio::spawn(spar_xds::serve_on(listener, cache.clone(), stopped()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        () = source.run(&mesh) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(ca) = ca {
        let _ = ca.task.await;
    }
    Ok(())
}
