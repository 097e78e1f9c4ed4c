//! AuthorizationPolicy into Envoy RBAC filters, HTTP and network (TCP), with Istio's
//! semantics.
//!
//! What it does:
//! - picks the policies that apply to a proxy: the root namespace's without a selector
//!   (mesh-wide), its own namespace's without a selector, and those whose `selector`
//!   matches its labels;
//! - builds one RBAC filter per action, in Istio's order (AUDIT as LOG, then DENY, then
//!   ALLOW), each policy rule an Envoy policy named `ns[NS]-policy[NAME]-rule[I]`, so a
//!   denial names the policy and rule that decided; the same rules as HTTP filters for
//!   connection managers ([`http_filters`]) and as network filters ahead of a TCP proxy
//!   ([`network_filters`]);
//! - on TCP, Istio's rule for HTTP-only fields (hosts, methods, paths and their `not`
//!   forms, requestPrincipals, `request.headers[...]` and `request.auth.*` conditions): an
//!   ALLOW rule using one is left out (it matches no connection), a DENY or AUDIT rule
//!   ignores that field (it matches more), each with a note;
//! - sources: principals (`cluster.local/ns/a/sa/b`, with `*` prefix and suffix forms)
//!   against the peer certificate's SPIFFE URI, namespaces and service accounts as patterns
//!   over that URI, ipBlocks (direct peer), remoteIpBlocks (after X-Forwarded-For), and
//!   their `not` forms; operations: hosts (case-insensitive, `*` forms), ports, methods,
//!   paths (exact, `prefix*`, `*suffix`, `*`), and `not` forms; `when` conditions on
//!   request headers, source and remote IP, source namespace and principal, destination IP
//!   and port, and the requested server name.
//!
//! What it does not do, reported as "unsupported" notes and failing closed: an ALLOW rule
//! that uses it is left out (it grants nothing), a DENY rule keeps its supported parts
//! (it denies at least what Istio would): CUSTOM (ext_authz), request principals and
//! `request.auth.*` (JWT), trust domain aliases. `targetRef(s)` (Gateway API) policies are
//! not applied.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac as Rules, permission, principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use spar_istio::model::security::{Action, AuthorizationPolicy, Condition, Operation, Source};
use spar_istio::{Resource, Spec};

use crate::registry::selects;
use crate::{Cx, ROOT_NAMESPACE};

/// The HTTP filter name Envoy registers the RBAC filter under.
pub(crate) const RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// The network filter name Envoy registers the RBAC filter under.
pub(crate) const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";
/// Istio's stat prefix for network RBAC filters (`RBACTCPFilterStatPrefix`).
const TCP_STAT_PREFIX: &str = "tcp.";

/// What the filters judge: HTTP requests, or TCP connections (no HTTP fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Http,
    Tcp,
}

/// The RBAC filters for this proxy's connection managers, in the order they must run
/// (before the router).
pub(crate) fn http_filters(cx: &mut Cx<'_>) -> Vec<Rbac> {
    rule_sets(cx, Layer::Http)
        .into_iter()
        .map(|rules| Rbac {
            rules: Some(rules),
            ..Default::default()
        })
        .collect()
}

/// The network RBAC filters for this proxy's TCP proxies, in the order they must run
/// (before the TCP proxy).
pub(crate) fn network_filters(cx: &mut Cx<'_>) -> Vec<NetworkRbac> {
    rule_sets(cx, Layer::Tcp)
        .into_iter()
        .map(|rules| NetworkRbac {
            stat_prefix: TCP_STAT_PREFIX.to_owned(),
            rules: Some(rules),
            ..Default::default()
        })
        .collect()
}

