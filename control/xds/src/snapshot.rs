//! What one proxy should have: a versioned set of resources per type URL.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

/// A type URL, such as [`type_url::CLUSTER`].
pub type TypeUrl = String;

/// The type URLs Spar serves (Envoy's v3 names), and the order a push sends them in.
pub mod type_url {
    /// CDS.
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    /// EDS.
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    /// LDS.
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    /// RDS.
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    /// SDS.
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

    /// Push order when one snapshot change touches several types (Istio's order): clusters
    /// and their endpoints before the listeners and routes that refer to them, so a proxy
    /// never routes to a cluster it has not got yet. Other types follow, by name.
    pub const PUSH_ORDER: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

    /// Types whose state-of-the-world responses carry the full set: a resource missing from a
    /// response is deleted by the client (LDS and CDS, per Envoy's xDS protocol).
    pub(crate) fn is_full_state(type_url: &str) -> bool {
        type_url == LISTENER || type_url == CLUSTER
    }

    /// Sort key for [`PUSH_ORDER`].
    pub(crate) fn rank(type_url: &str) -> usize {
        PUSH_ORDER
            .iter()
            .position(|t| *t == type_url)
            .unwrap_or(PUSH_ORDER.len())
    }
}

/// One resource with its version (a content hash unless the caller gives one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Changes whenever the resource changes; compared by delta xDS and by pushes.
    pub version: String,
    /// The encoded resource; its `type_url` is the type it is filed under.
    pub resource: Any,
}

/// Everything one node should have. Pure data: the translation builds it, the cache holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Sent as `version_info` (state of the world) and `system_version_info` (delta).
    pub version: String,
    /// type URL → resource name → entry. Each type's map is shared (`Arc`), so a stream
    /// keeps what it last sent as the map itself and a push compares two maps, skipping
    /// types whose maps are the same.
    pub resources: BTreeMap<TypeUrl, Arc<BTreeMap<String, Entry>>>,
}

impl Snapshot {
    /// An empty snapshot with the given version.
    pub fn new(version: impl Into<String>) -> Self {
        Snapshot {
            version: version.into(),
            resources: BTreeMap::new(),
        }
    }

    /// Files `resource` under its own type URL and `name`, versioned by a hash of its bytes.
    pub fn insert(&mut self, name: impl Into<String>, resource: Any) {
        let version = content_version(&resource);
        let map = self.resources.entry(resource.type_url.clone()).or_default();
        Arc::make_mut(map).insert(name.into(), Entry { version, resource });
    }

    /// Encodes `message` and files it under its type URL and `name`.
    pub fn insert_message<M: prost::Message + prost::Name>(
        &mut self,
        name: impl Into<String>,
        message: &M,
    ) {
        let any = Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        };
        self.insert(name, any);
    }

    /// Builder form of [`Snapshot::insert_message`].
    #[must_use]
    pub fn with_message<M: prost::Message + prost::Name>(
        mut self,
        name: impl Into<String>,
        message: &M,
    ) -> Self {
        self.insert_message(name, message);
        self
    }

    /// The resources of one type (empty when the snapshot has none).
    pub fn of_type(&self, type_url: &str) -> Option<&BTreeMap<String, Entry>> {
        self.resources.get(type_url).map(|m| &**m)
    }

    /// The shared map of one type's resources.
    pub(crate) fn shared_of_type(&self, type_url: &str) -> Option<&Arc<BTreeMap<String, Entry>>> {
        self.resources.get(type_url)
    }
}

/// FNV-1a (64 bit) over type URL and bytes, as hex: stable across processes, so a proxy that
/// reconnects to a restarted control plane with `initial_resource_versions` is not re-sent
/// resources that did not change. Not a security boundary: the control plane builds both sides.
pub(crate) fn content_version(any: &Any) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in any
        .type_url
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0u8))
        .chain(any.value.iter())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}
