//! The proxies: spar-ads clients, each a tokio task on the caller's runtime, presenting an
//! Istio sidecar node and recording what it applied, when, and how many bytes it held.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use prost::Message;
use prost::encoding::encoded_len_varint;
use spar_ads::{AdsConfig, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, Update, cluster_assignment};
use spar_translate::ProxyNode;

/// An Istio sidecar node for the workload `app` in `namespace`, and the proxy the
/// translation sees for it.
pub fn node(index: usize, namespace: &str, app: &str) -> (Node, ProxyNode) {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let labels = [("app", app), ("version", "v1")];
    let node = Node {
        id: format!("sidecar~127.0.0.1~pod-{index}.{namespace}~{namespace}.svc.cluster.local"),
        metadata: Some(Struct {
            fields: [
                ("NAMESPACE".to_owned(), string(namespace)),
                (
                    "LABELS".to_owned(),
                    Value {
                        kind: Some(Kind::StructValue(Struct {
                            fields: labels
                                .iter()
                                .map(|(k, v)| ((*k).to_owned(), string(v)))
                                .collect(),
                        })),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        }),
        ..Node::default()
    };
    // Read back from the node as the control plane's Mesh reads it.
    let proxy = spar_control::node::proxy_node(&node);
    (node, proxy)
}

/// The endpoint whose arrival is awaited: this cluster lists this address.
#[derive(Clone, Debug)]
pub struct Watch {
    pub cluster: String,
    pub address: String,
}

/// What one proxy saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Updates applied (each ACKed).
    pub applied: usize,
    /// Of those, the ones that brought a new cluster set (CDS); the others brought
    /// assignments (EDS) or listeners only.
    pub cluster_updates: usize,
    /// When it first held both clusters and listeners.
    pub configured_at: Option<Instant>,
    /// Bytes of the clusters, assignments and listeners it holds, as they travel in a
    /// DiscoveryResponse's `resources` (each wrapped in an `Any`); counted when the cluster
    /// set changes (the assignments arrive with it, as warming applies them together).
    pub cluster_bytes: usize,
    pub endpoint_bytes: usize,
    pub listener_bytes: usize,
    pub clusters: usize,
    pub listeners: usize,
    /// When it first held the watched endpoint.
    pub watched_at: Option<Instant>,
    /// Where the cluster and listener sets it last applied live: a new set is a new
    /// allocation while the old one still lives (spar-ads swaps them), so a changed address
    /// means a new set, without comparing thousands of clusters on every update.
    held: (usize, usize),
}

/// Shared between the proxies and the benchmark.
#[derive(Debug, Default)]
pub struct Board {
    pub seen: Vec<Mutex<Seen>>,
    pub watch: Mutex<Option<Watch>>,
}

impl Board {
    pub fn new(proxies: usize) -> Board {
        Board {
            seen: (0..proxies).map(|_| Mutex::default()).collect(),
            watch: Mutex::new(None),
        }
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

/// Runs one proxy until `shutdown`; every update is accepted.
pub async fn run(
    address: String,
    node: Node,
    index: usize,
    board: Arc<Board>,
    shutdown: impl Future<Output = ()>,
) {
    let apply = move |u: &Update| -> Result<(), String> {
        let now = Instant::now();
        let watch = board
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut seen = board.seen[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.applied += 1;
        let held = (u.clusters.as_ptr() as usize, u.listeners.as_ptr() as usize);
        if held.0 != seen.held.0 {
            seen.cluster_updates += 1;
            seen.clusters = u.clusters.len();
            seen.cluster_bytes = u.clusters.iter().map(|c| any_len(CLUSTER_TYPE, c)).sum();
            seen.endpoint_bytes = u
                .assignments
                .values()
                .map(|la| any_len(ENDPOINT_TYPE, la))
                .sum();
        }
        if held.1 != seen.held.1 {
            seen.listeners = u.listeners.len();
            seen.listener_bytes = u.listeners.iter().map(|l| any_len(LISTENER_TYPE, l)).sum();
        }
        seen.held = held;
        if seen.configured_at.is_none() && !u.clusters.is_empty() && !u.listeners.is_empty() {
            seen.configured_at = Some(now);
        }
        if let Some(w) = watch
            && seen.watched_at.is_none()
            && holds(u, &w)
        {
            seen.watched_at = Some(now);
        }
        Ok(())
    };
    spar_ads::run(AdsConfig::new(address, node), apply, shutdown).await;
}

/// Bytes of `m` as one entry of a DiscoveryResponse's repeated `resources` (field 2): tag,
/// length, and the `Any` (type URL and value, each with tag and length).
pub fn any_len<M: Message>(type_url: &str, m: &M) -> usize {
    let value = m.encoded_len();
    let any = 1
        + encoded_len_varint(type_url.len() as u64)
        + type_url.len()
        + 1
        + encoded_len_varint(value as u64)
        + value;
    1 + encoded_len_varint(any as u64) + any
}

/// Whether the watched cluster lists the watched address: in its EDS assignment, or
/// inline for a STATIC cluster.
fn holds(u: &Update, w: &Watch) -> bool {
    let Some(c) = u.clusters.iter().find(|c| c.name == w.cluster) else {
        return false;
    };
    let assignment = match cluster_assignment(c) {
        Some((name, _)) => u.assignments.get(name),
        None => c.load_assignment.as_ref(),
    };
    assignment
        .iter()
        .flat_map(|la| &la.endpoints)
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match &e.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => ep.address.as_ref(),
            _ => None,
        })
        .filter_map(|a| match &a.address {
            Some(AddressKind::SocketAddress(s)) => Some(&s.address),
            _ => None,
        })
        .any(|a| *a == w.address)
}
