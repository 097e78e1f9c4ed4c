//! Route actions: forward (cluster or weighted clusters, rewrites, retry, hash, mirrors,
//! metadata match), redirect and direct response.

use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, RouteAction as PbRouteAction,
    WeightedCluster as PbWeighted, redirect_action, route_action, weighted_cluster,
};
use spar_route::{
    ClusterRef, DEFAULT_ROUTE_TIMEOUT, DirectResponse, Fraction, HostRewrite, Mirror, Redirect,
    RedirectPath, RouteAction, Target, WeightedCluster, WeightedClusters,
};

use super::Ctx;
use super::listener::cluster_ref;
use super::policy;
use super::route::{Scope, header_name};
use crate::error::FieldPath;

/// Envoy's default `max_direct_response_body_size_bytes`: 4 KiB.
const MAX_DIRECT_BODY_BYTES: usize = 4096;

pub(super) fn route_action(
    ctx: &mut Ctx<'_>,
    a: &PbRouteAction,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> Option<RouteAction> {
    let target = match &a.cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(name)) => {
            cluster(ctx, scope, name, &p.field("cluster")).map(Target::Cluster)
        }
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
            weighted(ctx, w, &p.field("weighted_clusters"), scope).map(Target::Weighted)
        }
        Some(_) => {
            ctx.error(
                p,
                "only cluster and weighted_clusters are supported by spar-proxy yet",
            );
            None
        }
        None => {
            ctx.error(
                &p.field("cluster"),
                "cluster or weighted_clusters is required",
            );
            None
        }
    };
    if a.cluster_not_found_response_code != 0 {
        ctx.error(
            &p.field("cluster_not_found_response_code"),
            "only SERVICE_UNAVAILABLE (the default) is supported: clusters are checked at config time",
        );
    }
    let prefix_rewrite = (!a.prefix_rewrite.is_empty()).then(|| a.prefix_rewrite.clone());
    if let Some(pr) = &prefix_rewrite {
        policy::header_value_text(ctx, pr, &p.field("prefix_rewrite"));
    }
    let regex_rewrite = a
        .regex_rewrite
        .as_ref()
        .and_then(|r| policy::regex_rewrite(ctx, r, &p.field("regex_rewrite")));
    if prefix_rewrite.is_some() && a.regex_rewrite.is_some() {
        ctx.error(
            &p.field("regex_rewrite"),
            "set prefix_rewrite or regex_rewrite, not both",
        );
    }
    use route_action::HostRewriteSpecifier as H;
    let host_rewrite = match &a.host_rewrite_specifier {
        None => None,
        Some(H::HostRewriteLiteral(h)) => {
            policy::host(ctx, h, &p.field("host_rewrite_literal")).map(HostRewrite::Literal)
        }
        Some(H::HostRewriteHeader(h)) => {
            header_name(ctx, h, &p.field("host_rewrite_header")).map(HostRewrite::Header)
        }
        Some(H::HostRewritePathRegex(r)) => {
            policy::regex_rewrite(ctx, r, &p.field("host_rewrite_path_regex"))
                .map(HostRewrite::PathRegex)
        }
        Some(_) => {
            ctx.error(p, "this host rewrite is not supported by spar-proxy yet");
            None
        }
    };
    let timeout = ctx.timeout(
        a.timeout.as_ref(),
        &p.field("timeout"),
        Some(DEFAULT_ROUTE_TIMEOUT),
    );
    let idle_timeout = a
        .idle_timeout
        .as_ref()
        .and_then(|d| ctx.duration(d, &p.field("idle_timeout")));
    let grpc_timeout_max = a.max_stream_duration.as_ref().and_then(|m| {
        let mp = p.field("max_stream_duration");
        if m.max_stream_duration.is_some() {
            ctx.error(
                &mp.field("max_stream_duration"),
                "max_stream_duration is not supported by spar-proxy yet (use timeout)",
            );
        }
        m.grpc_timeout_header_max
            .as_ref()
            .and_then(|d| ctx.duration(d, &mp.field("grpc_timeout_header_max")))
    });
    let retry = a
        .retry_policy
        .as_ref()
        .and_then(|r| policy::retry(ctx, r, &p.field("retry_policy")));
    let hash_policy = a
        .hash_policy
        .iter()
        .enumerate()
        .filter_map(|(i, h)| policy::hash(ctx, h, &p.field("hash_policy").index(i)))
        .collect();
    let mirrors = a
        .request_mirror_policies
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let mp = p.field("request_mirror_policies").index(i);
            let cluster = cluster(ctx, scope, &m.cluster, &mp.field("cluster"));
            let fraction = match m
                .runtime_fraction
                .as_ref()
                .and_then(|f| f.default_value.as_ref())
            {
                None => Some(Fraction::ALL),
                Some(f) => {
                    policy::fraction(ctx, f, &mp.field("runtime_fraction").field("default_value"))
                }
            };
            Some(Mirror {
                cluster: cluster?,
                fraction: fraction?,
            })
        })
        .collect();
    let metadata_match = a
        .metadata_match
        .as_ref()
        .and_then(|m| policy::metadata(ctx, m, &p.field("metadata_match")));
    let upgrades = a
        .upgrade_configs
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let up = p.field("upgrade_configs").index(i);
            super::http::upgrade_type(ctx, &u.upgrade_type, &up.field("upgrade_type"))
                .map(|t| (t, u.enabled.is_none_or(|e| e.value)))
        })
        .collect();
    let mut connect_terminate = false;
    for (i, u) in a.upgrade_configs.iter().enumerate() {
        if let Some(cc) = &u.connect_config {
            let cp = p.field("upgrade_configs").index(i).field("connect_config");
            if !u.upgrade_type.eq_ignore_ascii_case("connect") {
                ctx.error(&cp, "connect_config is only for upgrade_type CONNECT");
            } else if cc.proxy_protocol_config.is_some() || cc.allow_post {
                ctx.error(
                    &cp,
                    "only an empty connect_config is supported by spar-proxy yet",
                );
            } else {
                connect_terminate = u.enabled.is_none_or(|e| e.value);
            }
        }
    }
    Some(RouteAction {
        connect_terminate,
        target: target?,
        timeout,
        idle_timeout,
        grpc_timeout_max,
        prefix_rewrite,
        regex_rewrite,
        host_rewrite,
        retry,
        hash_policy,
        mirrors,
        metadata_match,
        upgrades,
    })
}

