//! Opaque TCP and TLS traffic: VirtualService `tcp` and `tls` routes into `tcp_proxy`
//! filter chains, for a sidecar's explicit egress and ingress listeners and for a gateway's
//! TCP and TLS-passthrough servers, as Istio builds them (pilot `listener_builder`,
//! `networking/core/tls.go`, `gateway.go`).
//!
//! Istio decides some route matches in the config it generates (ports, source labels and
//! namespace, gateways) and leaves others to the proxy (`destinationSubnets`, SNI). Here
//! the SNI stays a filter chain match (`server_names`); destination subnets are decided
//! here too, as an explicit listener is bound to one address: a subnet match holds when it
//! contains the bind address (what Envoy would compare), and cannot be decided for a
//! wildcard bind (a note says so, and the match is left out).
//!
//! What a route sends a connection to: one cluster, or weighted clusters (weight 0 left
//! out, as Istio does), named as HTTP routes name them (`outbound|PORT|SUBSET|HOST`, with
//! their mesh TLS from the cluster's DestinationRule or auto mTLS).

use std::net::IpAddr;

use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::util::pack_any;
use spar_istio::Resource;
use spar_istio::model::Labels;
use spar_istio::model::gateway::{Server, ServerTlsMode};
use spar_istio::model::virtual_service::{RouteDestination, VirtualService};

use crate::Cx;
use crate::authz::NETWORK_RBAC_FILTER;
use crate::cluster::{destination_rule, socket};
use crate::listener::server_host;
use crate::names::{covers, fqdn, outbound_cluster};
use crate::registry::{Service, selects};
use crate::route::{Place, cluster_for};

/// The network filter name Envoy registers the TCP proxy under.
pub(crate) const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";

/// Where a connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Cluster(String),
    /// (cluster, weight), weights above 0.
    Weighted(Vec<(String, u32)>),
}

/// A mesh VirtualService with its hosts as FQDNs.
pub(crate) type MeshVs<'a> = (&'a Resource, &'a VirtualService, Vec<String>);

/// A TCP proxy filter to `target`. Istio names its stats after the cluster; a weighted
/// proxy after its first cluster. A single cluster takes the idle timeout of its
/// DestinationRule's `connectionPool.tcp.idleTimeout`, as Istio sets it (else Envoy's
/// default, 1 h).
fn proxy_filter(cx: &Cx<'_>, target: &Target) -> Filter {
    let idle_timeout = match target {
        Target::Cluster(c) => idle_timeout(cx, c),
        Target::Weighted(_) => None,
    };
    let (stat_prefix, specifier) = match target {
        Target::Cluster(c) => (c.clone(), tcp_proxy::ClusterSpecifier::Cluster(c.clone())),
        Target::Weighted(ws) => (
            ws.first().map(|(c, _)| c.clone()).unwrap_or_default(),
            tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
                clusters: ws
                    .iter()
                    .map(
                        |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                            name: name.clone(),
                            weight: *weight,
                            ..Default::default()
                        },
                    )
                    .collect(),
            }),
        ),
    };
    let proxy = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(specifier),
        idle_timeout,
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY_FILTER.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}

/// The DestinationRule idle timeout for an outbound cluster (`outbound|PORT|SUBSET|HOST`).
fn idle_timeout(cx: &Cx<'_>, cluster: &str) -> Option<envoy_types::pb::google::protobuf::Duration> {
    let mut parts = cluster.splitn(4, '|');
    let (Some("outbound"), Some(port), Some(subset), Some(host)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let port = port.parse().ok()?;
    let svc = cx.registry.service(host, &cx.proxy.namespace)?;
    destination_rule(cx, &svc.hostname, &svc.namespace)?
        .effective(subset, port)
        .tcp_idle_timeout()
}

/// The network RBAC filters, then the TCP proxy: a filter chain's filters.
pub(crate) fn filters(cx: &Cx<'_>, rbac: &[NetworkRbac], target: &Target) -> Vec<Filter> {
    rbac.iter()
        .map(|r| Filter {
            name: NETWORK_RBAC_FILTER.to_owned(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(r.clone()))),
        })
        .chain(std::iter::once(proxy_filter(cx, target)))
        .collect()
}

