//! Listeners: a gateway's servers (one HTTP listener per port; TCP and TLS passthrough
//! servers through [`crate::tcp`]) and a sidecar's explicit listeners (Sidecar egress
//! listeners with `captureMode: NONE`, HTTP here and opaque ones through [`crate::tcp`], and
//! ingress listeners, HTTP or TCP, secured as PeerAuthentication says: see
//! [`crate::peer_authn`]).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, Route, RouteConfiguration, RouteMatch, VirtualHost, redirect_action, route,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use spar_istio::model::gateway::{Gateway, Server, ServerTlsMode};
use spar_istio::model::sidecar::{CaptureMode, Sidecar};
use spar_istio::model::virtual_service::VirtualService;
use spar_istio::{Resource, Spec};

use crate::authz::RBAC_FILTER;
use crate::cluster::socket;
use crate::names::{covers, fqdn, inbound_cluster, is_http_protocol, outbound_cluster, overlap};
use crate::registry::{Service, exported, selects};
use crate::route::{CORS_FILTER, FAULT_FILTER, Place, ROUTER_FILTER, default_route, http_routes};
use crate::{Cx, Note, ROOT_NAMESPACE, tcp};

/// What a proxy's listeners need: listeners, their route configurations, clusters of their
/// own (inbound), and the services whose clusters they may route to.
pub(crate) type Out<'a> = (
    Vec<Listener>,
    Vec<RouteConfiguration>,
    Vec<Cluster>,
    Vec<&'a Service>,
);

/// A gateway server: its Gateway and its index there.
type ServerAt<'a> = (&'a Resource, usize, &'a Server);

const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

fn virtual_services<'a>(
    cx: &Cx<'a>,
) -> impl Iterator<Item = (&'a Resource, &'a VirtualService)> + 'a {
    let ns = cx.proxy.namespace.clone();
    cx.each(|s| match s {
        Spec::VirtualService(v) => Some(v),
        _ => None,
    })
    .filter(move |(r, v)| exported(&v.export_to, &r.namespace, &ns))
}

/// `ns/name` for each entry of a VirtualService's `gateways` (`mesh` stays `mesh`).
fn gateway_refs(r: &Resource, v: &VirtualService) -> Vec<String> {
    v.gateways
        .iter()
        .map(|g| match g.as_str() {
            "mesh" => "mesh".to_owned(),
            g if g.contains('/') => g.to_owned(),
            g => format!("{}/{g}", r.namespace),
        })
        .collect()
}

