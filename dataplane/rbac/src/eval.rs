//! Evaluation of compiled RBAC rules against a request or a connection, with Envoy's
//! semantics, and the [`Decision`] it returns: allowed or not, which policy matched, a
//! stable [`Reason`] for metrics and a one-line explanation for debug logs.
//!
//! What it does not do: no I/O, no clock, no logging, no counting (the caller logs and
//! counts), no `x-forwarded-for` handling (the caller passes the client address it
//! trusts as [`Context::remote`]), no chaining of filters: the caller runs its RBAC
//! filters in filter order (Istio: the DENY filter, then the ALLOW one; LOG filters only
//! record) and stops at the first denial.
//!
//! TCP (the network filter, [`Context::is_http`] false). Envoy evaluates network RBAC
//! against an empty header map, and so does this: every header is absent (so a value
//! test never matches, but `present_match: false`, an inverted presence test or a
//! `not_rule` around a header test does), and `url_path` never matches. Istio does not
//! send HTTP-only fields to a TCP filter as they are: its translator drops an ALLOW rule
//! that uses them (fewer connections allowed) and strips them from a DENY rule (more
//! connections denied), so the surprising cases need hand-written Envoy config. That is
//! the translator's concern, not this crate's.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use spar_route::{HeaderMatcher, HeaderRule, StringMatcher};

use crate::model::{Action, FilterKind, Permission, Policy, Principal, Rbac, RbacFilter};

/// What evaluation may read from a request (HTTP) or a connection (TCP).
pub trait Context {
    /// The request method, e.g. `b"GET"`; answers header matchers on `:method`. Unused on
    /// TCP.
    fn method(&self) -> &[u8];
    /// The request path without query and fragment (what Envoy's `url_path` matches).
    /// A `?` or `#` and what follows are ignored anyway. Unused on TCP.
    fn path(&self) -> &[u8];
    /// The value of header `lower_name` (lower case), several fields joined with `,` (as
    /// Envoy's RBAC matches them); `None` when absent. Pseudo-headers other than `:method`
    /// are asked here too: `:path` (with its query, as received), `:authority`, `:scheme`.
    /// Never called on TCP.
    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>>;
    /// The local address the connection reached (`destination_ip`, `destination_port`).
    fn destination(&self) -> SocketAddr;
    /// The physical peer (`direct_remote_ip`).
    fn direct_remote(&self) -> SocketAddr;
    /// The client address after `x-forwarded-for` handling (`remote_ip`); the caller
    /// decides how many hops to trust. Without it, the direct remote address.
    fn remote(&self) -> IpAddr;
    /// The peer certificate's (first) URI SAN, e.g. `spiffe://cluster.local/ns/x/sa/y`;
    /// `None` without a peer certificate.
    fn peer_principal(&self) -> Option<&str>;
    /// The TLS SNI the client sent; `None` without TLS or without SNI.
    fn requested_server_name(&self) -> Option<&str>;
    /// Whether this is an HTTP request (HTTP filter) rather than a TCP connection.
    fn is_http(&self) -> bool;

    /// The connection's remote address as the PROXY protocol gave it (`source_ip`); the
    /// physical peer when there was none (the default).
    fn source(&self) -> IpAddr {
        self.direct_remote().ip()
    }
    /// Whether the downstream connection is TLS (`authenticated` without a matcher
    /// matches any TLS connection, as in Envoy). Default: a peer certificate was shown.
    fn is_tls(&self) -> bool {
        self.peer_principal().is_some()
    }
    /// The peer certificate's other names, in Envoy's order (URI SANs after the first,
    /// then DNS SANs, then the subject): calls `test` on each until it returns true, and
    /// says whether one did. Default: no other names.
    fn peer_other_names(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        let _ = test;
        false
    }
}

/// The outcome of one [`Rbac`] evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Whether the request or connection may proceed (always true for LOG).
    pub allowed: bool,
    /// The first policy, in name order, that matched.
    pub matched_policy: Option<&'a str>,
    /// The rules' action.
    pub action: Action,
}

