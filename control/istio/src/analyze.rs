//! Analysis across resources, as `istioctl analyze`'s analyzers do: references to gateways,
//! hosts and subsets that the input does not define, VirtualService hosts a bound gateway
//! does not serve, and HTTP rules that can never match. All of these are warnings: the
//! missing object may exist elsewhere in the cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::message::{Message, codes};
use crate::model::virtual_service::{Destination, VirtualService};
use crate::resource::{Resource, Spec};
use crate::validate::{self, is_ip, wildcard_match};

/// Kubernetes' cluster domain suffix for Services.
const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Every message about `resources`: each one's validation, then the cross-resource checks.
pub fn analyze(resources: &[Resource]) -> Vec<Message> {
    let mut out: Vec<Message> = resources.iter().flat_map(validate::validate).collect();
    out.extend(analyze_references(resources));
    out
}

/// The cross-resource checks alone, without each resource's validation (which depends on
/// that resource only, so a caller may keep it for resources that did not change).
pub fn analyze_references(resources: &[Resource]) -> Vec<Message> {
    let mut out = Vec::new();
    let index = Index::new(resources);
    for r in resources {
        if let Spec::VirtualService(vs) = &r.spec {
            virtual_service(&index, r, vs, &mut out);
        }
    }
    out
}

/// Expands a short name with the namespace of the object that wrote it.
pub(crate) fn fqdn(host: &str, ns: &str) -> String {
    if host.contains('.') || host == "*" || is_ip(host) {
        host.to_owned()
    } else {
        format!("{host}.{ns}.{CLUSTER_DOMAIN}")
    }
}

struct Index<'a> {
    gateways: BTreeMap<(String, String), &'a crate::model::gateway::Gateway>,
    /// Hosts defined by Services (FQDN) and ServiceEntries (maybe wildcards).
    hosts: BTreeSet<String>,
    /// DestinationRule host (FQDN or wildcard) -> subset names, across all rules.
    subsets: Vec<(String, BTreeSet<String>)>,
    /// Lookups by host instead of a scan of every host per reference (1,000 Services and
    /// 3,000 destinations made the scan the bulk of a whole analysis): `hosts` in lower
    /// case, the wildcard ones among them, and `subsets` positions by lower-case host and
    /// of the wildcard hosts.
    hosts_lower: HashSet<String>,
    wildcard_hosts: Vec<String>,
    subsets_by_host: HashMap<String, Vec<usize>>,
    wildcard_subsets: Vec<usize>,
}

impl<'a> Index<'a> {
    fn new(resources: &'a [Resource]) -> Self {
        let mut index = Index {
            gateways: BTreeMap::new(),
            hosts: BTreeSet::new(),
            subsets: Vec::new(),
            hosts_lower: HashSet::new(),
            wildcard_hosts: Vec::new(),
            subsets_by_host: HashMap::new(),
            wildcard_subsets: Vec::new(),
        };
        for r in resources {
            let ns = r.namespace.as_str();
            match &r.spec {
                Spec::Gateway(gw) => {
                    index
                        .gateways
                        .insert((ns.to_owned(), r.meta.name.clone()), gw);
                }
                Spec::Service(_) => {
                    index
                        .hosts
                        .insert(format!("{}.{ns}.{CLUSTER_DOMAIN}", r.meta.name));
                }
                Spec::ServiceEntry(se) => {
                    index.hosts.extend(se.hosts.iter().map(|h| fqdn(h, ns)));
                }
                Spec::DestinationRule(dr) => {
                    let names = dr.subsets.iter().map(|s| s.name.clone()).collect();
                    index.subsets.push((fqdn(&dr.host, ns), names));
                }
                _ => {}
            }
        }
        for known in &index.hosts {
            index.hosts_lower.insert(known.to_ascii_lowercase());
            if known.starts_with('*') {
                index.wildcard_hosts.push(known.clone());
            }
        }
        for (i, (h, _)) in index.subsets.iter().enumerate() {
            if h.starts_with('*') {
                index.wildcard_subsets.push(i);
            } else {
                index
                    .subsets_by_host
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push(i);
            }
        }
        index
    }