/// Listeners of a gateway proxy: every Gateway whose selector matches it.
pub(crate) fn gateway<'a>(cx: &mut Cx<'a>) -> Out<'a> {
    let rbac = crate::authz::http_filters(cx);
    let gateways: Vec<(&Resource, &Gateway)> = cx
        .each(|s| match s {
            Spec::Gateway(g) => Some(g),
            _ => None,
        })
        .filter(|(_, g)| {
            g.selector
                .as_ref()
                .is_none_or(|s| selects(s, &cx.proxy.labels))
        })
        .collect();
    // (bind, port) -> servers, in input order.
    let mut ports: BTreeMap<(String, u32), Vec<ServerAt<'_>>> = BTreeMap::new();
    // The same for TCP and TLS passthrough servers.
    let mut opaque: BTreeMap<(String, u32), Vec<tcp::GatewayServer<'_>>> = BTreeMap::new();
    for (r, g) in &gateways {
        for (i, s) in g.servers.iter().enumerate() {
            let at = format!("spec.servers[{i}]");
            let Some(port) = &s.port else { continue };
            let protocol = port
                .protocol
                .clone()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if let Some(kind) = tcp::gateway_kind(&protocol, s) {
                let bind = s.bind.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
                opaque
                    .entry((bind, port.number.unwrap_or_default()))
                    .or_default()
                    .push(tcp::GatewayServer {
                        gateway: r,
                        index: i,
                        name: format!("{}/{}", r.namespace, r.meta.name),
                        server: s,
                        kind,
                    });
                continue;
            }
            let redirect_only = s
                .tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true) && t.mode.is_none());
            if protocol == "HTTPS" || (s.tls.is_some() && !redirect_only) {
                let mode = s.tls.as_ref().and_then(|t| t.mode);
                let what = match mode {
                    Some(ServerTlsMode::AutoPassthrough) => {
                        "AUTO_PASSTHROUGH gateway servers (SNI to mesh clusters)"
                    }
                    _ if protocol == "HTTPS" => "TLS termination on gateways (HTTPS servers)",
                    _ => "TLS termination on gateways (TLS servers with tcp routes)",
                };
                cx.unsupported(r, &format!("{at}.tls"), what);
                continue;
            }
            if !is_http_protocol(&protocol) {
                cx.unsupported(
                    r,
                    &format!("{at}.port.protocol"),
                    &format!("{protocol} gateway servers"),
                );
                continue;
            }
            let bind = s.bind.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
            ports
                .entry((bind, port.number.unwrap_or_default()))
                .or_default()
                .push((r, i, s));
        }
    }
    let vss: Vec<_> = virtual_services(cx).collect();
    let mut listeners = Vec::new();
    if !opaque.is_empty() {
        let network_rbac = crate::authz::network_filters(cx);
        let bound: Vec<tcp::BoundVs<'_>> = vss
            .iter()
            .map(|(r, v)| (*r, *v, gateway_refs(r, v)))
            .collect();
        for ((bind, port), servers) in &opaque {
            if ports.contains_key(&(bind.clone(), *port)) {
                for s in servers {
                    cx.note(
                        s.gateway,
                        &format!("spec.servers[{}]", s.index),
                        format!(
                            "ignored: port {port} also has an HTTP server, which takes it (one \
                             protocol per port; Istio keeps whichever server comes first)"
                        ),
                    );
                }
                continue;
            }
            let at = tcp::Bind {
                address: bind,
                port: *port,
            };
            if let Some(l) = tcp::gateway_listener(cx, at, servers, &bound, &network_rbac) {
                listeners.push(l);
            }
        }
    }
    let mut routes = Vec::new();
    for ((bind, port), servers) in ports {
        // Domain -> (virtual host index); virtual hosts in first-seen order.
        let mut vhosts: Vec<(String, Vec<Route>, bool, Vec<String>)> = Vec::new();
        for (gr, _, server) in &servers {
            let gw_name = format!("{}/{}", gr.namespace, gr.meta.name);
            let redirect = server
                .tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true));
            for (vr, v) in &vss {
                if !gateway_refs(vr, v).contains(&gw_name) {
                    continue;
                }
                for vh in &v.hosts {
                    let vh = fqdn(vh, &vr.namespace);
                    let Some(host) = server_host(server, gr, vr, &vh) else {
                        continue;
                    };
                    let idx = match vhosts.iter().position(|(h, ..)| *h == host) {
                        Some(i) => i,
                        None => {
                            vhosts.push((host.clone(), Vec::new(), false, Vec::new()));
                            vhosts.len() - 1
                        }
                    };
                    let key = format!("{}/{}", vr.namespace, vr.meta.name);
                    if vhosts[idx].3.contains(&key) {
                        continue;
                    }
                    vhosts[idx].3.push(key);
                    vhosts[idx].2 |= redirect;
                    let place = Place {
                        vs: vr,
                        spec: v,
                        gateway: Some(&gw_name),
                        port,
                    };
                    let rs = http_routes(cx, &place);
                    vhosts[idx].1.extend(rs);
                }
            }
        }
        let virtual_hosts = vhosts
            .into_iter()
            .map(|(host, routes, redirect, _)| {
                let mut domains = vec![host.clone()];
                if host != "*" && !host.starts_with('*') {
                    domains.push(format!("{host}:*"));
                }
                let routes = if redirect {
                    vec![https_redirect()]
                } else {
                    routes
                };
                VirtualHost {
                    name: format!("{host}:{port}"),
                    domains,
                    routes,
                    ..Default::default()
                }
            })
            .collect();
        let rc = RouteConfiguration {
            name: format!("http.{port}"),
            virtual_hosts,
            ..Default::default()
        };
        let name = format!("{bind}_{port}");
        listeners.push(http_listener(
            &name,
            &bind,
            port,
            &format!("outbound_{name}"),
            rc.clone(),
            &rbac,
            Edge::Gateway,
        ));
        routes.push(rc);
    }
    let ns = cx.proxy.namespace.clone();
    let services = cx
        .registry
        .services()
        .iter()
        .filter(|s| s.visible_from(&ns))
        .collect();
    (listeners, routes, Vec::new(), services)
}

/// The virtual host name a VirtualService host takes on a server, if the server admits it:
/// the server host's namespace part must allow the VirtualService's namespace, and the two
/// hosts must overlap (the narrower one names the virtual host).
pub(crate) fn server_host(
    server: &Server,
    gw: &Resource,
    vs: &Resource,
    vs_host: &str,
) -> Option<String> {
    server.hosts.iter().find_map(|h| {
        let (ns, host) = h.split_once('/').unwrap_or(("*", h));
        let ns_ok = match ns {
            "*" => true,
            "." => vs.namespace == gw.namespace,
            n => vs.namespace == n,
        };
        if !ns_ok || !overlap(host, vs_host) {
            return None;
        }
        Some(if covers(host, vs_host) {
            vs_host.to_owned()
        } else {
            host.to_owned()
        })
    })
}

