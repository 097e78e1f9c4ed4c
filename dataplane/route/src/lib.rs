//! Routing decisions, as Envoy's router and its fault and CORS filters make them, for the
//! subset of Envoy's `RouteConfiguration` that Spar supports.
//!
//! What it does:
//! - [`RouteTable`]: a request's authority picks a [`VirtualHost`] by domain (exact domains in
//!   a hash map, wildcards hashed by length, so 10,000 virtual hosts cost a few hash probes),
//!   then the first [`Route`] whose [`RouteMatch`] accepts the request (path, headers, query).
//! - What to do with it ([`Action`]): forward to a cluster or weighted clusters, with path
//!   and host rewrites ([`Route::rewritten_path`], [`Route::rewritten_authority`]),
//!   redirect ([`Redirect::location`] builds `Location` as Envoy does) or answer directly.
//! - Header mutations with `%VAR%` templates ([`HeaderMutation`], [`HeaderEdits`]), retry
//!   decisions and backoff ([`RetryPolicy`]), fault injection ([`FaultPolicy::decide`]),
//!   CORS ([`CorsPolicy::decide`]) and consistent-hash keys ([`request_hash`]).
//!
//! What it does not do: no I/O, no clock (durations come back to the caller), no random
//! number generation (callers pass `u64` random values), no parsing of Envoy config
//! (spar-config compiles `RouteConfiguration` into these types and reports config errors).
//! Regexes are compiled here, with limits, so a hostile pattern is refused at config time.

#![forbid(unsafe_code)]

mod action;
mod cors;
mod domain;
mod fault;
mod hash;
mod headers;
mod matcher;
mod retry;
mod safe_regex;
mod table;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

pub use spar_cluster::ClusterId;

pub use cors::{CorsDecision, CorsPolicy};
pub use domain::{DomainError, DomainMatch};
pub use fault::{
    ABORT_GRPC_HEADER, ABORT_HEADER, ABORT_PERCENTAGE_HEADER, Abort, AbortKind, DELAY_HEADER,
    DELAY_PERCENTAGE_HEADER, FaultAbort, FaultDecision, FaultDelay, FaultPolicy, Fraction,
};
pub use hash::{HashOutcome, HashPolicy, HashPolicyEntry, request_hash};
pub use headers::{
    AppendAction, ConfigHeaders, FormatVars, HeaderAppend, HeaderEdits, HeaderMutation,
    HeaderValue, valid_header_name, valid_header_value,
};
pub use matcher::{
    HeaderMatcher, HeaderRule, PathMatch, QueryMatcher, QueryRule, RouteMatch, StringMatch,
    StringMatcher,
};
pub use retry::{AttemptOutcome, DEFAULT_BACKOFF_BASE, RetryOn, RetryPolicy};
pub use safe_regex::{RegexError, RegexRewrite, SafeRegex};
pub use table::RouteTable;

/// Endpoint metadata for subset load balancing: Envoy's `filter_metadata["envoy.lb"]`, values
/// stringified. Same type as spar-cluster's `Metadata` (a `BTreeMap<String, String>`).
pub type Metadata = spar_cluster::Metadata;

/// Envoy's default upstream request timeout for a route: 15 s.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// What routing may read from a request. Pseudo-header names in matchers (`:method`,
/// `:authority`, `:path`, `:scheme`) are answered from the methods, other names from
/// [`RequestView::header`].
pub trait RequestView {
    /// The method, e.g. `b"GET"`.
    fn method(&self) -> &[u8];
    /// The authority as received (with its port, if any).
    fn authority(&self) -> &[u8];
    /// The request-target in origin form, with its query.
    fn path(&self) -> &[u8];
    /// `b"http"` or `b"https"`.
    fn scheme(&self) -> &[u8];
    /// The value of header `lower_name` (lower case); several fields with that name joined
    /// by `,`; `None` when absent.
    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>>;

