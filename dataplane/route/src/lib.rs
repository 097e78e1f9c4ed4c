//! Route matching, as Envoy's router does it for the subset Spar supports: a request's
//! authority picks a [`VirtualHost`] by domain, then its path picks the first matching
//! [`Route`], whose [`RouteAction`] names the upstream cluster.
//!
//! What it does: builds a [`RouteTable`] from compiled virtual hosts (exact domains in a hash
//! map, wildcard suffixes and prefixes hashed by length, so 10,000 virtual hosts cost a few
//! hash lookups per request) and answers [`RouteTable::find`] without allocating for any
//! realistic host name.
//!
//! What it does not do: no I/O, no clock, no parsing of Envoy config (spar-config compiles
//! `RouteConfiguration` into these types and reports config errors), no header or query
//! matching, rewrites, retries or weighted clusters yet.

#![forbid(unsafe_code)]

mod domain;
mod table;

use std::time::Duration;

use spar_cluster::ClusterId;

pub use domain::{DomainError, DomainMatch};
pub use table::RouteTable;

/// Envoy's default upstream request timeout for a route: 15 s.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// A set of domains and the routes that serve them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualHost {
    /// Name from the config (for stats and logs).
    pub name: String,
    /// Domains this virtual host serves.
    pub domains: Vec<DomainMatch>,
    /// Routes in config order; the first match wins.
    pub routes: Vec<Route>,
}

/// One route: a path matcher and what to do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Name from the config, may be empty.
    pub name: String,
    /// Path matcher, applied to the path without its query string.
    pub path: PathMatch,
    /// Whether the path comparison is case-sensitive (Envoy default true).
    pub case_sensitive: bool,
    /// Where matching requests go.
    pub action: RouteAction,
}

/// How a route matches the request path (query string and fragment excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path starts with this string (Envoy `prefix`).
    Prefix(String),
    /// The path equals this string (Envoy `path`).
    Exact(String),
}

/// Forward to a cluster (Envoy `RouteAction` with `cluster`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAction {
    /// Index of the cluster in the snapshot.
    pub cluster: ClusterId,
    /// Name of the cluster, for logs and stats.
    pub cluster_name: String,
    /// Upstream request timeout (Envoy default 15 s); `None` when configured as 0 (disabled).
    pub timeout: Option<Duration>,
}

impl Route {
    /// Whether `path` (which may carry `?query` or `#fragment`) matches this route.
    pub fn matches(&self, path: &[u8]) -> bool {
        let end = path
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(path.len());
        let path = &path[..end];
        let eq = |a: &[u8], b: &[u8]| {
            if self.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        match &self.path {
            PathMatch::Prefix(p) => path
                .get(..p.len())
                .is_some_and(|head| eq(head, p.as_bytes())),
            PathMatch::Exact(p) => eq(path, p.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests;
