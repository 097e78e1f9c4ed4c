//! Kubernetes Service endpoints from a cluster's EndpointSlices, as Istio's Kubernetes
//! registry reads them: the slices labelled `kubernetes.io/service-name: NAME` in the
//! Service's namespace, each ready endpoint's first address, the Service port mapped to the
//! slice port of the same name, and the labels of the Pod the endpoint's `targetRef` names
//! (so DestinationRule subsets by `version` work).
//!
//! What it does not do: no I/O (the caller watches the cluster and passes plain data), no
//! topology (zone, node) or terminating/serving endpoints (only `ready` ones, where an unset
//! `ready` counts as ready, as the EndpointSlice API says), no FQDN addresses.

use std::collections::{BTreeMap, BTreeSet};

use spar_istio::model::Labels;
use spar_istio::model::kube::ServicePort;

use super::{Instance, ip_literal};

/// Everything the registry needs from a cluster to give Kubernetes Services endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeEndpoints {
    /// Every EndpointSlice, in any order (instances come out sorted by slice name).
    pub slices: Vec<EndpointSlice>,
    /// Pod labels by (namespace, name).
    pub pods: BTreeMap<(String, String), Labels>,
}

/// One EndpointSlice, reduced to what the registry reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// Its `kubernetes.io/service-name` label; empty when it has none (then it is ignored).
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// A slice port: the Service port's name (empty for an unnamed port) and the endpoint port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub port: u32,
}

/// One endpoint of a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Its addresses; all are the same endpoint, so only the first is used.
    pub addresses: Vec<String>,
    /// `conditions.ready`, with unset taken as true.
    pub ready: bool,
    /// The name of the Pod its `targetRef` names (in the slice's namespace), if any.
    pub pod: Option<String>,
}

impl KubeEndpoints {
    /// The instances of Service `namespace/name` with `ports`.
    pub(crate) fn instances(
        &self,
        namespace: &str,
        name: &str,
        ports: &[ServicePort],
    ) -> Vec<Instance> {
        let mut slices: Vec<&EndpointSlice> = self
            .slices
            .iter()
            .filter(|s| s.namespace == namespace && s.service == name && !s.service.is_empty())
            .collect();
        slices.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for slice in slices {
            let mapped: BTreeMap<u32, u32> = ports
                .iter()
                .filter_map(|p| {
                    let wanted = p.name.as_deref().unwrap_or("");
                    let sp = slice.ports.iter().find(|sp| sp.name == wanted)?;
                    Some((p.port, sp.port))
                })
                .collect();
            if mapped.is_empty() {
                continue;
            }
            for ep in slice.endpoints.iter().filter(|e| e.ready) {
                let Some(ip) = ep.addresses.first().and_then(|a| ip_literal(a)) else {
                    continue;
                };
                // An endpoint may sit in two slices while the controller moves it.
                if !seen.insert((ip.clone(), mapped.clone())) {
                    continue;
                }
                let labels = ep
                    .pod
                    .as_ref()
                    .and_then(|pod| self.pods.get(&(namespace.to_owned(), pod.clone())))
                    .cloned()
                    .unwrap_or_default();
                out.push(Instance {
                    ip,
                    ports: mapped.clone(),
                    labels,
                    weight: None,
                    // The pod's service account is not read yet: no identity check.
                    identity: None,
                });
            }
        }
        out
    }
}
