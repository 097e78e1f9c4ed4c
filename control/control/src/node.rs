//! Who is asking: Istio's node id and metadata into spar-translate's proxy, and the
//! per-node snapshots kept current as the configuration changes.
//!
//! Proxies are translated once per scope ([`ScopeKey`]: kind, namespace and the workload
//! selectors that select them), and every node of a scope holds the same encoded snapshot.
//! A configuration that differs from the last only in endpoints
//! ([`spar_translate::endpoints_changed`]) is not translated again: each scope's clusters
//! for the services concerned are rebuilt, and only the load assignments (EDS) and clusters
//! (CDS; when auto mTLS turns) that changed are re-encoded, the rest of its snapshot kept.
//! The xDS server then pushes each proxy the changed assignments alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use spar_translate::{ProxyKind, ProxyNode, ScopeKey, ScopeTranslation, Translation};
use spar_xds::{Cache, Snapshot};
use tracing::{debug, info, warn};

use crate::world::World;

/// The mesh as served: the current configuration, its translations per scope, and every
/// node seen.
pub struct Mesh {
    cache: Arc<Cache>,
    /// Held for the whole of [`Mesh::set_world`], so that worlds reach the cache in the order
    /// they were set (`state` alone is released before the cache is told).
    updating: Mutex<()>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The configuration served, once there is one.
    served: Option<Served>,
    /// Every node seen, by id.
    nodes: HashMap<String, ProxyNode>,
    /// Bumped with every configuration that changes what some proxy gets.
    version: u64,
}

struct Served {
    world: Arc<World>,
    /// The scopes translated so far under this world (built when a node of the scope needs
    /// one).
    scopes: HashMap<ScopeKey, Scope>,
}

/// One scope's translation and the snapshot every node of the scope holds.
struct Scope {
    translation: ScopeTranslation,
    snapshot: Arc<Snapshot>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Mesh {
    pub fn new(cache: Arc<Cache>) -> Mesh {
        Mesh {
            cache,
            updating: Mutex::new(()),
            state: Mutex::new(State::default()),
        }
    }

    /// The version the snapshots of the current configuration carry.
    pub fn version(&self) -> String {
        lock(&self.state).version.to_string()
    }

    /// How many scopes the current world has translated: one per distinct scope key among
    /// the nodes seen so far (nodes with equal keys share one).
    pub fn scope_count(&self) -> usize {
        lock(&self.state)
            .served
            .as_ref()
            .map_or(0, |s| s.scopes.len())
    }

    /// Adopts a new configuration and gives every known node its snapshot of it (their
    /// streams push the difference). Each node's snapshot comes whole from one world.
    pub fn set_world(&self, world: World) {
        let _updating = lock(&self.updating);
        let world = Arc::new(world);
        let mut state = lock(&self.state);
        let old = state.served.take();
        let hosts = old.as_ref().and_then(|o| {
            spar_translate::endpoints_changed(
                (&o.world.resources, &o.world.registry),
                (&world.resources, &world.registry),
            )
        });
        let mut scopes = HashMap::new();
        // What the old world leaves behind is dropped after the cache is told: freeing
        // thousands of resources need not delay the push.
        let mut retired: (Option<Arc<World>>, Option<Served>) = (None, None);
        match (old, hosts) {
            (Some(old), Some(hosts)) if hosts.is_empty() => {
                // Nothing any proxy gets changed: same snapshots, nothing to push.
                state.served = Some(Served {
                    world,
                    scopes: old.scopes,
                });
                debug!("configuration changed, no proxy's config did");
                return;
            }
            (Some(old), Some(hosts)) => {
                retired.0 = Some(old.world);
                state.version += 1;
                let version = state.version.to_string();
                for (key, scope) in old.scopes {
                    scopes.insert(key, scope.with_endpoints(&world, &hosts, &version));
                }
                info!(
                    hosts = hosts.len(),
                    version, "endpoints changed: assignments rebuilt"
                );
            }
            (old, _) => {
                retired.1 = old;
                state.version += 1;
            }
        }
        let version = state.version.to_string();
        let mut served = Served { world, scopes };
        let assigned: Vec<(String, Arc<Snapshot>)> = state
            .nodes
            .iter()
            .map(|(id, proxy)| {
                (
                    id.clone(),
                    served.scope(id, proxy, &version).snapshot.clone(),
                )
            })
            .collect();
        state.served = Some(served);
        drop(state);
        for (id, snapshot) in assigned {
            self.cache.set_shared(&id, snapshot);
        }
        drop(retired);
    }

    /// The cache's provider: a node connecting for the first time gets its snapshot.
    pub fn provider(self: &Arc<Self>) -> spar_xds::Provider {
        let mesh = self.clone();
        Arc::new(move |node: &Node| {
            let proxy = proxy_node(node);
            let mut state = lock(&mesh.state);
            state.nodes.insert(node.id.clone(), proxy.clone());
            let version = state.version.to_string();
            match &mut state.served {
                Some(served) => served.scope(&node.id, &proxy, &version).snapshot.clone(),
                None => Arc::default(),
            }
        })
    }
}

impl Served {
    /// The scope of `proxy`, translated now if it is the first of its scope.
    fn scope(&mut self, id: &str, proxy: &ProxyNode, version: &str) -> &Scope {
        let key = ScopeKey::new(&self.world.resources, proxy);
        let world = &self.world;
        self.scopes.entry(key).or_insert_with(|| {
            let translation = ScopeTranslation::new(&world.resources, &world.registry, proxy);
            for n in &translation.translation.notes {
                warn!(node = %id, path = %n.path, "{}", n.message);
            }
            let scope = Scope::new(translation, version);
            info!(
                node = %id,
                version,
                clusters = scope.translation.translation.clusters.len(),
                listeners = scope.translation.translation.listeners.len(),
                "scope translated"
            );
            scope
        })
    }
}

impl Scope {
    fn new(translation: ScopeTranslation, version: &str) -> Scope {
        let snapshot = Arc::new(snapshot(&translation.translation, version));
        Scope {
            translation,
            snapshot,
        }
    }

