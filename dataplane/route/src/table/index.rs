//! An order-preserving index over a virtual host's routes, so a host with a thousand routes
//! does not test a thousand path matchers per request.
//!
//! Most routes name a literal first path segment (`/reviews/`, exact `/api`, path-separated
//! prefix `/v1`): a request can only match them when its own first segment is the same. Those
//! routes are bucketed by that segment; every other route (prefixes that end inside the first
//! segment such as `/` or `/rev`, regexes, case-insensitive matches) stays in a `generic`
//! list that every request scans. A lookup hashes the request's first segment once and walks
//! its bucket and the generic list together in route order, so the first match is the same
//! route a linear scan finds (tested against one in `tests.rs`).

use std::collections::HashMap;

use crate::matcher::strip_fragment;
use crate::{PathMatch, RequestView, Route, RouteMatch};

/// Virtual hosts with fewer routes are scanned: the index would cost more than it saves.
pub(crate) const MIN_ROUTES: usize = 16;

#[derive(Clone, Debug, Default)]
pub(crate) struct RouteIndex {
    by_segment: HashMap<Box<[u8]>, Vec<u32>>,
    generic: Vec<u32>,
}

impl RouteIndex {
    pub(crate) fn new(routes: &[Route]) -> RouteIndex {
        let mut index = RouteIndex::default();
        for (i, r) in routes.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match literal_segment(&r.r#match) {
                Some(seg) => index.by_segment.entry(seg.into()).or_default().push(i),
                None => index.generic.push(i),
            }
        }
        index
    }

    /// The first route, in config order, that accepts `req`.
    pub(crate) fn first_match<'r>(
        &self,
        routes: &'r [Route],
        req: &impl RequestView,
    ) -> Option<&'r Route> {
        let bucket: &[u32] = request_segment(req.path())
            .and_then(|seg| self.by_segment.get(seg))
            .map_or(&[], Vec::as_slice);
        let (mut a, mut b) = (bucket.iter().peekable(), self.generic.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => return None,
            };
            let route = next.and_then(|&i| routes.get(i as usize))?;
            if route.matches(req) {
                return Some(route);
            }
        }
    }
}

/// The first path segment a route's path matcher requires, when it requires one whole.
fn literal_segment(m: &RouteMatch) -> Option<&[u8]> {
    if !m.case_sensitive {
        return None;
    }
    let (literal, ends_segment) = match &m.path {
        PathMatch::Prefix(p) => (p, false),
        // Both compare the path without its query, so their end ends the segment.
        PathMatch::Exact(p) | PathMatch::PathSeparatedPrefix(p) => (p, true),
        PathMatch::Regex(_) => return None,
    };
    let rest = literal.as_bytes().strip_prefix(b"/")?;
    match rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')) {
        Some(end) => Some(&rest[..end]),
        None if ends_segment => Some(rest),
        None => None,
    }
}

/// The request's first path segment: after the leading `/`, up to `/`, `?`, `#` or the end.
fn request_segment(target: &[u8]) -> Option<&[u8]> {
    let rest = strip_fragment(target).strip_prefix(b"/")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests;
