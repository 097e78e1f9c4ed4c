//! Envoy `Listener` (filter chains matched on port, server name, transport and application
//! protocol; one network filter each; TLS contexts) into [`Listener`], plus the
//! per-listener connection limits from the static runtime layers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::bootstrap::v3::{LayeredRuntime, runtime_layer};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain as PbFilterChain, FilterChainMatch, Listener as PbListener, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use prost::Message;
use spar_cluster::{ClusterId, DEFAULT_BUFFER_LIMIT_BYTES};

use super::{Ctx, http, tls};
use crate::allowlist::{HCM, HTTP_INSPECTOR, RBAC_NETWORK, TCP_PROXY, TLS_INSPECTOR};
use crate::error::FieldPath;
use crate::runtime;
use crate::snapshot::{
    ChainMatch, DEFAULT_LISTENER_FILTERS_TIMEOUT, DEFAULT_TCP_IDLE_TIMEOUT, FilterChain, Inspect,
    Listener, ListenerKind, TcpSettings,
};

/// Connection limits by listener name, with the path of the runtime key that set them.
pub(super) type Limits = HashMap<String, (u32, FieldPath)>;

/// Reads `envoy.resource_limits.listener.<name>.connection_limit` from the static layers;
/// a later layer overrides an earlier one, as in Envoy.
pub(super) fn connection_limits(ctx: &mut Ctx<'_>, rt: Option<&LayeredRuntime>) -> Limits {
    let mut out = Limits::new();
    let Some(rt) = rt else { return out };
    let path = FieldPath::root().field("layered_runtime").field("layers");
    for (i, layer) in rt.layers.iter().enumerate() {
        let Some(runtime_layer::LayerSpecifier::StaticLayer(s)) = &layer.layer_specifier else {
            continue;
        };
        let lp = path.index(i).field("static_layer");
        for (key, value) in runtime::flatten(s) {
            let kp = lp.field(&key);
            let Some(name) = runtime::limit_listener(&key) else {
                ctx.error(
                    &kp,
                    format!("runtime key {key} not supported by spar-proxy yet"),
                );
                continue;
            };
            match runtime::limit_value(value) {
                Ok(limit) => {
                    out.insert(name.to_owned(), (limit, kp));
                }
                Err(e) => ctx.error(&kp, e),
            }
        }
    }
    out
}

pub(super) fn compile_all(
    ctx: &mut Ctx<'_>,
    listeners: &[PbListener],
    path: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
    mut limits: Limits,
) -> Vec<Listener> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, usize> = HashMap::new();
    let mut out = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.iter().enumerate() {
        let p = path.index(i);
        if l.name.is_empty() {
            ctx.error(&p.field("name"), "name is required");
        } else if let Some(first) = names.insert(&l.name, i) {
            names.insert(&l.name, first);
            ctx.error(
                &p.field("name"),
                format!(
                    "duplicate listener name `{}` (first defined at {})",
                    l.name,
                    path.index(first)
                ),
            );
        }
        let address = match &l.address {
            Some(a) => ctx.socket_addr(a, &p.field("address"), super::Bind::Listen),
            None => {
                ctx.error(&p.field("address"), "address is required");
                None
            }
        };
        // Port 0 listeners each get their own free port: they never collide.
        if let Some(addr) = address
            && addr.port() != 0
            && let Some(first) = addresses.insert(addr, i)
        {
            addresses.insert(addr, first);
            ctx.error(
                &p.field("address"),
                format!("address {addr} is already used by {}", path.index(first)),
            );
        }
        let chains = chains(ctx, l, &p, clusters);
        let connection_limit = limits.remove(&l.name).map(|(limit, _)| limit);
        if let (Some(address), Some((chains, has_default_chain))) = (address, chains) {
            let needs_bytes = |m: &ChainMatch| {
                !m.server_names.is_empty()
                    || m.transport_protocol.is_some()
                    || !m.application_protocols.is_empty()
            };
            let inspect = Inspect {
                tls: chains.iter().any(|c| needs_bytes(&c.matcher)),
                http: chains.iter().any(|c| {
                    c.matcher
                        .application_protocols
                        .iter()
                        .any(|a| matches!(a.as_str(), "http/1.1" | "http/1.0" | "h2c"))
                }),
            };
            out.push(Listener {
                name: l.name.clone(),
                address,
                connection_limit,
                buffer_limit_bytes: l
                    .per_connection_buffer_limit_bytes
                    .map_or(DEFAULT_BUFFER_LIMIT_BYTES, |v| v.value),
                chains,
                has_default_chain,
                inspect,
                inspect_timeout: ctx.timeout(
                    l.listener_filters_timeout.as_ref(),
                    &p.field("listener_filters_timeout"),
                    Some(DEFAULT_LISTENER_FILTERS_TIMEOUT),
                ),
                continue_on_inspect_timeout: l.continue_on_listener_filters_timeout,
            });
        }
    }
    let mut unknown: Vec<(String, FieldPath)> =
        limits.into_iter().map(|(n, (_, p))| (n, p)).collect();
    unknown.sort();
    for (name, p) in unknown {
        ctx.error(&p, format!("no listener is named `{name}`"));
    }
    out
}

