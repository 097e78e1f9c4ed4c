//! Envoy's RBAC protos (from `envoy-types`) into the model: the HTTP filter, the network
//! filter, the per-route override and the shared `config.rbac.v3.RBAC`. Every problem is
//! collected with the path of its field, relative to the message passed in (spar-config
//! prefixes the filter's own path), so one run reports them all.
//!
//! Refused, because spar-proxy does not evaluate them and a silently ignored rule would
//! change who gets in: `metadata`, `sourced_metadata`, `filter_state`, `matcher` and
//! `uri_template` (extensions), `custom` principals, a policy `condition` (CEL), the
//! unified `matcher` / `shadow_matcher` trees and `audit_logging_options`. Envoy's own
//! validation rules (`any: true` only, non-empty sets, ports in range) are checked too.
//!
//! What it does not do: no decoding of `Any` or of YAML (the caller hands over decoded
//! structs), no evaluation.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as PbPermission, Policy as PbPolicy, Principal as PbPrincipal, Rbac as PbRbac,
    permission, principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher as PbHeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{
    Rbac as PbHttpRbac, RbacPerRoute as PbRbacPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::{
    Rbac as PbNetworkRbac, rbac as network_rbac,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher as PbPathMatcher, StringMatcher as PbStringMatcher, path_matcher, string_matcher,
};
use spar_route::{HeaderMatcher, HeaderRule, SafeRegex, StringMatch, StringMatcher};

use crate::model::{
    Action, Cidr, Enforcement, FilterKind, PerRoute, Permission, Policy, Principal, Rbac,
    RbacFilter,
};

/// Deepest nesting of `and_rules` / `or_rules` / `not_rule` (and the principal forms)
/// accepted. Evaluation recurses once per level on a worker thread's stack; protobuf
/// decoding already stops at 100 levels, and Istio emits at most 4.
const MAX_DEPTH: usize = 32;

/// Pseudo-headers a header matcher may name (the ones an HTTP request has).
const PSEUDO_HEADERS: [&str; 4] = [":method", ":path", ":authority", ":scheme"];

/// One problem: the dotted field path (`rules.policies.<name>.permissions[0].header.name`)
/// and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CompileError {
    /// The field, relative to the message compiled.
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Every problem found, in field order (policies by name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CompileErrors(pub Vec<CompileError>);

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Compiles the HTTP filter `envoy.extensions.filters.http.rbac.v3.RBAC`.
pub fn compile_http_filter(f: &PbHttpRbac) -> Result<RbacFilter, CompileErrors> {
    let mut c = Ctx::default();
    let filter = http_filter(&mut c, f, &Path::root());
    c.finish(filter)
}

/// Compiles `envoy.extensions.filters.http.rbac.v3.RBACPerRoute`: `rbac` absent disables
/// RBAC on the route; present, it replaces the filter's config there.
pub fn compile_http_per_route(f: &PbRbacPerRoute) -> Result<PerRoute, CompileErrors> {
    let mut c = Ctx::default();
    let per_route = match &f.rbac {
        None => Some(PerRoute::Disabled),
        Some(r) => http_filter(&mut c, r, &Path::root().field("rbac")).map(PerRoute::Override),
    };
    c.finish(per_route)
}

/// Compiles the network filter `envoy.extensions.filters.network.rbac.v3.RBAC`.
pub fn compile_network_filter(f: &PbNetworkRbac) -> Result<RbacFilter, CompileErrors> {
    let mut c = Ctx::default();
    let p = Path::root();
    if f.stat_prefix.is_empty() {
        c.error(&p.field("stat_prefix"), "must not be empty");
    }
    unsupported_matchers(&mut c, f.matcher.is_some(), f.shadow_matcher.is_some(), &p);
    let enforcement = match network_rbac::EnforcementType::try_from(f.enforcement_type) {
        Ok(network_rbac::EnforcementType::OneTimeOnFirstByte) => {
            Some(Enforcement::OneTimeOnFirstByte)
        }
        Ok(network_rbac::EnforcementType::Continuous) => Some(Enforcement::Continuous),
        Err(_) => {
            c.error(
                &p.field("enforcement_type"),
                format!("unknown enforcement type {}", f.enforcement_type),
            );
            None
        }
    };
    let delay_deny = match &f.delay_deny {
        None => Some(None),
        Some(d) => match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
            (Ok(s), Ok(n)) if n < 1_000_000_000 => Some(Some(Duration::new(s, n))),
            _ => {
                c.error(
                    &p.field("delay_deny"),
                    "must be a non-negative duration with nanos below 10^9",
                );
                None
            }
        },
    };
    let rules = optional_rbac(&mut c, f.rules.as_ref(), &p.field("rules"));
    let shadow_rules = optional_rbac(&mut c, f.shadow_rules.as_ref(), &p.field("shadow_rules"));
    let filter = (|| {
        Some(RbacFilter {
            kind: FilterKind::Network,
            rules: rules?,
            shadow_rules: shadow_rules?,
            stat_prefix: f.stat_prefix.clone(),
            shadow_stat_prefix: f.shadow_rules_stat_prefix.clone(),
            track_per_rule_stats: false,
            enforcement: enforcement?,
            delay_deny: delay_deny?,
        })
    })();
    c.finish(filter)
}

/// Compiles `envoy.config.rbac.v3.RBAC` alone.
pub fn compile_rbac(r: &PbRbac) -> Result<Rbac, CompileErrors> {
    let mut c = Ctx::default();
    let rules = rbac(&mut c, r, &Path::root());
    c.finish(rules)
}

/// A field path under construction.
#[derive(Clone, Debug, Default)]
struct Path(String);

impl Path {
    fn root() -> Self {
        Self::default()
    }

    /// Field or map key `name` under this path.
    fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// List element `i` under this path.
    fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

/// The problems found so far.
#[derive(Debug, Default)]
struct Ctx {
    errors: Vec<CompileError>,
}

impl Ctx {
    fn error(&mut self, p: &Path, message: impl Into<String>) {
        self.errors.push(CompileError {
            path: p.0.clone(),
            message: message.into(),
        });
    }

    /// `value` when no problem was found; every problem otherwise.
    fn finish<T>(self, value: Option<T>) -> Result<T, CompileErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(CompileErrors(self.errors)),
        }
    }
}

