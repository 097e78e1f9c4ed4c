//! The service registry of one config snapshot: Kubernetes Services with their endpoints,
//! WorkloadEntries, and ServiceEntries.
//!
//! Where a Kubernetes Service's endpoints come from depends on the config source:
//! - Files ([`Registry::from_resources`]), the local-mesh convention (there are no pods to
//!   read addresses from): a Deployment lists its replicas' addresses in the annotation
//!   `spar.dev/endpoints: "127.0.0.1:9081,127.0.0.1:9082"` (on the Deployment or on its pod
//!   template), one `IP[:PORT]` per replica; `spar.dev/address: "127.0.0.1:9081"` is the
//!   one-replica form. The pod template's labels are each replica's labels (so `version: v1`
//!   makes subsets work). An address with a port serves every port of every Service that
//!   selects the Deployment; an address without one takes each Service port's `targetPort`
//!   (a number, or a container port name), else the port itself.
//! - A Kubernetes cluster ([`Registry::from_kubernetes`]): EndpointSlices, as Istio reads them;
//!   see [`KubeEndpoints`].
//!
//! In both, WorkloadEntries whose labels a Service's selector matches are endpoints too.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use spar_istio::model::Labels;
use spar_istio::model::kube::{DeploymentSpec, IntOrString, ServiceSpec};
use spar_istio::model::service_entry::{Resolution, ServiceEntry};
use spar_istio::model::workload::WorkloadEntry;
use spar_istio::{Resource, Spec};

use crate::Note;
use crate::names::{fqdn, protocol_of_port_name};

mod slices;

pub use slices::{EndpointSlice, KubeEndpoints, SliceEndpoint, SlicePort};

/// Annotation listing a Deployment's replica addresses (see the module docs).
pub const ENDPOINTS_ANNOTATION: &str = "spar.dev/endpoints";
/// One-replica form of [`ENDPOINTS_ANNOTATION`].
pub const ADDRESS_ANNOTATION: &str = "spar.dev/address";
/// Istio's annotation restricting where a Kubernetes Service is visible.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Where a service came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Kubernetes,
    ServiceEntry,
}

/// One service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub number: u32,
    pub name: String,
    /// Istio protocol name, upper case; empty when unknown (Istio sniffs; Spar takes HTTP).
    pub protocol: String,
}

/// One endpoint of a service: an address and the port it serves each service port on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub ip: String,
    /// Service port number -> endpoint port number.
    pub ports: BTreeMap<u32, u32>,
    pub labels: Labels,
    pub weight: Option<u32>,
    /// The workload's identity as `namespace/service-account`, when known (Deployments,
    /// WorkloadEntries): what a client expects the server's certificate to name.
    pub identity: Option<(String, String)>,
}

/// The label Istio's injection puts on workloads with a sidecar: auto mTLS speaks mTLS to
/// endpoints that carry it.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

impl Instance {
    /// Whether the workload has a sidecar that speaks Istio mTLS (`tlsMode: istio`).
    pub fn meshed(&self) -> bool {
        self.labels
            .get(TLS_MODE_LABEL)
            .is_some_and(|m| m == "istio")
    }
}

/// A service as proxies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Fully qualified host (`reviews.default.svc.cluster.local`, `api.example.com`).
    pub hostname: String,
    /// Short name (Kubernetes Services only).
    pub name: String,
    pub namespace: String,
    pub origin: Origin,
    pub ports: Vec<Port>,
    pub instances: Vec<Instance>,
    /// Namespaces it is exported to; empty or `*` means every namespace.
    pub export_to: Vec<String>,
}

impl Service {
    /// Whether a proxy in `namespace` may see this service.
    pub fn visible_from(&self, namespace: &str) -> bool {
        exported(&self.export_to, &self.namespace, namespace)
    }
}

/// Istio's exportTo: empty = all, `*` = all, `.` = own namespace, `~` = none, else names.
pub(crate) fn exported(export_to: &[String], own: &str, to: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == to || (e == "." && own == to))
}

