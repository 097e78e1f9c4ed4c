//! Istio configuration into Envoy xDS resources, per proxy: the translation half of
//! Spar's control plane.
//!
//! What it does:
//! - [`Registry::from_resources`]: the service registry from Kubernetes Services (endpoints
//!   from Deployments through the `spar.dev/endpoints` annotation, and from WorkloadEntries)
//!   and ServiceEntries. See [`registry`] for the local-mesh convention.
//!   [`Registry::from_kubernetes`]: the same, with Kubernetes Services' endpoints from a
//!   cluster's EndpointSlices and Pod labels ([`registry::KubeEndpoints`]).
//! - [`translate`]: for one proxy ([`ProxyNode`]: a gateway router or a sidecar), the
//!   listeners (each HTTP connection manager carries its route configuration inline, as
//!   spar-proxy has no RDS yet), the route configurations again on their own (for RDS and
//!   `proxy-config routes`), the clusters (a service's clusters of type EDS over ADS, as
//!   Istio makes them; the inbound ones to a Sidecar's `defaultEndpoint` STATIC, endpoints
//!   inline) and the EDS clusters' ClusterLoadAssignments, named by cluster. Names follow Istio:
//!   clusters `outbound|9080|v1|reviews.default.svc.cluster.local`, gateway listeners
//!   `0.0.0.0_8080` with routes `http.8080`, virtual hosts `HOST:PORT`.
//! - Mesh mTLS: to upstreams (DestinationRule `ISTIO_MUTUAL`, auto mTLS) and on sidecar
//!   inbound listeners, in the mode PeerAuthentication sets (STRICT, PERMISSIVE by default,
//!   DISABLE), with TLS contexts naming the SDS secrets the proxy's identity serves.
//! - Opaque TCP and TLS (module `tcp`): `tcp_proxy` listeners for Sidecar egress listeners on
//!   TCP ports (VirtualService `tcp` routes) and TLS ports (`tls` routes by SNI), for TCP
//!   ingress listeners (secured as the HTTP ones, with network RBAC), and for gateway TCP
//!   and TLS `PASSTHROUGH` servers.
//! - AuthorizationPolicy as RBAC filters: HTTP for connection managers, network for TCP
//!   proxies (Istio's rule for HTTP-only fields on TCP).
//! - Everything the Istio config asks for that spar-proxy cannot do yet (TLS origination
//!   with Kubernetes secrets, TLS termination on gateways, transparent capture, UDP,
//!   EnvoyFilter, ...) becomes a [`Note`] naming the resource and field, never a silent
//!   drop.
//!
//! What it does not do: no I/O, no clock, no validation (its input has passed
//! `spar_istio::validate`; what still makes no sense is skipped with a note), no
//! serialization (spar-config turns envoy-types structs into JSON), no xDS transport.

#![forbid(unsafe_code)]

mod authz;
mod cluster;
mod listener;
mod names;
mod peer_authn;
pub mod registry;
mod route;
mod scope;
mod tcp;
mod upstream_tls;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use spar_istio::model::Labels;
use spar_istio::{Resource, ResourceRef, Spec};

pub use registry::Registry;
pub use scope::{Rebuilt, ScopeKey, ScopeTranslation, endpoints_changed};

/// Istio's default root namespace: selector-less Sidecars and DestinationRules there apply
/// mesh-wide.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// What kind of proxy asks for config (Istio's node type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// A workload's sidecar (`sidecar~...`).
    Sidecar,
    /// A gateway (`router~...`).
    Router,
}

/// The proxy being configured: what Istio reads from its node id and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyNode {
    pub kind: ProxyKind,
    pub namespace: String,
    /// The workload's labels (Gateway `selector` and Sidecar `workloadSelector` match them).
    pub labels: Labels,
}

/// Something the config says that the translation could not express for spar-proxy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// The resource it comes from, when there is one.
    pub resource: Option<ResourceRef>,
    /// Field path in that resource (`spec.http[0].fault.delay.exponentialDelay`).
    pub path: String,
    pub message: String,
}

