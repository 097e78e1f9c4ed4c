//! Envoy's virtual host domain syntax: `example.com` (exact), `*.example.com` or
//! `*-bar.baz` (suffix), `foo.*` (prefix) and `*` (any). Only one wildcard, only at the start
//! or the end; matching is case-insensitive, so domains are stored lower-cased.

use std::fmt;

/// A parsed virtual host domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainMatch {
    /// The whole host equals this (lower-cased).
    Exact(String),
    /// `*<suffix>`: the host ends with this and has at least one character before it.
    Suffix(String),
    /// `<prefix>*`: the host starts with this and has at least one character after it.
    Prefix(String),
    /// `*`: any host.
    Any,
}

/// Why a domain string is not valid Envoy syntax.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The domain is empty.
    #[error("domain must not be empty")]
    Empty,
    /// More than one `*`, or a `*` in the middle.
    #[error(
        "a domain may hold one wildcard, only at its start (\"*.example.com\") or end (\"example.*\"), or be \"*\""
    )]
    Wildcard,
    /// Whitespace or a control character, which no Host header can carry.
    #[error("domain holds whitespace or a control character")]
    Character,
}

impl DomainMatch {
    /// Parses Envoy's domain syntax; the result is lower-cased.
    pub fn parse(domain: &str) -> Result<Self, DomainError> {
        if domain.is_empty() {
            return Err(DomainError::Empty);
        }
        if domain.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(DomainError::Character);
        }
        if domain == "*" {
            return Ok(Self::Any);
        }
        let lower = domain.to_ascii_lowercase();
        match domain.matches('*').count() {
            0 => Ok(Self::Exact(lower)),
            1 if lower.starts_with('*') => Ok(Self::Suffix(lower[1..].to_owned())),
            1 if lower.ends_with('*') => Ok(Self::Prefix(lower[..lower.len() - 1].to_owned())),
            _ => Err(DomainError::Wildcard),
        }
    }

    /// Whether `host` (already lower-cased) matches.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            Self::Exact(d) => host == d.as_bytes(),
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_bytes()),
            Self::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_bytes()),
            Self::Any => true,
        }
    }
}

impl fmt::Display for DomainMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(d) => f.write_str(d),
            Self::Suffix(s) => write!(f, "*{s}"),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Any => f.write_str("*"),
        }
    }
}