/// One rule set per action that some applying policy has, in evaluation order.
fn rule_sets(cx: &mut Cx<'_>, layer: Layer) -> Vec<Rules> {
    let labels = cx.proxy.labels.clone();
    let ns = cx.proxy.namespace.clone();
    let applying: Vec<(&Resource, &AuthorizationPolicy)> = cx
        .each(|s| match s {
            Spec::AuthorizationPolicy(p) => Some(p),
            _ => None,
        })
        .filter(|(r, p)| {
            let in_scope = r.namespace == ns || r.namespace == ROOT_NAMESPACE;
            let selected = match p.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
                None => true,
                Some(sel) => selects(sel, &labels),
            };
            in_scope && selected && p.target_ref.is_none() && p.target_refs.is_none()
        })
        .collect();
    let mut out = Vec::new();
    for (action, envoy_action) in [
        (Action::Audit, rbac::Action::Log),
        (Action::Deny, rbac::Action::Deny),
        (Action::Allow, rbac::Action::Allow),
    ] {
        let mut rules = Rules {
            action: envoy_action as i32,
            ..Default::default()
        };
        let mut any = false;
        for (r, p) in &applying {
            if p.action.unwrap_or_default() != action {
                continue;
            }
            any = true;
            policies(cx, r, p, layer, &mut rules);
        }
        if any {
            out.push(rules);
        }
    }
    let custom: Vec<&Resource> = applying
        .iter()
        .filter(|(_, p)| p.action == Some(Action::Custom))
        .map(|(r, _)| *r)
        .collect();
    for r in custom {
        cx.unsupported(r, "spec.action", "CUSTOM authorization (ext_authz)");
    }
    out
}

/// One Envoy policy per rule. A rule that uses something unsupported fails closed: an ALLOW
/// rule is left out (it can only grant less), a DENY rule keeps the parts that could be
/// expressed (it matches at least as much, so it denies at least as much). On TCP, HTTP-only
/// fields follow Istio (`checkError`): they leave an ALLOW rule out, and a DENY or AUDIT
/// rule matches without them.
fn policies(cx: &mut Cx<'_>, r: &Resource, p: &AuthorizationPolicy, layer: Layer, out: &mut Rules) {
    let name = |i: usize| format!("ns[{}]-policy[{}]-rule[{i}]", r.namespace, r.meta.name);
    // No rules: ALLOW matches nothing (denies all), DENY matches nothing.
    let Some(rules) = &p.rules else { return };
    let deny = p.action == Some(Action::Deny);
    let widen = matches!(p.action, Some(Action::Deny | Action::Audit));
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let mut problems = Vec::new();
        // Fields of this rule that a TCP connection does not have.
        let mut http_only: Vec<String> = Vec::new();
        let mut f = Fields {
            layer,
            problems: &mut problems,
            http_only: &mut http_only,
        };
        let principals: Vec<Principal> = match &rule.from {
            None => vec![any_principal()],
            Some(froms) => froms
                .iter()
                .enumerate()
                .map(|(j, fr)| {
                    let src = fr.source.clone().unwrap_or_default();
                    source(&src, &format!("{at}.from[{j}].source"), &mut f)
                })
                .collect(),
        };
        let mut permissions: Vec<Permission> = match &rule.to {
            None => vec![any_permission()],
            Some(tos) => tos
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let op = t.operation.clone().unwrap_or_default();
                    operation(&op, &format!("{at}.to[{j}].operation"), &mut f)
                })
                .collect(),
        };
        let mut principals = principals;
        if let Some(conds) = &rule.when {
            let mut perm_conds = Vec::new();
            let mut prin_conds = Vec::new();
            for (j, c) in conds.iter().enumerate() {
                condition(
                    c,
                    &format!("{at}.when[{j}]"),
                    &mut perm_conds,
                    &mut prin_conds,
                    &mut f,
                );
            }
            if !perm_conds.is_empty() {
                permissions = vec![and_perm(
                    std::iter::once(or_perm(permissions))
                        .chain(perm_conds)
                        .collect(),
                )];
            }
            if !prin_conds.is_empty() {
                principals = vec![and_prin(
                    std::iter::once(or_prin(principals))
                        .chain(prin_conds)
                        .collect(),
                )];
            }
        }
        for (path, what) in &problems {
            cx.unsupported(r, path, what);
        }
        if !problems.is_empty() && !deny {
            continue; // an ALLOW rule we cannot express grants nothing
        }
        if !http_only.is_empty() {
            let fields = http_only.join(", ");
            if widen {
                cx.note(
                    r,
                    &at,
                    format!(
                        "on TCP ports the rule matches without its HTTP-only fields ({fields}), \
                         as in Istio"
                    ),
                );
            } else {
                cx.note(
                    r,
                    &at,
                    format!(
                        "left out on TCP ports: an ALLOW rule with HTTP-only fields ({fields}) \
                         matches no connection, as in Istio"
                    ),
                );
                continue;
            }
        }
        out.policies.insert(
            name(i),
            Policy {
                permissions,
                principals,
                ..Default::default()
            },
        );
    }
}

