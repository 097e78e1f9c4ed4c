//! Proxies that get the same translation (Istio's SidecarScope, made exact), and a kept
//! translation brought up to date when only endpoints change.
//!
//! [`crate::translate`] is a pure function of the config, the registry and the
//! [`ProxyNode`]: its kind, its namespace and its labels. The labels are read only by
//! asking whether a workload selector of the config selects them (`registry::selects`):
//! Sidecar `workloadSelector`, Gateway `selector`, DestinationRule `workloadSelector`,
//! the `selector` of AuthorizationPolicy, PeerAuthentication, RequestAuthentication and
//! Telemetry, and VirtualService `sourceLabels` (HTTP, TLS and TCP matches). Two proxies of
//! the same kind and namespace that every one of those selectors answers alike get the same
//! translation, byte for byte: [`ScopeKey`] is that set of answers. A hundred sidecars in
//! ten namespaces under one Sidecar each are ten translations, not a hundred.
//!
//! [`endpoints_changed`] tells when a new configuration differs from the old one only in
//! services' endpoints; then [`ScopeTranslation::with_endpoints`] rebuilds just the clusters
//! of the services concerned and their load assignments (a cluster changes only when its
//! transport socket does, which auto mTLS derives from the endpoints), as a full
//! translation would build them.

use std::collections::{BTreeSet, HashMap};

use spar_istio::model::Labels;
use spar_istio::model::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use spar_istio::model::telemetry::Telemetry;
use spar_istio::{Resource, Spec};

use crate::registry::{Registry, Service, selects};
use crate::{Cx, ProxyKind, ProxyNode, Translation, cluster};

/// What decides a proxy's translation besides the config: proxies with equal keys (for the
/// same config) get identical translations. Keys of different configs are not comparable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    router: bool,
    namespace: String,
    /// Ordinals (see [`selectors`]) of the non-empty workload selectors that select the
    /// proxy's labels. An empty selector selects every proxy, so it tells none apart.
    selected: Vec<u32>,
}

impl ScopeKey {
    /// The key of `proxy` under the config `resources`.
    pub fn new(resources: &[Resource], proxy: &ProxyNode) -> ScopeKey {
        let mut selected = Vec::new();
        let mut ordinal = 0u32;
        selectors(resources, |selector| {
            if !selector.is_empty() {
                if selects(selector, &proxy.labels) {
                    selected.push(ordinal);
                }
                ordinal += 1;
            }
        });
        ScopeKey {
            router: proxy.kind == ProxyKind::Router,
            namespace: proxy.namespace.clone(),
            selected,
        }
    }
}

/// Calls `each` with every workload selector in `resources` that the translation may match
/// against a proxy's labels, in input order. The match is exhaustive so that a new kind
/// must be placed here; kinds whose selectors pick endpoints (Service, ServiceEntry) are
/// read through the registry and select no proxy.
fn selectors<'a>(resources: &'a [Resource], mut each: impl FnMut(&'a Labels)) {
    for r in resources {
        match &r.spec {
            Spec::VirtualService(v) => {
                for m in v.http.iter().flat_map(|h| &h.matches) {
                    each(&m.source_labels);
                }
                for m in v.tls.iter().flat_map(|t| &t.matches) {
                    each(&m.source_labels);
                }
                for m in v.tcp.iter().flat_map(|t| &t.matches) {
                    each(&m.source_labels);
                }
            }
            Spec::DestinationRule(d) => {
                if let Some(l) = d
                    .workload_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                {
                    each(l);
                }
            }
            Spec::Gateway(g) => {
                if let Some(l) = &g.selector {
                    each(l);
                }
            }
            Spec::Sidecar(s) => {
                if let Some(l) = s.workload_selector.as_ref().and_then(|s| s.labels.as_ref()) {
                    each(l);
                }
            }
            Spec::PeerAuthentication(PeerAuthentication { selector, .. })
            | Spec::RequestAuthentication(RequestAuthentication { selector, .. })
            | Spec::AuthorizationPolicy(AuthorizationPolicy { selector, .. })
            | Spec::Telemetry(Telemetry { selector, .. }) => {
                if let Some(l) = selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
                    each(l);
                }
            }
            Spec::ServiceEntry(_)
            | Spec::WorkloadEntry(_)
            | Spec::WorkloadGroup(_)
            | Spec::Service(_)
            | Spec::Deployment(_)
            | Spec::Namespace
            | Spec::Unsupported
            | Spec::Undecodable => {}
        }
    }
}

/// The kinds the translation reads only through the [`Registry`] (services and their
/// endpoints): an endpoint change edits these (a Deployment's `spar.dev/endpoints`, a
/// ServiceEntry's `endpoints`) and nothing else.
fn registry_kind(spec: &Spec) -> bool {
    matches!(
        spec,
        Spec::Service(_) | Spec::Deployment(_) | Spec::ServiceEntry(_) | Spec::WorkloadEntry(_)
    )
}

