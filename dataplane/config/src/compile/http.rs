//! Envoy `HttpConnectionManager` with an inline `route_config` and the router filter into
//! [`HttpSettings`] and a [`RouteTable`].

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, route, route_action, route_match,
};
pub(super) use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager as hcm, http_filter,
};
use spar_cluster::ClusterId;
use spar_route::{
    DEFAULT_ROUTE_TIMEOUT, DomainMatch, PathMatch, Route, RouteAction, RouteTable, VirtualHost,
};

use super::Ctx;
use super::listener::cluster_ref;
use crate::allowlist::ROUTER;
use crate::error::FieldPath;
use crate::snapshot::{
    DEFAULT_DELAYED_CLOSE_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HTTP_IDLE_TIMEOUT,
    DEFAULT_MAX_HEADERS_COUNT, DEFAULT_MAX_REQUEST_HEADERS_KB, DEFAULT_REQUEST_HEADERS_TIMEOUT,
    DEFAULT_STREAM_IDLE_TIMEOUT, EscapedSlashesAction, HttpSettings, ServerHeaderTransformation,
};

/// Envoy's upper bound on `max_request_headers_kb`: 8 MiB.
const MAX_REQUEST_HEADERS_KB: u32 = 8192;

/// The router filter's name when it is given without `typed_config` (older configs).
const ROUTER_NAME: &str = "envoy.filters.http.router";

pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    h: &HttpConnectionManager,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<HttpSettings> {
    if h.stat_prefix.is_empty() {
        ctx.error(&p.field("stat_prefix"), "stat_prefix is required");
    }
    match hcm::CodecType::try_from(h.codec_type) {
        Ok(hcm::CodecType::Auto | hcm::CodecType::Http1) => {}
        _ => ctx.error(
            &p.field("codec_type"),
            "only AUTO and HTTP1 are supported by spar-proxy yet",
        ),
    }
    http_filters(ctx, h, p);
    let routes = match &h.route_specifier {
        Some(hcm::RouteSpecifier::RouteConfig(rc)) => {
            route_table(ctx, rc, &p.field("route_config"), clusters)
        }
        _ => {
            ctx.error(
                &p.field("route_config"),
                "route_config is required (rds and scoped routes are not supported by spar-proxy yet)",
            );
            RouteTable::default()
        }
    };
    let common = h.common_http_protocol_options.unwrap_or_default();
    let cp = p.field("common_http_protocol_options");
    let max_headers_count = match common.max_headers_count {
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
    let max_request_headers_kb = match h.max_request_headers_kb {
        None => DEFAULT_MAX_REQUEST_HEADERS_KB,
        Some(v) if v.value == 0 || v.value > MAX_REQUEST_HEADERS_KB => {
            ctx.error(
                &p.field("max_request_headers_kb"),
                format!("max_request_headers_kb must be from 1 to {MAX_REQUEST_HEADERS_KB}"),
            );
            DEFAULT_MAX_REQUEST_HEADERS_KB
        }
        Some(v) => v.value,
    };
    let server_header_transformation =
        match hcm::ServerHeaderTransformation::try_from(h.server_header_transformation) {
            Ok(hcm::ServerHeaderTransformation::AppendIfAbsent) => {
                ServerHeaderTransformation::AppendIfAbsent
            }
            Ok(hcm::ServerHeaderTransformation::PassThrough) => {
                ServerHeaderTransformation::PassThrough
            }
            _ => ServerHeaderTransformation::Overwrite,
        };
    use hcm::PathWithEscapedSlashesAction as Esc;
    let escaped_slashes = match Esc::try_from(h.path_with_escaped_slashes_action) {
        Ok(Esc::RejectRequest) => EscapedSlashesAction::RejectRequest,
        Ok(Esc::UnescapeAndRedirect) => EscapedSlashesAction::UnescapeAndRedirect,
        Ok(Esc::UnescapeAndForward) => EscapedSlashesAction::UnescapeAndForward,
        _ => EscapedSlashesAction::KeepUnchanged,
    };
    // Fields Envoy's format has and this data path does not enforce yet are
    // refused when set, never silently ignored.
    let request_timeout_set = h
        .request_timeout
        .as_ref()
        .is_some_and(|d| d.seconds > 0 || (d.seconds == 0 && d.nanos > 0));
    let not_yet = [
        (
            h.normalize_path.as_ref().is_some_and(|b| b.value),
            "normalize_path",
        ),
        (h.merge_slashes, "merge_slashes"),
        (
            escaped_slashes != EscapedSlashesAction::KeepUnchanged,
            "path_with_escaped_slashes_action",
        ),
        (!h.server_name.is_empty(), "server_name"),
        (
            server_header_transformation != ServerHeaderTransformation::Overwrite,
            "server_header_transformation",
        ),
        (request_timeout_set, "request_timeout"),
        (h.xff_num_trusted_hops != 0, "xff_num_trusted_hops"),
    ];
    for (set, field) in not_yet {
        if set {
            ctx.error(
                &p.field(field),
                "not enforced by spar-proxy yet: remove it or set its default",
            );
        }
    }
    let drain_timeout = match &h.drain_timeout {
        None => DEFAULT_DRAIN_TIMEOUT,
        Some(d) => ctx
            .duration(d, &p.field("drain_timeout"))
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
    };
    Some(HttpSettings {
        stat_prefix: h.stat_prefix.clone(),
        routes,
        use_remote_address: h.use_remote_address.is_some_and(|v| v.value),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        skip_xff_append: h.skip_xff_append,
        generate_request_id: h.generate_request_id.is_none_or(|v| v.value),
        preserve_external_request_id: h.preserve_external_request_id,
        server_name: (!h.server_name.is_empty()).then(|| h.server_name.clone()),
        server_header_transformation,
        max_request_headers_kb,
        max_headers_count,
        idle_timeout: ctx.timeout(
            common.idle_timeout.as_ref(),
            &cp.field("idle_timeout"),
            Some(DEFAULT_HTTP_IDLE_TIMEOUT),
        ),
        request_headers_timeout: ctx.timeout(
            h.request_headers_timeout.as_ref(),
            &p.field("request_headers_timeout"),
            Some(DEFAULT_REQUEST_HEADERS_TIMEOUT),
        ),
        request_timeout: ctx.timeout(
            h.request_timeout.as_ref(),
            &p.field("request_timeout"),
            None,
        ),
        stream_idle_timeout: ctx.timeout(
            h.stream_idle_timeout.as_ref(),
            &p.field("stream_idle_timeout"),
            Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        ),
        drain_timeout,
        delayed_close_timeout: ctx.timeout(
            h.delayed_close_timeout.as_ref(),
            &p.field("delayed_close_timeout"),
            Some(DEFAULT_DELAYED_CLOSE_TIMEOUT),
        ),
        max_requests_per_connection: common
            .max_requests_per_connection
            .map(|v| v.value)
            .filter(|v| *v > 0),
        max_connection_duration: ctx.timeout(
            common.max_connection_duration.as_ref(),
            &cp.field("max_connection_duration"),
            None,
        ),
        normalize_path: h.normalize_path.is_some_and(|v| v.value),
        merge_slashes: h.merge_slashes,
        escaped_slashes,
    })
}

/// `http_filters` must be exactly the router.
fn http_filters(ctx: &mut Ctx<'_>, h: &HttpConnectionManager, p: &FieldPath) {
    let fp = p.field("http_filters");
    if h.http_filters.is_empty() {
        ctx.error(
            &fp,
            "the router filter (envoy.extensions.filters.http.router.v3.Router) is required",
        );
    }
    for (i, f) in h.http_filters.iter().enumerate() {
        let is_router = match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => {
                any.type_url.rsplit('/').next() == Some(ROUTER)
            }
            None => f.name == ROUTER_NAME,
            Some(_) => false,
        };
        if !is_router {
            ctx.error(
                &fp.index(i),
                "only the router filter is supported by spar-proxy yet",
            );
        } else if i > 0 {
            ctx.error(&fp.index(i), "the router filter is given twice");
        }
    }
}

