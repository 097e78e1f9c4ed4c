//! Envoy `RouteConfiguration` (inline in the connection manager) into a [`RouteTable`]:
//! virtual hosts, routes, matchers and actions. Policies shared by several levels (header
//! mutations, retry, hash, fault, CORS, string matchers) are in `policy.rs`.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher as PbHeaderMatcher, QueryParameterMatcher, RedirectAction,
    Route as PbRoute, RouteAction as PbRouteAction, RouteConfiguration, RouteMatch as PbRouteMatch,
    VirtualHost as PbVirtualHost, WeightedCluster as PbWeighted, header_matcher,
    query_parameter_matcher, redirect_action, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::google::protobuf::Any;
use spar_cluster::ClusterId;
use spar_route::{
    Action, ClusterRef, ConfigHeaders, CorsPolicy, DEFAULT_ROUTE_TIMEOUT, DirectResponse,
    DomainMatch, FaultPolicy, Fraction, HeaderMatcher, HeaderRule, HostRewrite, Mirror, PathMatch,
    QueryMatcher, QueryRule, Redirect, RedirectPath, Route, RouteAction, RouteMatch, RouteTable,
    StringMatch, StringMatcher, Target, VirtualHost, WeightedCluster, WeightedClusters,
    valid_header_name,
};

use super::Ctx;
use super::listener::cluster_ref;
use super::policy;
use crate::allowlist::{CORS_POLICY, HTTP_FAULT};
use crate::error::FieldPath;

/// Envoy's default `max_direct_response_body_size_bytes`: 4 KiB.
const MAX_DIRECT_BODY_BYTES: usize = 4096;

/// Names of the optional HTTP filters of this connection manager, which
/// `typed_per_filter_config` keys must name.
#[derive(Debug, Default)]
pub(super) struct FilterNames {
    pub(super) fault: Option<String>,
    pub(super) cors: Option<String>,
}

pub(super) struct Scope<'a> {
    pub(super) clusters: &'a HashMap<&'a str, ClusterId>,
    pub(super) filters: &'a FilterNames,
}