/// Why a [`Decision`] came out as it did: a short, stable label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// ALLOW rules, a policy matched.
    AllowedPolicyMatched,
    /// ALLOW rules, none matched.
    DeniedNoPolicyMatched,
    /// DENY rules, a policy matched.
    DeniedPolicyMatched,
    /// DENY rules, none matched.
    AllowedNoPolicyMatched,
    /// LOG rules, a policy matched (the request is to be audited).
    LoggedPolicyMatched,
    /// LOG rules, none matched.
    NotLoggedNoPolicyMatched,
}

impl Reason {
    /// The label: `allowed_policy_matched`, `denied_no_policy_matched`,
    /// `denied_policy_matched`, `allowed_no_policy_matched`, `logged_policy_matched` or
    /// `not_logged_no_policy_matched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowedPolicyMatched => "allowed_policy_matched",
            Self::DeniedNoPolicyMatched => "denied_no_policy_matched",
            Self::DeniedPolicyMatched => "denied_policy_matched",
            Self::AllowedNoPolicyMatched => "allowed_no_policy_matched",
            Self::LoggedPolicyMatched => "logged_policy_matched",
            Self::NotLoggedNoPolicyMatched => "not_logged_no_policy_matched",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest request value (path, SNI, principal) quoted in an explanation, in bytes: enough
/// for Istio's SPIFFE IDs and ordinary paths, short enough for one log line.
const MAX_QUOTED_BYTES: usize = 128;

impl Decision<'_> {
    /// The stable reason, for metric labels.
    pub fn reason(&self) -> Reason {
        match (self.action, self.matched_policy.is_some()) {
            (Action::Allow, true) => Reason::AllowedPolicyMatched,
            (Action::Allow, false) => Reason::DeniedNoPolicyMatched,
            (Action::Deny, true) => Reason::DeniedPolicyMatched,
            (Action::Deny, false) => Reason::AllowedNoPolicyMatched,
            (Action::Log, true) => Reason::LoggedPolicyMatched,
            (Action::Log, false) => Reason::NotLoggedNoPolicyMatched,
        }
    }

    /// Whether a LOG rule asks for this request to be logged (Envoy's `access_log_hint`);
    /// false for other actions.
    pub fn should_log(&self) -> bool {
        self.action == Action::Log && self.matched_policy.is_some()
    }

    /// Envoy's response code details for a denial:
    /// `rbac_access_denied_matched_policy[<policy>]`, `[none]` when no policy matched;
    /// `None` when allowed. Whitespace in the name (space, tab, CR, LF, VT, FF) becomes
    /// `_`, as in Envoy: access logs split on whitespace.
    pub fn response_code_details(&self) -> Option<String> {
        (!self.allowed).then(|| {
            let name: String = self
                .matched_policy
                .unwrap_or("none")
                .chars()
                .map(|c| match c {
                    ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => '_',
                    c => c,
                })
                .collect();
            format!("rbac_access_denied_matched_policy[{name}]")
        })
    }

    /// One line for debug logs: the verdict, the policy, and what the decision saw, e.g.
    /// `denied by DENY policy ns[foo]-policy[deny-all]-rule[0]: principal
    /// spiffe://cluster.local/ns/x/sa/y, remote 10.0.0.7, GET /admin`. Request values are
    /// cut at 128 bytes, and bytes outside printable ASCII are escaped (`\xNN`), so a
    /// request cannot forge log lines.
    pub fn explain(&self, ctx: &(impl Context + ?Sized)) -> String {
        let mut s = String::with_capacity(160);
        let verdict = if self.allowed { "allowed" } else { "denied" };
        // Writing to a String cannot fail.
        let _ = match (self.action, self.matched_policy) {
            (Action::Log, Some(_)) => write!(s, "allowed, logged by LOG policy "),
            (Action::Log, None) => write!(s, "allowed, no LOG policy matched"),
            (action, Some(_)) => write!(s, "{verdict} by {action} policy "),
            (action, None) => write!(s, "{verdict}, no {action} policy matched"),
        };
        if let Some(p) = self.matched_policy {
            // Names come from config, not requests: quoted whole, but escaped all the same.
            quote(&mut s, p.as_bytes(), usize::MAX);
        }
        s.push_str(": principal ");
        match ctx.peer_principal() {
            Some(p) => quote(&mut s, p.as_bytes(), MAX_QUOTED_BYTES),
            None => s.push_str("none"),
        }
        let _ = write!(s, ", remote {}", ctx.remote());
        if ctx.is_http() {
            s.push_str(", ");
            quote(&mut s, ctx.method(), MAX_QUOTED_BYTES);
            s.push(' ');
            quote(&mut s, ctx.path(), MAX_QUOTED_BYTES);
        } else {
            let _ = write!(s, ", destination {}", ctx.destination());
            if let Some(sni) = ctx.requested_server_name() {
                s.push_str(", sni ");
                quote(&mut s, sni.as_bytes(), MAX_QUOTED_BYTES);
            }
        }
        s
    }
}