/// Every service, sorted by host name then namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    services: Vec<Service>,
    /// Positions in `services` by host name in ASCII lower case (host lookups ignore case),
    /// ascending: a lookup visits one host's services, in registry order, instead of all.
    by_host: HashMap<String, Vec<usize>>,
    notes: Vec<Note>,
}

/// Where Kubernetes Services take their endpoints from.
#[derive(Clone, Copy)]
enum Endpoints<'a> {
    /// Deployments' `spar.dev/endpoints` annotations (the file source).
    Annotations,
    /// A cluster's EndpointSlices (the Kubernetes source).
    Slices(&'a KubeEndpoints),
}

impl Registry {
    /// Builds the registry from every resource (other kinds are ignored), Kubernetes
    /// Services taking their endpoints from Deployments' annotations (the file source).
    pub fn from_resources(resources: &[Resource]) -> Self {
        Self::build(resources, Endpoints::Annotations)
    }

    /// Builds the registry from every resource, Kubernetes Services taking their endpoints
    /// from a cluster's EndpointSlices (Deployments and their annotations are ignored).
    pub fn from_kubernetes(resources: &[Resource], endpoints: &KubeEndpoints) -> Self {
        Self::build(resources, Endpoints::Slices(endpoints))
    }

    fn build(resources: &[Resource], endpoints: Endpoints<'_>) -> Self {
        let mut reg = Registry::default();
        let deployments: Vec<(&Resource, &DeploymentSpec)> = resources
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::Deployment(d) => Some((r, d)),
                _ => None,
            })
            .collect();
        let workloads: Vec<(&Resource, &WorkloadEntry)> = resources
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::WorkloadEntry(w) => Some((r, w)),
                _ => None,
            })
            .collect();
        for r in resources {
            if let Spec::Service(s) = &r.spec {
                let service = reg.kube_service(r, s, endpoints, &deployments, &workloads);
                reg.services.push(service);
            }
        }
        for r in resources {
            if let Spec::ServiceEntry(se) = &r.spec {
                reg.service_entry(r, se, &workloads);
            }
        }
        reg.services
            .sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        for (i, s) in reg.services.iter().enumerate() {
            reg.by_host
                .entry(s.hostname.to_ascii_lowercase())
                .or_default()
                .push(i);
        }
        reg
    }

    /// Every service.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// What the registry could not take from the input (addresses, resolutions).
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The service for `hostname` that a proxy in `namespace` sees: its own namespace's
    /// first, else the first exported to it.
    pub fn service(&self, hostname: &str, namespace: &str) -> Option<&Service> {
        let key = if hostname.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(hostname.to_ascii_lowercase())
        } else {
            Cow::Borrowed(hostname)
        };
        let mut visible = self
            .by_host
            .get(key.as_ref())?
            .iter()
            .map(|&i| &self.services[i])
            .filter(|s| s.visible_from(namespace));
        let first = visible.next()?;
        if first.namespace == namespace {
            return Some(first);
        }
        Some(visible.find(|s| s.namespace == namespace).unwrap_or(first))
    }

    /// The services a proxy in `namespace` sees, one per host name: for each host, in
    /// registry order, the one [`Registry::service`] picks. O(services), where asking
    /// [`Registry::service`] for every host and deduplicating by scanning was quadratic.
    pub fn visible(&self, namespace: &str) -> Vec<&Service> {
        let mut out: Vec<&Service> = Vec::new();
        let mut taken: HashSet<&str> = HashSet::new();
        for s in &self.services {
            if taken.contains(s.hostname.as_str()) {
                continue;
            }
            if let Some(chosen) = self.service(&s.hostname, namespace) {
                taken.insert(chosen.hostname.as_str());
                out.push(chosen);
            }
        }
        out
    }

    fn kube_service(
        &mut self,
        r: &Resource,
        s: &ServiceSpec,
        endpoints: Endpoints<'_>,
        deployments: &[(&Resource, &DeploymentSpec)],
        workloads: &[(&Resource, &WorkloadEntry)],
    ) -> Service {
        let ports: Vec<Port> = s
            .ports
            .iter()
            .map(|p| {
                let name = p.name.clone().unwrap_or_default();
                Port {
                    number: p.port,
                    protocol: protocol_of_port_name(p.app_protocol.as_deref(), &name),
                    name,
                }
            })
            .collect();
        let mut instances = Vec::new();
        if let Endpoints::Slices(kube) = endpoints {
            instances.extend(kube.instances(&r.namespace, &r.meta.name, &s.ports));
        }
        if let Some(selector) = s.selector.as_ref().filter(|sel| !sel.is_empty()) {
            let deployments = match endpoints {
                Endpoints::Annotations => deployments,
                Endpoints::Slices(_) => &[],
            };
            for (d, spec) in deployments {
                let labels = &spec.template.metadata.labels;
                if d.namespace != r.namespace || !selects(selector, labels) {
                    continue;
                }
                let addresses = deployment_addresses(d, spec);
                if addresses.is_empty() {
                    self.notes.push(Note::new(
                        d,
                        "metadata.annotations",
                        format!(
                            "no {ENDPOINTS_ANNOTATION} annotation: Deployment gives Service {} no endpoints \
                             (the local mesh has no pods to read addresses from)",
                            r.meta.name
                        ),
                    ));
                }
                for (i, text) in addresses.iter().enumerate() {
                    let Some((ip, port)) = parse_address(text) else {
                        self.notes.push(Note::new(
                            d,
                            &format!("metadata.annotations[{ENDPOINTS_ANNOTATION}][{i}]"),
                            format!("`{text}` is not IP[:PORT]; ignored"),
                        ));
                        continue;
                    };
                    let ports = s
                        .ports
                        .iter()
                        .map(|p| {
                            let target = port.unwrap_or_else(|| target_port(p, spec));
                            (p.port, target)
                        })
                        .collect();
                    instances.push(Instance {
                        ip,
                        ports,
                        labels: labels.clone(),
                        weight: None,
                        identity: Some((
                            d.namespace.clone(),
                            service_account(&spec.template.spec.service_account_name),
                        )),
                    });
                }
            }
            for (w, we) in workloads {
                if w.namespace != r.namespace || !selects(selector, &we.labels) {
                    continue;
                }
                let Some(ip) = we.address.as_deref().and_then(ip_literal) else {
                    self.notes.push(Note::unsupported(
                        w,
                        "spec.address",
                        "WorkloadEntry addresses other than IP literals (DNS names, unix sockets)",
                    ));
                    continue;
                };
                let ports = s
                    .ports
                    .iter()
                    .map(|p| {
                        let named = p.name.as_ref().and_then(|n| we.ports.get(n)).copied();
                        let target = match &p.target_port {
                            Some(IntOrString::Int(t)) => *t,
                            _ => p.port,
                        };
                        (p.port, named.unwrap_or(target))
                    })
                    .collect();
                instances.push(Instance {
                    ip,
                    ports,
                    labels: we.labels.clone(),
                    weight: we.weight,
                    identity: Some((w.namespace.clone(), service_account(&we.service_account))),
                });
            }
        }
        let export_to = r
            .meta
            .annotations
            .get(EXPORT_TO_ANNOTATION)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        Service {
            hostname: fqdn(&r.meta.name, &r.namespace),
            name: r.meta.name.clone(),
            namespace: r.namespace.clone(),
            origin: Origin::Kubernetes,
            ports,
            instances,
            export_to,
        }
    }

    fn service_entry(
        &mut self,
        r: &Resource,
        se: &ServiceEntry,
        workloads: &[(&Resource, &WorkloadEntry)],
    ) {
        let resolution = se.resolution.unwrap_or_default();
        let ports: Vec<Port> = se
            .ports
            .iter()
            .map(|p| Port {
                number: p.number.unwrap_or_default(),
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_default().to_ascii_uppercase(),
            })
            .collect();
        let mut members: Vec<(String, &WorkloadEntry)> = Vec::new();
        if let Some(eps) = &se.endpoints {
            members.extend(
                eps.iter()
                    .enumerate()
                    .map(|(i, e)| (format!("spec.endpoints[{i}].address"), e)),
            );
        } else if let Some(sel) = se
            .workload_selector
            .as_ref()
            .and_then(|s| s.labels.as_ref())
        {
            members.extend(
                workloads
                    .iter()
                    .filter(|(w, we)| w.namespace == r.namespace && selects(sel, &we.labels))
                    .map(|(_, we)| ("spec.workloadSelector".to_owned(), *we)),
            );
        }
        match resolution {
            Resolution::None => self.notes.push(Note::unsupported(
                r,
                "spec.resolution",
                "resolution NONE (passthrough to the original destination); the hosts get no endpoints",
            )),
            Resolution::Dns | Resolution::DnsRoundRobin | Resolution::DynamicDns
                if members.is_empty() =>
            {
                self.notes.push(Note::unsupported(
                    r,
                    "spec.resolution",
                    "DNS resolution of the hosts (STRICT_DNS/LOGICAL_DNS clusters); the hosts get no endpoints",
                ))
            }
            _ => {}
        }
        let mut instances = Vec::new();
        for (path, we) in &members {
            let Some(ip) = we.address.as_deref().and_then(ip_literal) else {
                self.notes.push(Note::unsupported(
                    r,
                    path,
                    "endpoint addresses other than IP literals (DNS names, unix sockets)",
                ));
                continue;
            };
            let ports = se
                .ports
                .iter()
                .map(|p| {
                    let number = p.number.unwrap_or_default();
                    let named = p.name.as_ref().and_then(|n| we.ports.get(n)).copied();
                    (number, named.or(p.target_port).unwrap_or(number))
                })
                .collect();
            instances.push(Instance {
                ip,
                ports,
                labels: we.labels.clone(),
                weight: we.weight,
                identity: Some((r.namespace.clone(), service_account(&we.service_account))),
            });
        }
        for host in &se.hosts {
            let hostname = fqdn(host, &r.namespace);
            // A ServiceEntry naming a Kubernetes service only decorates it.
            if self
                .services
                .iter()
                .any(|s| s.origin == Origin::Kubernetes && s.hostname == hostname)
            {
                continue;
            }
            self.services.push(Service {
                hostname,
                name: String::new(),
                namespace: r.namespace.clone(),
                origin: Origin::ServiceEntry,
                ports: ports.clone(),
                instances: if resolution == Resolution::None {
                    Vec::new()
                } else {
                    instances.clone()
                },
                export_to: se.export_to.clone(),
            });
        }
    }
}

