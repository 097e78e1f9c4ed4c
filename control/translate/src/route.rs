//! VirtualService HTTP routes into Envoy routes: matches, weighted destinations, redirects,
//! direct responses, rewrites, timeouts, retries, faults, mirrors, CORS and header changes.

use envoy_types::pb::envoy::config::core::v3::{DataSource, RuntimeFractionalPercent, data_source};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, Route, RouteAction,
    RouteMatch, WeightedCluster, header_matcher, query_parameter_matcher, redirect_action, route,
    route_match, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::{BoolValue, Duration, UInt32Value};
use spar_istio::Resource;
use spar_istio::model::StringMatch;
use spar_istio::model::virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, RedirectPortSelection, VirtualService,
};

mod policy;

use crate::Cx;
use crate::cluster::{Want, destination_rule};
use crate::names::{duration, fqdn, outbound_cluster};
use crate::registry::selects;
use policy::default_retry;
use policy::{base64, headers, hundred, million, per_filter, retry};

/// Names of the HTTP filters every connection manager carries, in spar-proxy's order.
pub(crate) const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub(crate) const CORS_FILTER: &str = "envoy.filters.http.cors";
pub(crate) const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// Where the routes of one VirtualService are being placed.
pub(crate) struct Place<'a> {
    pub(crate) vs: &'a Resource,
    pub(crate) spec: &'a VirtualService,
    /// `ns/name` of the gateway, or `None` for sidecars (the `mesh` gateway).
    pub(crate) gateway: Option<&'a str>,
    /// The port the request arrived on: the gateway server port or the service port.
    pub(crate) port: u32,
}

/// The routes of `place.spec.http`, in order (first match wins).
pub(crate) fn http_routes(cx: &mut Cx<'_>, place: &Place<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, http) in place.spec.http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        let Some(action) = action(cx, place, http, &at) else {
            continue;
        };
        let matches: Vec<(usize, &HttpMatchRequest)> = if http.matches.is_empty() {
            vec![]
        } else {
            let kept: Vec<_> = http
                .matches
                .iter()
                .enumerate()
                .filter(|(_, m)| applies(cx, place, m))
                .collect();
            if kept.is_empty() {
                continue;
            }
            kept
        };
        let per_filter = per_filter(cx, place.vs, http, &at);
        let mut base = Route {
            action: Some(action.clone()),
            typed_per_filter_config: per_filter,
            ..Default::default()
        };
        if let Some(h) = &http.headers {
            headers(cx, place.vs, h, &format!("{at}.headers"), &mut base);
        }
        if matches.is_empty() {
            out.push(Route {
                name: http.name.clone().unwrap_or_default(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                ..base
            });
            continue;
        }
        for (j, m) in matches {
            let name = match (&http.name, &m.name) {
                (Some(r), Some(m)) => format!("{r}.{m}"),
                (Some(n), None) | (None, Some(n)) => n.clone(),
                (None, None) => String::new(),
            };
            out.push(Route {
                name,
                r#match: Some(route_match(cx, place.vs, m, &format!("{at}.match[{j}]"))),
                ..base.clone()
            });
        }
    }
    out
}

/// Whether a match entry's gateway, port and source conditions hold for this proxy.
fn applies(cx: &Cx<'_>, place: &Place<'_>, m: &HttpMatchRequest) -> bool {
    if !m.gateways.is_empty() {
        let here = place.gateway.unwrap_or("mesh");
        let ns = &place.vs.namespace;
        let named = |g: &String| {
            if g == "mesh" {
                "mesh".to_owned()
            } else if g.contains('/') {
                g.clone()
            } else {
                format!("{ns}/{g}")
            }
        };
        if !m.gateways.iter().any(|g| named(g) == here) {
            return false;
        }
    }
    if m.port.is_some_and(|p| p != place.port) {
        return false;
    }
    if place.gateway.is_none() {
        if !m.source_labels.is_empty() && !selects(&m.source_labels, &cx.proxy.labels) {
            return false;
        }
        if m.source_namespace
            .as_ref()
            .is_some_and(|n| *n != cx.proxy.namespace)
        {
            return false;
        }
    }
    true
}