fn any_principal() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}

fn any_permission() -> Permission {
    Permission {
        rule: Some(permission::Rule::Any(true)),
    }
}

fn and_perm(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn or_perm(rules: Vec<Permission>) -> Permission {
    if rules.len() == 1 {
        return rules.into_iter().next().unwrap_or_else(any_permission);
    }
    Permission {
        rule: Some(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn not_perm(p: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(p))),
    }
}

fn and_prin(ids: Vec<Principal>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn or_prin(ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.into_iter().next().unwrap_or_else(any_principal);
    }
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn not_prin(p: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(p))),
    }
}

/// A StringMatcher for an Istio value with `*` as the whole value, or as a prefix or
/// suffix wildcard.
fn string(value: &str, ignore_case: bool) -> StringMatcher {
    use string_matcher::MatchPattern as M;
    let pattern = if value == "*" {
        M::SafeRegex(RegexMatcher {
            regex: ".+".to_owned(),
            ..Default::default()
        })
    } else if let Some(rest) = value.strip_prefix('*') {
        M::Suffix(rest.to_owned())
    } else if let Some(rest) = value.strip_suffix('*') {
        M::Prefix(rest.to_owned())
    } else {
        M::Exact(value.to_owned())
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

fn spiffe(principal: &str) -> StringMatcher {
    use string_matcher::MatchPattern as M;
    if principal == "*" {
        return string("*", false);
    }
    // `*` forms keep their wildcard; the exact form gains the scheme.
    match string(principal, false).match_pattern {
        Some(M::Exact(v)) => StringMatcher {
            match_pattern: Some(M::Exact(format!("spiffe://{v}"))),
            ignore_case: false,
        },
        Some(M::Prefix(v)) => StringMatcher {
            match_pattern: Some(M::Prefix(format!("spiffe://{v}"))),
            ignore_case: false,
        },
        other => StringMatcher {
            match_pattern: other,
            ignore_case: false,
        },
    }
}

fn authenticated(m: StringMatcher) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated {
                principal_name: Some(m),
            },
        )),
    }
}

fn regex(re: String) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex: re,
            ..Default::default()
        })),
        ignore_case: false,
    }
}

/// `.*/ns/NS/.*` with Istio's `*` forms on the namespace.
fn namespace_principal(ns: &str) -> Principal {
    let esc = |s: &str| regex_escape(s);
    let re = if ns == "*" {
        "spiffe://.*/ns/[^/]+/.*".to_owned()
    } else if let Some(rest) = ns.strip_prefix('*') {
        format!("spiffe://.*/ns/[^/]*{}/.*", esc(rest))
    } else if let Some(rest) = ns.strip_suffix('*') {
        format!("spiffe://.*/ns/{}[^/]*/.*", esc(rest))
    } else {
        format!("spiffe://.*/ns/{}/.*", esc(ns))
    };
    authenticated(regex(re))
}