/// The target of a route's destinations: one destination takes everything (its weight
/// does not matter), several are weighted and those of weight 0 left out, as Istio's
/// `buildOutboundNetworkFilters`. `None` when nothing is left.
fn destinations(
    cx: &mut Cx<'_>,
    place: &Place<'_>,
    route: &[RouteDestination],
    at: &str,
) -> Option<Target> {
    let dests: Vec<_> = route
        .iter()
        .enumerate()
        .filter_map(|(j, d)| d.destination.as_ref().map(|dest| (j, d.weight, dest)))
        .collect();
    if let [(j, _, dest)] = dests[..] {
        let path = format!("{at}.route[{j}].destination");
        return Some(Target::Cluster(cluster_for(cx, place, dest, &path)));
    }
    let mut out = Vec::new();
    for (j, weight, dest) in dests {
        let weight = weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(0);
        if weight == 0 {
            continue;
        }
        let path = format!("{at}.route[{j}].destination");
        out.push((cluster_for(cx, place, dest, &path), weight));
    }
    match out.len() {
        0 => None,
        1 => out.pop().map(|(c, _)| Target::Cluster(c)),
        _ => Some(Target::Weighted(out)),
    }
}

/// The static part of an L4 or TLS match on a sidecar (the `mesh` gateway): port, source
/// labels and namespace, gateways (Istio's `matchTCP`, `matchTLS`).
fn sidecar_match(
    cx: &Cx<'_>,
    port: Option<u32>,
    source_labels: &Labels,
    gateways: &[String],
    source_namespace: Option<&str>,
    listener_port: u32,
) -> bool {
    (gateways.is_empty() || gateways.iter().any(|g| g == "mesh"))
        && selects(source_labels, &cx.proxy.labels)
        && port.is_none_or(|p| p == listener_port)
        && source_namespace.is_none_or(|n| n == cx.proxy.namespace)
}

/// A filter chain being chosen: its SNI and destination subnet conditions and target.
#[derive(Clone, Debug)]
struct Candidate {
    server_names: Vec<String>,
    subnets: Vec<String>,
    target: Target,
}

/// Where an explicit listener is bound, for deciding destination subnets.
#[derive(Clone, Copy)]
pub(crate) struct Bind<'a> {
    pub(crate) address: &'a str,
    pub(crate) port: u32,
}

impl Bind<'_> {
    /// The bound IP, unless it is a wildcard (then the destination is not known here).
    fn ip(&self) -> Option<IpAddr> {
        self.address
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| !ip.is_unspecified())
    }

    /// The listener's name, `ADDRESS_PORT`.
    fn name(&self) -> String {
        format!("{}_{}", self.address, self.port)
    }
}

/// The longest prefix among `subnets` (CIDRs or IPs) that contains `ip`.
fn longest_prefix(subnets: &[String], ip: IpAddr) -> Option<u8> {
    subnets
        .iter()
        .filter_map(|s| {
            let (addr, len) = match s.split_once('/') {
                Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
                None => {
                    let a = s.parse::<IpAddr>().ok()?;
                    (a, if a.is_ipv4() { 32 } else { 128 })
                }
            };
            let inside = match (addr, ip) {
                (IpAddr::V4(a), IpAddr::V4(b)) if len <= 32 => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    u32::from(a) & mask == u32::from(b) & mask
                }
                (IpAddr::V6(a), IpAddr::V6(b)) if len <= 128 => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    u128::from(a) & mask == u128::from(b) & mask
                }
                _ => false,
            };
            inside.then_some(len)
        })
        .max()
}

/// Decides the destination subnets of `candidates` against the bind address: a candidate
/// whose subnets contain it stands in for Envoy's most specific (longest prefix) match and
/// loses its subnets; one whose subnets do not is dropped; candidates without subnets stay.
/// Several with the same remaining match: the first stays (Envoy refuses identical matches,
/// and Istio keeps the first). The result is in Envoy's order of preference per SNI.
fn decide(
    cx: &mut Cx<'_>,
    at: (&Resource, &str),
    bind: Bind<'_>,
    candidates: Vec<Candidate>,
) -> Vec<Candidate> {
    let ip = bind.ip();
    let mut scored: Vec<(Option<u8>, Candidate)> = Vec::new();
    for c in candidates {
        if c.subnets.is_empty() {
            scored.push((None, c));
            continue;
        }
        let Some(ip) = ip else {
            cx.unsupported(
                at.0,
                at.1,
                "destinationSubnets on a listener bound to a wildcard address (bind it to one address)",
            );
            continue;
        };
        if let Some(len) = longest_prefix(&c.subnets, ip) {
            scored.push((Some(len), c));
        }
    }
    // Per SNI set: the longest subnet match wins, then a match without subnets; the first
    // of equals.
    let mut out: Vec<(Option<u8>, Candidate)> = Vec::new();
    for (score, c) in scored {
        match out
            .iter_mut()
            .find(|(_, o)| o.server_names == c.server_names)
        {
            Some(slot) if score > slot.0 => *slot = (score, c),
            Some(_) => {}
            None => out.push((score, c)),
        }
    }
    out.into_iter().map(|(_, c)| c).collect()
}

