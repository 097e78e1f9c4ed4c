//! Envoy `RouteConfiguration` (inline in the connection manager) into a [`RouteTable`]:
//! virtual hosts, routes, matchers and actions. Policies shared by several levels (header
//! mutations, retry, hash, fault, CORS, string matchers) are in `policy.rs`.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher as PbHeaderMatcher, QueryParameterMatcher, Route as PbRoute, RouteConfiguration,
    RouteMatch as PbRouteMatch, VirtualHost as PbVirtualHost, header_matcher,
    query_parameter_matcher, route, route_match,
};
use envoy_types::pb::google::protobuf::Any;
use spar_cluster::ClusterId;
use spar_route::{
    Action, ConfigHeaders, CorsPolicy, DomainMatch, FaultPolicy, HeaderMatcher, HeaderRule,
    PathMatch, QueryMatcher, QueryRule, Route, RouteMatch, RouteTable, StringMatch, StringMatcher,
    VirtualHost, valid_header_name,
};

use super::policy;
use super::{Ctx, action};
use crate::allowlist::{CORS_POLICY, HTTP_FAULT};
use crate::error::FieldPath;

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
            action::route_action(ctx, a, &p.field("route"), scope).map(Action::Forward)
        }
        Some(route::Action::Redirect(rd)) => {
            action::redirect(ctx, rd, &p.field("redirect")).map(Action::Redirect)
        }
        Some(route::Action::DirectResponse(d)) => {
            action::direct(ctx, d, &p.field("direct_response")).map(Action::Direct)
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
        Some(P::ConnectMatcher(_)) => Some(PathMatch::Connect),
        Some(_) => {
            ctx.error(
                p,
                "only prefix, path, safe_regex, path_separated_prefix and connect_matcher matches are supported by spar-proxy yet",
            );
            None
        }
        None => {
            ctx.error(
                p,
                "match needs prefix, path, safe_regex, path_separated_prefix or connect_matcher",
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

#[cfg(test)]
mod tests;
