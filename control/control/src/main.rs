//! spar-control: Spar's control plane (istiod's job). Reads Istio YAML from a directory,
//! validates it like `istioctl analyze`, translates it for each connecting proxy and serves
//! the result over xDS (ADS) on 15010. The binary only wires; the work is in spar-istio
//! (validation), spar-translate (translation) and spar-xds (the server).

mod monitor;
mod node;
mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tracing::{error, info, warn};

/// Spar's control plane.
#[derive(Parser, Debug)]
#[command(name = "spar-control", version)]
struct Args {
    /// Directory of Istio and Kubernetes YAML (searched recursively), watched for changes.
    #[arg(long, default_value = "deploy/mesh")]
    config_dir: PathBuf,
    /// Address of the plaintext xDS server (Istio: 15010).
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Address of the monitoring port: /metrics and /debug/syncz (Istio: 15014).
    #[arg(long, default_value = "127.0.0.1:15014")]
    monitoring_address: SocketAddr,
    /// How often the directory is checked for changes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    watch_every: Duration,
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

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
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
    let mesh = Arc::new(node::Mesh::new(cache.clone()));
    let mut fingerprint = world::fingerprint(&args.config_dir);
    match world::load(&args.config_dir) {
        Ok(w) => mesh.set_world(w),
        // The control plane stays up with nothing to serve until the config is fixed.
        Err(e) => warn!("{e}"),
    }
    cache.set_provider(mesh.provider());
    let listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("xDS: cannot listen on {}", args.xds_address))?;
    let monitoring = tokio::net::TcpListener::bind(args.monitoring_address)
        .await
        .with_context(|| format!("monitoring: cannot listen on {}", args.monitoring_address))?;
    let _monitor = tokio::spawn(monitor::serve(monitoring, cache.clone()));
    info!(
        xds = %args.xds_address,
        monitoring = %args.monitoring_address,
        dir = %args.config_dir.display(),
        "spar-control serving"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spar_xds::serve_on(listener, cache.clone(), async {
        let _ = stop_rx.await;
    }));
    let mut tick = tokio::time::interval(args.watch_every);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = world::fingerprint(&args.config_dir);
                if now != fingerprint {
                    fingerprint = now;
                    match world::load(&args.config_dir) {
                        Ok(w) => {
                            info!(resources = w.resources.len(), "configuration changed: pushing");
                            mesh.set_world(w);
                        }
                        Err(e) => warn!("configuration rejected, proxies keep the last good one: {e}"),
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