/// Appends `v`, cut after `max` bytes and escaped for a log line.
fn quote(out: &mut String, v: &[u8], max: usize) {
    let cut = v.len().min(max);
    for &b in &v[..cut] {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if v.len() > cut {
        out.push_str("...");
    }
}

/// The outcome of one [`RbacFilter`]: its enforced and its shadow rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterDecision<'a> {
    /// The enforced rules' decision; `None` when the filter has no rules (nothing is
    /// enforced).
    pub enforced: Option<Decision<'a>>,
    /// The shadow rules' decision, for stats and logs only.
    pub shadow: Option<Decision<'a>>,
}

impl FilterDecision<'_> {
    /// Whether the request or connection may proceed: the shadow rules never deny.
    pub fn allowed(&self) -> bool {
        self.enforced.is_none_or(|d| d.allowed)
    }
}

impl RbacFilter {
    /// Evaluates the enforced and the shadow rules. A network filter's rules see no HTTP
    /// fields even if `ctx` has them (Envoy runs it before any HTTP parsing).
    pub fn evaluate<'a>(&'a self, ctx: &(impl Context + ?Sized)) -> FilterDecision<'a> {
        let eval = |r: &'a Rbac| match self.kind {
            FilterKind::Http => r.evaluate(ctx),
            FilterKind::Network => r.evaluate(&Tcp(ctx)),
        };
        FilterDecision {
            enforced: self.rules.as_ref().map(eval),
            shadow: self.shadow_rules.as_ref().map(eval),
        }
    }
}

/// A context seen as a TCP connection: the network filter's view.
struct Tcp<'c, C: ?Sized>(&'c C);

impl<C: Context + ?Sized> Context for Tcp<'_, C> {
    fn method(&self) -> &[u8] {
        b""
    }
    fn path(&self) -> &[u8] {
        b""
    }
    fn header(&self, _: &str) -> Option<Cow<'_, [u8]>> {
        None
    }
    fn destination(&self) -> SocketAddr {
        self.0.destination()
    }
    fn direct_remote(&self) -> SocketAddr {
        self.0.direct_remote()
    }
    fn remote(&self) -> IpAddr {
        self.0.remote()
    }
    fn peer_principal(&self) -> Option<&str> {
        self.0.peer_principal()
    }
    fn requested_server_name(&self) -> Option<&str> {
        self.0.requested_server_name()
    }
    fn is_http(&self) -> bool {
        false
    }
    fn source(&self) -> IpAddr {
        self.0.source()
    }
    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
    fn peer_other_names(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.0.peer_other_names(test)
    }
}

impl Rbac {
    /// Envoy's RBAC engine: policies are tried in name order and the first match is
    /// reported. ALLOW: allowed if and only if a policy matched (so no policies deny
    /// everything); DENY: denied if and only if a policy matched (no policies allow
    /// everything); LOG: always allowed.
    pub fn evaluate<'a>(&'a self, ctx: &(impl Context + ?Sized)) -> Decision<'a> {
        let matched = self
            .policies()
            .iter()
            .find(|p| p.matches(ctx))
            .map(|p| p.name.as_str());
        let allowed = match self.action() {
            Action::Allow => matched.is_some(),
            Action::Deny => matched.is_none(),
            Action::Log => true,
        };
        Decision {
            allowed,
            matched_policy: matched,
            action: self.action(),
        }
    }
}

