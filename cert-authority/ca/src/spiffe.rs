//! SPIFFE identities in Istio's form, `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`,
//! and Kubernetes service accounts: parsing and printing, no I/O.
//!
//! The parser is strict, as ztunnel's is: exactly the four path segments `ns`, a namespace,
//! `sa`, an account; no trailing slash, no query, no fragment, no percent-encoding, no
//! upper-case trust domain, no `.` or `..` segment. A string it accepts prints back to
//! itself, so comparing identities is comparing strings.

use std::fmt;

/// The longest SPIFFE ID accepted (the SPIFFE spec's limit for a URI SAN).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// The longest trust domain (the SPIFFE spec: 255 bytes).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not an Istio SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("longer than {MAX_SPIFFE_ID_LEN} bytes")]
    TooLong,
    #[error("does not start with spiffe://")]
    Scheme,
    #[error("bad trust domain {0:?}: 1 to 255 of a-z 0-9 . - _")]
    TrustDomain(String),
    #[error("path is not /ns/<namespace>/sa/<service-account>")]
    Path,
    #[error("bad path segment {0:?}: 1 or more of A-Z a-z 0-9 . - _, not . or ..")]
    Segment(String),
}

/// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// Builds an identity from its parts, checking each as [`SpiffeId::parse`] would.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<SpiffeId, SpiffeError> {
        check_trust_domain(trust_domain)?;
        check_segment(namespace)?;
        check_segment(service_account)?;
        let id = SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        };
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        Ok(id)
    }

    /// The identity of `account` in `trust_domain`.
    pub fn for_account(
        trust_domain: &str,
        account: &ServiceAccount,
    ) -> Result<SpiffeId, SpiffeError> {
        SpiffeId::new(trust_domain, &account.namespace, &account.name)
    }

    /// Parses `spiffe://td/ns/NS/sa/SA`.
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeError> {
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeError::Scheme)?;
        let (trust_domain, path) = rest.split_once('/').ok_or(SpiffeError::Path)?;
        let mut segments = path.split('/');
        let (Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(SpiffeError::Path);
        };
        SpiffeId::new(trust_domain, ns, sa)
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The AuthorizationPolicy principal: the identity without `spiffe://`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    fn len(&self) -> usize {
        "spiffe:///ns//sa/".len()
            + self.trust_domain.len()
            + self.namespace.len()
            + self.service_account.len()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

fn check_trust_domain(td: &str) -> Result<(), SpiffeError> {
    let ok = !td.is_empty()
        && td.len() <= MAX_TRUST_DOMAIN_LEN
        && td
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(SpiffeError::TrustDomain(td.to_owned()))
    }
}

fn check_segment(segment: &str) -> Result<(), SpiffeError> {
    let ok = !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(SpiffeError::Segment(segment.to_owned()))
    }
}

/// Why a name is not a Kubernetes service account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error(
        "bad namespace {0:?}: a DNS-1123 label (1 to 63 of a-z 0-9 -, alphanumeric at both ends)"
    )]
    Namespace(String),
    #[error(
        "bad service account name {0:?}: a DNS-1123 subdomain (1 to 253 of a-z 0-9 - ., alphanumeric at both ends)"
    )]
    Name(String),
    #[error("username {0:?} is not system:serviceaccount:<namespace>:<name>")]
    Username(String),
}

/// A Kubernetes service account: what a bearer token proves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccount {
    namespace: String,
    name: String,
}

impl ServiceAccount {
    /// Checks Kubernetes' naming rules: the namespace is a DNS-1123 label, the name a
    /// DNS-1123 subdomain.
    pub fn new(namespace: &str, name: &str) -> Result<ServiceAccount, AccountError> {
        if !is_dns_label(namespace) {
            return Err(AccountError::Namespace(namespace.to_owned()));
        }
        let subdomain = name.len() <= 253 && name.split('.').all(is_dns_label);
        if !subdomain {
            return Err(AccountError::Name(name.to_owned()));
        }
        Ok(ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses the username Kubernetes gives a service account's tokens,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn from_username(username: &str) -> Result<ServiceAccount, AccountError> {
        let bad = || AccountError::Username(username.to_owned());
        let rest = username
            .strip_prefix("system:serviceaccount:")
            .ok_or_else(bad)?;
        let (namespace, name) = rest.split_once(':').ok_or_else(bad)?;
        ServiceAccount::new(namespace, name)
    }

    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests;