/// Istio's SNI match: sorted, and none at all when a `*` is among them.
fn sni(hosts: &[String]) -> Vec<String> {
    if hosts.iter().any(|h| h == "*") {
        return Vec::new();
    }
    let mut out: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    out.sort();
    out.dedup();
    out
}

/// The cluster Istio sends a service's unrouted traffic to on an explicit listener port:
/// the service's port when it has only one, else the listener's.
fn default_target(svc: &Service, port: u32) -> Target {
    let port = match svc.ports.as_slice() {
        [only] => only.number,
        _ => port,
    };
    Target::Cluster(outbound_cluster(port, "", &svc.hostname))
}

/// A sidecar's explicit egress listener for opaque traffic (`tls`: the port's protocol is
/// TLS or HTTPS, routed by SNI with `tls` routes; else `tcp` routes). Each imported service
/// contributes its routes' filter chains, then its own cluster when no route took all its
/// traffic; as in Istio (`mergeTCPFilterChains`), a chain whose match an earlier one
/// already has is dropped, so with several services on the port and nothing to tell them
/// apart, the first service (by host name here, by creation time in Istio) takes the
/// connections; the others get a note.
pub(crate) fn egress_listener(
    cx: &mut Cx<'_>,
    sidecar: &Resource,
    at: &str,
    bind: Bind<'_>,
    tls: bool,
    services: &[&Service],
    vss: &[MeshVs<'_>],
) -> Listener {
    let mut candidates = Vec::new();
    // (service, index of its first candidate)
    let mut owners: Vec<(&Service, usize)> = Vec::new();
    for svc in services {
        owners.push((svc, candidates.len()));
        let mut terminal = false;
        let mut seen: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for (r, v, hosts) in vss {
            if !hosts.iter().any(|h| covers(h, &svc.hostname)) {
                continue;
            }
            let place = Place {
                vs: r,
                spec: v,
                gateway: None,
                port: bind.port,
            };
            if tls {
                for (k, route) in v.tls.iter().enumerate() {
                    let rat = format!("spec.tls[{k}]");
                    for m in &route.matches {
                        if !sidecar_match(
                            cx,
                            m.port,
                            &m.source_labels,
                            &m.gateways,
                            m.source_namespace.as_deref(),
                            bind.port,
                        ) {
                            continue;
                        }
                        let key = (sni(&m.sni_hosts), m.destination_subnets.clone());
                        if seen.contains(&key) {
                            continue;
                        }
                        seen.push(key.clone());
                        if let Some(target) = destinations(cx, &place, &route.route, &rat) {
                            candidates.push(Candidate {
                                server_names: key.0,
                                subnets: key.1,
                                target,
                            });
                        }
                    }
                }
                continue;
            }
            'routes: for (k, route) in v.tcp.iter().enumerate() {
                let rat = format!("spec.tcp[{k}]");
                let mut subnets = Vec::new();
                let mut catch_all = route.matches.is_empty();
                for (j, m) in route.matches.iter().enumerate() {
                    if m.source_subnet.is_some() {
                        cx.unsupported(
                            r,
                            &format!("{rat}.match[{j}].sourceSubnet"),
                            "sourceSubnet matches",
                        );
                    }
                    if !sidecar_match(
                        cx,
                        m.port,
                        &m.source_labels,
                        &m.gateways,
                        m.source_namespace.as_deref(),
                        bind.port,
                    ) {
                        continue;
                    }
                    if m.destination_subnets.is_empty() {
                        catch_all = true;
                        break;
                    }
                    subnets.extend(m.destination_subnets.iter().cloned());
                }
                if catch_all {
                    if let Some(target) = destinations(cx, &place, &route.route, &rat) {
                        candidates.push(Candidate {
                            server_names: Vec::new(),
                            subnets: Vec::new(),
                            target,
                        });
                    }
                    terminal = true;
                    break 'routes;
                }
                if !subnets.is_empty()
                    && let Some(target) = destinations(cx, &place, &route.route, &rat)
                {
                    candidates.push(Candidate {
                        server_names: Vec::new(),
                        subnets,
                        target,
                    });
                }
            }
            if terminal {
                break;
            }
        }
        let routed_by_tls = tls && candidates.len() > owners.last().map_or(0, |o| o.1);
        if !terminal && !routed_by_tls {
            candidates.push(Candidate {
                server_names: Vec::new(),
                subnets: Vec::new(),
                target: default_target(svc, bind.port),
            });
        }
    }
    let kept = decide(cx, (sidecar, at), bind, candidates.clone());
    // Services none of whose chains survived: shadowed by an earlier service.
    let shadowed: Vec<&str> = owners
        .iter()
        .enumerate()
        .filter(|(i, (_, first))| {
            let end = owners.get(i + 1).map_or(candidates.len(), |o| o.1);
            !candidates[*first..end].iter().any(|c| {
                kept.iter()
                    .any(|k| k.target == c.target && k.server_names == c.server_names)
            })
        })
        .map(|(_, (s, _))| s.hostname.as_str())
        .collect();
    if !shadowed.is_empty()
        && let Some(first) = kept.first()
    {
        cx.note(
            sidecar,
            &format!("{at}.hosts"),
            format!(
                "{} share port {} with an earlier service and nothing tells them apart: \
                 their connections go to {:?}, as Istio keeps the first filter chain",
                shadowed.join(", "),
                bind.port,
                first.target
            ),
        );
    }
    listener(cx, bind, kept, &[])
}