impl Policy {
    /// Whether some permission and some principal match (permissions first, as Envoy).
    pub fn matches(&self, ctx: &(impl Context + ?Sized)) -> bool {
        self.permissions.iter().any(|p| p.matches(ctx))
            && self.principals.iter().any(|p| p.matches(ctx))
    }
}

impl Permission {
    /// Whether the request or connection matches.
    pub fn matches(&self, ctx: &(impl Context + ?Sized)) -> bool {
        match self {
            Self::Any => true,
            Self::And(rules) => rules.iter().all(|r| r.matches(ctx)),
            Self::Or(rules) => rules.iter().any(|r| r.matches(ctx)),
            Self::Not(rule) => !rule.matches(ctx),
            Self::Header(h) => header_matches(h, ctx),
            Self::UrlPath(m) => url_path_matches(m, ctx),
            Self::DestinationIp(c) => c.contains(ctx.destination().ip()),
            Self::DestinationPort(port) => ctx.destination().port() == *port,
            Self::DestinationPortRange { start, end } => {
                let port = u32::from(ctx.destination().port());
                *start <= port && port < *end
            }
            Self::RequestedServerName(m) => {
                m.matches(ctx.requested_server_name().unwrap_or("").as_bytes())
            }
        }
    }
}

impl Principal {
    /// Whether the downstream peer matches.
    pub fn matches(&self, ctx: &(impl Context + ?Sized)) -> bool {
        match self {
            Self::Any => true,
            Self::And(ids) => ids.iter().all(|i| i.matches(ctx)),
            Self::Or(ids) => ids.iter().any(|i| i.matches(ctx)),
            Self::Not(id) => !id.matches(ctx),
            Self::Authenticated(m) => authenticated(m.as_ref(), ctx),
            Self::SourceIp(c) => c.contains(ctx.source()),
            Self::DirectRemoteIp(c) => c.contains(ctx.direct_remote().ip()),
            Self::RemoteIp(c) => c.contains(ctx.remote()),
            Self::Header(h) => header_matches(h, ctx),
            Self::UrlPath(m) => url_path_matches(m, ctx),
        }
    }
}

/// Envoy's `authenticated`: no TLS, no match; no matcher, any TLS connection; else the
/// URI SANs, the DNS SANs and the subject, in that order, until one matches.
fn authenticated(m: Option<&StringMatcher>, ctx: &(impl Context + ?Sized)) -> bool {
    if !ctx.is_tls() {
        return false;
    }
    let Some(m) = m else { return true };
    ctx.peer_principal()
        .is_some_and(|p| m.matches(p.as_bytes()))
        || ctx.peer_other_names(&mut |n| m.matches(n.as_bytes()))
}

/// `url_path`: the path up to `?` or `#`; never on TCP (Envoy: no `:path`, no match).
fn url_path_matches(m: &StringMatcher, ctx: &(impl Context + ?Sized)) -> bool {
    if !ctx.is_http() {
        return false;
    }
    let path = ctx.path();
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    m.matches(&path[..end])
}

/// Envoy's header matching for RBAC: on the joined value of the header. An absent header
/// fails every test but `present_match: false` (unless `treat_missing_header_as_empty`),
/// and `invert_match` turns a presence test around even then; on TCP every header is
/// absent.
fn header_matches(h: &HeaderMatcher, ctx: &(impl Context + ?Sized)) -> bool {
    let value = if !ctx.is_http() {
        None
    } else if h.name == ":method" {
        Some(Cow::Borrowed(ctx.method()))
    } else {
        ctx.header(&h.name)
    };
    let value = value.as_deref();
    let test = |v: &[u8]| match &h.rule {
        HeaderRule::Present(present) => *present,
        HeaderRule::Value(m) => m.matches(v),
        HeaderRule::Range { start, end } => std::str::from_utf8(v)
            .ok()
            // absl::SimpleAtoi, which Envoy uses, allows surrounding whitespace.
            .and_then(|s| s.trim_ascii().parse::<i64>().ok())
            .is_some_and(|n| *start <= n && n < *end),
    };
    match value {
        Some(v) => test(v) != h.invert,
        None if h.treat_missing_as_empty => test(b"") != h.invert,
        None => match h.rule {
            HeaderRule::Present(present) => present == h.invert,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests;
