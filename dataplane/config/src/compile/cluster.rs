//! Envoy `Cluster` (STATIC, round robin) into [`spar_cluster::Cluster`].

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as PbCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttp;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttp, http_protocol_options,
};
use prost::Message;
use spar_cluster::{
    Cluster, DEFAULT_BUFFER_LIMIT_BYTES, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_HEADERS_COUNT, Endpoint, TcpKeepalive, Thresholds,
};

use super::Ctx;
use crate::allowlist::UPSTREAM_HTTP;
use crate::error::FieldPath;

/// All clusters, in order (index = `ClusterId`). Clusters with errors are still returned
/// so that ids stay aligned; the caller fails the whole compile when errors were recorded.
pub(super) fn compile_all(
    ctx: &mut Ctx<'_>,
    clusters: &[PbCluster],
    path: &FieldPath,
) -> Vec<Cluster> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(clusters.len());
    for (i, c) in clusters.iter().enumerate() {
        let p = path.index(i);
        if c.name.is_empty() {
            ctx.error(&p.field("name"), "name is required");
        } else if let Some(first) = seen.insert(&c.name, i) {
            seen.insert(&c.name, first);
            ctx.error(
                &p.field("name"),
                format!(
                    "duplicate cluster name `{}` (first defined at {})",
                    c.name,
                    path.index(first)
                ),
            );
        }
        out.push(compile_one(ctx, c, &p));
    }
    out
}