/// A listener of `tcp_proxy` chains, with the TLS inspector when a chain matches on SNI.
fn listener(cx: &Cx<'_>, bind: Bind<'_>, chains: Vec<Candidate>, rbac: &[NetworkRbac]) -> Listener {
    let by_sni = chains.iter().any(|c| !c.server_names.is_empty());
    let filter_chains = chains
        .into_iter()
        .map(|c| FilterChain {
            filter_chain_match: (!c.server_names.is_empty()).then(|| FilterChainMatch {
                server_names: c.server_names,
                ..Default::default()
            }),
            filters: filters(cx, rbac, &c.target),
            ..Default::default()
        })
        .collect();
    Listener {
        name: bind.name(),
        address: Some(socket(bind.address, bind.port)),
        filter_chains,
        listener_filters: if by_sni {
            vec![crate::peer_authn::tls_inspector()]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

/// A gateway server carrying opaque traffic: TCP with `tcp` routes, or TLS passthrough
/// with `tls` routes by SNI; `None` for servers that are HTTP, or that terminate TLS.
pub(crate) fn gateway_kind(protocol: &str, server: &Server) -> Option<GatewayKind> {
    let passthrough = server
        .tls
        .as_ref()
        .is_some_and(|t| matches!(t.mode, None | Some(ServerTlsMode::Passthrough)));
    match protocol {
        "TLS" | "HTTPS" if passthrough => Some(GatewayKind::Passthrough),
        "TCP" | "MONGO" | "MYSQL" | "REDIS" if server.tls.is_none() => Some(GatewayKind::Tcp),
        _ => None,
    }
}

/// What an opaque gateway server routes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GatewayKind {
    Tcp,
    Passthrough,
}

/// A gateway server with where it is: its Gateway, index, `ns/name`, and kind.
pub(crate) struct GatewayServer<'a> {
    pub(crate) gateway: &'a Resource,
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) server: &'a Server,
    pub(crate) kind: GatewayKind,
}

/// A VirtualService bound to some gateway of this proxy, with its `gateways` as `ns/name`.
pub(crate) type BoundVs<'a> = (&'a Resource, &'a VirtualService, Vec<String>);