fn route_table(
    ctx: &mut Ctx<'_>,
    rc: &RouteConfiguration,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> RouteTable {
    // Lower-cased domain text -> (virtual host index, domain index), for Envoy's rule that a
    // domain may appear only once in a route configuration.
    let mut domains_seen: HashMap<String, (usize, usize)> = HashMap::new();
    let vp = p.field("virtual_hosts");
    let mut vhosts = Vec::with_capacity(rc.virtual_hosts.len());
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vhp = vp.index(i);
        if vh.name.is_empty() {
            ctx.error(&vhp.field("name"), "name is required");
        }
        if vh.domains.is_empty() {
            ctx.error(&vhp.field("domains"), "at least one domain is required");
        }
        let mut domains = Vec::with_capacity(vh.domains.len());
        for (j, d) in vh.domains.iter().enumerate() {
            let dp = vhp.field("domains").index(j);
            match DomainMatch::parse(d) {
                Ok(m) => domains.push(m),
                Err(e) => ctx.error(&dp, format!("`{d}`: {e}")),
            }
            if let Some((fi, fj)) = domains_seen.get(&d.to_ascii_lowercase()).copied() {
                ctx.error(
                    &dp,
                    format!(
                        "duplicate domain `{d}` (also at {})",
                        vp.index(fi).field("domains").index(fj)
                    ),
                );
            } else {
                domains_seen.insert(d.to_ascii_lowercase(), (i, j));
            }
        }
        let routes = vh
            .routes
            .iter()
            .enumerate()
            .filter_map(|(j, r)| route(ctx, r, &vhp.field("routes").index(j), clusters))
            .collect();
        vhosts.push(VirtualHost {
            name: vh.name.clone(),
            domains,
            routes,
        });
    }
    RouteTable::new(vhosts)
}

fn route(
    ctx: &mut Ctx<'_>,
    r: &envoy_types::pb::envoy::config::route::v3::Route,
    p: &FieldPath,
    clusters: &HashMap<&str, ClusterId>,
) -> Option<Route> {
    let mp = p.field("match");
    let (path, case_sensitive) = match &r.r#match {
        None => {
            ctx.error(&mp, "match is required");
            (None, true)
        }
        Some(m) => {
            let path = match &m.path_specifier {
                Some(route_match::PathSpecifier::Prefix(s)) => Some(PathMatch::Prefix(s.clone())),
                Some(route_match::PathSpecifier::Path(s)) => Some(PathMatch::Exact(s.clone())),
                Some(_) => {
                    ctx.error(
                        &mp,
                        "only prefix and path matches are supported by spar-proxy yet",
                    );
                    None
                }
                None => {
                    ctx.error(&mp, "match needs prefix or path");
                    None
                }
            };
            (path, m.case_sensitive.is_none_or(|v| v.value))
        }
    };
    let action = match &r.action {
        Some(route::Action::Route(a)) => {
            let ap = p.field("route");
            let cluster = match &a.cluster_specifier {
                Some(route_action::ClusterSpecifier::Cluster(name)) => {
                    cluster_ref(ctx, clusters, name, &ap.field("cluster"))
                        .map(|id| (id, name.clone()))
                }
                Some(_) => {
                    ctx.error(&ap, "only route.cluster is supported by spar-proxy yet");
                    None
                }
                None => {
                    ctx.error(&ap.field("cluster"), "cluster is required");
                    None
                }
            };
            let timeout = ctx.timeout(
                a.timeout.as_ref(),
                &ap.field("timeout"),
                Some(DEFAULT_ROUTE_TIMEOUT),
            );
            cluster.map(|(cluster, cluster_name)| RouteAction {
                cluster,
                cluster_name,
                timeout,
            })
        }
        Some(_) => {
            ctx.error(p, "only the `route` action is supported by spar-proxy yet");
            None
        }
        None => {
            ctx.error(p, "route has no action (set route.cluster)");
            None
        }
    };
    Some(Route {
        name: r.name.clone(),
        path: path?,
        case_sensitive,
        action: action?,
    })
}