pub(super) fn route_table(
    ctx: &mut Ctx<'_>,
    rc: &RouteConfiguration,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> RouteTable {
    // Lower-cased domain text -> (virtual host index, domain index), for Envoy's rule that a
    // domain may appear only once in a route configuration.
    let mut domains_seen: HashMap<String, (usize, usize)> = HashMap::new();
    let vp = p.field("virtual_hosts");
    let mut vhosts = Vec::with_capacity(rc.virtual_hosts.len());
    for (i, vh) in rc.virtual_hosts.iter().enumerate() {
        let vhp = vp.index(i);
        for (j, d) in vh.domains.iter().enumerate() {
            if let Some((fi, fj)) = domains_seen.get(&d.to_ascii_lowercase()).copied() {
                ctx.error(
                    &vhp.field("domains").index(j),
                    format!(
                        "duplicate domain `{d}` (also at {})",
                        vp.index(fi).field("domains").index(fj)
                    ),
                );
            } else {
                domains_seen.insert(d.to_ascii_lowercase(), (i, j));
            }
        }
        vhosts.push(virtual_host(ctx, vh, &vhp, scope));
    }
    let headers = ConfigHeaders {
        request: policy::mutation(
            ctx,
            &rc.request_headers_to_add,
            &rc.request_headers_to_remove,
            p,
            "request",
        ),
        response: policy::mutation(
            ctx,
            &rc.response_headers_to_add,
            &rc.response_headers_to_remove,
            p,
            "response",
        ),
    };
    RouteTable::new(vhosts, headers)
}

fn virtual_host(
    ctx: &mut Ctx<'_>,
    vh: &PbVirtualHost,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> VirtualHost {
    if vh.name.is_empty() {
        ctx.error(&p.field("name"), "name is required");
    }
    if vh.domains.is_empty() {
        ctx.error(&p.field("domains"), "at least one domain is required");
    }
    let mut domains = Vec::with_capacity(vh.domains.len());
    for (j, d) in vh.domains.iter().enumerate() {
        match DomainMatch::parse(d) {
            Ok(m) => domains.push(m),
            Err(e) => ctx.error(&p.field("domains").index(j), format!("`{d}`: {e}")),
        }
    }
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .filter_map(|(j, r)| compile_route(ctx, r, &p.field("routes").index(j), scope))
        .collect();
    let (fault, cors) = per_filter(ctx, &vh.typed_per_filter_config, p, scope);
    VirtualHost {
        name: vh.name.clone(),
        domains,
        routes,
        request_headers: policy::mutation(
            ctx,
            &vh.request_headers_to_add,
            &vh.request_headers_to_remove,
            p,
            "request",
        ),
        response_headers: policy::mutation(
            ctx,
            &vh.response_headers_to_add,
            &vh.response_headers_to_remove,
            p,
            "response",
        ),
        retry_policy: vh
            .retry_policy
            .as_ref()
            .and_then(|r| policy::retry(ctx, r, &p.field("retry_policy"))),
        cors,
        fault,
    }
}

/// `typed_per_filter_config`: fault and CORS overrides, keyed by the filter's name.
fn per_filter(
    ctx: &mut Ctx<'_>,
    configs: &HashMap<String, Any>,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> (Option<FaultPolicy>, Option<CorsPolicy>) {
    let mut fault = None;
    let mut cors = None;
    let mut keys: Vec<&String> = configs.keys().collect();
    keys.sort();
    for key in keys {
        let Some(any) = configs.get(key) else {
            continue;
        };
        let kp = p.field("typed_per_filter_config").field(key);
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        let (filter, kind) = match type_name {
            HTTP_FAULT => (&scope.filters.fault, "fault"),
            CORS_POLICY => (&scope.filters.cors, "CORS"),
            other => {
                ctx.error(
                    &kp,
                    format!("type {other} not supported by spar-proxy here"),
                );
                continue;
            }
        };
        if filter.as_deref() != Some(key.as_str()) {
            let named = match filter {
                Some(name) => {
                    format!("the {kind} filter of this connection manager is named `{name}`")
                }
                None => format!("this connection manager has no {kind} filter in http_filters"),
            };
            ctx.error(
                &kp,
                format!("`{key}` names no filter that takes {type_name}: {named}"),
            );
            continue;
        }
        if type_name == HTTP_FAULT {
            fault =
                policy::decode(ctx, any, &kp, HTTP_FAULT).and_then(|f| policy::fault(ctx, &f, &kp));
        } else {
            cors =
                policy::decode(ctx, any, &kp, CORS_POLICY).and_then(|c| policy::cors(ctx, &c, &kp));
        }
    }
    (fault, cors)
}

fn compile_route(
    ctx: &mut Ctx<'_>,
    r: &PbRoute,
    p: &FieldPath,
    scope: &Scope<'_>,
) -> Option<Route> {
    let mp = p.field("match");
    let m = match &r.r#match {
        None => {
            ctx.error(&mp, "match is required");
            None
        }
        Some(m) => route_match(ctx, m, &mp),
    };
    let action = match &r.action {
        Some(route::Action::Route(a)) => {
            route_action(ctx, a, &p.field("route"), scope).map(Action::Forward)
        }
        Some(route::Action::Redirect(rd)) => {
            redirect(ctx, rd, &p.field("redirect")).map(Action::Redirect)
        }
        Some(route::Action::DirectResponse(d)) => {
            direct(ctx, d, &p.field("direct_response")).map(Action::Direct)
        }
        Some(_) => {
            ctx.error(
                p,
                "only the route, redirect and direct_response actions are supported by spar-proxy yet",
            );
            None
        }
        None => {
            ctx.error(
                p,
                "route has no action (set route, redirect or direct_response)",
            );
            None
        }
    };
    let (fault, cors) = per_filter(ctx, &r.typed_per_filter_config, p, scope);
    let request_headers = policy::mutation(
        ctx,
        &r.request_headers_to_add,
        &r.request_headers_to_remove,
        p,
        "request",
    );
    let response_headers = policy::mutation(
        ctx,
        &r.response_headers_to_add,
        &r.response_headers_to_remove,
        p,
        "response",
    );
    Some(Route {
        name: r.name.clone(),
        r#match: m?,
        action: action?,
        request_headers,
        response_headers,
        fault,
        cors,
    })
}

fn route_match(ctx: &mut Ctx<'_>, m: &PbRouteMatch, p: &FieldPath) -> Option<RouteMatch> {
    use route_match::PathSpecifier as P;
    let path = match &m.path_specifier {
        Some(P::Prefix(s)) => Some(PathMatch::Prefix(s.clone())),
        Some(P::Path(s)) => Some(PathMatch::Exact(s.clone())),
        Some(P::PathSeparatedPrefix(s)) => {
            let sp = p.field("path_separated_prefix");
            if !s.starts_with('/') || (s.len() > 1 && s.ends_with('/')) || s.contains(['?', '#']) {
                ctx.error(
                    &sp,
                    "must start with `/`, must not end with `/` and must not hold `?` or `#`",
                );
                None
            } else {
                Some(PathMatch::PathSeparatedPrefix(s.clone()))
            }
        }
        Some(P::SafeRegex(r)) => {
            policy::regex(ctx, &r.regex, &p.field("safe_regex").field("regex"))
                .map(PathMatch::Regex)
        }
        Some(_) => {
            ctx.error(
                p,
                "only prefix, path, safe_regex and path_separated_prefix matches are supported by spar-proxy yet",
            );
            None
        }
        None => {
            ctx.error(
                p,
                "match needs prefix, path, safe_regex or path_separated_prefix",
            );
            None
        }
    };
    let headers: Vec<Option<HeaderMatcher>> = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(ctx, h, &p.field("headers").index(i)))
        .collect();
    let query: Vec<Option<QueryMatcher>> = m
        .query_parameters
        .iter()
        .enumerate()
        .map(|(i, q)| query_matcher(ctx, q, &p.field("query_parameters").index(i)))
        .collect();
    Some(RouteMatch {
        path: path?,
        case_sensitive: m.case_sensitive.is_none_or(|v| v.value),
        headers: headers.into_iter().collect::<Option<_>>()?,
        query: query.into_iter().collect::<Option<_>>()?,
    })
}

/// Pseudo-headers a matcher may name.
const PSEUDO_HEADERS: &[&str] = &[":method", ":authority", ":path", ":scheme"];

/// A header name a matcher or hash policy may read: a token or a supported pseudo-header;
/// lower-cased.
pub(super) fn header_name(ctx: &mut Ctx<'_>, name: &str, p: &FieldPath) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if PSEUDO_HEADERS.contains(&lower.as_str()) || valid_header_name(&lower) {
        Some(lower)
    } else {
        ctx.error(
            p,
            format!(
                "`{name}` is not a header name (a token, or one of {})",
                PSEUDO_HEADERS.join(", ")
            ),
        );
        None
    }
}