/// Whether two resources are the same object with the same content (where they were read
/// from aside).
fn same_resource(a: &Resource, b: &Resource) -> bool {
    a.kind == b.kind
        && a.api_version == b.api_version
        && a.namespace == b.namespace
        && a.meta == b.meta
        && a.spec == b.spec
}

/// Whether two services are the same but for their endpoints. Destructured so that a new
/// field of [`Service`] must be placed here: compared, or known to be endpoints only.
fn same_but_endpoints(a: &Service, b: &Service) -> bool {
    let Service {
        hostname,
        name,
        namespace,
        origin,
        ports,
        instances: _,
        export_to,
    } = a;
    *hostname == b.hostname
        && *name == b.name
        && *namespace == b.namespace
        && *origin == b.origin
        && *ports == b.ports
        && *export_to == b.export_to
}

/// The hosts whose services' endpoints changed from the old config to the new one, when
/// nothing else any translation reads did: every resource but the registry's kinds equal
/// and in the same order, the same services with the same ports and visibility. `None`
/// when anything else changed (translate again). Empty when nothing a proxy sees changed.
pub fn endpoints_changed(
    old: (&[Resource], &Registry),
    new: (&[Resource], &Registry),
) -> Option<BTreeSet<String>> {
    let mut old_config = old.0.iter().filter(|r| !registry_kind(&r.spec));
    let mut new_config = new.0.iter().filter(|r| !registry_kind(&r.spec));
    loop {
        match (old_config.next(), new_config.next()) {
            (None, None) => break,
            (Some(a), Some(b)) if same_resource(a, b) => {}
            _ => return None,
        }
    }
    let (old_services, new_services) = (old.1.services(), new.1.services());
    if old_services.len() != new_services.len() {
        return None;
    }
    let mut hosts = BTreeSet::new();
    for (a, b) in old_services.iter().zip(new_services) {
        if !same_but_endpoints(a, b) {
            return None;
        }
        if a.instances != b.instances {
            hosts.insert(b.hostname.clone());
        }
    }
    Some(hosts)
}

/// The translation of one scope, kept with what an endpoint change needs to update it.
#[derive(Clone, Debug)]
pub struct ScopeTranslation {
    pub translation: Translation,
    /// A proxy of the scope (any: they translate alike).
    proxy: ProxyNode,
    /// The services whose clusters the translation built, (host, namespace) in build order.
    services: Vec<(String, String)>,
}

impl ScopeTranslation {
    /// Translates for `proxy` (and every proxy with its [`ScopeKey`]).
    pub fn new(resources: &[Resource], registry: &Registry, proxy: &ProxyNode) -> Self {
        let (translation, services) = crate::translate_keeping_services(resources, registry, proxy);
        ScopeTranslation {
            translation,
            proxy: proxy.clone(),
            services,
        }
    }

    /// This translation after an endpoint change: `resources` and `registry` are the new
    /// config and `hosts` what [`endpoints_changed`] said of it. The clusters of the services
    /// of those hosts and their assignments are rebuilt, as [`crate::translate`] builds
    /// them; everything else is kept. Returns the new translation with what changed in it.
    pub fn with_endpoints(
        mut self,
        resources: &[Resource],
        registry: &Registry,
        hosts: &BTreeSet<String>,
    ) -> (ScopeTranslation, Rebuilt) {
        let mut rebuilt = HashMap::new();
        let mut cx = Cx::new(resources, registry, &self.proxy);
        for (host, ns) in self.services.iter().filter(|(h, _)| hosts.contains(h)) {
            let service = registry
                .services()
                .iter()
                .find(|s| s.hostname == *host && s.namespace == *ns);
            if let Some(service) = service {
                cluster::build_service(&mut cx, service, &mut rebuilt);
            }
        }
        let mut changed = Rebuilt::default();
        let mut assignments = HashMap::new();
        for c in &mut self.translation.clusters {
            if let Some(new) = rebuilt.remove(&c.name) {
                if *c != new.cluster {
                    changed.clusters.insert(c.name.clone());
                    *c = new.cluster;
                }
                if let Some(la) = new.assignment {
                    assignments.insert(la.cluster_name.clone(), la);
                }
            }
        }
        for la in &mut self.translation.endpoints {
            if let Some(new) = assignments.remove(&la.cluster_name)
                && *la != new
            {
                changed.endpoints.insert(la.cluster_name.clone());
                *la = new;
            }
        }
        (self, changed)
    }
}

/// What [`ScopeTranslation::with_endpoints`] changed, by name: the clusters (their
/// transport socket, when auto mTLS turned) and the assignments (their endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub clusters: BTreeSet<String>,
    pub endpoints: BTreeSet<String>,
}

#[cfg(test)]
mod tests;