/// Whether every label of `selector` is in `labels`.
pub(crate) fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn deployment_addresses(d: &Resource, spec: &DeploymentSpec) -> Vec<String> {
    let annotations = [&d.meta.annotations, &spec.template.metadata.annotations];
    for a in annotations {
        if let Some(list) = a.get(ENDPOINTS_ANNOTATION) {
            return list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
    }
    for a in annotations {
        if let Some(one) = a.get(ADDRESS_ANNOTATION) {
            return vec![one.trim().to_owned()];
        }
    }
    Vec::new()
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn parse_address(text: &str) -> Option<(String, Option<u32>)> {
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return Some((sa.ip().to_string(), Some(u32::from(sa.port()))));
    }
    ip_literal(text).map(|ip| (ip, None))
}

fn ip_literal(text: &str) -> Option<String> {
    text.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// The endpoint port of a Service port for a pod of `spec`.
fn target_port(p: &spar_istio::model::kube::ServicePort, spec: &DeploymentSpec) -> u32 {
    match &p.target_port {
        Some(IntOrString::Int(t)) => *t,
        Some(IntOrString::String(name)) => spec
            .template
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .map_or(p.port, |cp| cp.container_port),
        None => p.port,
    }
}

#[cfg(test)]
mod tests;

/// A workload's service account: the one it names, else `default` (Kubernetes).
fn service_account(named: &Option<String>) -> String {
    named
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned()
}
