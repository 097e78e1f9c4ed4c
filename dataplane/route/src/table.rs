//! The lookup structure behind [`RouteTable::route`].
//!
//! Envoy's order: exact domain, then the longest suffix wildcard, then the longest prefix
//! wildcard, then `*`. Exact domains sit in a hash map. Wildcards sit in hash maps keyed by
//! their fixed part, with the distinct fixed-part lengths kept sorted longest first, so a
//! lookup costs one hash probe per distinct length (a handful in practice) instead of a scan
//! over every wildcard domain.

use std::collections::HashMap;

use crate::{ConfigHeaders, DomainMatch, RequestView, Route, VirtualHost};

mod index;

use index::RouteIndex;

/// Host names up to this many bytes are lower-cased on the stack. DNS names are at most 253
/// bytes; with ":port" an authority fits in 260. Longer authorities are lower-cased into a
/// heap buffer (they can only match an equally odd exact domain or a wildcard).
const STACK_HOST_BYTES: usize = 272;

/// Virtual hosts and their domain index, immutable once built.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Per virtual host, an index over its routes when it has many.
    indexes: Vec<Option<RouteIndex>>,
    virtual_hosts: Vec<VirtualHost>,
    headers: ConfigHeaders,
    exact: HashMap<Box<[u8]>, usize>,
    suffixes: Wildcards,
    prefixes: Wildcards,
    any: Option<usize>,
}

/// Wildcard domains of one kind: fixed part -> virtual host index, plus the distinct lengths
/// of the fixed parts, longest first.
#[derive(Clone, Debug, Default)]
struct Wildcards {
    by_fixed_part: HashMap<Box<[u8]>, usize>,
    lengths: Vec<usize>,
}

impl Wildcards {
    fn insert(&mut self, fixed: &str, vhost: usize) {
        self.by_fixed_part
            .entry(fixed.as_bytes().into())
            .or_insert(vhost);
        if let Err(at) = self.lengths.binary_search_by(|l| fixed.len().cmp(l)) {
            self.lengths.insert(at, fixed.len());
        }
    }

    /// Longest match; `part` gives the slice of `host` to probe for a given fixed length.
    fn find(&self, host: &[u8], part: impl Fn(&[u8], usize) -> &[u8]) -> Option<usize> {
        self.lengths
            .iter()
            // A wildcard stands for at least one character.
            .filter(|&&len| len < host.len())
            .find_map(|&len| self.by_fixed_part.get(part(host, len)).copied())
    }
}

impl RouteTable {
    /// Indexes `virtual_hosts`. When two virtual hosts list the same domain the first one
    /// keeps it (spar-config rejects such configs, as Envoy does).
    pub fn new(virtual_hosts: Vec<VirtualHost>, headers: ConfigHeaders) -> Self {
        let mut table = Self {
            headers,
            ..Self::default()
        };
        for (i, vh) in virtual_hosts.iter().enumerate() {
            for domain in &vh.domains {
                match domain {
                    DomainMatch::Exact(d) => {
                        table.exact.entry(d.as_bytes().into()).or_insert(i);
                    }
                    DomainMatch::Suffix(s) => table.suffixes.insert(s, i),
                    DomainMatch::Prefix(p) => table.prefixes.insert(p, i),
                    DomainMatch::Any => {
                        table.any.get_or_insert(i);
                    }
                }
            }
        }
        table.indexes = virtual_hosts
            .iter()
            .map(|vh| {
                (vh.routes.len() >= index::MIN_ROUTES)
                    .then(|| RouteIndex::new(&vh.routes))
                    .flatten()
            })
            .collect();
        table.virtual_hosts = virtual_hosts;
        table
    }

    /// The virtual hosts, in config order.
    pub fn virtual_hosts(&self) -> &[VirtualHost] {
        &self.virtual_hosts
    }

    /// Header mutations of the route configuration (applied after all other levels).
    pub fn headers(&self) -> &ConfigHeaders {
        &self.headers
    }

    /// The route for a request: the virtual host chosen by its authority (may carry
    /// ":port", compared case-insensitively), then its first route that accepts the
    /// request. `None` means Envoy's "no route" (404).
    pub fn route(&self, req: &impl RequestView) -> Option<(&VirtualHost, &Route)> {
        let i = self.virtual_host_index(req.authority())?;
        let vh = &self.virtual_hosts[i];
        let route = match self.indexes.get(i).and_then(Option::as_ref) {
            Some(index) => index.first_match(&vh.routes, req)?,
            None => vh.routes.iter().find(|r| r.matches(req))?,
        };
        Some((vh, route))
    }

    /// The virtual host for `authority`, matched as sent, port included, as Envoy does
    /// without `strip_any_host_port` (a domain list names `host:port` forms to match
    /// them); then `*`.
    pub fn find_virtual_host(&self, authority: &[u8]) -> Option<&VirtualHost> {
        self.virtual_hosts.get(self.virtual_host_index(authority)?)
    }

    fn virtual_host_index(&self, authority: &[u8]) -> Option<usize> {
        let mut stack = [0u8; STACK_HOST_BYTES];
        let heap;
        let host: &[u8] = match stack.get_mut(..authority.len()) {
            Some(buf) => {
                buf.copy_from_slice(authority);
                buf.make_ascii_lowercase();
                buf
            }
            None => {
                heap = authority.to_ascii_lowercase();
                &heap
            }
        };
        self.specific(host).or(self.any)
    }

    /// Exact, then longest suffix, then longest prefix; `host` is lower-case.
    fn specific(&self, host: &[u8]) -> Option<usize> {
        self.exact
            .get(host)
            .copied()
            .or_else(|| self.suffixes.find(host, |h, len| &h[h.len() - len..]))
            .or_else(|| self.prefixes.find(host, |h, len| &h[..len]))
    }
}

#[cfg(test)]
mod tests;