    /// The scope under a world that differs only in the endpoints of `hosts`: the
    /// assignments that changed re-encoded, and the clusters that did (auto mTLS turned),
    /// the rest of the snapshot kept. Proxies are then pushed only what changed: EDS, and
    /// CDS only when a cluster changed.
    fn with_endpoints(
        self,
        world: &World,
        hosts: &std::collections::BTreeSet<String>,
        version: &str,
    ) -> Scope {
        let (translation, changed) =
            self.translation
                .with_endpoints(&world.resources, &world.registry, hosts);
        let mut snapshot = Arc::unwrap_or_clone(self.snapshot);
        snapshot.version = version.to_owned();
        let t = &translation.translation;
        for c in t
            .clusters
            .iter()
            .filter(|c| changed.clusters.contains(&c.name))
        {
            snapshot.insert_message(c.name.clone(), c);
        }
        for la in t
            .endpoints
            .iter()
            .filter(|la| changed.endpoints.contains(&la.cluster_name))
        {
            snapshot.insert_message(la.cluster_name.clone(), la);
        }
        Scope {
            translation,
            snapshot: Arc::new(snapshot),
        }
    }
}

/// What a node's snapshot holds: clusters (CDS), the EDS clusters' load assignments (EDS,
/// named by their cluster) and listeners (routes inline, as spar-proxy has no RDS).
pub fn snapshot(t: &Translation, version: &str) -> Snapshot {
    let mut s = Snapshot::new(version);
    for c in &t.clusters {
        s.insert_message(c.name.clone(), c);
    }
    for la in &t.endpoints {
        s.insert_message(la.cluster_name.clone(), la);
    }
    for l in &t.listeners {
        s.insert_message(l.name.clone(), l);
    }
    s
}

/// Istio's node id `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local` (TYPE `sidecar` or
/// `router`) and the `LABELS` / `NAMESPACE` metadata, as the translation needs them.
pub fn proxy_node(node: &Node) -> ProxyNode {
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
mod tests;
