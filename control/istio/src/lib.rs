//! Istio configuration as Spar reads it: YAML text into typed resources, validated like
//! Istio's admission webhook and CRD schemas, and analyzed like `istioctl analyze`.
//!
//! What it does:
//! - [`load`]: multi-document YAML into [`Resource`]s (VirtualService, DestinationRule,
//!   Gateway, ServiceEntry, Sidecar, WorkloadEntry, WorkloadGroup, PeerAuthentication,
//!   RequestAuthentication, AuthorizationPolicy, Telemetry; Kubernetes Service, Deployment
//!   and Namespace for the local registry), each with its file, document index and the line
//!   of every field. Istio specs are decoded strictly: unknown fields and enum values are
//!   errors. EnvoyFilter, WasmPlugin, ProxyConfig and Gateway API kinds are recognised and
//!   reported as unsupported; other Kubernetes kinds are skipped.
//! - [`validate`]: every rule one resource breaks, at once, with its field path.
//! - [`analyze`]: validation plus cross-resource warnings (missing gateways, hosts and
//!   subsets, gateway hosts, unreachable rules). [`analyze_sources`] does it all for files.
//!
//! What it does not do: no file or network I/O (callers pass text), no translation to xDS,
//! no MeshConfig (provider names, root namespace defaults are not checked), no Kubernetes
//! label syntax checks beyond what Istio's CRDs enforce.

#![forbid(unsafe_code)]

mod analyze;
mod message;
pub mod model;
mod path;
mod resource;
mod validate;
mod yaml;

pub use analyze::{analyze, analyze_references};
pub use message::{Code, Level, Message, ResourceRef, codes};
pub use resource::{Loaded, Options, Resource, Spec, load, load_part};
pub use validate::validate;
pub use yaml::{Lines, Start, split};

/// Loads every `(file name, text)` and analyzes them together. Messages come sorted by
/// file, line and path.
pub fn analyze_sources<'a>(
    sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    options: &Options,
) -> Vec<Message> {
    let mut resources = Vec::new();
    let mut messages = Vec::new();
    for (file, text) in sources {
        let loaded = load(file, text, options);
        resources.extend(loaded.resources);
        messages.extend(loaded.messages);
    }
    messages.extend(analyze(&resources));
    messages.sort_by(|a, b| {
        (&a.file, a.line, &a.path, a.level).cmp(&(&b.file, b.line, &b.path, b.level))
    });
    messages
}

/// True when any message is an error (what makes `sparctl analyze` exit 1).
pub fn has_errors(messages: &[Message]) -> bool {
    messages.iter().any(|m| m.level == Level::Error)
}

#[cfg(test)]
mod tests;
