//! Kubernetes as Spar's config source (istiod's Kubernetes controllers): list+watch of the
//! Istio CRDs (`networking.istio.io`: VirtualService, DestinationRule, Gateway,
//! ServiceEntry, Sidecar, WorkloadEntry; `security.istio.io`: PeerAuthentication,
//! AuthorizationPolicy, RequestAuthentication) and of core Services, Namespaces, Pods and
//! `discovery.k8s.io/v1` EndpointSlices, into a consistent [`ConfigSet`] (spar-istio
//! resources and a spar-translate registry) after every change.
//!
//! What it does:
//! - One version per kind: `v1` where the server serves it, else the group's preferred
//!   version ([`kinds`]); [`Options::versions`] overrides that per group.
//! - A list+watch loop per kind with the kube client (no kube-runtime): resumes a broken
//!   watch from the last resourceVersion without relisting, relists on 410 Gone, retries
//!   failures with exponential backoff; an API server that is down is retried forever while
//!   the control plane keeps serving the last configuration.
//! - A store keyed by (kind, namespace, name) that keeps only what Spar reads of each object
//!   (status and resourceVersion churn is not a change) and publishes a new [`ConfigSet`],
//!   debounced (100 ms by default), only when that changed, and only once every kind has
//!   been listed (no partial first configuration).
//! - Each config object is loaded and validated on its own by spar-istio, as the file
//!   `k8s:KIND/NAMESPACE/NAME`.
//!
//! **Invalid objects are left out, one by one.** An object with a validation error is
//! logged (warning), counted (`spar_kube_rejected_objects_total`,
//! `spar_kube_invalid_objects`) and excluded; every valid object still applies. This is
//! Istio's behaviour for objects that reach it, and most invalid objects never do (the API
//! server's CRD schema and Istio's validating webhook refuse them). It differs from Spar's
//! file source, which refuses a whole directory with any error, because there a user is
//! editing files and wants the whole set checked before any of it applies.
//!
//! What it does not do: no writes to the cluster (status, leader election), no Secrets
//! (credentialName), no Gateway API, WorkloadGroup, Telemetry or EnvoyFilter kinds, no
//! namespace-scoped watches (it lists cluster-wide), no cross-object analysis warnings
//! (`sparctl analyze` does that), no translation or xDS.

#![forbid(unsafe_code)]

mod backoff;
pub mod kinds;
mod metrics;
mod object;
mod source;
mod store;
mod watch;

pub use metrics::{KindCounters, Metrics};
pub use source::{Connect, Error, Options, Source, start};
pub use store::ConfigSet;
