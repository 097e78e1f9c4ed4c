//! List+watch of one kind, forever: LIST (paged), then WATCH from the list's
//! resourceVersion; a watch that ends or breaks is resumed from the last resourceVersion seen
//! (an object's or a BOOKMARK's) without a new LIST; 410 Gone (the version is too old, as an
//! ERROR event or a status) relists. Failures are counted and retried with exponential
//! backoff and jitter; a kind the server does not serve (404) counts as listed and empty, and
//! is retried at the backoff's slowest pace.
//!
//! What it does not do: no decoding beyond trimming (the store decodes), no timing of pushes
//! (the source debounces), no discovery (the caller picks the version).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::{Client, Error as KubeError};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::kinds::Kind;
use crate::metrics::Metrics;
use crate::object::{Key, trim};

/// What a watcher reports to the source.
#[derive(Debug)]
pub(crate) enum Event {
    /// A full list: every object of the kind now (also after a relist).
    Listed {
        kind: &'static Kind,
        objects: Vec<(Key, Value)>,
    },
    Applied {
        kind: &'static Kind,
        key: Key,
        value: Value,
    },
    Deleted {
        key: Key,
    },
}

/// Objects per LIST page (the API server's own default limit for kubectl is 500).
const PAGE: u32 = 500;
/// Server-side watch timeout, in seconds; the API server's default is 30-60 min, client-go
/// uses 5-10 min. A watch that times out is resumed, so this only bounds a silent stall.
const WATCH_TIMEOUT_S: u32 = 290;
/// A watch that lived this long was healthy: its failure starts the backoff afresh.
const HEALTHY_WATCH: Duration = Duration::from_secs(10);

/// Why a list or a watch stopped.
enum Stop {
    /// The resourceVersion is gone: relist.
    Gone,
    /// 404: the server does not serve the kind at this version (its CRD is not installed).
    NotServed,
    /// A failure: retry after the backoff.
    Failed(String),
    /// The receiver is gone: the source stopped.
    Closed,
}

/// Runs the list+watch loop of `kind` at `version` until the source stops.
pub(crate) async fn run(
    client: Client,
    kind: &'static Kind,
    version: String,
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
) {
    let api_version = kind.api_version(&version);
    let resource = ApiResource {
        group: kind.group.to_owned(),
        version: version.clone(),
        api_version: api_version.clone(),
        kind: kind.kind.to_owned(),
        plural: kind.plural.to_owned(),
    };
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut backoff = Backoff::default();
    let mut failing = false;
    let report = |what: &str, reason: &str, failing: &mut bool| {
        metrics.error(kind.kind);
        // The first failure after a success is a warning; repeats are debug, still counted.
        if *failing {
            debug!(kind = kind.kind, %api_version, reason, "{what} failed again");
        } else {
            warn!(kind = kind.kind, %api_version, reason, "{what} failed; retrying with backoff");
        }
        *failing = true;
    };
    'list: loop {
        let rv = match list(&api, kind, &api_version, &metrics).await {
            Ok((objects, rv)) => {
                if failing {
                    info!(kind = kind.kind, %api_version, "listed again");
                }
                failing = false;
                backoff.reset();
                if tx.send(Event::Listed { kind, objects }).await.is_err() {
                    return;
                }
                rv
            }
            Err(Stop::Closed) => return,
            Err(Stop::Gone) => continue,
            Err(Stop::NotServed) => {
                report("list", "not served (404): watching nothing", &mut failing);
                if tx
                    .send(Event::Listed {
                        kind,
                        objects: Vec::new(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(backoff.slowest()).await;
                continue;
            }
            Err(Stop::Failed(reason)) => {
                report("list", &reason, &mut failing);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut rv = rv;
        loop {
            let started = Instant::now();
            match watch(&api, kind, &api_version, &mut rv, &tx, &metrics).await {
                Ok(()) => {
                    // Ended by the server's timeout or a closed connection: resume at once.
                    debug!(kind = kind.kind, %rv, "watch ended; resuming");
                    failing = false;
                    backoff.reset();
                }
                Err(Stop::Closed) => return,
                Err(Stop::Gone) => {
                    metrics.gone(kind.kind);
                    info!(kind = kind.kind, %rv, "resourceVersion too old (410 Gone): relisting");
                    continue 'list;
                }
                Err(Stop::NotServed) => continue 'list,
                Err(Stop::Failed(reason)) => {
                    if started.elapsed() > HEALTHY_WATCH {
                        backoff.reset();
                    }
                    report("watch", &reason, &mut failing);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

fn classify(e: &KubeError) -> Stop {
    match e {
        KubeError::Api(status) if status.code == 410 => Stop::Gone,
        KubeError::Api(status) if status.code == 404 => Stop::NotServed,
        other => Stop::Failed(other.to_string()),
    }
}

async fn list(
    api: &Api<DynamicObject>,
    kind: &'static Kind,
    api_version: &str,
    metrics: &Metrics,
) -> Result<(Vec<(Key, Value)>, String), Stop> {
    let mut objects = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        metrics.list(kind.kind);
        let page = api.list(&params).await.map_err(|e| classify(&e))?;
        objects.extend(page.items.iter().map(|o| trim(kind, api_version, o)));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                let rv = page.metadata.resource_version.unwrap_or_default();
                if rv.is_empty() {
                    return Err(Stop::Failed("list without resourceVersion".to_owned()));
                }
                return Ok((objects, rv));
            }
        }
    }
}

/// Watches from `rv`, moving it on with every event; `Ok` when the stream ends.
async fn watch(
    api: &Api<DynamicObject>,
    kind: &'static Kind,
    api_version: &str,
    rv: &mut String,
    tx: &mpsc::Sender<Event>,
    metrics: &Metrics,
) -> Result<(), Stop> {
    metrics.watch(kind.kind);
    // Bookmarks are on by default: they keep `rv` fresh while nothing changes.
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_S);
    let stream = api.watch(&params, rv).await.map_err(|e| classify(&e))?;
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let (event, version) = match item {
            Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                let (key, value) = trim(kind, api_version, &o);
                let event = Event::Applied { kind, key, value };
                (event, o.metadata.resource_version)
            }
            Ok(WatchEvent::Deleted(o)) => {
                let (key, _) = trim(kind, api_version, &o);
                (Event::Deleted { key }, o.metadata.resource_version)
            }
            Ok(WatchEvent::Bookmark(b)) => {
                *rv = b.metadata.resource_version;
                continue;
            }
            Ok(WatchEvent::Error(status)) if status.code == 410 => return Err(Stop::Gone),
            Ok(WatchEvent::Error(status)) => {
                return Err(Stop::Failed(format!(
                    "watch error {}: {}",
                    status.code, status.message
                )));
            }
            Err(e) => return Err(classify(&e)),
        };
        metrics.event(kind.kind);
        match version.filter(|v| !v.is_empty()) {
            Some(v) => *rv = v,
            // Without a version the watch cannot be resumed exactly: relist.
            None => return Err(Stop::Gone),
        }
        if tx.send(event).await.is_err() {
            return Err(Stop::Closed);
        }
    }
    Ok(())
}
