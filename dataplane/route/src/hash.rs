//! Envoy's route `hash_policy`: the key a consistent-hash load balancer (ring hash, Maglev)
//! uses for a request. Policies are evaluated in order; each one that yields a hash is
//! combined into the running value (rotate left by one, then xor, so equal policies do not
//! cancel out); a `terminal` policy that produced a hash ends the evaluation.

use std::net::IpAddr;
use std::time::Duration;

use xxhash_rust::xxh64::xxh64;

use crate::RequestView;
use crate::matcher::{header, query_param, split_path};

/// One hash policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashPolicy {
    /// The value of a request header (several fields: their `,`-joined value).
    Header {
        /// Lower-case name (pseudo-headers allowed).
        name: String,
    },
    /// The value of a cookie; when absent and `ttl` is set, a cookie is generated and set
    /// on the response.
    Cookie {
        /// Cookie name.
        name: String,
        /// Lifetime of a generated cookie; `Some(0)` makes a session cookie; `None`: never
        /// generate.
        ttl: Option<Duration>,
        /// `Path` of a generated cookie.
        path: Option<String>,
    },
    /// The client's IP address.
    SourceIp,
    /// The first value of a query parameter.
    Query {
        /// Parameter name.
        name: String,
    },
}

/// A [`HashPolicy`] with Envoy's `terminal` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashPolicyEntry {
    /// The policy.
    pub policy: HashPolicy,
    /// Stop after this policy when a hash has been produced so far.
    pub terminal: bool,
}

/// The result of [`request_hash`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashOutcome {
    /// The hash; `None` when no policy produced one (the balancer then picks at random).
    pub hash: Option<u64>,
    /// A full `Set-Cookie` value to add to the response (a generated cookie).
    pub set_cookie: Option<Vec<u8>>,
}

/// Evaluates `policies` for `req` from client `source`; `random` seeds generated cookies.
pub fn request_hash(
    policies: &[HashPolicyEntry],
    req: &impl RequestView,
    source: IpAddr,
    random: u64,
) -> HashOutcome {
    let mut out = HashOutcome::default();
    for entry in policies {
        let new = match &entry.policy {
            HashPolicy::Header { name } => header(req, name).map(|v| xxh64(&v, 0)),
            HashPolicy::Cookie { name, ttl, path } => match cookie(req, name) {
                Some(v) => Some(xxh64(&v, 0)),
                None => ttl.map(|ttl| {
                    let value = generated_cookie_value(source, random);
                    out.set_cookie = Some(set_cookie(name, &value, ttl, path.as_deref()));
                    xxh64(value.as_bytes(), 0)
                }),
            },
            HashPolicy::SourceIp => Some(xxh64(source.to_string().as_bytes(), 0)),
            HashPolicy::Query { name } => {
                query_param(split_path(req.path()).1, name.as_bytes()).map(|v| xxh64(v, 0))
            }
        };
        if let Some(new) = new {
            out.hash = Some(out.hash.map_or(0, |h| h.rotate_left(1)) ^ new);
        }
        if entry.terminal && out.hash.is_some() {
            break;
        }
    }
    out
}

/// The value of cookie `name` in the `Cookie` header(s), without surrounding quotes.
fn cookie(req: &impl RequestView, name: &str) -> Option<Vec<u8>> {
    let all = header(req, "cookie")?;
    all.split(|&b| b == b';' || b == b',').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] != name.as_bytes() {
            return None;
        }
        let v = pair[eq + 1..].trim_ascii();
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        Some(v.to_vec())
    })
}

/// 16 hex digits derived from the client address and `random`: the same client gets
/// spread over hosts across cookie generations, and a generated value never repeats the
/// address itself.
fn generated_cookie_value(source: IpAddr, random: u64) -> String {
    format!("{:016x}", xxh64(source.to_string().as_bytes(), random))
}

/// `name="value"; Max-Age=N; Path=p; HttpOnly`, as Envoy writes its generated cookies.
fn set_cookie(name: &str, value: &str, ttl: Duration, path: Option<&str>) -> Vec<u8> {
    let mut s = format!("{name}=\"{value}\"");
    if !ttl.is_zero() {
        s.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        s.push_str("; Path=");
        s.push_str(p);
    }
    s.push_str("; HttpOnly");
    s.into_bytes()
}

#[cfg(test)]
mod tests;
