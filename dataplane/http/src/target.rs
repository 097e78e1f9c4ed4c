//! Request-target forms (RFC 9112 3.2): which one a target is, whether the method allows
//! it, and the origin-form part the proxy forwards.

use std::ops::Range;

use crate::fields::is_valid_authority;

/// The form of a valid request-target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// `/path?query`
    Origin,
    /// `http://authority/path?query` (or https); `authority` indexes the target.
    Absolute { authority: Range<usize> },
    /// `host:port`, CONNECT only.
    Authority,
    /// `*`, OPTIONS only.
    Asterisk,
}

/// The form of `target` sent with `method`, or None when the target is malformed or its
/// form is not allowed for the method. httparse has already limited the target to visible
/// ASCII and UTF-8. On top we refuse: fragments (never sent by conforming clients; Envoy
/// refuses them too), userinfo, schemes other than http and https, an empty authority, a
/// query right after the authority (`http://h?q`, which has no origin-form without a copy),
/// `*` with any method but OPTIONS, authority-form with any method but CONNECT, and CONNECT
/// with any other form or without a port.
pub(crate) fn classify(method: &[u8], target: &[u8]) -> Option<Form> {
    if memchr::memchr(b'#', target).is_some() {
        return None;
    }
    if method == b"CONNECT" {
        return is_authority_form(target).then_some(Form::Authority);
    }
    match target.first()? {
        b'/' => Some(Form::Origin),
        b'*' => (target == b"*" && method == b"OPTIONS").then_some(Form::Asterisk),
        _ => absolute(target),
    }
}

fn absolute(target: &[u8]) -> Option<Form> {
    let start = scheme_len(target)?;
    let rest = target.get(start..)?;
    let len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.get(..len)?;
    if authority.is_empty() || rest.get(len) == Some(&b'?') || !is_valid_authority(authority) {
        return None;
    }
    Some(Form::Absolute {
        authority: start..start + len,
    })
}

/// `host:port` with a non-empty host and a decimal port.
fn is_authority_form(target: &[u8]) -> bool {
    let Some(colon) = memchr::memrchr(b':', target) else {
        return false;
    };
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    !host.is_empty()
        && !port.is_empty()
        && port.iter().all(u8::is_ascii_digit)
        && is_valid_authority(host)
}

/// Length of an `http://` or `https://` prefix (case-insensitive), if any.
fn scheme_len(target: &[u8]) -> Option<usize> {
    let has = |scheme: &[u8]| {
        target
            .get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    };
    if has(b"http://") {
        Some(7)
    } else if has(b"https://") {
        Some(8)
    } else {
        None
    }
}

/// What goes on the request line when forwarding `target`: origin-form and asterisk-form
/// as they are; absolute-form reduced to its path and query, with an empty path sent as
/// `/`, or `*` for OPTIONS (RFC 9112 3.2.1, 3.2.4); authority-form (CONNECT) as it is.
pub(crate) fn path_and_query(is_connect: bool, is_options: bool, target: &[u8]) -> &[u8] {
    match target.first() {
        Some(b'/' | b'*') | None => target,
        Some(_) if is_connect => target,
        Some(_) => {
            let Some(rest) = scheme_len(target).and_then(|start| target.get(start..)) else {
                return target;
            };
            match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(at) if rest.get(at) == Some(&b'/') => rest.get(at..).unwrap_or(b"/"),
                _ if is_options => b"*",
                _ => b"/",
            }
        }
    }
}

/// `path_and_query` without the query.
pub(crate) fn path(path_and_query: &[u8]) -> &[u8] {
    match memchr::memchr(b'?', path_and_query) {
        Some(query) => &path_and_query[..query],
        None => path_and_query,
    }
}
