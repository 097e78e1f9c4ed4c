//! Snapshots per node, shared by every stream, with change notification and sync status.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::status::TypeStatus;

/// Default debounce: a stream pushes at most once per 100 ms. The first change after a
/// quiet period goes out at once; changes that follow within 100 ms of a push go out
/// together, 100 ms after it (Istio's 100 ms debounce, without its delay on a lone change).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Builds the snapshot of a node that has none of its own (shared: nodes that get the same
/// config can hold one copy).
pub type Provider = Arc<dyn Fn(&Node) -> Arc<Snapshot> + Send + Sync>;

/// A snapshot and when it was set (the start of the push latency).
#[derive(Debug)]
pub(crate) struct Stamped {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) set_at: Instant,
}

/// Sync state of one proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Open ADS streams from this node id.
    pub streams: usize,
    /// Per type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

struct NodeEntry {
    /// Set by `set_snapshot` (otherwise the default or the provider's snapshot is used).
    own: bool,
    tx: watch::Sender<Arc<Stamped>>,
}

struct Inner {
    nodes: HashMap<String, NodeEntry>,
    default: Arc<Stamped>,
    provider: Option<Provider>,
    status: BTreeMap<String, NodeStatus>,
}

/// The snapshots the server hands out, one per node id. Cheap to share (`Arc<Cache>`).
pub struct Cache {
    inner: Mutex<Inner>,
    debounce: Duration,
    metrics: Metrics,
    next_stream: AtomicU64,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("debounce", &self.debounce)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(DEFAULT_DEBOUNCE)
    }
}