fn http_filter(c: &mut Ctx, f: &PbHttpRbac, p: &Path) -> Option<RbacFilter> {
    unsupported_matchers(c, f.matcher.is_some(), f.shadow_matcher.is_some(), p);
    let rules = optional_rbac(c, f.rules.as_ref(), &p.field("rules"));
    let shadow_rules = optional_rbac(c, f.shadow_rules.as_ref(), &p.field("shadow_rules"));
    Some(RbacFilter {
        kind: FilterKind::Http,
        rules: rules?,
        shadow_rules: shadow_rules?,
        stat_prefix: f.rules_stat_prefix.clone(),
        shadow_stat_prefix: f.shadow_rules_stat_prefix.clone(),
        track_per_rule_stats: f.track_per_rule_stats,
        enforcement: Enforcement::OneTimeOnFirstByte,
        delay_deny: None,
    })
}

/// `Some(None)` when absent, `None` when present and refused.
fn optional_rbac(c: &mut Ctx, r: Option<&PbRbac>, p: &Path) -> Option<Option<Rbac>> {
    match r {
        None => Some(None),
        Some(r) => rbac(c, r, p).map(Some),
    }
}

fn unsupported_matchers(c: &mut Ctx, matcher: bool, shadow_matcher: bool, p: &Path) {
    for (set, field) in [(matcher, "matcher"), (shadow_matcher, "shadow_matcher")] {
        if set {
            c.error(
                &p.field(field),
                "unified matcher trees are not supported by spar-proxy; use rules",
            );
        }
    }
}

fn rbac(c: &mut Ctx, r: &PbRbac, p: &Path) -> Option<Rbac> {
    let action = match rbac::Action::try_from(r.action) {
        Ok(rbac::Action::Allow) => Some(Action::Allow),
        Ok(rbac::Action::Deny) => Some(Action::Deny),
        Ok(rbac::Action::Log) => Some(Action::Log),
        Err(_) => {
            c.error(&p.field("action"), format!("unknown action {}", r.action));
            None
        }
    };
    if let Some(a) = &r.audit_logging_options
        && (a.audit_condition != 0 || !a.logger_configs.is_empty())
    {
        c.error(
            &p.field("audit_logging_options"),
            "audit loggers are not supported by spar-proxy; use action LOG",
        );
    }
    let pp = p.field("policies");
    // Sorted, so errors come out in the order the policies are evaluated in.
    let mut names: Vec<&String> = r.policies.keys().collect();
    names.sort();
    let policies: Vec<Option<Policy>> = names
        .into_iter()
        .map(|name| policy(c, name, &r.policies, &pp.field(name)))
        .collect();
    Some(Rbac::new(
        action?,
        policies.into_iter().collect::<Option<_>>()?,
    ))
}

