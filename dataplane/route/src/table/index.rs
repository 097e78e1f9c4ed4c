//! An order-preserving index over a virtual host's routes, so a host with a thousand routes
//! does not test a thousand path matchers per request.
//!
//! Most routes require the path to start with a literal: a prefix match its prefix, an exact
//! or path-separated-prefix match its path. A request can only match such a route when that
//! literal is a prefix of the request's path. The distinct literals are kept sorted, each
//! with a link to the longest other literal that is a prefix of it; a lookup binary-searches
//! the path's predecessor among them and follows the links up to the longest literal that
//! really is a prefix of the path (every literal between is skipped in one step: see
//! [`RouteIndex::deepest_prefix`]). Each literal carries the list, in route order, of every
//! route that can match a path it prefixes: its own, its ancestors', and the routes without
//! a literal (regexes, case-insensitive matches), so a lookup scans one short list and the
//! first route in it that accepts the request is the one a linear scan finds (tested against
//! one on random tables in `tests.rs`).

use crate::matcher::strip_fragment;
use crate::{PathMatch, RequestView, Route, RouteMatch};

/// Virtual hosts with fewer routes are scanned: the index would cost more than it saves.
pub(crate) const MIN_ROUTES: usize = 16;

/// Above this many candidate entries in total (deeply nested literals), no index is built
/// and the virtual host is scanned: memory stays linear in the routes.
const MAX_ENTRIES_PER_ROUTE: usize = 64;

#[derive(Clone, Debug, Default)]
pub(crate) struct RouteIndex {
    /// Distinct literals, sorted.
    literals: Vec<Box<[u8]>>,
    /// For each literal, the index of the longest other literal that prefixes it.
    parent: Vec<Option<u32>>,
    /// For each literal, the routes that may match a path it prefixes, in route order.
    candidates: Vec<Box<[u32]>>,
    /// Routes that may match a path no literal prefixes: those without a literal.
    generic: Box<[u32]>,
}

impl RouteIndex {
    /// None when the routes nest too deeply for the index to pay.
    pub(crate) fn new(routes: &[Route]) -> Option<RouteIndex> {
        let mut keyed: Vec<(&[u8], u32)> = Vec::new();
        let mut generic = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let i = u32::try_from(i).ok()?;
            match literal(&r.r#match) {
                Some(lit) => keyed.push((lit, i)),
                None => generic.push(i),
            }
        }
        keyed.sort_unstable();
        let mut literals: Vec<Box<[u8]>> = Vec::new();
        let mut own: Vec<Vec<u32>> = Vec::new();
        for (lit, i) in keyed {
            if literals.last().is_some_and(|l| **l == *lit) {
                if let Some(list) = own.last_mut() {
                    list.push(i);
                }
            } else {
                literals.push(lit.into());
                own.push(vec![i]);
            }
        }
        // Sorted order puts every prefix before its extensions: a stack of the literals
        // that prefix the current one gives each its parent.
        let mut parent = Vec::with_capacity(literals.len());
        let mut stack: Vec<usize> = Vec::new();
        for (i, lit) in literals.iter().enumerate() {
            while let Some(&top) = stack.last() {
                if lit.starts_with(&literals[top]) {
                    break;
                }
                stack.pop();
            }
            parent.push(stack.last().and_then(|&p| u32::try_from(p).ok()));
            stack.push(i);
        }
        let budget = routes.len().saturating_mul(MAX_ENTRIES_PER_ROUTE);
        let mut total = 0usize;
        let mut candidates = Vec::with_capacity(literals.len());
        for i in 0..literals.len() {
            let mut list = generic.clone();
            let mut at = Some(i);
            while let Some(n) = at {
                list.extend_from_slice(&own[n]);
                at = parent[n].map(|p| p as usize);
            }
            list.sort_unstable();
            total += list.len();
            if total > budget {
                return None;
            }
            candidates.push(list.into_boxed_slice());
        }
        Some(RouteIndex {
            literals,
            parent,
            candidates,
            generic: generic.into_boxed_slice(),
        })
    }

    /// The first route, in config order, that accepts `req`.
    pub(crate) fn first_match<'r>(
        &self,
        routes: &'r [Route],
        req: &impl RequestView,
    ) -> Option<&'r Route> {
        let path = strip_fragment(req.path());
        let list = match self.deepest_prefix(path) {
            Some(i) => &self.candidates[i],
            None => &self.generic,
        };
        list.iter()
            .filter_map(|&i| routes.get(i as usize))
            .find(|r| r.matches(req))
    }

    /// The longest literal that is a prefix of `path`. If the greatest literal not above
    /// `path` is not itself a prefix of it, they first differ at byte `c`; every literal
    /// prefixing `path` is then at most `c` long (a longer one would sit between that
    /// literal and `path`), so it prefixes that literal too and is one of its ancestors.
    fn deepest_prefix(&self, path: &[u8]) -> Option<usize> {
        let at = match self.literals.binary_search_by(|l| (**l).cmp(path)) {
            Ok(i) => return Some(i),
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let lit = &self.literals[at];
        let common = lit.iter().zip(path).take_while(|(a, b)| a == b).count();
        let mut node = Some(at);
        while let Some(n) = node {
            if self.literals[n].len() <= common {
                return Some(n);
            }
            node = self.parent[n].map(|p| p as usize);
        }
        None
    }
}

/// The literal a route's path must start with, when its matcher has one.
fn literal(m: &RouteMatch) -> Option<&[u8]> {
    if !m.case_sensitive {
        return None;
    }
    match &m.path {
        PathMatch::Prefix(p) | PathMatch::Exact(p) | PathMatch::PathSeparatedPrefix(p) => {
            Some(p.as_bytes())
        }
        PathMatch::Regex(_) | PathMatch::Connect => None,
    }
}

#[cfg(test)]
mod tests;