/// `serviceAccounts: ns/sa` as the SPIFFE URI suffix.
fn service_account_principal(sa: &str) -> Principal {
    let re = match sa.split_once('/') {
        Some((ns, name)) => format!(
            "spiffe://.*/ns/{}/sa/{}",
            regex_escape(ns),
            regex_escape(name)
        ),
        None => format!("spiffe://.*/sa/{}", regex_escape(sa)),
    };
    authenticated(regex(re))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cidr(block: &str) -> Option<CidrRange> {
    let (ip, len) = match block.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u32>().ok()?),
        None => {
            let ip: std::net::IpAddr = block.parse().ok()?;
            (block, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(CidrRange {
        address_prefix: ip.to_owned(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

/// How one source value becomes a principal.
type PrincipalOf<'a> = dyn Fn(&str) -> Option<Principal> + 'a;

/// Where a rule's field handlers report: what cannot be expressed, and (on TCP) the
/// HTTP-only fields they left out.
struct Fields<'a> {
    layer: Layer,
    problems: &'a mut Vec<(String, String)>,
    http_only: &'a mut Vec<String>,
}

impl Fields<'_> {
    /// Whether the field at `path` with `values` is HTTP-only and this is TCP: then it is
    /// recorded and must be left out.
    fn tcp_skips(&mut self, path: String, values: &[String]) -> bool {
        if self.layer == Layer::Tcp && !values.is_empty() {
            self.http_only.push(path);
            return true;
        }
        false
    }
}

/// One `from.source`: its fields ANDed, values within a field ORed.
fn source(s: &Source, at: &str, f: &mut Fields<'_>) -> Principal {
    let mut and = Vec::new();
    let field = |values: &[String], f: &dyn Fn(&str) -> Option<Principal>| -> Option<Principal> {
        if values.is_empty() {
            return None;
        }
        Some(or_prin(values.iter().filter_map(|v| f(v)).collect()))
    };
    let ip = |direct: bool| {
        move |v: &str| {
            cidr(v).map(|c| Principal {
                identifier: Some(if direct {
                    principal::Identifier::DirectRemoteIp(c)
                } else {
                    principal::Identifier::RemoteIp(c)
                }),
            })
        }
    };
    let pairs: [(&[String], bool, &PrincipalOf<'_>); 10] = [
        (&s.principals, false, &|v| Some(authenticated(spiffe(v)))),
        (&s.not_principals, true, &|v| Some(authenticated(spiffe(v)))),
        (&s.namespaces, false, &|v| Some(namespace_principal(v))),
        (&s.not_namespaces, true, &|v| Some(namespace_principal(v))),
        (&s.service_accounts, false, &|v| {
            Some(service_account_principal(v))
        }),
        (&s.not_service_accounts, true, &|v| {
            Some(service_account_principal(v))
        }),
        (&s.ip_blocks, false, &ip(true)),
        (&s.not_ip_blocks, true, &ip(true)),
        (&s.remote_ip_blocks, false, &ip(false)),
        (&s.not_remote_ip_blocks, true, &ip(false)),
    ];
    for (values, negate, f) in pairs {
        if let Some(p) = field(values, f) {
            and.push(if negate { not_prin(p) } else { p });
        }
    }
    for (name, values) in [
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
    ] {
        if f.tcp_skips(format!("{at}.{name}"), values) {
            continue;
        }
        if !values.is_empty() {
            f.problems.push((
                format!("{at}.{name}"),
                format!("{name} (JWT and trust domain aliases)"),
            ));
        }
    }
    for (name, values) in [
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ] {
        if !values.is_empty() {
            f.problems.push((
                format!("{at}.{name}"),
                format!("{name} (JWT and trust domain aliases)"),
            ));
        }
    }
    if and.is_empty() {
        any_principal()
    } else {
        and_prin(and)
    }
}

fn header(name: &str, m: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)),
        ..Default::default()
    }
}

fn path(value: &str) -> Permission {
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string(value, false))),
        })),
    }
}