// Envoy still accepts the deprecated `exact_match`, `prefix_match`, ... (Istio writes
// `string_match`); they mean the same as the `string_match` forms.
#[allow(deprecated)]
pub(super) fn header_matcher(
    ctx: &mut Ctx<'_>,
    h: &PbHeaderMatcher,
    p: &FieldPath,
) -> Option<HeaderMatcher> {
    use header_matcher::HeaderMatchSpecifier as S;
    let name = header_name(ctx, &h.name, &p.field("name"));
    let plain = |kind: StringMatch| {
        Some(HeaderRule::Value(StringMatcher {
            kind,
            ignore_case: false,
        }))
    };
    let rule = match &h.header_match_specifier {
        // Envoy: a matcher without a test requires the header to be present.
        None => Some(HeaderRule::Present(true)),
        Some(S::PresentMatch(b)) => Some(HeaderRule::Present(*b)),
        Some(S::ExactMatch(s)) => plain(StringMatch::Exact(s.clone())),
        Some(S::PrefixMatch(s)) => policy::non_empty(ctx, s, &p.field("prefix_match"))
            .and_then(|s| plain(StringMatch::Prefix(s))),
        Some(S::SuffixMatch(s)) => policy::non_empty(ctx, s, &p.field("suffix_match"))
            .and_then(|s| plain(StringMatch::Suffix(s))),
        Some(S::ContainsMatch(s)) => policy::non_empty(ctx, s, &p.field("contains_match"))
            .and_then(|s| plain(StringMatch::Contains(s))),
        Some(S::SafeRegexMatch(r)) => {
            policy::regex(ctx, &r.regex, &p.field("safe_regex_match").field("regex"))
                .and_then(|r| plain(StringMatch::Regex(r)))
        }
        Some(S::RangeMatch(r)) => {
            if r.start >= r.end {
                ctx.error(&p.field("range_match"), "start must be below end");
                None
            } else {
                Some(HeaderRule::Range {
                    start: r.start,
                    end: r.end,
                })
            }
        }
        Some(S::StringMatch(m)) => {
            policy::string_matcher(ctx, m, &p.field("string_match")).map(HeaderRule::Value)
        }
    };
    Some(HeaderMatcher {
        name: name?,
        rule: rule?,
        invert: h.invert_match,
        treat_missing_as_empty: h.treat_missing_header_as_empty,
    })
}

fn query_matcher(
    ctx: &mut Ctx<'_>,
    q: &QueryParameterMatcher,
    p: &FieldPath,
) -> Option<QueryMatcher> {
    use query_parameter_matcher::QueryParameterMatchSpecifier as S;
    if q.name.is_empty() {
        ctx.error(&p.field("name"), "name is required");
    }
    let rule = match &q.query_parameter_match_specifier {
        None | Some(S::PresentMatch(true)) => Some(QueryRule::Present),
        Some(S::PresentMatch(false)) => {
            ctx.error(
                &p.field("present_match"),
                "present_match: false is not supported (Envoy ignores it); remove it",
            );
            None
        }
        Some(S::StringMatch(m)) => {
            policy::string_matcher(ctx, m, &p.field("string_match")).map(QueryRule::Value)
        }
    };
    if q.name.is_empty() {
        return None;
    }
    Some(QueryMatcher {
        name: q.name.clone(),
        rule: rule?,
    })
}

fn route_action(
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
    Some(RouteAction {
        target: target?,
        timeout,
        idle_timeout,
        prefix_rewrite,
        regex_rewrite,
        host_rewrite,
        retry,
        hash_policy,
        mirrors,
        metadata_match,
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

fn redirect(ctx: &mut Ctx<'_>, r: &RedirectAction, p: &FieldPath) -> Option<Redirect> {
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

fn direct(ctx: &mut Ctx<'_>, d: &DirectResponseAction, p: &FieldPath) -> Option<DirectResponse> {
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

#[cfg(test)]
mod tests;