impl Note {
    fn new(r: &Resource, path: &str, message: impl Into<String>) -> Self {
        Note {
            resource: Some(r.reference()),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// "unsupported by spar-proxy yet: WHAT".
    fn unsupported(r: &Resource, path: &str, what: &str) -> Self {
        Self::new(r, path, format!("{UNSUPPORTED}{what}"))
    }

    /// WHAT, when the note says spar-proxy cannot do WHAT yet (rather than, say, that a
    /// referenced host is missing).
    pub fn unsupported_feature(&self) -> Option<&str> {
        self.message.strip_prefix(UNSUPPORTED)
    }
}

const UNSUPPORTED: &str = "unsupported by spar-proxy yet: ";

/// Envoy resources for one proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    pub listeners: Vec<Listener>,
    /// The route configurations the listeners carry inline, by name.
    pub routes: Vec<RouteConfiguration>,
    /// Sorted by name.
    pub clusters: Vec<Cluster>,
    /// The load assignments of the EDS clusters (EDS), named by their cluster, sorted by
    /// name. STATIC clusters carry theirs inline and have none here.
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// Sorted, without duplicates.
    pub notes: Vec<Note>,
}

/// What one translation reads and collects.
pub(crate) struct Cx<'a> {
    pub(crate) resources: &'a [Resource],
    pub(crate) registry: &'a Registry,
    pub(crate) proxy: &'a ProxyNode,
    pub(crate) notes: Vec<Note>,
    /// Clusters the routes refer to: name -> (host, subset, port).
    pub(crate) wanted: BTreeMap<String, cluster::Want>,
    /// The DestinationRules this proxy sees, each with its host as an FQDN: made once per
    /// translation, not once per service and port.
    pub(crate) dest_rules: cluster::VisibleDrs<'a>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        resources: &'a [Resource],
        registry: &'a Registry,
        proxy: &'a ProxyNode,
    ) -> Self {
        Cx {
            resources,
            registry,
            proxy,
            notes: Vec::new(),
            wanted: BTreeMap::new(),
            dest_rules: cluster::visible_destination_rules(resources, proxy),
        }
    }

    pub(crate) fn note(&mut self, r: &Resource, path: &str, message: impl Into<String>) {
        self.notes.push(Note::new(r, path, message));
    }

    pub(crate) fn unsupported(&mut self, r: &Resource, path: &str, what: &str) {
        self.notes.push(Note::unsupported(r, path, what));
    }

    /// Resources of one kind, with their specs.
    pub(crate) fn each<T: 'a>(
        &self,
        pick: fn(&'a Spec) -> Option<&'a T>,
    ) -> impl Iterator<Item = (&'a Resource, &'a T)> + 'a {
        self.resources
            .iter()
            .filter_map(move |r| pick(&r.spec).map(|s| (r, s)))
    }
}

/// Translates `resources` (already validated) for `proxy`.
pub fn translate(resources: &[Resource], registry: &Registry, proxy: &ProxyNode) -> Translation {
    translate_keeping_services(resources, registry, proxy).0
}

/// [`translate`], with the services whose clusters it built (host and namespace, in the
/// order built): what [`ScopeTranslation::with_endpoints`] rebuilds.
pub(crate) fn translate_keeping_services(
    resources: &[Resource],
    registry: &Registry,
    proxy: &ProxyNode,
) -> (Translation, Vec<(String, String)>) {
    let mut cx = Cx::new(resources, registry, proxy);
    for r in resources {
        if r.spec == Spec::Unsupported {
            cx.unsupported(r, "", &format!("kind {}", r.kind));
        }
    }
    let (listeners, routes, extra_clusters, services) = match proxy.kind {
        ProxyKind::Router => listener::gateway(&mut cx),
        ProxyKind::Sidecar => listener::sidecar(&mut cx),
    };
    let built = cluster::build_all(&mut cx, &services);
    let mut clusters = Vec::with_capacity(built.len() + extra_clusters.len());
    let mut endpoints = Vec::with_capacity(built.len());
    for b in built {
        clusters.push(b.cluster);
        endpoints.extend(b.assignment);
    }
    clusters.extend(extra_clusters);
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    endpoints.sort_by(|a: &ClusterLoadAssignment, b| a.cluster_name.cmp(&b.cluster_name));
    let mut notes = cx.notes;
    notes.sort();
    notes.dedup();
    let built = services
        .iter()
        .map(|s| (s.hostname.clone(), s.namespace.clone()))
        .collect();
    let t = Translation {
        listeners,
        routes,
        clusters,
        endpoints,
        notes,
    };
    (t, built)
}