impl Cache {
    /// An empty cache whose streams push at most once per `debounce` (see
    /// [`DEFAULT_DEBOUNCE`]).
    pub fn new(debounce: Duration) -> Self {
        Cache {
            inner: Mutex::new(Inner {
                nodes: HashMap::new(),
                default: stamp(Arc::default()),
                provider: None,
                status: BTreeMap::new(),
            }),
            debounce,
            metrics: Metrics::default(),
            next_stream: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the snapshot of one node; its open streams push the difference.
    pub fn set_snapshot(&self, node_id: &str, snapshot: Snapshot) {
        self.set_shared(node_id, Arc::new(snapshot));
    }

    /// [`Cache::set_snapshot`] with a snapshot other nodes may hold too (no copy is made).
    pub fn set_shared(&self, node_id: &str, snapshot: Arc<Snapshot>) {
        let stamped = stamp(snapshot);
        let mut inner = self.lock();
        match inner.nodes.get_mut(node_id) {
            Some(entry) => {
                entry.own = true;
                entry.tx.send_replace(stamped);
            }
            None => {
                let (tx, _) = watch::channel(stamped);
                inner
                    .nodes
                    .insert(node_id.to_owned(), NodeEntry { own: true, tx });
            }
        }
    }

    /// Forgets a node's own snapshot: it falls back to the default.
    pub fn clear_snapshot(&self, node_id: &str) {
        let mut inner = self.lock();
        let default = inner.default.clone();
        if let Some(entry) = inner.nodes.get_mut(node_id) {
            entry.own = false;
            entry.tx.send_replace(default);
        }
    }

    /// Sets the snapshot of every node without one of its own (when no provider is set).
    pub fn set_default(&self, snapshot: Snapshot) {
        let stamped = stamp(Arc::new(snapshot));
        let mut inner = self.lock();
        inner.default = stamped.clone();
        for entry in inner.nodes.values_mut().filter(|e| !e.own) {
            entry.tx.send_replace(stamped.clone());
        }
    }

    /// Builds the snapshot of a node that connects without one (before the default).
    pub fn set_provider(&self, provider: Provider) {
        self.lock().provider = Some(provider);
    }

    /// The snapshot a node gets now, if it has one of its own.
    pub fn snapshot(&self, node_id: &str) -> Option<Snapshot> {
        let inner = self.lock();
        let entry = inner.nodes.get(node_id).filter(|e| e.own)?;
        Some(Snapshot::clone(&entry.tx.borrow().snapshot))
    }

    /// Sync state of every connected proxy, by node id (for `sparctl proxy-status`).
    pub fn status(&self) -> BTreeMap<String, NodeStatus> {
        self.lock().status.clone()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Prometheus text exposition of the server's metrics.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    pub(crate) fn debounce(&self) -> Duration {
        self.debounce
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// The node's snapshot and its changes; counts the stream as connected.
    pub(crate) fn connect(&self, node: &Node) -> watch::Receiver<Arc<Stamped>> {
        let mut inner = self.lock();
        inner.status.entry(node.id.clone()).or_default().streams += 1;
        self.metrics.connect();
        if let Some(entry) = inner.nodes.get(&node.id) {
            return entry.tx.subscribe();
        }
        let (snapshot, own) = match &inner.provider {
            Some(provider) => (stamp(provider(node)), true),
            None => (inner.default.clone(), false),
        };
        let (tx, rx) = watch::channel(snapshot);
        inner.nodes.insert(node.id.clone(), NodeEntry { own, tx });
        rx
    }

    /// Ends a stream: its status goes when the node's last stream does.
    pub(crate) fn disconnect(&self, node_id: &str) {
        let mut inner = self.lock();
        if let Some(status) = inner.status.get_mut(node_id) {
            status.streams = status.streams.saturating_sub(1);
            if status.streams == 0 {
                inner.status.remove(node_id);
            }
        }
        self.metrics.disconnect();
    }

    pub(crate) fn record_status(&self, node_id: &str, types: BTreeMap<String, TypeStatus>) {
        let mut inner = self.lock();
        if let Some(status) = inner.status.get_mut(node_id) {
            status.types.extend(types);
        }
    }
}

fn stamp(snapshot: Arc<Snapshot>) -> Arc<Stamped> {
    Arc::new(Stamped {
        snapshot,
        set_at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_nodes_follow_the_default_until_they_get_their_own() {
        let cache = Cache::default();
        cache.set_default(Snapshot::new("d1"));
        let rx = cache.connect(&node("n"));
        assert_eq!(rx.borrow().snapshot.version, "d1");
        cache.set_default(Snapshot::new("d2"));
        assert_eq!(rx.borrow().snapshot.version, "d2");
        cache.set_snapshot("n", Snapshot::new("own"));
        assert_eq!(rx.borrow().snapshot.version, "own");
        assert_eq!(cache.snapshot("n").map(|s| s.version), Some("own".into()));
        cache.set_default(Snapshot::new("d3"));
        assert_eq!(rx.borrow().snapshot.version, "own", "own snapshot wins");
        cache.clear_snapshot("n");
        assert_eq!(rx.borrow().snapshot.version, "d3");
        assert_eq!(cache.snapshot("n"), None);
    }

    #[test]
    fn provider_builds_the_snapshot_of_a_new_node() {
        let cache = Cache::default();
        cache.set_provider(Arc::new(|n: &Node| {
            Arc::new(Snapshot::new(format!("for-{}", n.id)))
        }));
        let rx = cache.connect(&node("x"));
        assert_eq!(rx.borrow().snapshot.version, "for-x");
        cache.set_default(Snapshot::new("d"));
        assert_eq!(rx.borrow().snapshot.version, "for-x");
    }

    #[test]
    fn status_lives_while_streams_do() {
        let cache = Cache::default();
        let _a = cache.connect(&node("n"));
        let _b = cache.connect(&node("n"));
        cache.record_status("n", [("t".to_owned(), TypeStatus::default())].into());
        assert_eq!(cache.status()["n"].streams, 2);
        assert_eq!(cache.metrics().connected_proxies(), 2);
        cache.disconnect("n");
        assert_eq!(cache.status()["n"].types.len(), 1);
        cache.disconnect("n");
        assert!(cache.status().is_empty());
        assert_eq!(cache.metrics().connected_proxies(), 0);
    }
}