/// One `to.operation`: its fields ANDed, values within a field ORed.
fn operation(o: &Operation, at: &str, fields: &mut Fields<'_>) -> Permission {
    let mut and = Vec::new();
    let host = |v: &str| Permission {
        rule: Some(permission::Rule::Header(header(
            ":authority",
            string(v, true),
        ))),
    };
    let method = |v: &str| Permission {
        rule: Some(permission::Rule::Header(header(
            ":method",
            string(v, false),
        ))),
    };
    let mut bad_port = None;
    let port = |v: &str| -> Option<Permission> {
        v.parse::<u32>().ok().map(|p| Permission {
            rule: Some(permission::Rule::DestinationPort(p)),
        })
    };
    for (name, values, negate, f) in [
        (
            "hosts",
            &o.hosts,
            false,
            &host as &dyn Fn(&str) -> Permission,
        ),
        ("notHosts", &o.not_hosts, true, &host),
        ("methods", &o.methods, false, &method),
        ("notMethods", &o.not_methods, true, &method),
        ("paths", &o.paths, false, &path),
        ("notPaths", &o.not_paths, true, &path),
    ] {
        if fields.tcp_skips(format!("{at}.{name}"), values) {
            continue;
        }
        if !values.is_empty() {
            let p = or_perm(values.iter().map(|v| f(v)).collect());
            and.push(if negate { not_perm(p) } else { p });
        }
    }
    for (name, values, negate) in [("ports", &o.ports, false), ("notPorts", &o.not_ports, true)] {
        if values.is_empty() {
            continue;
        }
        let ps: Vec<Permission> = values.iter().filter_map(|v| port(v)).collect();
        if ps.len() != values.len() {
            bad_port = Some(format!("{at}.{name}"));
        }
        let p = or_perm(ps);
        and.push(if negate { not_perm(p) } else { p });
    }
    if let Some(path) = bad_port {
        fields
            .problems
            .push((path, "a port that is not a number".to_owned()));
    }
    if and.is_empty() {
        any_permission()
    } else {
        and_perm(and)
    }
}

/// A `when` condition: request-side keys become permissions, peer-side keys principals.
fn condition(
    c: &Condition,
    at: &str,
    perms: &mut Vec<Permission>,
    prins: &mut Vec<Principal>,
    fields: &mut Fields<'_>,
) {
    let key = c.key.as_str();
    let http_only = key.starts_with("request.headers[") || key.starts_with("request.auth.");
    if http_only && fields.tcp_skips(format!("{at}.key"), std::slice::from_ref(&c.key)) {
        return;
    }
    let both = |f: &dyn Fn(&str) -> Option<Permission>| -> Option<Permission> {
        let mut and = Vec::new();
        if !c.values.is_empty() {
            and.push(or_perm(c.values.iter().filter_map(|v| f(v)).collect()));
        }
        if !c.not_values.is_empty() {
            and.push(not_perm(or_perm(
                c.not_values.iter().filter_map(|v| f(v)).collect(),
            )));
        }
        (!and.is_empty()).then(|| and_perm(and))
    };
    let both_prin = |f: &dyn Fn(&str) -> Option<Principal>| -> Option<Principal> {
        let mut and = Vec::new();
        if !c.values.is_empty() {
            and.push(or_prin(c.values.iter().filter_map(|v| f(v)).collect()));
        }
        if !c.not_values.is_empty() {
            and.push(not_prin(or_prin(
                c.not_values.iter().filter_map(|v| f(v)).collect(),
            )));
        }
        (!and.is_empty()).then(|| and_prin(and))
    };
    if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|r| r.strip_suffix(']'))
    {
        let name = name.to_ascii_lowercase();
        perms.extend(both(&|v| {
            Some(Permission {
                rule: Some(permission::Rule::Header(header(&name, string(v, false)))),
            })
        }));
        return;
    }
    match key {
        "source.ip" | "remote.ip" => {
            let direct = key == "source.ip";
            prins.extend(both_prin(&|v| {
                cidr(v).map(|c| Principal {
                    identifier: Some(if direct {
                        principal::Identifier::DirectRemoteIp(c)
                    } else {
                        principal::Identifier::RemoteIp(c)
                    }),
                })
            }));
        }
        "source.namespace" => prins.extend(both_prin(&|v| Some(namespace_principal(v)))),
        "source.principal" => prins.extend(both_prin(&|v| Some(authenticated(spiffe(v))))),
        "destination.ip" => perms.extend(both(&|v| {
            cidr(v).map(|c| Permission {
                rule: Some(permission::Rule::DestinationIp(c)),
            })
        })),
        "destination.port" => perms.extend(both(&|v| {
            v.parse::<u32>().ok().map(|p| Permission {
                rule: Some(permission::Rule::DestinationPort(p)),
            })
        })),
        "connection.sni" => perms.extend(both(&|v| {
            Some(Permission {
                rule: Some(permission::Rule::RequestedServerName(string(v, false))),
            })
        })),
        _ => fields.problems.push((
            format!("{at}.key"),
            format!("condition `{key}` (request.auth.* and experimental keys)"),
        )),
    }
}

#[cfg(test)]
mod tests;
