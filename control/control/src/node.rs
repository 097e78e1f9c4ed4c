//! Who is asking: Istio's node id and metadata into spar-translate's proxy, and the
//! per-node snapshots kept current as the configuration changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use spar_translate::{ProxyKind, ProxyNode};
use spar_xds::{Cache, Snapshot};
use tracing::{info, warn};

use crate::world::World;

/// The mesh as served: the current configuration and every node seen.
pub(crate) struct Mesh {
    cache: Arc<Cache>,
    world: Mutex<Option<Arc<World>>>,
    nodes: Mutex<HashMap<String, Node>>,
    version: AtomicU64,
}

impl Mesh {
    pub(crate) fn new(cache: Arc<Cache>) -> Mesh {
        Mesh {
            cache,
            world: Mutex::new(None),
            nodes: Mutex::new(HashMap::new()),
            version: AtomicU64::new(0),
        }
    }

    /// Adopts a new configuration and recomputes every known node's snapshot (their
    /// streams push the difference).
    pub(crate) fn set_world(&self, world: World) {
        let world = Arc::new(world);
        *self.world.lock().unwrap_or_else(PoisonError::into_inner) = Some(world.clone());
        self.version.fetch_add(1, Ordering::Relaxed);
        let nodes: Vec<Node> = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for node in nodes {
            let snapshot = self.snapshot_for(&node, &world);
            self.cache.set_snapshot(&node.id, snapshot);
        }
    }

    /// The cache's provider: a node connecting for the first time gets its snapshot.
    pub(crate) fn provider(self: &Arc<Self>) -> spar_xds::Provider {
        let mesh = self.clone();
        Arc::new(move |node: &Node| {
            mesh.nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(node.id.clone(), node.clone());
            let world = mesh
                .world
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Arc::new(match world {
                Some(w) => mesh.snapshot_for(node, &w),
                None => Snapshot::default(),
            })
        })
    }

    fn snapshot_for(&self, node: &Node, world: &World) -> Snapshot {
        let proxy = proxy_node(node);
        let t = spar_translate::translate(&world.resources, &world.registry, &proxy);
        for n in &t.notes {
            warn!(node = %node.id, path = %n.path, "{}", n.message);
        }
        let version = self.version.load(Ordering::Relaxed).to_string();
        let mut s = Snapshot::new(version.clone());
        for c in &t.clusters {
            s.insert_message(c.name.clone(), c);
        }
        for l in &t.listeners {
            s.insert_message(l.name.clone(), l);
        }
        info!(
            node = %node.id,
            version,
            clusters = t.clusters.len(),
            listeners = t.listeners.len(),
            "snapshot built"
        );
        s
    }
}

/// Istio's node id `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local` (TYPE `sidecar` or
/// `router`) and the `LABELS` / `NAMESPACE` metadata, as the translation needs them.
pub(crate) fn proxy_node(node: &Node) -> ProxyNode {
    let parts: Vec<&str> = node.id.split('~').collect();
    let kind = match parts.first() {
        Some(&"router") => ProxyKind::Router,
        _ => ProxyKind::Sidecar,
    };
    let metadata = node.metadata.as_ref();
    let field = |name: &str| {
        metadata
            .and_then(|m| m.fields.get(name))
            .and_then(|v| v.kind.as_ref())
    };
    let namespace = match field("NAMESPACE") {
        Some(Kind::StringValue(ns)) => ns.clone(),
        _ => parts
            .get(2)
            .and_then(|pod| pod.split_once('.'))
            .map(|(_, ns)| ns.to_owned())
            .unwrap_or_else(|| "default".to_owned()),
    };
    let labels: BTreeMap<String, String> = match field("LABELS") {
        Some(Kind::StructValue(s)) => s
            .fields
            .iter()
            .filter_map(|(k, v)| match &v.kind {
                Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    ProxyNode {
        kind,
        namespace,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Struct, Value};

    #[test]
    fn istio_node_ids_and_metadata() {
        let node = Node {
            id: "router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local".into(),
            ..Node::default()
        };
        let p = proxy_node(&node);
        assert_eq!(p.kind, ProxyKind::Router);
        assert_eq!(p.namespace, "istio-system");
        let label = |v: &str| Value {
            kind: Some(Kind::StringValue(v.into())),
        };
        let labels = Struct {
            fields: [("app".to_owned(), label("reviews"))].into_iter().collect(),
        };
        let node = Node {
            id: "sidecar~10.0.0.2~reviews-v1.default~default.svc.cluster.local".into(),
            metadata: Some(Struct {
                fields: [
                    ("NAMESPACE".to_owned(), label("bookinfo")),
                    (
                        "LABELS".to_owned(),
                        Value {
                            kind: Some(Kind::StructValue(labels)),
                        },
                    ),
                ]
                .into_iter()
                .collect(),
            }),
            ..Node::default()
        };
        let p = proxy_node(&node);
        assert_eq!(p.kind, ProxyKind::Sidecar);
        assert_eq!(p.namespace, "bookinfo");
        assert_eq!(p.labels.get("app").map(String::as_str), Some("reviews"));
    }
}
