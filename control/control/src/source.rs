//! The configuration sources and their loops: a watched directory of YAML (refused as a
//! whole when anything in it is invalid) or a Kubernetes cluster through spar-kube (invalid
//! objects left out one by one). Both hand each new configuration to
//! [`Mesh::set_world`]; neither ever stops the control plane: a failing source is logged
//! and retried while proxies keep the last good configuration.
//!
//! What it does not do: no validation or translation of its own (spar-istio, spar-kube and
//! spar-translate do those), no serving.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing::{info, warn};

use crate::Args;
use crate::monitor::Extra;
use spar_control::node::Mesh;
use spar_control::world::{self, World};

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A directory of YAML files (`--config-dir`), checked every `--watch-every`.
    Files,
    /// A Kubernetes API server (`--kube-api-server`, `--kubeconfig` or in-cluster).
    Kubernetes,
}

/// A started source.
pub(crate) enum Source {
    Files {
        dir: PathBuf,
        every: Duration,
        fingerprint: u64,
        /// Kept across loads: a change re-parses only the files whose text changed.
        loader: world::Loader,
    },
    Kubernetes {
        describe: String,
        source: spar_kube::Source,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Files { dir, .. } => write!(f, "files:{}", dir.display()),
            Source::Kubernetes { describe, .. } => write!(f, "kubernetes:{describe}"),
        }
    }
}

impl Source {
    /// Starts the source `args` ask for; the file source loads the directory once now.
    pub(crate) async fn start(args: &Args, mesh: &Mesh) -> anyhow::Result<Source> {
        match args.source {
            Kind::Files => {
                let fingerprint = world::fingerprint(&args.config_dir);
                let mut loader = world::Loader::default();
                match loader.load_dir(&args.config_dir) {
                    Ok(w) => mesh.set_world(w),
                    // The control plane stays up with nothing to serve until the config is fixed.
                    Err(e) => warn!("{e}"),
                }
                Ok(Source::Files {
                    dir: args.config_dir.clone(),
                    every: args.watch_every,
                    fingerprint,
                    loader,
                })
            }
            Kind::Kubernetes => {
                let (connect, describe) = connect(args)?;
                let mut options = spar_kube::Options::new(connect);
                options.versions = args.kube_api_versions.iter().cloned().collect();
                let source = spar_kube::start(options)
                    .await
                    .context("starting the Kubernetes source")?;
                Ok(Source::Kubernetes { describe, source })
            }
        }
    }

    /// Extra Prometheus text for the monitoring port.
    pub(crate) fn metrics(&self) -> Option<Extra> {
        match self {
            Source::Files { .. } => None,
            Source::Kubernetes { source, .. } => {
                let metrics = source.metrics.clone();
                Some(Arc::new(move || metrics.render()))
            }
        }
    }

    /// Feeds `mesh` until the source ends (it does not, short of the process stopping).
    pub(crate) async fn run(self, mesh: &Mesh) {
        match self {
            Source::Files {
                dir,
                every,
                mut fingerprint,
                mut loader,
            } => {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let now = world::fingerprint(&dir);
                    if now == fingerprint {
                        continue;
                    }
                    fingerprint = now;
                    match loader.load_dir(&dir) {
                        Ok(w) => {
                            info!(
                                resources = w.resources.len(),
                                "configuration changed: pushing"
                            );
                            mesh.set_world(w);
                        }
                        Err(e) => {
                            warn!("configuration rejected, proxies keep the last good one: {e}")
                        }
                    }
                }
            }
            Source::Kubernetes { mut source, .. } => loop {
                if source.configs.changed().await.is_err() {
                    warn!("the Kubernetes source stopped; proxies keep the last configuration");
                    return std::future::pending().await;
                }
                let set = source.configs.borrow_and_update().clone();
                let Some(set) = set else { continue };
                info!(
                    resources = set.resources.len(),
                    invalid = set.invalid.len(),
                    "configuration from Kubernetes changed: pushing"
                );
                mesh.set_world(World::new(set.resources.clone(), set.registry.clone()));
            },
        }
    }
}

/// How to reach the API server, in the order the flags' docs give.
fn connect(args: &Args) -> anyhow::Result<(spar_kube::Connect, String)> {
    use spar_kube::Connect;
    if let Some(url) = &args.kube_api_server {
        return Ok((Connect::Url(url.clone()), url.clone()));
    }
    if let Some(path) = &args.kubeconfig {
        return Ok((
            Connect::Kubeconfig(path.clone()),
            path.display().to_string(),
        ));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Ok((Connect::InCluster, "in-cluster".to_owned()));
    }
    let default = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
        .filter(|p| p.exists());
    match default {
        Some(path) => Ok((
            Connect::Kubeconfig(path.clone()),
            path.display().to_string(),
        )),
        None => anyhow::bail!(
            "--source kubernetes: no API server (give --kube-api-server or --kubeconfig, \
             or run in a pod)"
        ),
    }
}
