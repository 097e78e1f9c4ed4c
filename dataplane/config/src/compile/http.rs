//! Envoy `HttpConnectionManager` with an inline `route_config` and the router filter into
//! [`HttpSettings`] and a [`RouteTable`].

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
pub(super) use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager as hcm, http_filter,
};
use spar_cluster::ClusterId;
use spar_route::{FaultPolicy, RouteTable};

use super::Ctx;
use super::policy;
use super::route::{FilterNames, Scope, route_table};
use crate::allowlist::{CORS, HTTP_FAULT, RBAC_HTTP, ROUTER};
use crate::error::FieldPath;
use crate::snapshot::{
    Codec, DEFAULT_DELAYED_CLOSE_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HTTP_IDLE_TIMEOUT,
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
    let codec = match hcm::CodecType::try_from(h.codec_type) {
        Ok(hcm::CodecType::Http1) => Codec::Http1,
        Ok(hcm::CodecType::Http2) => Codec::Http2,
        Ok(hcm::CodecType::Auto) => Codec::Auto,
        _ => {
            ctx.error(
                &p.field("codec_type"),
                "only AUTO, HTTP1 and HTTP2 are supported by spar-proxy yet",
            );
            Codec::Auto
        }
    };
    let http2 = super::tls::http2_options(
        ctx,
        h.http2_protocol_options.as_ref(),
        &p.field("http2_protocol_options"),
    );
    let (filters, fault, rbac) = http_filters(ctx, h, p);
    let scope = Scope {
        clusters,
        filters: &filters,
    };
    let routes = match &h.route_specifier {
        Some(hcm::RouteSpecifier::RouteConfig(rc)) => {
            route_table(ctx, rc, &p.field("route_config"), &scope)
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
    let upgrades = h
        .upgrade_configs
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let up = p.field("upgrade_configs").index(i);
            upgrade_type(ctx, &u.upgrade_type, &up.field("upgrade_type"))
                .map(|t| (t, u.enabled.is_none_or(|e| e.value)))
        })
        .collect();
    Some(HttpSettings {
        upgrades,
        stat_prefix: h.stat_prefix.clone(),
        codec,
        http2,
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
        fault,
        cors_enabled: filters.cors.is_some(),
        rbac,
    })
}

/// The CORS filter's name when it is given without `typed_config`.
const CORS_NAME: &str = "envoy.filters.http.cors";

/// Which HTTP filter an `http_filters` entry is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Filter {
    Rbac,
    Fault,
    Cors,
    Router,
}

/// `http_filters`: optionally the fault filter, then optionally the CORS filter, then the
/// router, in that order, each at most once. Returns the names of the optional filters and
/// the fault filter's own policy.
fn http_filters(
    ctx: &mut Ctx<'_>,
    h: &HttpConnectionManager,
    p: &FieldPath,
) -> (
    FilterNames,
    Option<FaultPolicy>,
    Vec<Arc<spar_rbac::RbacFilter>>,
) {
    let fp = p.field("http_filters");
    let mut names = FilterNames::default();
    let mut fault = None;
    let mut rbac = Vec::new();
    let mut last: Option<(Filter, usize)> = None;
    for (i, f) in h.http_filters.iter().enumerate() {
        let ip = fp.index(i);
        let any = match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => Some(any),
            _ => None,
        };
        let kind = match any.map(|a| a.type_url.rsplit('/').next().unwrap_or_default()) {
            Some(ROUTER) => Some(Filter::Router),
            Some(HTTP_FAULT) => Some(Filter::Fault),
            Some(CORS) => Some(Filter::Cors),
            Some(RBAC_HTTP) => Some(Filter::Rbac),
            None if f.name == ROUTER_NAME => Some(Filter::Router),
            None if f.name == CORS_NAME => Some(Filter::Cors),
            _ => None,
        };
        let Some(kind) = kind else {
            ctx.error(
                &ip,
                "only the RBAC, fault (typed_config HTTPFault), CORS and router filters are supported by spar-proxy yet",
            );
            continue;
        };
        if f.name.is_empty() {
            ctx.error(&ip.field("name"), "name is required");
        }
        match last {
            Some((prev, _)) if prev == kind && kind != Filter::Rbac => {
                let what = match kind {
                    Filter::Router => "the router filter",
                    Filter::Fault => "the fault filter",
                    Filter::Cors => "the CORS filter",
                    Filter::Rbac => "the RBAC filter",
                };
                ctx.error(&ip, format!("{what} is given twice"));
                continue;
            }
            Some((Filter::Router, _)) => {
                ctx.error(&ip, "the router filter must be the last HTTP filter");
                continue;
            }
            Some((prev, at)) if prev > kind => {
                let rule = if kind == Filter::Rbac {
                    "spar-proxy runs RBAC filters first: they must come before the fault and CORS filters"
                } else {
                    "the fault filter must come before the CORS filter"
                };
                ctx.error(&ip, format!("{rule} ({})", fp.index(at)));
                continue;
            }
            _ => {}
        }
        last = Some((kind, i));
        match kind {
            Filter::Fault => {
                names.fault = Some(f.name.clone());
                fault = any
                    .and_then(|a| policy::decode(ctx, a, &ip.field("typed_config"), HTTP_FAULT))
                    .and_then(|hf| policy::fault(ctx, &hf, &ip.field("typed_config")));
            }
            Filter::Cors => names.cors = Some(f.name.clone()),
            Filter::Rbac => {
                let tp = ip.field("typed_config");
                let decoded = any.and_then(|a| policy::decode::<HttpRbac>(ctx, a, &tp, RBAC_HTTP));
                if let Some(pb) = decoded {
                    match spar_rbac::compile_http_filter(&pb) {
                        Ok(compiled) => rbac.push(Arc::new(compiled)),
                        Err(errors) => {
                            for e in errors.0 {
                                ctx.error(&tp.dotted(&e.path), e.message);
                            }
                        }
                    }
                }
            }
            Filter::Router => {}
        }
    }
    if last.is_none_or(|(k, _)| k != Filter::Router) {
        ctx.error(
            &fp,
            "the router filter (envoy.extensions.filters.http.router.v3.Router) is required, last",
        );
    }
    (names, fault, rbac)
}

/// An `upgrade_type`, lower-cased: an HTTP token; CONNECT is not relayed by spar-proxy yet.
pub(super) fn upgrade_type(ctx: &mut Ctx<'_>, t: &str, p: &FieldPath) -> Option<String> {
    let lower = t.to_ascii_lowercase();
    if !spar_route::valid_header_name(&lower) {
        ctx.error(p, format!("`{t}` is not a valid upgrade token"));
        None
    } else {
        Some(lower)
    }
}