fn policy(
    c: &mut Ctx,
    name: &str,
    policies: &HashMap<String, PbPolicy>,
    p: &Path,
) -> Option<Policy> {
    let pol = policies.get(name)?;
    let cel = [
        (pol.condition.is_some(), "condition"),
        (pol.checked_condition.is_some(), "checked_condition"),
        (pol.cel_config.is_some(), "cel_config"),
    ];
    for (set, field) in cel {
        if set {
            c.error(
                &p.field(field),
                "CEL conditions are not supported by spar-proxy",
            );
        }
    }
    let (permp, prinp) = (p.field("permissions"), p.field("principals"));
    if pol.permissions.is_empty() {
        c.error(&permp, "at least one permission is required");
    }
    if pol.principals.is_empty() {
        c.error(&prinp, "at least one principal is required");
    }
    let permissions: Vec<_> = pol
        .permissions
        .iter()
        .enumerate()
        .map(|(i, x)| permission(c, x, &permp.index(i), 0))
        .collect();
    let principals: Vec<_> = pol
        .principals
        .iter()
        .enumerate()
        .map(|(i, x)| principal(c, x, &prinp.index(i), 0))
        .collect();
    if pol.permissions.is_empty() || pol.principals.is_empty() {
        return None;
    }
    Some(Policy {
        name: name.to_owned(),
        permissions: permissions.into_iter().collect::<Option<_>>()?,
        principals: principals.into_iter().collect::<Option<_>>()?,
    })
}

/// Refuses nesting past [`MAX_DEPTH`].
fn too_deep(c: &mut Ctx, depth: usize, p: &Path) -> bool {
    let deep = depth > MAX_DEPTH;
    if deep {
        c.error(
            p,
            format!("rules are nested more than {MAX_DEPTH} levels deep"),
        );
    }
    deep
}

fn permission(c: &mut Ctx, x: &PbPermission, p: &Path, depth: usize) -> Option<Permission> {
    use permission::Rule as R;
    if too_deep(c, depth, p) {
        return None;
    }
    let set = |c: &mut Ctx, s: &permission::Set, field: &str| -> Option<Vec<Permission>> {
        let sp = p.field(field).field("rules");
        if s.rules.is_empty() {
            c.error(&sp, "at least one rule is required");
        }
        let rules: Vec<_> = s
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| permission(c, r, &sp.index(i), depth + 1))
            .collect();
        if s.rules.is_empty() {
            return None;
        }
        rules.into_iter().collect()
    };
    #[allow(deprecated)] // `metadata` is deprecated in Envoy; named here to refuse it.
    match &x.rule {
        None => {
            c.error(p, "one of any, header, url_path, destination_ip, destination_port, destination_port_range, requested_server_name, and_rules, or_rules, not_rule is required");
            None
        }
        Some(R::Any(true)) => Some(Permission::Any),
        Some(R::Any(false)) => {
            c.error(&p.field("any"), "must be true when set");
            None
        }
        Some(R::AndRules(s)) => set(c, s, "and_rules").map(Permission::And),
        Some(R::OrRules(s)) => set(c, s, "or_rules").map(Permission::Or),
        Some(R::NotRule(r)) => {
            permission(c, r, &p.field("not_rule"), depth + 1).map(|r| Permission::Not(Box::new(r)))
        }
        Some(R::Header(h)) => header(c, h, &p.field("header")).map(Permission::Header),
        Some(R::UrlPath(m)) => url_path(c, m, &p.field("url_path")).map(Permission::UrlPath),
        Some(R::DestinationIp(r)) => {
            cidr(c, r, &p.field("destination_ip")).map(Permission::DestinationIp)
        }
        Some(R::DestinationPort(port)) => match u16::try_from(*port) {
            Ok(port) => Some(Permission::DestinationPort(port)),
            Err(_) => {
                c.error(&p.field("destination_port"), "must be at most 65535");
                None
            }
        },
        Some(R::DestinationPortRange(r)) => {
            let rp = p.field("destination_port_range");
            match (u32::try_from(r.start), u32::try_from(r.end)) {
                (Ok(start), Ok(end)) if start < end && end <= 65536 => {
                    Some(Permission::DestinationPortRange { start, end })
                }
                _ => {
                    c.error(
                        &rp,
                        format!(
                            "[{}, {}) is not a port range: 0 <= start < end <= 65536 is required",
                            r.start, r.end
                        ),
                    );
                    None
                }
            }
        }
        Some(R::RequestedServerName(m)) => string_matcher(c, m, &p.field("requested_server_name"))
            .map(Permission::RequestedServerName),
        Some(R::Metadata(_)) => unsupported(c, p, "metadata", "metadata matchers"),
        Some(R::SourcedMetadata(_)) => unsupported(c, p, "sourced_metadata", "metadata matchers"),
        Some(R::Matcher(_)) => unsupported(c, p, "matcher", "RBAC matcher extensions"),
        Some(R::UriTemplate(_)) => unsupported(c, p, "uri_template", "URI template matchers"),
    }
}