fn cluster(ctx: &mut Ctx<'_>, scope: &Scope<'_>, name: &str, p: &FieldPath) -> Option<ClusterRef> {
    cluster_ref(ctx, scope.clusters, name, p).map(|id| ClusterRef {
        id,
        name: name.to_owned(),
    })
}

fn weighted(
    ctx: &mut Ctx<'_>,
    w: &PbWeighted,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> Option<WeightedClusters> {
    let cp = p.field("clusters");
    if w.clusters.is_empty() {
        ctx.error(&cp, "at least one cluster is required");
        return None;
    }
    let mut total: u64 = 0;
    let mut clusters = Vec::with_capacity(w.clusters.len());
    let mut ok = true;
    for (i, c) in w.clusters.iter().enumerate() {
        let p = cp.index(i);
        let compiled = weighted_cluster(ctx, c, &p, scope);
        match compiled {
            Some(c) => {
                total += u64::from(c.weight);
                clusters.push(c);
            }
            None => ok = false,
        }
    }
    if ok && total == 0 {
        ctx.error(
            &cp,
            "the weights add up to 0: at least one cluster needs a weight above 0",
        );
        return None;
    }
    // Deprecated, but when given Envoy requires it to be the sum.
    #[allow(deprecated)]
    let total_weight = w.total_weight;
    if let Some(t) = total_weight.filter(|t| t.value > 0)
        && ok
        && u64::from(t.value) != total
    {
        {
            ctx.error(
                &p.field("total_weight"),
                format!(
                    "total_weight {} is not the sum of the weights ({total})",
                    t.value
                ),
            );
        }
    }
    ok.then_some(WeightedClusters { clusters, total })
}

fn weighted_cluster(
    ctx: &mut Ctx<'_>,
    c: &weighted_cluster::ClusterWeight,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> Option<WeightedCluster> {
    let cluster = cluster(ctx, scope, &c.name, &p.field("name"));
    let weight = match c.weight {
        Some(w) => Some(w.value),
        None => {
            ctx.error(&p.field("weight"), "weight is required");
            None
        }
    };
    use weighted_cluster::cluster_weight::HostRewriteSpecifier as H;
    let host_rewrite = match &c.host_rewrite_specifier {
        None => Some(None),
        Some(H::HostRewriteLiteral(h)) => {
            policy::host(ctx, h, &p.field("host_rewrite_literal")).map(Some)
        }
    };
    Some(WeightedCluster {
        request_headers: policy::mutation(
            ctx,
            &c.request_headers_to_add,
            &c.request_headers_to_remove,
            p,
            "request",
        ),
        response_headers: policy::mutation(
            ctx,
            &c.response_headers_to_add,
            &c.response_headers_to_remove,
            p,
            "response",
        ),
        metadata_match: c
            .metadata_match
            .as_ref()
            .and_then(|m| policy::metadata(ctx, m, &p.field("metadata_match"))),
        cluster: cluster?,
        weight: weight?,
        host_rewrite: host_rewrite?,
    })
}

pub(super) fn redirect(ctx: &mut Ctx<'_>, r: &RedirectAction, p: &FieldPath) -> Option<Redirect> {
    use redirect_action::{
        PathRewriteSpecifier as Pr, RedirectResponseCode as C, SchemeRewriteSpecifier as S,
    };
    let scheme = match &r.scheme_rewrite_specifier {
        None | Some(S::HttpsRedirect(false)) => Some(None),
        Some(S::HttpsRedirect(true)) => Some(Some("https".to_owned())),
        Some(S::SchemeRedirect(s)) => {
            let valid = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
            if valid {
                Some(Some(s.to_ascii_lowercase()))
            } else {
                ctx.error(
                    &p.field("scheme_redirect"),
                    format!("`{s}` is not a URI scheme"),
                );
                None
            }
        }
    };
    let host = if r.host_redirect.is_empty() {
        Some(None)
    } else {
        policy::host(ctx, &r.host_redirect, &p.field("host_redirect")).map(Some)
    };
    let port = match u16::try_from(r.port_redirect) {
        Ok(0) => Some(None),
        Ok(port) => Some(Some(port)),
        Err(_) => {
            ctx.error(
                &p.field("port_redirect"),
                format!("port {} is out of range (1-65535)", r.port_redirect),
            );
            None
        }
    };
    let path = match &r.path_rewrite_specifier {
        None => Some(RedirectPath::Keep),
        Some(Pr::PathRedirect(s)) => policy::header_value_text(ctx, s, &p.field("path_redirect"))
            .then(|| RedirectPath::Path(s.clone())),
        Some(Pr::PrefixRewrite(s)) => policy::header_value_text(ctx, s, &p.field("prefix_rewrite"))
            .then(|| RedirectPath::Prefix(s.clone())),
        Some(Pr::RegexRewrite(rr)) => {
            policy::regex_rewrite(ctx, rr, &p.field("regex_rewrite")).map(RedirectPath::Regex)
        }
        Some(Pr::PathRewrite(_)) => {
            ctx.error(p, "path_rewrite is not supported by spar-proxy yet");
            None
        }
    };
    let status = match C::try_from(r.response_code) {
        Ok(C::MovedPermanently) => 301,
        Ok(C::Found) => 302,
        Ok(C::SeeOther) => 303,
        Ok(C::TemporaryRedirect) => 307,
        Ok(C::PermanentRedirect) => 308,
        Err(_) => {
            ctx.error(&p.field("response_code"), "unknown response code");
            return None;
        }
    };
    Some(Redirect {
        scheme: scheme?,
        host: host?,
        port: port?,
        path: path?,
        status,
        strip_query: r.strip_query,
    })
}

pub(super) fn direct(
    ctx: &mut Ctx<'_>,
    d: &DirectResponseAction,
    p: &FieldPath,
) -> Option<DirectResponse> {
    let status = match u16::try_from(d.status) {
        Ok(s @ 200..=599) => Some(s),
        _ => {
            ctx.error(
                &p.field("status"),
                format!("status {} is not from 200 to 599", d.status),
            );
            None
        }
    };
    let bp = p.field("body");
    let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
        None => Some(None),
        Some(data_source::Specifier::InlineString(s)) => Some(Some(s.as_bytes().to_vec())),
        Some(data_source::Specifier::InlineBytes(b)) => Some(Some(b.clone())),
        Some(_) => {
            ctx.error(
                &bp,
                "only inline_string and inline_bytes are supported by spar-proxy",
            );
            None
        }
    };
    let body = body?;
    if let Some(b) = &body
        && b.len() > MAX_DIRECT_BODY_BYTES
    {
        {
            ctx.error(
                &bp,
                format!("body is {} bytes; at most {MAX_DIRECT_BODY_BYTES} are allowed (Envoy's default limit)", b.len()),
            );
            return None;
        }
    }
    Some(DirectResponse {
        status: status?,
        body: body.map(bytes::Bytes::from),
    })
}