/// The listener's filter chains (and its default chain, last), each with its match, its
/// TLS context and its one network filter. Two chains with the same match are an error, as
/// in Envoy: the choice between them would be arbitrary.
fn chains(
    ctx: &mut Ctx<'_>,
    l: &PbListener,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<(Vec<FilterChain>, bool)> {
    if l.filter_chains.is_empty() && l.default_filter_chain.is_none() {
        ctx.error(&p.field("filter_chains"), "listener has no filter chain");
        return None;
    }
    for (i, f) in l.listener_filters.iter().enumerate() {
        let fp = p.field("listener_filters").index(i);
        let name = match &f.config_type {
            Some(listener_filter::ConfigType::TypedConfig(any)) => {
                any.type_url.rsplit('/').next().unwrap_or_default()
            }
            _ => "",
        };
        if name != TLS_INSPECTOR && name != HTTP_INSPECTOR {
            ctx.error(
                &fp.field("typed_config"),
                format!("listener filter `{name}` not supported by spar-proxy yet"),
            );
        }
    }
    let mut out = Vec::with_capacity(l.filter_chains.len() + 1);
    let mut seen: HashMap<ChainMatch, usize> = HashMap::new();
    let mut ok = true;
    for (i, chain) in l.filter_chains.iter().enumerate() {
        let cp = p.field("filter_chains").index(i);
        let matcher = chain_match(ctx, chain.filter_chain_match.as_ref(), &cp);
        if let Some(first) = seen.insert(matcher.clone(), i) {
            ctx.error(
                &cp.field("filter_chain_match"),
                format!(
                    "same match as {}: Envoy refuses filter chains with identical matching rules",
                    p.field("filter_chains").index(first)
                ),
            );
        }
        match chain_body(ctx, chain, matcher, &cp, clusters) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    let mut has_default = false;
    if let Some(chain) = &l.default_filter_chain {
        let cp = p.field("default_filter_chain");
        if chain.filter_chain_match.is_some() {
            ctx.error(
                &cp.field("filter_chain_match"),
                "the default filter chain has no match",
            );
        }
        match chain_body(ctx, chain, ChainMatch::default(), &cp, clusters) {
            Some(c) => {
                out.push(c);
                has_default = true;
            }
            None => ok = false,
        }
    }
    ok.then_some((out, has_default))
}

fn chain_match(ctx: &mut Ctx<'_>, m: Option<&FilterChainMatch>, cp: &FieldPath) -> ChainMatch {
    let Some(m) = m else {
        return ChainMatch::default();
    };
    let mp = cp.field("filter_chain_match");
    let destination_port = m
        .destination_port
        .and_then(|v| match u16::try_from(v.value) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                ctx.error(
                    &mp.field("destination_port"),
                    "destination_port must be from 1 to 65535",
                );
                None
            }
        });
    let mut server_names = Vec::with_capacity(m.server_names.len());
    for (i, n) in m.server_names.iter().enumerate() {
        let n = n.to_ascii_lowercase();
        let wildcard_ok = !n.contains('*') || (n.starts_with("*.") && !n[1..].contains('*'));
        if n.is_empty() || !wildcard_ok {
            ctx.error(
                &mp.field("server_names").index(i),
                format!("`{n}`: a server name is a host name, or `*.` and a suffix"),
            );
            continue;
        }
        server_names.push(n);
    }
    let transport_protocol = match m.transport_protocol.as_str() {
        "" => None,
        t @ ("tls" | "raw_buffer") => Some(t.to_owned()),
        other => {
            ctx.error(
                &mp.field("transport_protocol"),
                format!("transport_protocol `{other}`: only `tls` and `raw_buffer` are known"),
            );
            None
        }
    };
    ChainMatch {
        destination_port,
        server_names,
        transport_protocol,
        application_protocols: m.application_protocols.clone(),
    }
}