fn principal(c: &mut Ctx, x: &PbPrincipal, p: &Path, depth: usize) -> Option<Principal> {
    use principal::Identifier as I;
    if too_deep(c, depth, p) {
        return None;
    }
    let set = |c: &mut Ctx, s: &principal::Set, field: &str| -> Option<Vec<Principal>> {
        let sp = p.field(field).field("ids");
        if s.ids.is_empty() {
            c.error(&sp, "at least one id is required");
        }
        let ids: Vec<_> = s
            .ids
            .iter()
            .enumerate()
            .map(|(i, r)| principal(c, r, &sp.index(i), depth + 1))
            .collect();
        if s.ids.is_empty() {
            return None;
        }
        ids.into_iter().collect()
    };
    #[allow(deprecated)] // `source_ip` (honoured) and `metadata` (refused) are deprecated.
    match &x.identifier {
        None => {
            c.error(p, "one of any, authenticated, direct_remote_ip, remote_ip, source_ip, header, url_path, and_ids, or_ids, not_id is required");
            None
        }
        Some(I::Any(true)) => Some(Principal::Any),
        Some(I::Any(false)) => {
            c.error(&p.field("any"), "must be true when set");
            None
        }
        Some(I::AndIds(s)) => set(c, s, "and_ids").map(Principal::And),
        Some(I::OrIds(s)) => set(c, s, "or_ids").map(Principal::Or),
        Some(I::NotId(r)) => {
            principal(c, r, &p.field("not_id"), depth + 1).map(|r| Principal::Not(Box::new(r)))
        }
        Some(I::Authenticated(a)) => match &a.principal_name {
            None => Some(Principal::Authenticated(None)),
            Some(m) => string_matcher(c, m, &p.field("authenticated").field("principal_name"))
                .map(|m| Principal::Authenticated(Some(m))),
        },
        Some(I::SourceIp(r)) => cidr(c, r, &p.field("source_ip")).map(Principal::SourceIp),
        Some(I::DirectRemoteIp(r)) => {
            cidr(c, r, &p.field("direct_remote_ip")).map(Principal::DirectRemoteIp)
        }
        Some(I::RemoteIp(r)) => cidr(c, r, &p.field("remote_ip")).map(Principal::RemoteIp),
        Some(I::Header(h)) => header(c, h, &p.field("header")).map(Principal::Header),
        Some(I::UrlPath(m)) => url_path(c, m, &p.field("url_path")).map(Principal::UrlPath),
        Some(I::Metadata(_)) => unsupported(c, p, "metadata", "metadata matchers"),
        Some(I::SourcedMetadata(_)) => unsupported(c, p, "sourced_metadata", "metadata matchers"),
        Some(I::FilterState(_)) => unsupported(c, p, "filter_state", "filter state matchers"),
        Some(I::Custom(_)) => unsupported(c, p, "custom", "custom principal extensions"),
    }
}

fn unsupported<T>(c: &mut Ctx, p: &Path, field: &str, what: &str) -> Option<T> {
    c.error(
        &p.field(field),
        format!("{what} are not supported by spar-proxy"),
    );
    None
}

fn cidr(c: &mut Ctx, r: &CidrRange, p: &Path) -> Option<Cidr> {
    let Ok(addr) = r.address_prefix.parse::<IpAddr>() else {
        c.error(
            &p.field("address_prefix"),
            format!("`{}` is not an IP address", r.address_prefix.escape_debug()),
        );
        return None;
    };
    let len = r.prefix_len.map_or(0, |v| v.value);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match u8::try_from(len).ok().and_then(|l| Cidr::new(addr, l)) {
        Some(cidr) => Some(cidr),
        None => {
            c.error(
                &p.field("prefix_len"),
                format!("{len} is longer than the address ({max} bits)"),
            );
            None
        }
    }
}

fn url_path(c: &mut Ctx, m: &PbPathMatcher, p: &Path) -> Option<StringMatcher> {
    match &m.rule {
        Some(path_matcher::Rule::Path(s)) => string_matcher(c, s, &p.field("path")),
        None => {
            c.error(&p.field("path"), "path is required");
            None
        }
    }
}