    /// True when a Service or ServiceEntry in the input provides `host` (an FQDN, or a
    /// `name.namespace` form that Kubernetes DNS also resolves).
    fn has_host(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        // A known host equal to it (ignoring case), or a wildcard one covering it...
        self.hosts_lower.contains(&h)
            || self.wildcard_hosts.iter().any(|known| wildcard_match(known, &h))
            // ... or one it is the `name.namespace[.svc]` form of.
            || self.hosts.contains(&format!("{h}.svc.cluster.local"))
            || self.hosts.contains(&format!("{h}.cluster.local"))
    }

    fn has_subset(&self, host: &str, subset: &str) -> bool {
        let named = |i: &usize| self.subsets[*i].1.contains(subset);
        self.subsets_by_host
            .get(&host.to_ascii_lowercase())
            .is_some_and(|at| at.iter().any(named))
            || self
                .wildcard_subsets
                .iter()
                .any(|i| wildcard_match(&self.subsets[*i].0, host) && named(i))
    }
}

fn virtual_service(index: &Index<'_>, r: &Resource, vs: &VirtualService, out: &mut Vec<Message>) {
    let ns = r.namespace.as_str();
    let check_gateway = |path: String, g: &str, out: &mut Vec<Message>| {
        if g == "mesh" {
            return None;
        }
        let (gns, name) = g.split_once('/').unwrap_or((ns, g));
        let key = (gns.to_owned(), name.to_owned());
        match index.gateways.get(&key) {
            Some(gw) => Some(*gw),
            None => {
                out.push(r.message(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    &path,
                    format!("Referenced gateway not found: \"{gns}/{name}\""),
                ));
                None
            }
        }
    };
    for (i, g) in vs.gateways.iter().enumerate() {
        let Some(gw) = check_gateway(format!("spec.gateways[{i}]"), g, out) else {
            continue;
        };
        for (j, host) in vs.hosts.iter().enumerate() {
            let served = gw.servers.iter().flat_map(|s| &s.hosts).any(|sh| {
                let sh = sh.split_once('/').map_or(sh.as_str(), |(_, h)| h);
                wildcard_match(sh, host) || wildcard_match(host, sh)
            });
            if !served {
                out.push(r.message(
                    codes::VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                    &format!("spec.hosts[{j}]"),
                    format!("one or more host [{host}] defined in VirtualService {ns}/{} not found in Gateway {g}", r.meta.name),
                ));
            }
        }
    }
    let mut dests: Vec<(String, &Destination)> = Vec::new();
    for (i, h) in vs.http.iter().enumerate() {
        let p = format!("spec.http[{i}]");
        for (j, m) in h.matches.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                check_gateway(format!("{p}.match[{j}].gateways[{k}]"), g, out);
            }
        }
        for (j, d) in h.route.iter().enumerate() {
            if let Some(dest) = &d.destination {
                dests.push((format!("{p}.route[{j}].destination"), dest));
            }
        }
        if let Some(m) = &h.mirror {
            dests.push((format!("{p}.mirror"), m));
        }
        for (j, m) in h.mirrors.iter().enumerate() {
            if let Some(dest) = &m.destination {
                dests.push((format!("{p}.mirrors[{j}].destination"), dest));
            }
        }
        // A rule with no match catches everything: later rules are unreachable.
        if i + 1 < vs.http.len() && h.matches.is_empty() && h.delegate.is_none() {
            out.push(r.message(
                codes::VIRTUAL_SERVICE_UNREACHABLE_RULE,
                &format!("spec.http[{}]", i + 1),
                format!("VirtualService rule #{} not used (rule #{i} has no match and catches every request)", i + 1),
            ));
        }
    }
    for (kind, routes) in [
        ("tls", vs.tls.iter().map(|t| &t.route).collect::<Vec<_>>()),
        ("tcp", vs.tcp.iter().map(|t| &t.route).collect()),
    ] {
        for (i, route) in routes.iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                if let Some(dest) = &d.destination {
                    dests.push((format!("spec.{kind}[{i}].route[{j}].destination"), dest));
                }
            }
        }
    }
    for (path, d) in dests {
        if d.host.is_empty() {
            continue;
        }
        let host = fqdn(&d.host, ns);
        if !index.has_host(&host) {
            out.push(r.message(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                &format!("{path}.host"),
                format!("Referenced host not found: {:?}", d.host),
            ));
        }
        if let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty())
            && !index.has_subset(&host, subset)
        {
            out.push(r.message(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                &format!("{path}.subset"),
                format!(
                    "Referenced host+subset in destinationrule not found: \"{}+{subset}\"",
                    d.host
                ),
            ));
        }
    }
}
