//! Envoy `Cluster` (STATIC, or EDS: `eds.rs`) into [`spar_cluster::Cluster`]: connection settings here;
//! endpoints in `endpoints.rs`, load balancing in `lb.rs`, circuit breakers, outlier
//! detection and health checks in `resilience.rs`.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as PbCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions as CommonHttp,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttp, http_protocol_options,
};
use prost::Message;
use spar_cluster::{
    Cluster, DEFAULT_BUFFER_LIMIT_BYTES, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_HEADERS_COUNT, TcpKeepalive,
};

use super::{Ctx, eds, endpoints, lb, resilience, tls};
use crate::allowlist::UPSTREAM_HTTP;
use crate::error::FieldPath;
use crate::snapshot::ClusterTransport;

/// All clusters, in order (index = `ClusterId`), with how to reach their endpoints.
/// Clusters with errors are still returned so that ids stay aligned; the caller fails the
/// whole compile when errors were recorded.
pub(super) fn compile_all(
    ctx: &mut Ctx<'_>,
    clusters: &[PbCluster],
    path: &FieldPath,
) -> (Vec<Cluster>, Vec<ClusterTransport>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(clusters.len());
    let mut transports = Vec::with_capacity(clusters.len());
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
        let (cluster, transport) = compile_one(ctx, c, &p, i);
        out.push(cluster);
        transports.push(transport);
    }
    (out, transports)
}

/// Cluster `c`, the `index`th, at `p`.
fn compile_one(
    ctx: &mut Ctx<'_>,
    c: &PbCluster,
    p: &FieldPath,
    index: usize,
) -> (Cluster, ClusterTransport) {
    let eds = cluster::DiscoveryType::Eds as i32;
    match c.cluster_discovery_type {
        None | Some(cluster::ClusterDiscoveryType::Type(0)) => {}
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == eds => {}
        Some(_) => ctx.error(
            &p.field("type"),
            "only STATIC and EDS clusters are supported by spar-proxy yet",
        ),
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
    let (endpoints, localities) = match eds::endpoints(ctx, c, p, index >= ctx.dynamic_from) {
        Some(from_eds) => from_eds,
        None => endpoints::compile(ctx, c, p),
    };
    let (thresholds, thresholds_high) = resilience::thresholds(ctx, c, p);
    let lb = lb::compile(ctx, c, p);
    let mut out = Cluster {
        connect_timeout,
        lb: lb.policy,
        panic_threshold_percent: lb.panic_threshold_percent,
        locality_weighted: lb.locality_weighted,
        subsets: lb.subsets,
        endpoints,
        localities,
        thresholds,
        thresholds_high,
        outlier: resilience::outlier(ctx, c, p),
        health_checks: resilience::health_checks(ctx, c, p),
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
    let options = http_options(ctx, c, p);
    let transport = ClusterTransport {
        tls: tls::upstream(
            ctx,
            c.transport_socket.as_ref(),
            &p.field("transport_socket"),
        )
        .unwrap_or_default(),
        http2: options
            .http2
            .map(|(o, hp)| tls::http2_options(ctx, Some(&o), &hp)),
    };
    if let Some((common, cp)) = options.common {
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
    (out, transport)
}

/// What a cluster says about HTTP, with the path of each part.
#[derive(Default)]
struct HttpOptions {
    /// From `common_http_protocol_options` or from the upstream `HttpProtocolOptions`
    /// extension (Envoy refuses both at once).
    common: Option<(CommonHttp, FieldPath)>,
    /// `http2_protocol_options` (deprecated field) or the extension's
    /// `explicit_http_config.http2_protocol_options`: the upstream speaks HTTP/2.
    http2: Option<(Http2ProtocolOptions, FieldPath)>,
}

/// The cluster's HTTP options.
// `Cluster.common_http_protocol_options` is deprecated in Envoy's API but still accepted by
// Envoy, and bootstraps in the wild use it.
#[allow(deprecated)]
fn http_options(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> HttpOptions {
    let mut found: Option<(CommonHttp, FieldPath)> = c
        .common_http_protocol_options
        .map(|o| (o, p.field("common_http_protocol_options")));
    let mut http2 = c
        .http2_protocol_options
        .clone()
        .map(|o| (o, p.field("http2_protocol_options")));
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
        use http_protocol_options::explicit_http_config::ProtocolConfig;
        match &opts.upstream_protocol_options {
            Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(e)) => {
                match &e.protocol_config {
                    Some(ProtocolConfig::HttpProtocolOptions(_)) => {}
                    Some(ProtocolConfig::Http2ProtocolOptions(o)) => {
                        let hp = kp
                            .field("explicit_http_config")
                            .field("http2_protocol_options");
                        if http2.is_some() {
                            ctx.error(
                                &hp,
                                "http2_protocol_options is set both on the cluster and in its HttpProtocolOptions",
                            );
                        } else {
                            http2 = Some((o.clone(), hp));
                        }
                    }
                    _ => ctx.error(
                        &kp.field("explicit_http_config"),
                        "only http_protocol_options (HTTP/1.1) and http2_protocol_options are supported by spar-proxy yet",
                    ),
                }
            }
            _ => ctx.error(
                &kp,
                "only explicit_http_config is supported by spar-proxy yet",
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
    HttpOptions {
        common: found,
        http2,
    }
}

#[cfg(test)]
mod tests;