fn route_match(cx: &mut Cx<'_>, r: &Resource, m: &HttpMatchRequest, at: &str) -> RouteMatch {
    use route_match::PathSpecifier as P;
    let path = match &m.uri {
        Some(StringMatch { exact: Some(e), .. }) => P::Path(e.clone()),
        Some(StringMatch {
            prefix: Some(p), ..
        }) => P::Prefix(p.clone()),
        Some(StringMatch {
            regex: Some(re), ..
        }) => P::SafeRegex(regex(re)),
        _ => P::Prefix("/".into()),
    };
    let mut headers = Vec::new();
    for (name, value) in [
        (":scheme", &m.scheme),
        (":method", &m.method),
        (":authority", &m.authority),
    ] {
        if let Some(v) = value {
            headers.push(header_matcher(name, v, false));
        }
    }
    for (name, v) in &m.headers {
        headers.push(header_matcher(&name.to_ascii_lowercase(), v, false));
    }
    for (name, v) in &m.without_headers {
        headers.push(header_matcher(&name.to_ascii_lowercase(), v, true));
    }
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, v)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(match string_matcher(v) {
                Some(s) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(s),
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    if m.stat_prefix.is_some() {
        cx.unsupported(r, &format!("{at}.statPrefix"), "per-route stat prefixes");
    }
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m
            .ignore_uri_case
            .filter(|i| *i)
            .map(|_| BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.to_owned(),
        ..Default::default()
    }
}

/// `{exact|prefix|regex}` as a StringMatcher; `None` for `{}` (presence).
fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    use string_matcher::MatchPattern as M;
    let pattern = if let Some(e) = &m.exact {
        M::Exact(e.clone())
    } else if let Some(p) = &m.prefix {
        M::Prefix(p.clone())
    } else if let Some(r) = &m.regex {
        M::SafeRegex(regex(r))
    } else {
        return None;
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier as H;
    HeaderMatcher {
        name: name.to_owned(),
        invert_match: invert,
        header_match_specifier: Some(match string_matcher(m) {
            Some(s) => H::StringMatch(s),
            None => H::PresentMatch(true),
        }),
        ..Default::default()
    }
}

/// The route's action: forward, redirect or direct response.
fn action(cx: &mut Cx<'_>, place: &Place<'_>, http: &HttpRoute, at: &str) -> Option<route::Action> {
    if http.delegate.is_some() {
        cx.unsupported(
            place.vs,
            &format!("{at}.delegate"),
            "delegate VirtualServices",
        );
        return None;
    }
    if let Some(rd) = &http.redirect {
        use redirect_action::{
            PathRewriteSpecifier, RedirectResponseCode as C, SchemeRewriteSpecifier,
        };
        let code = match rd.redirect_code.unwrap_or(301) {
            302 => C::Found,
            303 => C::SeeOther,
            307 => C::TemporaryRedirect,
            308 => C::PermanentRedirect,
            _ => C::MovedPermanently,
        };
        let port_redirect = match (&rd.port, &rd.derive_port) {
            (Some(p), _) => *p,
            (None, Some(RedirectPortSelection::FromRequestPort)) => place.port,
            _ => 0,
        };
        return Some(route::Action::Redirect(RedirectAction {
            host_redirect: rd.authority.clone().unwrap_or_default(),
            port_redirect,
            response_code: code as i32,
            scheme_rewrite_specifier: rd
                .scheme
                .clone()
                .map(SchemeRewriteSpecifier::SchemeRedirect),
            path_rewrite_specifier: rd
                .uri
                .clone()
                .map(PathRewriteSpecifier::PathRedirect)
                .or_else(|| {
                    rd.prefix_rewrite
                        .clone()
                        .map(PathRewriteSpecifier::PrefixRewrite)
                }),
            ..Default::default()
        }));
    }
    if let Some(dr) = &http.direct_response {
        let body = dr.body.as_ref().and_then(|b| {
            let specifier = if let Some(s) = &b.string {
                data_source::Specifier::InlineString(s.clone())
            } else {
                data_source::Specifier::InlineBytes(base64(b.bytes.as_deref()?)?)
            };
            Some(DataSource {
                specifier: Some(specifier),
                ..Default::default()
            })
        });
        return Some(route::Action::DirectResponse(DirectResponseAction {
            status: dr.status.unwrap_or(200),
            body,
            ..Default::default()
        }));
    }
    if http.route.is_empty() {
        return None;
    }
    let mut ra = RouteAction {
        // Istio: no timeout unless the route sets one.
        timeout: Some(
            http.timeout
                .as_deref()
                .and_then(duration)
                .unwrap_or_default(),
        ),
        retry_policy: retry(
            cx,
            place.vs,
            http.retries.as_ref(),
            &format!("{at}.retries"),
        ),
        ..Default::default()
    };
    let dests: Vec<(
        usize,
        &spar_istio::model::virtual_service::HttpRouteDestination,
    )> = http
        .route
        .iter()
        .enumerate()
        .filter(|(_, d)| d.destination.is_some())
        .collect();
    let total: i64 = dests
        .iter()
        .map(|(_, d)| i64::from(d.weight.unwrap_or(0)))
        .sum();
    let mut weighted = Vec::new();
    let mut hash = None;
    for (j, d) in &dests {
        let Some(dest) = &d.destination else { continue };
        let weight = match d.weight {
            Some(w) => u32::try_from(w).unwrap_or(0),
            None if dests.len() == 1 => 100,
            None => 0,
        };
        if weight == 0 && total > 0 {
            continue;
        }
        let name = cluster_for(cx, place, dest, &format!("{at}.route[{j}].destination"));
        let policies = hash_for(cx, place, dest);
        if hash.is_none() {
            hash = Some(policies);
        }
        let mut cw = ClusterWeight {
            name,
            weight: Some(UInt32Value {
                value: weight.max(1),
            }),
            ..Default::default()
        };
        if let Some(h) = &d.headers {
            let mut scratch = Route::default();
            headers(
                cx,
                place.vs,
                h,
                &format!("{at}.route[{j}].headers"),
                &mut scratch,
            );
            cw.request_headers_to_add = scratch.request_headers_to_add;
            cw.request_headers_to_remove = scratch.request_headers_to_remove;
            cw.response_headers_to_add = scratch.response_headers_to_add;
            cw.response_headers_to_remove = scratch.response_headers_to_remove;
            if let Some(route::Action::Route(RouteAction {
                host_rewrite_specifier: Some(HostRewriteSpecifier::HostRewriteLiteral(h)),
                ..
            })) = scratch.action
            {
                cw.host_rewrite_specifier = Some(
                    envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h),
                );
            }
        }
        weighted.push(cw);
    }
    ra.hash_policy = hash.unwrap_or_default();
    ra.cluster_specifier = Some(if weighted.len() == 1 && no_mutations(&weighted[0]) {
        ClusterSpecifier::Cluster(weighted.remove(0).name)
    } else {
        ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weighted,
            ..Default::default()
        })
    });
    if let Some(rw) = &http.rewrite {
        if let Some(uri) = &rw.uri {
            ra.prefix_rewrite = uri.clone();
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            ra.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex(rr.pattern.as_deref().unwrap_or_default())),
                substitution: rr.rewrite.clone().unwrap_or_default(),
            });
        }
        if let Some(a) = &rw.authority {
            ra.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a.clone()));
        }
    }
    let mut mirrors: Vec<(String, &Destination, Option<FractionalPercent>)> = Vec::new();
    if let Some(m) = &http.mirror {
        let fraction = match (&http.mirror_percentage, http.mirror_percent) {
            (Some(p), _) => Some(million(p.value)),
            (None, Some(p)) => Some(hundred(p)),
            (None, None) => None,
        };
        mirrors.push((format!("{at}.mirror"), m, fraction));
    }
    for (k, m) in http.mirrors.iter().enumerate() {
        if let Some(d) = &m.destination {
            let fraction = m.percentage.as_ref().map(|p| million(p.value));
            mirrors.push((format!("{at}.mirrors[{k}].destination"), d, fraction));
        }
    }
    for (path, dest, fraction) in mirrors {
        let cluster = cluster_for(cx, place, dest, &path);
        ra.request_mirror_policies.push(RequestMirrorPolicy {
            cluster,
            runtime_fraction: fraction.map(|f| RuntimeFractionalPercent {
                default_value: Some(f),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Some(route::Action::Route(ra))
}

fn no_mutations(cw: &ClusterWeight) -> bool {
    cw.request_headers_to_add.is_empty()
        && cw.request_headers_to_remove.is_empty()
        && cw.response_headers_to_add.is_empty()
        && cw.response_headers_to_remove.is_empty()
        && cw.host_rewrite_specifier.is_none()
}

/// The cluster a destination names, recorded so that it exists even when its host or
/// subset does not (then it is empty: 503, as Istio's missing cluster).
pub(crate) fn cluster_for(cx: &mut Cx<'_>, place: &Place<'_>, d: &Destination, at: &str) -> String {
    let host = fqdn(&d.host, &place.vs.namespace);
    let subset = d.subset.clone().unwrap_or_default();
    let service = cx.registry.service(&host, &cx.proxy.namespace);
    let port = match (d.port.as_ref().and_then(|p| p.number), service) {
        (Some(p), _) => p,
        (None, Some(s)) if s.ports.len() == 1 => s.ports[0].number,
        (None, Some(s)) if s.ports.iter().any(|p| p.number == place.port) => place.port,
        (None, Some(s)) => {
            cx.note(
                place.vs,
                &format!("{at}.port"),
                format!(
                    "{host} has several ports; the destination must name one (taking the first)"
                ),
            );
            s.ports.first().map_or(place.port, |p| p.number)
        }
        (None, None) => place.port,
    };
    match service {
        None => cx.note(
            place.vs,
            &format!("{at}.host"),
            format!("{host} is not in the service registry: requests to it get 503"),
        ),
        Some(s) if !subset.is_empty() => {
            let known = destination_rule(cx, &s.hostname, &s.namespace)
                .is_some_and(|dr| dr.subsets.iter().any(|(_, _, x)| x.name == subset));
            if !known {
                cx.note(
                    place.vs,
                    &format!("{at}.subset"),
                    format!("no DestinationRule defines subset {subset} of {host}: requests to it get 503"),
                );
            }
        }
        Some(_) => {}
    }
    let name = outbound_cluster(port, &subset, &host);
    cx.wanted.insert(name.clone(), Want { port });
    name
}

fn hash_for(
    cx: &Cx<'_>,
    place: &Place<'_>,
    d: &Destination,
) -> Vec<envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy> {
    let host = fqdn(&d.host, &place.vs.namespace);
    let Some(service) = cx.registry.service(&host, &cx.proxy.namespace) else {
        return Vec::new();
    };
    let port = d.port.as_ref().and_then(|p| p.number).unwrap_or(place.port);
    destination_rule(cx, &service.hostname, &service.namespace)
        .map(|dr| {
            dr.effective(d.subset.as_deref().unwrap_or_default(), port)
                .hash_policies()
        })
        .unwrap_or_default()
}

/// The route a sidecar gives a service no VirtualService routes: everything to its cluster.
pub(crate) fn default_route(cluster: String) -> Route {
    Route {
        name: "default".to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
            timeout: Some(Duration::default()),
            retry_policy: default_retry(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