fn https_redirect() -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
                true,
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Where a connection manager stands, which decides whose address it trusts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// A gateway faces clients: the peer's address is the client's (`use_remote_address`),
    /// and `x-forwarded-for` is appended to, never believed (Istio's default of no trusted
    /// proxies in front), so a client cannot claim another address to policies.
    Gateway,
    /// A sidecar: the client address is the last `x-forwarded-for` entry, if any (Istio).
    Sidecar,
}

/// An HTTP listener: the connection manager with RBAC, fault, CORS and router filters
/// (Istio's set, in spar-proxy's order) and its routes inline; WebSocket upgrades allowed,
/// as Istio allows them on every route.
fn http_listener(
    name: &str,
    bind: &str,
    port: u32,
    stat_prefix: &str,
    rc: RouteConfiguration,
    rbac: &[Rbac],
    edge: Edge,
) -> Listener {
    let filter = |name: &str, any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)),
        // Authorization first: a denied request costs nothing else.
        http_filters: rbac
            .iter()
            .map(|r| filter(RBAC_FILTER, pack_any(r.clone())))
            .chain([
                filter(FAULT_FILTER, pack_any(HttpFault::default())),
                filter(CORS_FILTER, pack_any(Cors::default())),
                filter(ROUTER_FILTER, pack_any(Router::default())),
            ])
            .collect(),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".to_owned(),
            ..Default::default()
        }],
        use_remote_address: Some(BoolValue {
            value: edge == Edge::Gateway,
        }),
        ..Default::default()
    };
    Listener {
        name: name.to_owned(),
        address: Some(socket(bind, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The Sidecar resource for this proxy: one in its namespace whose selector matches it,
/// else its namespace's selector-less one, else the root namespace's.
fn sidecar_for<'a>(cx: &Cx<'a>) -> Option<(&'a Resource, &'a Sidecar)> {
    let all: Vec<_> = cx
        .each(|s| match s {
            Spec::Sidecar(sc) => Some(sc),
            _ => None,
        })
        .collect();
    let ns = &cx.proxy.namespace;
    let selector = |sc: &Sidecar| sc.workload_selector.as_ref().and_then(|w| w.labels.clone());
    all.iter()
        .find(|(r, sc)| {
            r.namespace == *ns && selector(sc).is_some_and(|l| selects(&l, &cx.proxy.labels))
        })
        .or_else(|| {
            all.iter()
                .find(|(r, sc)| r.namespace == *ns && selector(sc).is_none())
        })
        .or_else(|| {
            all.iter()
                .find(|(r, sc)| r.namespace == ROOT_NAMESPACE && selector(sc).is_none())
        })
        .copied()
}

/// Whether an egress `hosts` entry (`ns/host`) imports a service.
fn imports(entry: &str, sidecar_ns: &str, svc: &Service) -> bool {
    let Some((ns, host)) = entry.split_once('/') else {
        return false;
    };
    let ns_ok = match ns {
        "*" => true,
        "." => svc.namespace == sidecar_ns,
        "~" => false,
        n => svc.namespace == n,
    };
    ns_ok && covers(host, &svc.hostname)
}

/// Listeners of a sidecar proxy in explicit mode.
pub(crate) fn sidecar<'a>(cx: &mut Cx<'a>) -> Out<'a> {
    let rbac = crate::authz::http_filters(cx);
    let ns = cx.proxy.namespace.clone();
    let registry = cx.registry;
    // One service per host: the one this proxy's namespace sees.
    let visible: Vec<&'a Service> = registry.visible(&ns);
    let Some((sr, sc)) = sidecar_for(cx) else {
        cx.notes.push(Note {
            resource: None,
            path: String::new(),
            message: "unsupported by spar-proxy yet: transparent capture (no Sidecar with captureMode NONE \
                      egress listeners selects this proxy, so it gets no outbound listeners)"
                .to_owned(),
        });
        return (Vec::new(), Vec::new(), Vec::new(), visible);
    };
    let mut services: Vec<&'a Service> = if sc.egress.is_empty() {
        visible.clone()
    } else {
        visible
            .iter()
            .copied()
            .filter(|s| {
                sc.egress
                    .iter()
                    .any(|e| e.hosts.iter().any(|h| imports(h, &sr.namespace, s)))
            })
            .collect()
    };
    services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    if sc.outbound_traffic_policy.is_some() {
        cx.unsupported(
            sr,
            "spec.outboundTrafficPolicy",
            "outbound traffic policy (unknown hosts get 404)",
        );
    }
    if sc.inbound_connection_pool.is_some() {
        cx.unsupported(sr, "spec.inboundConnectionPool", "inbound connection pools");
    }
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    // Each mesh VirtualService with its hosts as FQDNs, made once for all egress listeners.
    let vss = mesh_virtual_services(cx);
    for (i, e) in sc.egress.iter().enumerate() {
        let at = format!("spec.egress[{i}]");
        let (Some(port), Some(CaptureMode::None)) =
            (e.port.as_ref().and_then(|p| p.number), e.capture_mode)
        else {
            cx.unsupported(
                sr,
                &at,
                "egress listeners without captureMode NONE and a port (transparent capture)",
            );
            continue;
        };
        let protocol = e
            .port
            .as_ref()
            .and_then(|p| p.protocol.clone())
            .unwrap_or_default()
            .to_ascii_uppercase();
        let imported: Vec<&Service> = services
            .iter()
            .copied()
            .filter(|s| e.hosts.iter().any(|h| imports(h, &sr.namespace, s)))
            .collect();
        let bind = e.bind.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let name = format!("{bind}_{port}");
        if !is_http_protocol(&protocol) {
            if protocol == "UDP" {
                cx.unsupported(sr, &format!("{at}.port.protocol"), "UDP listeners");
                continue;
            }
            let tls = matches!(protocol.as_str(), "TLS" | "HTTPS");
            let address = tcp::Bind {
                address: &bind,
                port,
            };
            listeners.push(tcp::egress_listener(
                cx, sr, &at, address, tls, &imported, &vss,
            ));
            continue;
        }
        let rc = RouteConfiguration {
            name: port.to_string(),
            virtual_hosts: egress_vhosts(cx, &imported, &vss, port),
            ..Default::default()
        };
        listeners.push(http_listener(
            &name,
            &bind,
            port,
            &format!("outbound_{name}"),
            rc.clone(),
            &[],
            Edge::Sidecar,
        ));
        routes.push(rc);
    }
    let mut inbound = Vec::new();
    let ingress_ports: Vec<u32> = sc
        .ingress
        .iter()
        .filter_map(|ing| ing.port.as_ref().and_then(|p| p.number))
        .collect();
    let mtls = crate::peer_authn::policy(cx, &ingress_ports);
    // Built when a TCP ingress listener needs them.
    let mut network_rbac = None;
    for (i, ing) in sc.ingress.iter().enumerate() {
        let at = format!("spec.ingress[{i}]");
        let Some(port) = ing.port.as_ref().and_then(|p| p.number) else {
            continue;
        };
        let protocol = ing
            .port
            .as_ref()
            .and_then(|p| p.protocol.clone())
            .unwrap_or_default()
            .to_ascii_uppercase();
        if protocol == "UDP" {
            cx.unsupported(sr, &format!("{at}.port.protocol"), "UDP listeners");
            continue;
        }
        if ing.tls.is_some() {
            cx.unsupported(sr, &format!("{at}.tls"), "TLS on sidecar ingress listeners");
        }
        if ing.connection_pool.is_some() {
            cx.unsupported(
                sr,
                &format!("{at}.connectionPool"),
                "inbound connection pools",
            );
        }
        let endpoint = ing.default_endpoint.as_deref().unwrap_or_default();
        let Some(target) = endpoint.parse::<std::net::SocketAddr>().ok() else {
            cx.unsupported(
                sr,
                &format!("{at}.defaultEndpoint"),
                "default endpoints other than IP:PORT (unix sockets)",
            );
            continue;
        };
        let cluster = inbound_cluster(port);
        inbound.push(Cluster {
            name: cluster.clone(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 10,
                nanos: 0,
            }),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: cluster.clone(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![LbEndpoint {
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(socket(
                                &target.ip().to_string(),
                                u32::from(target.port()),
                            )),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        let bind = ing.bind.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
        let name = format!("{bind}_{port}");
        if !is_http_protocol(&protocol) {
            // Opaque bytes (TCP, TLS the application terminates, MONGO, ...): a TCP proxy
            // behind the network form of the workload's authorization policies.
            if network_rbac.is_none() {
                network_rbac = Some(crate::authz::network_filters(cx));
            }
            let mut listener = Listener {
                name: name.clone(),
                address: Some(socket(&bind, port)),
                filter_chains: vec![FilterChain {
                    filters: tcp::filters(
                        cx,
                        network_rbac.as_deref().unwrap_or_default(),
                        &tcp::Target::Cluster(cluster),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            };
            crate::peer_authn::secure_tcp(&mut listener, mtls.for_port(port));
            listeners.push(listener);
            continue;
        }
        let mut route = default_route(cluster.clone());
        if let Some(route::Action::Route(ra)) = &mut route.action {
            // Inbound: no retries (the client side retries), as in Istio.
            ra.retry_policy = None;
        }
        let rc = RouteConfiguration {
            name: cluster.clone(),
            virtual_hosts: vec![VirtualHost {
                name: format!("inbound|http|{port}"),
                domains: vec!["*".to_owned()],
                routes: vec![route],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut listener = http_listener(
            &name,
            &bind,
            port,
            &format!("inbound_{name}"),
            rc.clone(),
            &rbac,
            Edge::Sidecar,
        );
        crate::peer_authn::secure(&mut listener, mtls.for_port(port));
        listeners.push(listener);
        routes.push(rc);
    }
    (listeners, routes, inbound, services)
}

/// Virtual hosts of an explicit egress listener on `listener_port`: every HTTP port of every
/// imported service, reachable as `HOST:PORT` (FQDN and the short forms Kubernetes DNS
/// resolves); a Host without a port reaches the service port equal to the listener port,
/// else the service's first HTTP port. `vss`: the mesh VirtualServices, from
/// [`mesh_virtual_services`].
fn egress_vhosts(
    cx: &mut Cx<'_>,
    services: &[&Service],
    vss: &[tcp::MeshVs<'_>],
    listener_port: u32,
) -> Vec<VirtualHost> {
    let mut out = Vec::new();
    for svc in services {
        let http_ports: Vec<u32> = svc
            .ports
            .iter()
            .filter(|p| is_http_protocol(&p.protocol))
            .map(|p| p.number)
            .collect();
        let portless = if http_ports.contains(&listener_port) {
            Some(listener_port)
        } else {
            http_ports.first().copied()
        };
        let names = host_names(svc, &cx.proxy.namespace);
        // The most specific mesh VirtualService for this host: exact, then longest wildcard.
        let vs = vss
            .iter()
            .filter_map(|(r, v, hosts)| {
                let best = hosts
                    .iter()
                    .filter(|h| covers(h, &svc.hostname))
                    .max_by_key(|h| (!h.starts_with('*'), h.len()))?;
                Some(((!best.starts_with('*'), best.len()), *r, *v))
            })
            .fold(
                None::<((bool, usize), &Resource, &VirtualService)>,
                |acc, x| match acc {
                    Some(a) if a.0 >= x.0 => Some(a),
                    _ => Some(x),
                },
            );
        for port in http_ports {
            let mut domains: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
            if portless == Some(port) {
                domains.splice(0..0, names.iter().cloned());
            }
            let mut routes = match vs {
                Some((_, r, v)) => http_routes(
                    cx,
                    &Place {
                        vs: r,
                        spec: v,
                        gateway: None,
                        port,
                    },
                ),
                None => Vec::new(),
            };
            if routes.is_empty() {
                routes.push(default_route(outbound_cluster(port, "", &svc.hostname)));
            }
            out.push(VirtualHost {
                name: format!("{}:{port}", svc.hostname),
                domains,
                routes,
                ..Default::default()
            });
        }
    }
    out
}

/// The VirtualServices bound to the `mesh` gateway (sidecars), each with its hosts as FQDNs.
fn mesh_virtual_services<'a>(cx: &Cx<'a>) -> Vec<tcp::MeshVs<'a>> {
    virtual_services(cx)
        .filter(|(r, v)| v.gateways.is_empty() || gateway_refs(r, v).iter().any(|g| g == "mesh"))
        .map(|(r, v)| {
            let hosts: Vec<String> = v.hosts.iter().map(|h| fqdn(h, &r.namespace)).collect();
            (r, v, hosts)
        })
        .collect()
}

/// The names a client may use for a service: the FQDN and, for Kubernetes services, the
/// short forms (`name` only from the same namespace).
fn host_names(svc: &Service, proxy_ns: &str) -> Vec<String> {
    let mut names = vec![svc.hostname.clone()];
    if !svc.name.is_empty() {
        names.push(format!("{}.{}.svc", svc.name, svc.namespace));
        names.push(format!("{}.{}", svc.name, svc.namespace));
        if svc.namespace == proxy_ns {
            names.push(svc.name.clone());
        }
    }
    names
}