/// A chain's TLS context and its single network filter.
fn chain_body(
    ctx: &mut Ctx<'_>,
    chain: &PbFilterChain,
    matcher: ChainMatch,
    cp: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<FilterChain> {
    let tls = tls::downstream(
        ctx,
        chain.transport_socket.as_ref(),
        &cp.field("transport_socket"),
    );
    let fp = cp.field("filters");
    let (rbac, last) = network_rbac(ctx, chain, &fp);
    let kind = kind(ctx, chain, &fp, last, clusters);
    Some(FilterChain {
        name: chain.name.clone(),
        matcher,
        tls: tls.ok()?,
        rbac: rbac?,
        kind: kind?,
    })
}

/// The network RBAC filters ahead of the chain's last filter, and that last filter's index.
fn network_rbac(
    ctx: &mut Ctx<'_>,
    chain: &PbFilterChain,
    fp: &FieldPath,
) -> (Option<Vec<Arc<spar_rbac::RbacFilter>>>, usize) {
    let last = chain.filters.len().saturating_sub(1);
    let mut out = Vec::new();
    let mut ok = true;
    for (i, f) in chain.filters.iter().enumerate().take(last) {
        let tp = fp.index(i).field("typed_config");
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            ctx.error(&tp, "typed_config is required");
            ok = false;
            continue;
        };
        if any.type_url.rsplit('/').next() != Some(RBAC_NETWORK) {
            ctx.error(
                &tp,
                "only RBAC filters (envoy.extensions.filters.network.rbac.v3.RBAC) may come before the last network filter",
            );
            ok = false;
            continue;
        }
        let compiled = NetworkRbac::decode(any.value.as_slice())
            .map_err(|e| {
                vec![(
                    String::new(),
                    format!("does not decode as {RBAC_NETWORK}: {e}"),
                )]
            })
            .and_then(|pb| {
                spar_rbac::compile_network_filter(&pb)
                    .map_err(|errs| errs.0.into_iter().map(|e| (e.path, e.message)).collect())
            });
        match compiled {
            Ok(r) => out.push(Arc::new(r)),
            Err(errors) => {
                ok = false;
                for (path, message) in errors {
                    ctx.error(&tp.dotted(&path), message);
                }
            }
        }
    }
    (ok.then_some(out), last)
}

