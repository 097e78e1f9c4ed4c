//! What a matched route does to the request: weighted cluster choice, path and authority
//! rewrites, and the `Location` of a redirect, each as Envoy computes it.

use crate::matcher::{header, split_path, strip_fragment};
use crate::{
    Action, HostRewrite, PathMatch, Redirect, RedirectPath, RegexRewrite, RequestView, Route,
    RouteMatch, WeightedCluster, WeightedClusters,
};

impl WeightedClusters {
    /// The cluster for `random`: `random % total` over the cumulative weights, so each
    /// cluster gets `weight / total` of the requests and weight 0 is never picked.
    ///
    /// # Panics
    /// If `clusters` is empty (spar-config never builds that).
    pub fn pick(&self, random: u64) -> &WeightedCluster {
        if self.total > 0 {
            let mut point = random % self.total;
            for c in &self.clusters {
                let w = u64::from(c.weight);
                if point < w {
                    return c;
                }
                point -= w;
            }
        }
        // Only reached when `total` disagrees with the weights: take the last weighted one.
        let fallback = self.clusters.iter().rev().find(|c| c.weight > 0);
        match fallback {
            Some(c) => c,
            None => &self.clusters[0],
        }
    }
}

impl Route {
    /// The new request-target (path and the original query) after `prefix_rewrite` or
    /// `regex_rewrite`; `None` when unchanged. A prefix rewrite replaces the matched prefix
    /// (prefix and separated-prefix matches) or the whole path (exact and regex matches).
    /// A regex rewrite replaces every match in the path (not the query).
    pub fn rewritten_path(&self, req: &impl RequestView) -> Option<Vec<u8>> {
        let Action::Forward(a) = &self.action else {
            return None;
        };
        let target = strip_fragment(req.path());
        let new = if let Some(prefix) = &a.prefix_rewrite {
            prefix_rewrite(&self.r#match, target, prefix)
        } else if let Some(rr) = &a.regex_rewrite {
            regex_rewrite(rr, target)
        } else {
            None
        }?;
        (new != target).then_some(new)
    }

    /// The new authority after `host_rewrite_literal` of the picked weighted cluster, else
    /// the route's host rewrite; `None` when unchanged. A header rewrite uses the header's
    /// value when it is present and not empty; a path regex rewrite applies to the path
    /// without its query and leaves the authority alone when the regex does not match.
    pub fn rewritten_authority(
        &self,
        req: &impl RequestView,
        picked: Option<&WeightedCluster>,
    ) -> Option<Vec<u8>> {
        if let Some(host) = picked.and_then(|c| c.host_rewrite.as_ref()) {
            return Some(host.as_bytes().to_vec());
        }
        let Action::Forward(a) = &self.action else {
            return None;
        };
        match a.host_rewrite.as_ref()? {
            HostRewrite::Literal(host) => Some(host.as_bytes().to_vec()),
            HostRewrite::Header(name) => header(req, name)
                .filter(|v| !v.is_empty())
                .map(|v| v.into_owned()),
            HostRewrite::PathRegex(rr) => rr.apply(split_path(req.path()).0),
        }
    }
}

/// `target` with the part `m` matched replaced by `prefix`; `None` when `m` did not match.
fn prefix_rewrite(m: &RouteMatch, target: &[u8], prefix: &str) -> Option<Vec<u8>> {
    let path_len = split_path(target).0.len();
    let replaced = match &m.path {
        PathMatch::Prefix(p) | PathMatch::PathSeparatedPrefix(p) => p.len(),
        PathMatch::Exact(_) | PathMatch::Regex(_) | PathMatch::Connect => path_len,
    };
    let rest = target.get(replaced..)?;
    let mut out = Vec::with_capacity(prefix.len() + rest.len());
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(rest);
    Some(out)
}

/// `target` with `rr` applied to its path; `None` when the regex did not match.
fn regex_rewrite(rr: &RegexRewrite, target: &[u8]) -> Option<Vec<u8>> {
    let path = split_path(target).0;
    let mut out = rr.apply(path)?;
    out.extend_from_slice(&target[path.len()..]);
    Some(out)
}

impl Redirect {
    /// The `Location` header value, as Envoy builds it:
    /// `scheme://host[:port]path`.
    ///
    /// - scheme: `scheme` (from `scheme_redirect` or `https_redirect`), else the request's.
    /// - host: `host` (without any port when `port` is also set), else the request's
    ///   authority, whose port is dropped when `port` is set, or when the scheme changes and
    ///   the port was the old scheme's default (`:80` for http, `:443` for https). A
    ///   non-default port is kept across a scheme change, as Envoy does.
    /// - port: `:port` when set (written even when it is the scheme's default, as Envoy).
    /// - path: `path_redirect` (its own query, if it has one, replaces the request's and is
    ///   never stripped), or the request path after `prefix_rewrite` / `regex_rewrite`
    ///   (matched against `m`), or the request path; `strip_query` drops the query.
    pub fn location(&self, req: &impl RequestView, m: &RouteMatch) -> Vec<u8> {
        let scheme: &[u8] = match &self.scheme {
            Some(s) => s.as_bytes(),
            None => req.scheme(),
        };
        let target = strip_fragment(req.path());
        let (_, query) = split_path(target);
        let has_query = target.contains(&b'?');
        let mut out = Vec::with_capacity(scheme.len() + req.authority().len() + target.len() + 16);
        out.extend_from_slice(scheme);
        out.extend_from_slice(b"://");
        match &self.host {
            Some(h) if self.port.is_some() => {
                out.extend_from_slice(host_without_port(h.as_bytes()))
            }
            Some(h) => out.extend_from_slice(h.as_bytes()),
            None => out.extend_from_slice(request_host(req, scheme, self.port.is_some())),
        }
        if let Some(port) = self.port {
            out.push(b':');
            out.extend_from_slice(port.to_string().as_bytes());
        }
        let path: Vec<u8> = match &self.path {
            RedirectPath::Path(p) if p.contains('?') => {
                out.extend_from_slice(p.as_bytes());
                return out;
            }
            RedirectPath::Path(p) => {
                let mut v = p.as_bytes().to_vec();
                if has_query {
                    v.push(b'?');
                    v.extend_from_slice(query);
                }
                v
            }
            RedirectPath::Keep => target.to_vec(),
            RedirectPath::Prefix(prefix) => {
                prefix_rewrite(m, target, prefix).unwrap_or_else(|| target.to_vec())
            }
            RedirectPath::Regex(rr) => regex_rewrite(rr, target).unwrap_or_else(|| target.to_vec()),
        };
        let path = if self.strip_query {
            split_path(&path).0
        } else {
            &path[..]
        };
        out.extend_from_slice(path);
        out
    }
}

/// The request's authority for a redirect to `new_scheme`: without its port when a new
/// port is set, or when the scheme changes and the port is the old scheme's default.
fn request_host<'r>(req: &'r impl RequestView, new_scheme: &[u8], new_port: bool) -> &'r [u8] {
    let authority = req.authority();
    let host = host_without_port(authority);
    if host.len() == authority.len() {
        return authority;
    }
    let port = &authority[host.len()..];
    let old = req.scheme();
    let default_port = (old.eq_ignore_ascii_case(b"https") && port == b":443")
        || (old.eq_ignore_ascii_case(b"http") && port == b":80");
    if new_port || (!new_scheme.eq_ignore_ascii_case(old) && default_port) {
        host
    } else {
        authority
    }
}

/// `authority` without a trailing `:port` (IPv6 literals keep their brackets).
fn host_without_port(authority: &[u8]) -> &[u8] {
    let colon = if authority.first() == Some(&b'[') {
        // "[::1]:80": the port follows the closing bracket.
        authority
            .windows(2)
            .rposition(|w| w == b"]:")
            .map(|i| i + 1)
    } else {
        authority.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(i) => &authority[..i],
        None => authority,
    }
}

#[cfg(test)]
mod tests;
