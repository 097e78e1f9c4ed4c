//! The compiled form of Envoy's RBAC config: a [`Rbac`] (action and policies in name order),
//! its [`Permission`] and [`Principal`] trees, [`Cidr`] ranges, and the two filters that
//! carry them ([`RbacFilter`], [`PerRoute`]).
//!
//! What it does not do: no reading of Envoy protos (`compile.rs` builds these values and
//! checks them), no evaluation (`eval.rs`).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use spar_route::{HeaderMatcher, StringMatcher};

/// What a matching policy means (Envoy `RBAC.Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Allow-list: a request is allowed if and only if some policy matches.
    Allow,
    /// Block-list: a request is denied if and only if some policy matches.
    Deny,
    /// Audit: every request is allowed; whether a policy matched is recorded for logging
    /// (Envoy's `access_log_hint`; Istio's `AUDIT` action).
    Log,
}

impl Action {
    /// Envoy's name: `ALLOW`, `DENY` or `LOG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::Log => "LOG",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Envoy `config.rbac.v3.RBAC`: an action and named policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rbac {
    action: Action,
    policies: Vec<Policy>,
}

impl Rbac {
    /// The policies are sorted by name (byte order), the order in which Envoy, whose
    /// `policies` is an ordered map, tries them. Names should be unique (they come from a
    /// map); duplicates keep their relative order.
    pub fn new(action: Action, mut policies: Vec<Policy>) -> Self {
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Self { action, policies }
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The policies, in the order they are tried.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}

/// Envoy `Policy`: it matches when any permission and any principal match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The key in `policies` (Istio: `ns[<ns>]-policy[<name>]-rule[<i>]`).
    pub name: String,
    /// What is done (OR'ed); never empty when compiled.
    pub permissions: Vec<Permission>,
    /// Who does it (OR'ed); never empty when compiled.
    pub principals: Vec<Principal>,
}

/// Envoy `Permission`: a test of the action (request or connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `any: true`.
    Any,
    /// `and_rules`: every one matches.
    And(Vec<Permission>),
    /// `or_rules`: at least one matches.
    Or(Vec<Permission>),
    /// `not_rule`.
    Not(Box<Permission>),
    /// `header`: an HTTP request header; `:method` and other pseudo-headers included.
    /// On a TCP connection every header is absent.
    Header(HeaderMatcher),
    /// `url_path`: the path without query and fragment. Never matches on TCP.
    UrlPath(StringMatcher),
    /// `destination_ip`: the local address the connection reached.
    DestinationIp(Cidr),
    /// `destination_port`.
    DestinationPort(u16),
    /// `destination_port_range`: `[start, end)`, `start < end <= 65536`.
    DestinationPortRange {
        /// Inclusive.
        start: u32,
        /// Exclusive.
        end: u32,
    },
    /// `requested_server_name`: the TLS SNI, the empty string when there is none.
    RequestedServerName(StringMatcher),
}

/// Envoy `Principal`: a test of the downstream peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// `any: true`.
    Any,
    /// `and_ids`: every one matches.
    And(Vec<Principal>),
    /// `or_ids`: at least one matches.
    Or(Vec<Principal>),
    /// `not_id`.
    Not(Box<Principal>),
    /// `authenticated`: a TLS connection; with a matcher, a peer certificate name matches
    /// it (URI SANs, then DNS SANs, then the subject, as Envoy tries them).
    Authenticated(Option<StringMatcher>),
    /// `source_ip` (deprecated in Envoy): the connection's remote address, which honours
    /// the PROXY protocol but not `x-forwarded-for`.
    SourceIp(Cidr),
    /// `direct_remote_ip`: the physical peer.
    DirectRemoteIp(Cidr),
    /// `remote_ip`: the client address as the caller derived it (`x-forwarded-for`).
    RemoteIp(Cidr),
    /// `header`, as in [`Permission::Header`].
    Header(HeaderMatcher),
    /// `url_path`, as in [`Permission::UrlPath`].
    UrlPath(StringMatcher),
}

/// An IP prefix (Envoy `CidrRange`), its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    prefix: IpAddr,
    len: u8,
}

impl Cidr {
    /// `addr/len`; host bits of `addr` are cleared, as Envoy does. `None` when `len`
    /// exceeds the address's bits (32 or 128).
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let prefix = match addr {
            IpAddr::V4(a) if len <= 32 => IpAddr::V4((u32::from(a) & mask4(len)).into()),
            IpAddr::V6(a) if len <= 128 => IpAddr::V6((u128::from(a) & mask6(len)).into()),
            _ => return None,
        };
        Some(Self { prefix, len })
    }

    /// The network address.
    pub fn prefix(&self) -> IpAddr {
        self.prefix
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is a zero-length prefix (all addresses of its family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
    /// dual-stack socket reports for an IPv4 peer) counts as the IPv4 address, as Envoy
    /// converts it; otherwise the families must agree.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.prefix, ip.to_canonical()) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(a) & mask4(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(a) & mask6(self.len) == u128::from(p),
            _ => false,
        }
    }
}

/// The IPv4 netmask of a `len`-bit prefix (`len` <= 32; 0 gives 0).
fn mask4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

/// The IPv6 netmask of a `len`-bit prefix (`len` <= 128; 0 gives 0).
fn mask6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

/// Which Envoy filter a [`RbacFilter`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterKind {
    /// `envoy.extensions.filters.http.rbac.v3.RBAC`: evaluated per request.
    Http,
    /// `envoy.extensions.filters.network.rbac.v3.RBAC`: evaluated per connection.
    Network,
}

/// When the network filter evaluates (Envoy `EnforcementType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Enforcement {
    /// Once, when the first byte of data arrives (Envoy's default).
    OneTimeOnFirstByte,
    /// On every message boundary. Without metadata matchers (refused here) the answer
    /// cannot change during a connection, so this evaluates like the first.
    Continuous,
}

/// One RBAC filter, HTTP or network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacFilter {
    /// Which filter.
    pub kind: FilterKind,
    /// Enforced rules. `None` (absent in the config): nothing is enforced. Present with no
    /// policies and action ALLOW: everything is denied.
    pub rules: Option<Rbac>,
    /// Rules evaluated for stats and logs only, never enforced.
    pub shadow_rules: Option<Rbac>,
    /// `rules_stat_prefix` (HTTP) or `stat_prefix` (network).
    pub stat_prefix: String,
    /// `shadow_rules_stat_prefix`.
    pub shadow_stat_prefix: String,
    /// `track_per_rule_stats` (HTTP only; false for network filters).
    pub track_per_rule_stats: bool,
    /// `enforcement_type` (network only; [`Enforcement::OneTimeOnFirstByte`] for HTTP).
    pub enforcement: Enforcement,
    /// `delay_deny` (network only): how long to wait before closing a denied connection.
    /// The caller must honour it or refuse the config.
    pub delay_deny: Option<Duration>,
}

/// `RBACPerRoute`: what a route does with the HTTP filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerRoute {
    /// `rbac` absent: RBAC is disabled for the route.
    Disabled,
    /// `rbac` set: this filter config replaces the listener's for the route.
    Override(RbacFilter),
}
