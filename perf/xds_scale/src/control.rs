//! The control plane as spar-control runs it with `--source files`, in process: the same
//! library calls in the same order. spar-control is a binary, so the two small pieces it
//! wires (control/control/src/world.rs `load` and node.rs `Mesh`) are mirrored here; keep
//! them in step when those change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use spar_istio::{Level, Options, Resource};
use spar_translate::{ProxyNode, Translation};
use spar_xds::{Cache, Snapshot};

use crate::mesh::File;

/// A validated configuration (world.rs `World`).
#[derive(Debug)]
pub struct World {
    pub resources: Vec<Resource>,
    pub registry: spar_translate::Registry,
}

/// Loads and analyzes every file, refusing the whole set on any error (world.rs `load`
/// without the directory walk).
pub fn load(files: &[File]) -> anyhow::Result<Vec<Resource>> {
    let options = Options::default();
    let mut resources = Vec::new();
    let mut messages = Vec::new();
    for f in files {
        let loaded = spar_istio::load(&f.name, &f.text, &options);
        resources.extend(loaded.resources);
        messages.extend(loaded.messages);
    }
    messages.extend(spar_istio::analyze(&resources));
    let errors: Vec<String> = messages
        .iter()
        .filter(|m| m.level == Level::Error)
        .map(|m| m.to_string())
        .collect();
    anyhow::ensure!(
        errors.is_empty(),
        "{} error(s):\n{}",
        errors.len(),
        errors.join("\n")
    );
    Ok(resources)
}

/// The registry of a loaded configuration.
pub fn world(resources: Vec<Resource>) -> World {
    let registry = spar_translate::Registry::from_resources(&resources);
    World {
        resources,
        registry,
    }
}

/// The mesh as served (node.rs `Mesh`): the current world and every node seen. Nodes are
/// the benchmark's own, so their [`ProxyNode`]s are known up front instead of parsed from
/// the node metadata (node.rs `proxy_node` reads the same NAMESPACE and LABELS).
pub struct Mesh {
    cache: Arc<Cache>,
    world: Mutex<Option<Arc<World>>>,
    proxies: HashMap<String, ProxyNode>,
    nodes: Mutex<Vec<String>>,
    version: AtomicU64,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("proxies", &self.proxies.len())
            .finish_non_exhaustive()
    }
}

impl Mesh {
    pub fn new(cache: Arc<Cache>, proxies: HashMap<String, ProxyNode>) -> Mesh {
        Mesh {
            cache,
            world: Mutex::new(None),
            proxies,
            nodes: Mutex::new(Vec::new()),
            version: AtomicU64::new(0),
        }
    }

    /// The version the snapshots built now carry.
    pub fn version(&self) -> String {
        self.version.load(Ordering::Relaxed).to_string()
    }

    /// Adopts a new configuration and recomputes every known node's snapshot.
    pub fn set_world(&self, world: World) {
        let world = Arc::new(world);
        *self.world.lock().unwrap_or_else(PoisonError::into_inner) = Some(world.clone());
        self.version.fetch_add(1, Ordering::Relaxed);
        let nodes = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for id in nodes {
            let snapshot = self.snapshot_for(&id, &world);
            self.cache.set_snapshot(&id, snapshot);
        }
    }

    /// The cache's provider: a node connecting for the first time gets its snapshot.
    pub fn provider(self: &Arc<Self>) -> spar_xds::Provider {
        let mesh = self.clone();
        Arc::new(move |node: &Node| {
            mesh.nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(node.id.clone());
            let world = mesh
                .world
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Arc::new(match world {
                Some(w) => mesh.snapshot_for(&node.id, &w),
                None => Snapshot::default(),
            })
        })
    }

    fn snapshot_for(&self, id: &str, world: &World) -> Snapshot {
        let Some(proxy) = self.proxies.get(id) else {
            return Snapshot::default();
        };
        let t = spar_translate::translate(&world.resources, &world.registry, proxy);
        snapshot(&t, self.version())
    }
}

/// What node.rs puts in a snapshot: clusters (endpoints inline) and listeners (routes
/// inline).
pub fn snapshot(t: &Translation, version: String) -> Snapshot {
    let mut s = Snapshot::new(version);
    for c in &t.clusters {
        s.insert_message(c.name.clone(), c);
    }
    for l in &t.listeners {
        s.insert_message(l.name.clone(), l);
    }
    s
}