fn compile_one(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Cluster {
    match c.cluster_discovery_type {
        None | Some(cluster::ClusterDiscoveryType::Type(0)) => {}
        Some(_) => ctx.error(
            &p.field("type"),
            "only STATIC clusters are supported by spar-proxy yet",
        ),
    }
    if c.lb_policy != cluster::LbPolicy::RoundRobin as i32 {
        ctx.error(
            &p.field("lb_policy"),
            "only ROUND_ROBIN is supported by spar-proxy yet",
        );
    }
    let connect_timeout = match &c.connect_timeout {
        None => DEFAULT_CONNECT_TIMEOUT,
        Some(d) => match ctx.duration(d, &p.field("connect_timeout")) {
            Some(d) if d.is_zero() => {
                ctx.error(
                    &p.field("connect_timeout"),
                    "connect_timeout must be greater than 0s",
                );
                DEFAULT_CONNECT_TIMEOUT
            }
            Some(d) => d,
            None => DEFAULT_CONNECT_TIMEOUT,
        },
    };
    let mut out = Cluster {
        connect_timeout,
        endpoints: endpoints(ctx, c, p),
        thresholds: thresholds(ctx, c, p),
        buffer_limit_bytes: c
            .per_connection_buffer_limit_bytes
            .map_or(DEFAULT_BUFFER_LIMIT_BYTES, |v| v.value),
        tcp_keepalive: c
            .upstream_connection_options
            .as_ref()
            .and_then(|o| o.tcp_keepalive.as_ref())
            .map(|k| TcpKeepalive {
                probes: k.keepalive_probes.map(|v| v.value),
                time: k
                    .keepalive_time
                    .map(|v| std::time::Duration::from_secs(v.value.into())),
                interval: k
                    .keepalive_interval
                    .map(|v| std::time::Duration::from_secs(v.value.into())),
            }),
        ..Cluster::new(c.name.clone(), Vec::new())
    };
    if let Some((common, cp)) = http_options(ctx, c, p) {
        out.idle_timeout = ctx.timeout(
            common.idle_timeout.as_ref(),
            &cp.field("idle_timeout"),
            Some(DEFAULT_IDLE_TIMEOUT),
        );
        out.max_requests_per_connection = common
            .max_requests_per_connection
            .map(|v| v.value)
            .filter(|v| *v > 0);
        out.max_connection_duration = ctx.timeout(
            common.max_connection_duration.as_ref(),
            &cp.field("max_connection_duration"),
            None,
        );
        out.max_headers_count = match common.max_headers_count {
            None => DEFAULT_MAX_HEADERS_COUNT,
            Some(v) if v.value == 0 => {
                ctx.error(
                    &cp.field("max_headers_count"),
                    "max_headers_count must be at least 1",
                );
                DEFAULT_MAX_HEADERS_COUNT
            }
            Some(v) => v.value,
        };
    }
    out
}

fn endpoints(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Vec<Endpoint> {
    let mut out = Vec::new();
    let Some(la) = &c.load_assignment else {
        return out;
    };
    let lp = p.field("load_assignment").field("endpoints");
    for (i, locality) in la.endpoints.iter().enumerate() {
        let locp = lp.index(i).field("lb_endpoints");
        for (j, lbe) in locality.lb_endpoints.iter().enumerate() {
            let ep = locp.index(j);
            let weight = match lbe.load_balancing_weight {
                None => 1,
                Some(w) if w.value == 0 => {
                    ctx.error(
                        &ep.field("load_balancing_weight"),
                        "load_balancing_weight must be at least 1",
                    );
                    1
                }
                Some(w) => w.value,
            };
            let address = match &lbe.host_identifier {
                Some(lb_endpoint::HostIdentifier::Endpoint(e)) => match &e.address {
                    Some(a) => ctx.socket_addr(
                        a,
                        &ep.field("endpoint").field("address"),
                        super::Bind::Connect,
                    ),
                    None => {
                        ctx.error(
                            &ep.field("endpoint").field("address"),
                            "address is required",
                        );
                        None
                    }
                },
                Some(lb_endpoint::HostIdentifier::EndpointName(_)) => {
                    ctx.error(
                        &ep.field("endpoint_name"),
                        "named endpoints are not supported by spar-proxy yet",
                    );
                    None
                }
                None => {
                    ctx.error(&ep.field("endpoint"), "endpoint is required");
                    None
                }
            };
            if let Some(address) = address {
                out.push(Endpoint::new(address, weight));
            }
        }
    }
    out
}

fn thresholds(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Thresholds {
    let mut out = Thresholds::default();
    let Some(cb) = &c.circuit_breakers else {
        return out;
    };
    let tp = p.field("circuit_breakers").field("thresholds");
    let mut seen_default = false;
    for (i, t) in cb.thresholds.iter().enumerate() {
        if t.priority != 0 {
            ctx.error(
                &tp.index(i).field("priority"),
                "only priority DEFAULT is supported by spar-proxy yet",
            );
            continue;
        }
        if seen_default {
            ctx.error(
                &tp.index(i),
                "thresholds for priority DEFAULT are given twice",
            );
            continue;
        }
        seen_default = true;
        let d = Thresholds::default();
        out = Thresholds {
            max_connections: t.max_connections.map_or(d.max_connections, |v| v.value),
            max_pending_requests: t
                .max_pending_requests
                .map_or(d.max_pending_requests, |v| v.value),
            max_requests: t.max_requests.map_or(d.max_requests, |v| v.value),
            max_retries: t.max_retries.map_or(d.max_retries, |v| v.value),
            retry_budget: None,
        };
    }
    out
}

/// The cluster's common HTTP options: from `common_http_protocol_options` or from the
/// upstream `HttpProtocolOptions` extension (Envoy refuses both at once), with their path.
// `Cluster.common_http_protocol_options` is deprecated in Envoy's API but still accepted by
// Envoy, and bootstraps in the wild use it.
#[allow(deprecated)]
fn http_options(
    ctx: &mut Ctx<'_>,
    c: &PbCluster,
    p: &FieldPath,
) -> Option<(CommonHttp, FieldPath)> {
    let mut found: Option<(CommonHttp, FieldPath)> = c
        .common_http_protocol_options
        .map(|o| (o, p.field("common_http_protocol_options")));
    let mut keys: Vec<&String> = c.typed_extension_protocol_options.keys().collect();
    keys.sort();
    for key in keys {
        let kp = p.field("typed_extension_protocol_options").field(key);
        let Some(any) = c.typed_extension_protocol_options.get(key) else {
            continue;
        };
        if key != UPSTREAM_HTTP || !any.type_url.ends_with(&format!("/{UPSTREAM_HTTP}")) {
            ctx.error(
                &kp,
                format!("extension {key} not supported by spar-proxy yet"),
            );
            continue;
        }
        let opts = match UpstreamHttp::decode(any.value.as_slice()) {
            Ok(o) => o,
            Err(e) => {
                ctx.error(&kp, format!("does not decode as {UPSTREAM_HTTP}: {e}"));
                continue;
            }
        };
        match &opts.upstream_protocol_options {
            Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(e))
                if matches!(
                    e.protocol_config,
                    Some(http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(_))
                ) => {}
            _ => ctx.error(
                &kp,
                "only explicit_http_config.http_protocol_options (HTTP/1.1) is supported by spar-proxy yet",
            ),
        }
        if let Some(common) = opts.common_http_protocol_options {
            let cp = kp.field("common_http_protocol_options");
            if found.is_some() {
                ctx.error(
                    &cp,
                    "common_http_protocol_options is set both on the cluster and in its HttpProtocolOptions",
                );
            } else {
                found = Some((common, cp));
            }
        }
    }
    found
}