/// A gateway listener for the opaque servers on one port (Istio's
/// `createGatewayTCPFilterChainOpts`). TCP: the first `tcp` route, in VirtualService order,
/// of a VirtualService bound to the server's gateway with a host the server admits, whose
/// match holds for the server's port and gateway, takes every connection (destination
/// subnets are not matched on gateways, as in Istio). Passthrough: every `tls` route match
/// that holds becomes a chain on its SNI hosts; one naming a host an earlier chain has is
/// skipped with a note, as Istio skips it. Network RBAC filters of the gateway's policies
/// go first on each chain.
pub(crate) fn gateway_listener(
    cx: &mut Cx<'_>,
    bind: Bind<'_>,
    servers: &[GatewayServer<'_>],
    vss: &[BoundVs<'_>],
    rbac: &[NetworkRbac],
) -> Option<Listener> {
    let mut chains: Vec<Candidate> = Vec::new();
    let mut used_sni: Vec<String> = Vec::new();
    for s in servers {
        let bound = vss.iter().filter(|(vr, v, refs)| {
            refs.contains(&s.name)
                && v.hosts.iter().any(|h| {
                    server_host(s.server, s.gateway, vr, &fqdn(h, &vr.namespace)).is_some()
                })
        });
        let gw_ok = |gateways: &[String], vs: &Resource| {
            gateways.is_empty()
                || gateways.iter().any(|g| {
                    let g = if g.contains('/') {
                        g.clone()
                    } else {
                        format!("{}/{g}", vs.namespace)
                    };
                    g == s.name
                })
        };
        let bound: Vec<_> = bound.collect();
        match s.kind {
            GatewayKind::Tcp => {
                if chains.iter().any(|c| c.server_names.is_empty()) {
                    cx.note(
                        s.gateway,
                        &format!("spec.servers[{}]", s.index),
                        format!(
                            "another TCP server on port {} already takes its connections \
                             (Istio keeps the first)",
                            bind.port
                        ),
                    );
                    continue;
                }
                let found = bound.iter().find_map(|(vr, v, _)| {
                    v.tcp.iter().enumerate().find_map(|(k, route)| {
                        let holds = route.matches.is_empty()
                            || route.matches.iter().any(|m| {
                                m.port.is_none_or(|p| p == bind.port) && gw_ok(&m.gateways, vr)
                            });
                        holds.then_some((*vr, *v, k))
                    })
                });
                let Some((vr, v, k)) = found else {
                    cx.note(
                        s.gateway,
                        &format!("spec.servers[{}]", s.index),
                        "no VirtualService tcp route for this server: its port takes no connections",
                    );
                    continue;
                };
                let place = Place {
                    vs: vr,
                    spec: v,
                    gateway: Some(&s.name),
                    port: bind.port,
                };
                if let Some(target) =
                    destinations(cx, &place, &v.tcp[k].route, &format!("spec.tcp[{k}]"))
                {
                    chains.push(Candidate {
                        server_names: Vec::new(),
                        subnets: Vec::new(),
                        target,
                    });
                }
            }
            GatewayKind::Passthrough => {
                for (vr, v, _) in &bound {
                    for (k, route) in v.tls.iter().enumerate() {
                        for (j, m) in route.matches.iter().enumerate() {
                            if m.port.is_some_and(|p| p != bind.port) || !gw_ok(&m.gateways, vr) {
                                continue;
                            }
                            let at = format!("spec.tls[{k}].match[{j}].sniHosts");
                            let names = sni(&m.sni_hosts);
                            let dup: Vec<&String> = m
                                .sni_hosts
                                .iter()
                                .filter(|h| used_sni.iter().any(|u| u.eq_ignore_ascii_case(h)))
                                .collect();
                            if !dup.is_empty() {
                                cx.note(
                                    vr,
                                    &at,
                                    format!(
                                        "skipped on port {}: SNI hosts {dup:?} are already \
                                         routed there (Istio skips duplicate SNI hosts)",
                                        bind.port
                                    ),
                                );
                                continue;
                            }
                            if let Some(bad) = names
                                .iter()
                                .find(|n| n.contains('*') && !n.starts_with("*."))
                            {
                                cx.unsupported(
                                    vr,
                                    &at,
                                    &format!("SNI host {bad}: wildcards other than a leading `*.`"),
                                );
                                continue;
                            }
                            used_sni.extend(m.sni_hosts.iter().cloned());
                            let place = Place {
                                vs: vr,
                                spec: v,
                                gateway: Some(&s.name),
                                port: bind.port,
                            };
                            let rat = format!("spec.tls[{k}]");
                            if let Some(target) = destinations(cx, &place, &route.route, &rat) {
                                chains.push(Candidate {
                                    server_names: names,
                                    subnets: Vec::new(),
                                    target,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    if chains.is_empty() {
        return None;
    }
    Some(listener(cx, bind, chains, rbac))
}

#[cfg(test)]
mod tests;