    /// Runs `test` on each value of the fields named `lower_name`, in order, until one
    /// passes. `None` when there is no such field, else whether a value passed. Route
    /// header matchers use this: Envoy matches repeated fields value by value, not joined.
    /// The default sees the joined value as one.
    fn any_header_value(
        &self,
        lower_name: &str,
        test: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<bool> {
        self.header(lower_name).map(|v| test(&v))
    }
}

/// A set of domains and the routes that serve them.
#[derive(Clone, Debug, Default)]
pub struct VirtualHost {
    /// Name from the config (for stats and logs).
    pub name: String,
    /// Domains this virtual host serves.
    pub domains: Vec<DomainMatch>,
    /// Routes in config order; the first match wins.
    pub routes: Vec<Route>,
    /// `request_headers_to_add` / `_remove` of the virtual host.
    pub request_headers: HeaderMutation,
    /// `response_headers_to_add` / `_remove` of the virtual host.
    pub response_headers: HeaderMutation,
    /// Retry policy for routes that have none.
    pub retry_policy: Option<RetryPolicy>,
    /// CORS policy (`typed_per_filter_config` of the CORS filter) for routes that have none.
    pub cors: Option<CorsPolicy>,
    /// Fault policy (`typed_per_filter_config` of the fault filter) for routes that have none;
    /// overrides the filter's own.
    pub fault: Option<FaultPolicy>,
}

/// One route: a matcher and what to do with matching requests.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name from the config, may be empty.
    pub name: String,
    /// What a request must look like.
    pub r#match: RouteMatch,
    /// What to do with it.
    pub action: Action,
    /// `request_headers_to_add` / `_remove` of the route.
    pub request_headers: HeaderMutation,
    /// `response_headers_to_add` / `_remove` of the route.
    pub response_headers: HeaderMutation,
    /// Fault policy (`typed_per_filter_config`); overrides the virtual host's and the filter's.
    pub fault: Option<FaultPolicy>,
    /// CORS policy (`typed_per_filter_config`); overrides the virtual host's.
    pub cors: Option<CorsPolicy>,
}

/// What a route does with a request.
// Routes are built once per config snapshot and read in place; boxing the large variant
// would add a pointer chase per request to save memory on redirects and direct responses.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Action {
    /// Forward upstream (Envoy `route`).
    Forward(RouteAction),
    /// Answer with a redirect (Envoy `redirect`).
    Redirect(Redirect),
    /// Answer locally (Envoy `direct_response`).
    Direct(DirectResponse),
}

/// A cluster named by a route: its index in the snapshot and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRef {
    /// Index of the cluster in the snapshot.
    pub id: ClusterId,
    /// Name of the cluster, for logs and stats.
    pub name: String,
}

/// Where forwarded requests go.
#[derive(Clone, Debug)]
pub enum Target {
    /// One cluster (Envoy `cluster`).
    Cluster(ClusterRef),
    /// Several, by weight (Envoy `weighted_clusters`).
    Weighted(WeightedClusters),
}

/// Envoy `weighted_clusters`.
#[derive(Clone, Debug)]
pub struct WeightedClusters {
    /// The clusters in config order; at least one has a weight above 0.
    pub clusters: Vec<WeightedCluster>,
    /// Sum of the weights (Envoy's deprecated `total_weight` is not used).
    pub total: u64,
}

/// One cluster of [`WeightedClusters`].
#[derive(Clone, Debug)]
pub struct WeightedCluster {
    /// The cluster.
    pub cluster: ClusterRef,
    /// Its weight; 0 is never picked.
    pub weight: u32,
    /// Request header mutations applied when this cluster is picked (before the route's).
    pub request_headers: HeaderMutation,
    /// Response header mutations applied when this cluster is picked (before the route's).
    pub response_headers: HeaderMutation,
    /// `host_rewrite_literal`: replaces the authority, over the route's host rewrite.
    pub host_rewrite: Option<String>,
    /// `metadata_match` `filter_metadata["envoy.lb"]`, merged over the route's by the caller.
    pub metadata_match: Option<Arc<Metadata>>,
}