/// The chain's last network filter: the connection manager or the TCP proxy.
fn kind(
    ctx: &mut Ctx<'_>,
    chain: &PbFilterChain,
    fp: &FieldPath,
    last: usize,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<ListenerKind> {
    let Some(f) = chain.filters.get(last) else {
        ctx.error(
            fp,
            "a filter chain needs a network filter (http_connection_manager or tcp_proxy), last",
        );
        return None;
    };
    let fp = fp.index(last);
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        ctx.error(&fp.field("typed_config"), "typed_config is required");
        return None;
    };
    let tp = fp.field("typed_config");
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    match type_name {
        HCM => match http::HttpConnectionManager::decode(any.value.as_slice()) {
            Ok(hcm) => {
                http::compile(ctx, &hcm, &tp, clusters).map(|h| ListenerKind::Http(Arc::new(h)))
            }
            Err(e) => {
                ctx.error(&tp, format!("does not decode as {HCM}: {e}"));
                None
            }
        },
        TCP_PROXY => match TcpProxy::decode(any.value.as_slice()) {
            Ok(tcp) => tcp_settings(ctx, &tcp, &tp, clusters).map(ListenerKind::Tcp),
            Err(e) => {
                ctx.error(&tp, format!("does not decode as {TCP_PROXY}: {e}"));
                None
            }
        },
        RBAC_NETWORK => {
            ctx.error(
                &tp,
                "an RBAC filter cannot be the last: http_connection_manager or tcp_proxy must follow it",
            );
            None
        }
        other => {
            ctx.error(&tp, format!("type {other} not supported by spar-proxy yet"));
            None
        }
    }
}

fn tcp_settings(
    ctx: &mut Ctx<'_>,
    tcp: &TcpProxy,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<TcpSettings> {
    if tcp.stat_prefix.is_empty() {
        ctx.error(&p.field("stat_prefix"), "stat_prefix is required");
    }
    let clusters = match &tcp.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(name)) => {
            cluster_ref(ctx, clusters, name, &p.field("cluster")).map(|id| vec![(id, 1)])
        }
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
            weighted(ctx, w, &p.field("weighted_clusters"), clusters)
        }
        None => {
            ctx.error(&p.field("cluster"), "cluster is required");
            None
        }
    };
    let idle_timeout = ctx.timeout(
        tcp.idle_timeout.as_ref(),
        &p.field("idle_timeout"),
        Some(DEFAULT_TCP_IDLE_TIMEOUT),
    );
    let max_connect_attempts = match tcp.max_connect_attempts {
        None => 1,
        Some(v) if v.value == 0 => {
            ctx.error(
                &p.field("max_connect_attempts"),
                "max_connect_attempts must be at least 1",
            );
            1
        }
        Some(v) => v.value,
    };
    Some(TcpSettings {
        stat_prefix: tcp.stat_prefix.clone(),
        clusters: clusters?,
        idle_timeout,
        max_connect_attempts,
    })
}

/// `weighted_clusters`: at least one cluster, each named and weighted at least 1 (Envoy's
/// validation rules).
fn weighted(
    ctx: &mut Ctx<'_>,
    w: &tcp_proxy::WeightedCluster,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<Vec<(ClusterId, u32)>> {
    if w.clusters.is_empty() {
        ctx.error(&p.field("clusters"), "at least one cluster is required");
        return None;
    }
    let mut out = Vec::with_capacity(w.clusters.len());
    let mut ok = true;
    for (i, c) in w.clusters.iter().enumerate() {
        let cp = p.field("clusters").index(i);
        if c.weight == 0 {
            ctx.error(&cp.field("weight"), "weight must be at least 1");
            ok = false;
        }
        match cluster_ref(ctx, clusters, &c.name, &cp.field("name")) {
            Some(id) => out.push((id, c.weight)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The id of cluster `name`, or an error at `path` naming the missing cluster.
pub(super) fn cluster_ref(
    ctx: &mut Ctx<'_>,
    clusters: &HashMap<&str, ClusterId>,
    name: &str,
    path: &FieldPath,
) -> Option<ClusterId> {
    if name.is_empty() {
        ctx.error(path, "cluster is required");
        return None;
    }
    let id = clusters.get(name).copied();
    if id.is_none() {
        ctx.error(
            path,
            format!("cluster `{name}` is not defined in static_resources.clusters"),
        );
    }
    id
}
