//! Route matching as Envoy's `RouteMatch`: a path matcher, `case_sensitive`, header matchers
//! and query parameter matchers; every one must accept the request.

use std::borrow::Cow;

use crate::{RequestView, Route, SafeRegex};

/// Envoy `RouteMatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// How the path must look.
    pub path: PathMatch,
    /// Whether prefix, exact and separated-prefix comparisons are case-sensitive (Envoy
    /// default true; regexes are unaffected, as in Envoy).
    pub case_sensitive: bool,
    /// Every one must match.
    pub headers: Vec<HeaderMatcher>,
    /// Every one must match.
    pub query: Vec<QueryMatcher>,
}

/// How a route matches the request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// `prefix`: the `:path` (query included, as Envoy compares it) starts with this.
    Prefix(String),
    /// `path`: the path without its query equals this.
    Exact(String),
    /// `path_separated_prefix`: the path without its query equals this or continues with
    /// `/` after it.
    PathSeparatedPrefix(String),
    /// `safe_regex`: the whole path without its query matches.
    Regex(SafeRegex),
    /// `connect_matcher`: CONNECT requests, and only them (a CONNECT request matches no
    /// other path matcher, as in Envoy).
    Connect,
}

/// Envoy `type.matcher.v3.StringMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringMatcher {
    /// The comparison.
    pub kind: StringMatch,
    /// ASCII case-insensitive comparison (no effect on regexes, as in Envoy).
    pub ignore_case: bool,
}

/// The comparison of a [`StringMatcher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Contains.
    Contains(String),
    /// The whole value matches.
    Regex(SafeRegex),
}

/// Envoy `HeaderMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatcher {
    /// Lower-case header name, or a pseudo-header (`:method`, `:authority`, `:path`,
    /// `:scheme`).
    pub name: String,
    /// The test.
    pub rule: HeaderRule,
    /// Negate the result (an absent header then matches, except for `Present(false)`).
    pub invert: bool,
    /// Treat an absent header as present and empty.
    pub treat_missing_as_empty: bool,
}

/// The test of a [`HeaderMatcher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderRule {
    /// `present_match`: true matches a present header, false an absent one.
    Present(bool),
    /// `string_match` (and the deprecated `exact_match`, `prefix_match`, ...).
    Value(StringMatcher),
    /// `range_match`: the value is an integer in `[start, end)`.
    Range {
        /// Inclusive.
        start: i64,
        /// Exclusive.
        end: i64,
    },
}

/// Envoy `QueryParameterMatcher`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryMatcher {
    /// Parameter name, compared exactly.
    pub name: String,
    /// The test.
    pub rule: QueryRule,
}

/// The test of a [`QueryMatcher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryRule {
    /// The parameter is present.
    Present,
    /// The parameter's first value (not percent-decoded, as Envoy) matches.
    Value(StringMatcher),
}

impl Route {
    /// Whether this route accepts `req`.
    pub fn matches(&self, req: &impl RequestView) -> bool {
        self.r#match.matches(req)
    }
}

impl RouteMatch {
    /// Whether `req` passes the path, header and query parameter tests.
    pub fn matches(&self, req: &impl RequestView) -> bool {
        let connect = req.method() == b"CONNECT";
        if connect != (self.path == PathMatch::Connect) {
            return false;
        }
        (connect || self.path_matches(req.path()))
            && self.headers.iter().all(|h| h.matches(req))
            && (self.query.is_empty() || {
                let query = split_path(req.path()).1;
                self.query.iter().all(|q| q.matches(query))
            })
    }

    /// Whether `target` (path with query) passes the path test.
    pub fn path_matches(&self, target: &[u8]) -> bool {
        let target = strip_fragment(target);
        let eq = |a: &[u8], b: &[u8]| {
            if self.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        match &self.path {
            PathMatch::Prefix(p) => target
                .get(..p.len())
                .is_some_and(|head| eq(head, p.as_bytes())),
            PathMatch::Exact(p) => eq(split_path(target).0, p.as_bytes()),
            PathMatch::PathSeparatedPrefix(p) => {
                let path = split_path(target).0;
                path.get(..p.len())
                    .is_some_and(|head| eq(head, p.as_bytes()))
                    && matches!(path.get(p.len()), None | Some(b'/'))
            }
            PathMatch::Regex(re) => re.is_full_match(split_path(target).0),
            PathMatch::Connect => false,
        }
    }
}

impl StringMatcher {
    /// Whether `v` passes.
    pub fn matches(&self, v: &[u8]) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match &self.kind {
            StringMatch::Exact(s) => eq(v, s.as_bytes()),
            StringMatch::Prefix(s) => v.get(..s.len()).is_some_and(|h| eq(h, s.as_bytes())),
            StringMatch::Suffix(s) => v
                .len()
                .checked_sub(s.len())
                .is_some_and(|at| eq(&v[at..], s.as_bytes())),
            StringMatch::Contains(s) => {
                let s = s.as_bytes();
                s.is_empty() || v.windows(s.len()).any(|w| eq(w, s))
            }
            StringMatch::Regex(re) => re.is_full_match(v),
        }
    }
}

impl HeaderMatcher {
    /// Envoy's header matching: a repeated header matches when any one of its values does,
    /// and `invert` negates that. An absent header fails every test except `Present(false)`
    /// (unless `treat_missing_as_empty`), inverted or not.
    pub fn matches(&self, req: &impl RequestView) -> bool {
        let mut test = |value: &[u8]| match &self.rule {
            HeaderRule::Present(present) => *present,
            HeaderRule::Value(m) => m.matches(value),
            HeaderRule::Range { start, end } => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|n| *start <= n && n < *end),
        };
        let found = if self.name.starts_with(':') {
            header(req, &self.name).map(|v| test(&v))
        } else {
            req.any_header_value(&self.name, &mut test)
        };
        match found {
            Some(hit) => hit != self.invert,
            None if self.treat_missing_as_empty => test(b"") != self.invert,
            None => match self.rule {
                HeaderRule::Present(present) => present == self.invert,
                _ => false,
            },
        }
    }
}

impl QueryMatcher {
    /// Whether the query string (without `?`) passes.
    pub fn matches(&self, query: &[u8]) -> bool {
        match query_param(query, self.name.as_bytes()) {
            None => false,
            Some(v) => match &self.rule {
                QueryRule::Present => true,
                QueryRule::Value(m) => m.matches(v),
            },
        }
    }
}

/// The first value of query parameter `name` (`a` alone has the value ""), not decoded.
pub(crate) fn query_param<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (k == name).then_some(v)
    })
}

/// A request header by lower-case name, pseudo-headers from the request line.
pub(crate) fn header<'r>(req: &'r impl RequestView, name: &str) -> Option<Cow<'r, [u8]>> {
    match name {
        ":method" => Some(Cow::Borrowed(req.method())),
        ":authority" => Some(Cow::Borrowed(req.authority())),
        ":path" => Some(Cow::Borrowed(req.path())),
        ":scheme" => Some(Cow::Borrowed(req.scheme())),
        _ => req.header(name),
    }
}

/// Drops a `#fragment` (clients should not send one; Envoy strips it).
pub(crate) fn strip_fragment(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    }
}

/// `(path, query)`: the query without its `?`, empty when there is none; fragment dropped.
pub(crate) fn split_path(target: &[u8]) -> (&[u8], &[u8]) {
    let target = strip_fragment(target);
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    }
}

#[cfg(test)]
mod tests;