fn string_matcher(c: &mut Ctx, m: &PbStringMatcher, p: &Path) -> Option<StringMatcher> {
    use string_matcher::MatchPattern as M;
    let kind = match &m.match_pattern {
        Some(M::Exact(s)) => Some(StringMatch::Exact(s.clone())),
        Some(M::Prefix(s)) => non_empty(c, s, &p.field("prefix")).map(StringMatch::Prefix),
        Some(M::Suffix(s)) => non_empty(c, s, &p.field("suffix")).map(StringMatch::Suffix),
        Some(M::Contains(s)) => non_empty(c, s, &p.field("contains")).map(StringMatch::Contains),
        Some(M::SafeRegex(r)) => {
            regex(c, &r.regex, &p.field("safe_regex").field("regex")).map(StringMatch::Regex)
        }
        Some(M::Custom(_)) => unsupported(c, p, "custom", "custom string matchers"),
        None => {
            c.error(
                p,
                "one of exact, prefix, suffix, contains, safe_regex is required",
            );
            None
        }
    };
    Some(StringMatcher {
        kind: kind?,
        ignore_case: m.ignore_case,
    })
}

fn non_empty(c: &mut Ctx, s: &str, p: &Path) -> Option<String> {
    if s.is_empty() {
        c.error(p, "must not be empty");
        None
    } else {
        Some(s.to_owned())
    }
}

fn regex(c: &mut Ctx, pattern: &str, p: &Path) -> Option<SafeRegex> {
    match SafeRegex::new(pattern) {
        Ok(r) => Some(r),
        Err(e) => {
            c.error(p, e.to_string());
            None
        }
    }
}

/// A header name a matcher may read: a token or a request pseudo-header; lower-cased.
fn header_name(c: &mut Ctx, name: &str, p: &Path) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if PSEUDO_HEADERS.contains(&lower.as_str()) || spar_route::valid_header_name(&lower) {
        Some(lower)
    } else {
        c.error(
            p,
            format!(
                "`{}` is not a header name (a token, or one of {})",
                name.escape_debug(),
                PSEUDO_HEADERS.join(", ")
            ),
        );
        None
    }
}

// Envoy still accepts the deprecated `exact_match`, `prefix_match`, ... (Istio writes
// `string_match`); they mean the same as the `string_match` forms.
#[allow(deprecated)]
fn header(c: &mut Ctx, h: &PbHeaderMatcher, p: &Path) -> Option<HeaderMatcher> {
    use header_matcher::HeaderMatchSpecifier as S;
    let name = header_name(c, &h.name, &p.field("name"));
    let plain = |kind: StringMatch| {
        HeaderRule::Value(StringMatcher {
            kind,
            ignore_case: false,
        })
    };
    let rule = match &h.header_match_specifier {
        // Envoy: a matcher without a test requires the header to be present.
        None => Some(HeaderRule::Present(true)),
        Some(S::PresentMatch(b)) => Some(HeaderRule::Present(*b)),
        // Older Envoys matched any value for an empty `exact_match`, newer ones only the
        // empty value: refuse the ambiguity.
        Some(S::ExactMatch(s)) => {
            non_empty(c, s, &p.field("exact_match")).map(|s| plain(StringMatch::Exact(s)))
        }
        Some(S::PrefixMatch(s)) => {
            non_empty(c, s, &p.field("prefix_match")).map(|s| plain(StringMatch::Prefix(s)))
        }
        Some(S::SuffixMatch(s)) => {
            non_empty(c, s, &p.field("suffix_match")).map(|s| plain(StringMatch::Suffix(s)))
        }
        Some(S::ContainsMatch(s)) => {
            non_empty(c, s, &p.field("contains_match")).map(|s| plain(StringMatch::Contains(s)))
        }
        Some(S::SafeRegexMatch(r)) => {
            regex(c, &r.regex, &p.field("safe_regex_match").field("regex"))
                .map(|r| plain(StringMatch::Regex(r)))
        }
        Some(S::RangeMatch(r)) => {
            if r.start >= r.end {
                c.error(&p.field("range_match"), "start must be below end");
                None
            } else {
                Some(HeaderRule::Range {
                    start: r.start,
                    end: r.end,
                })
            }
        }
        Some(S::StringMatch(m)) => {
            string_matcher(c, m, &p.field("string_match")).map(HeaderRule::Value)
        }
    };
    Some(HeaderMatcher {
        name: name?,
        rule: rule?,
        invert: h.invert_match,
        treat_missing_as_empty: h.treat_missing_header_as_empty,
    })
}

#[cfg(test)]
mod tests;