/// A `grpc-timeout` header value (1 to 8 digits and a unit: H M S m u n) as a duration;
/// `None` when malformed (the header is then ignored).
pub fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Envoy `RouteAction`: forward to a target, with rewrites and policies.
#[derive(Clone, Debug)]
pub struct RouteAction {
    /// Cluster or weighted clusters.
    pub target: Target,
    /// Upstream request timeout (Envoy default 15 s); `None` when configured as 0 (disabled).
    pub timeout: Option<Duration>,
    /// Stream idle timeout for this route: `None` when not set (the connection manager's
    /// `stream_idle_timeout` applies); `Some(Duration::ZERO)` when configured as 0 (disabled).
    pub idle_timeout: Option<Duration>,
    /// `max_stream_duration.grpc_timeout_header_max`: when set, a gRPC request's
    /// `grpc-timeout` header becomes its timeout, capped by this (`Duration::ZERO`: no
    /// cap). `None`: the header is ignored, as in Envoy without the field.
    pub grpc_timeout_max: Option<Duration>,
    /// Replaces the matched prefix (or the whole path for exact and regex matches).
    pub prefix_rewrite: Option<String>,
    /// Regex substitution on the path (query kept).
    pub regex_rewrite: Option<RegexRewrite>,
    /// How the authority is rewritten.
    pub host_rewrite: Option<HostRewrite>,
    /// Retry policy; `None` uses the virtual host's.
    pub retry: Option<RetryPolicy>,
    /// Hash policies for consistent-hash load balancers.
    pub hash_policy: Vec<HashPolicyEntry>,
    /// Shadow copies of requests (`request_mirror_policies`).
    pub mirrors: Vec<Mirror>,
    /// `metadata_match` `filter_metadata["envoy.lb"]`, for subset load balancing.
    pub metadata_match: Option<Arc<Metadata>>,
    /// Route-level `upgrade_configs`: (lower-case upgrade type, enabled); they override the
    /// connection manager's for this route.
    pub upgrades: Vec<(String, bool)>,
    /// `upgrade_configs` CONNECT with `connect_config`: the proxy answers the CONNECT
    /// itself and tunnels the bytes to the cluster over TCP, instead of forwarding the
    /// CONNECT request.
    pub connect_terminate: bool,
}

/// How a forwarded request's authority is rewritten.
#[derive(Clone, Debug)]
pub enum HostRewrite {
    /// `host_rewrite_literal`.
    Literal(String),
    /// `host_rewrite_header`: the value of this (lower-case) request header, when present
    /// and not empty.
    Header(String),
    /// `host_rewrite_path_regex`: the substitution applied to the path without its query.
    PathRegex(RegexRewrite),
}

/// Envoy `RedirectAction`.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// New scheme (`scheme_redirect`, lower-cased, or `https` for `https_redirect`).
    pub scheme: Option<String>,
    /// New host (`host_redirect`).
    pub host: Option<String>,
    /// New port (`port_redirect`).
    pub port: Option<u16>,
    /// How the path changes.
    pub path: RedirectPath,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Drop the query (`strip_query`).
    pub strip_query: bool,
}

/// The path part of a redirect.
#[derive(Clone, Debug)]
pub enum RedirectPath {
    /// The request's path.
    Keep,
    /// `path_redirect`: this path (a query in it replaces the request's).
    Path(String),
    /// `prefix_rewrite`: replaces the matched prefix.
    Prefix(String),
    /// `regex_rewrite`: substitution on the path.
    Regex(RegexRewrite),
}

/// Envoy `DirectResponseAction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectResponse {
    /// Status code, 200 to 599.
    pub status: u16,
    /// Body (`inline_string` / `inline_bytes`).
    pub body: Option<bytes::Bytes>,
}

/// `request_mirror_policies`: a copy of the request goes to `cluster`, for a fraction of
/// requests; its response is dropped.
#[derive(Clone, Debug)]
pub struct Mirror {
    /// Where the copy goes.
    pub cluster: ClusterRef,
    /// Share of requests mirrored (`runtime_fraction.default_value`, default all).
    pub fraction: Fraction,
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod grpc_timeout_tests {
    use std::time::Duration;

    use super::grpc_timeout;

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(grpc_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout(b"5M"), Some(Duration::from_secs(300)));
        assert_eq!(grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(b"9n"), Some(Duration::from_nanos(9)));
        for bad in [
            &b""[..],
            b"m",
            b"123456789m",
            b"10x",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
