//! The source: connects to the API server, picks each group's version (discovery, retried
//! with backoff until the server answers), runs one list+watch task per kind, keeps the
//! store, and publishes a new [`ConfigSet`] once every kind has been listed and then after
//! each change, debounced.
//!
//! What it does not do: no translation or xDS (the control plane does that with what it
//! receives), no writes to the cluster (no status, no leader election).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tokio::sync::{mpsc, watch as channel};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::kinds::{KINDS, choose_versions};
use crate::metrics::Metrics;
use crate::object::file_name;
use crate::store::{Change, ConfigSet, Store};
use crate::watch::{self, Event};

/// How to reach the API server.
#[derive(Clone, Debug)]
pub enum Connect {
    /// A URL with no credentials, `http://` for a test server (or `https://` with the
    /// system's roots).
    Url(String),
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
}

/// What the source needs.
#[derive(Clone, Debug)]
pub struct Options {
    pub connect: Connect,
    /// Version per API group, instead of discovery's choice (`networking.istio.io` ->
    /// `v1beta1`).
    pub versions: BTreeMap<String, String>,
    /// How long the store must be quiet before a configuration is published.
    pub debounce: Duration,
    /// Longest a stream of changes can hold a configuration back.
    pub max_delay: Duration,
}

impl Options {
    /// Defaults: 100 ms debounce, at most 1 s delay, versions by discovery.
    pub fn new(connect: Connect) -> Self {
        Options {
            connect,
            versions: BTreeMap::new(),
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// Why the source could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API server URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("in-cluster config: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A running source: its configurations and its counters.
#[derive(Debug)]
pub struct Source {
    /// The latest configuration; `None` until every kind has been listed once.
    pub configs: channel::Receiver<Option<Arc<ConfigSet>>>,
    pub metrics: Arc<Metrics>,
}

/// Requests that have not started sending within this time fail (and are retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A watch that has sent nothing for this long is dead: above the server-side watch
/// timeout (290 s), so a healthy idle watch is never cut.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

async fn client(connect: &Connect) -> Result<Client, Error> {
    let mut config = match connect {
        Connect::Url(url) => {
            let uri = url.parse().map_err(|e: http::uri::InvalidUri| Error::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            Config::new(uri)
        }
        Connect::Kubeconfig(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        Connect::InCluster => Config::incluster()?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    Ok(Client::try_from(config)?)
}

/// Starts the source on the current tokio runtime.
pub async fn start(options: Options) -> Result<Source, Error> {
    let client = client(&options.connect).await?;
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = channel::channel(None);
    tokio::spawn(run(client, options, tx, metrics.clone()));
    Ok(Source {
        configs: rx,
        metrics,
    })
}

async fn run(
    client: Client,
    options: Options,
    out: channel::Sender<Option<Arc<ConfigSet>>>,
    metrics: Arc<Metrics>,
) {
    let served = discover(&client, &metrics).await;
    let versions = choose_versions(Some(&served), &options.versions);
    info!(?versions, "watching Kubernetes");
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    for kind in KINDS {
        let version = versions
            .get(kind.group)
            .cloned()
            .unwrap_or_else(|| kind.versions[0].to_owned());
        tokio::spawn(watch::run(
            client.clone(),
            kind,
            version,
            tx.clone(),
            metrics.clone(),
        ));
    }
    drop(tx);
    let mut store = Store::default();
    // When the pending change goes out: `debounce` after the last change, at most
    // `max_delay` after the first.
    let mut due: Option<(Instant, Instant)> = None;
    loop {
        let deadline = due.map(|(quiet, latest)| quiet.min(latest));
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                let change = apply(&mut store, event);
                report(&store, &change, &metrics);
                if change.changed {
                    let now = Instant::now();
                    let latest = due.map_or(now + options.max_delay, |(_, l)| l);
                    due = Some((now + options.debounce, latest));
                }
            }
            () = sleep_until(deadline), if deadline.is_some() && store.synced() => {
                due = None;
                let set = store.build();
                debug!(resources = set.resources.len(), invalid = set.invalid.len(), "configuration from Kubernetes");
                metrics.published();
                if out.send(Some(Arc::new(set))).is_err() {
                    return;
                }
            }
        }
    }
}

fn apply(store: &mut Store, event: Event) -> Change {
    match event {
        Event::Listed { kind, objects } => store.replace(kind, objects),
        Event::Applied { kind, key, value } => {
            let change = store.apply(kind, key.clone(), value);
            if change.changed {
                for w in store.warnings(&key) {
                    warn!("{w}");
                }
            }
            change
        }
        Event::Deleted { key } => store.delete(&key),
    }
}

fn report(store: &Store, change: &Change, metrics: &Metrics) {
    for (key, errors) in &change.rejected {
        warn!(
            object = %file_name(key),
            errors = errors.len(),
            "invalid object left out of the configuration:\n{}",
            errors.join("\n")
        );
    }
    if !change.rejected.is_empty() {
        metrics.rejected(change.rejected.len());
    }
    metrics.set_invalid(store.invalid_count());
}

/// The server's API groups; retried with backoff until it answers (the control plane keeps
/// serving what it has meanwhile).
async fn discover(
    client: &Client,
    metrics: &Metrics,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::APIGroupList {
    let mut backoff = Backoff::default();
    let mut first = true;
    loop {
        match client.list_api_groups().await {
            Ok(groups) => return groups,
            Err(e) => {
                metrics.discovery_error();
                if first {
                    warn!(error = %e, "API server discovery failed; retrying with backoff");
                    first = false;
                } else {
                    debug!(error = %e, "API server discovery failed again");
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
