//! The control plane's xDS server: Envoy's aggregated discovery service (ADS), in both its
//! state-of-the-world and delta forms, over per-node [`Snapshot`]s.
//!
//! - [`Snapshot`]: what one node should have (pure data; translation builds it).
//! - [`SotwStream`], [`DeltaStream`]: per-stream protocol state, sans I/O: given a request or
//!   a new snapshot, what to send; ACK/NACK per type ([`TypeStatus`]). Nonces are unique per
//!   response; a request with a stale nonce is ignored (its subscription changes still apply
//!   in delta, where they are increments). A NACK marks what the rejected responses carried,
//!   and the next response of the type carries it again (state of the world and delta).
//! - [`Cache`]: snapshots by node id, a default or a provider for unknown nodes, change
//!   notification with debounced pushes, per-proxy sync status, [`Metrics`].
//! - [`AdsServer`], [`serve`]: the tonic service and a plaintext server.
//!
//! Not here: translating Istio config into snapshots (spar-control), the proxy's xDS client,
//! TLS and authentication on the xDS port, scoping by Sidecar (the snapshot a node gets is
//! already scoped by whoever builds it).

mod cache;
mod delta;
mod metrics;
mod server;
mod snapshot;
mod sotw;
mod status;

pub use cache::{Cache, DEFAULT_DEBOUNCE, NodeStatus, Provider};
pub use delta::DeltaStream;
pub use metrics::Metrics;
pub use server::{AdsServer, ResponseStream, ServeError, serve, serve_on};
pub use snapshot::{Entry, Snapshot, TypeUrl, type_url};
pub use sotw::{SotwStream, Subscription};
pub use status::{Nack, Outcome, RequestKind, TypeStatus};
