//! Issuance policy: which identity a caller may have signed, for how long, and the reasons a
//! request is refused. Functions of data only: no I/O, no clock.

use std::time::Duration;

use crate::csr::{CheckedCsr, CsrError};
use crate::spiffe::{ServiceAccount, SpiffeId};
use crate::token::TokenError;

/// Workload certificates live 24 h unless asked otherwise (Istio's `DefaultWorkloadCertTTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest workload certificate (Istio's `MaxWorkloadCertTTL`, 90 days).
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// A self-signed root lives 10 years (Istio's `DefaultSelfSignedCACertTTL`).
pub const ROOT_TTL: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What the CA issues: for which trust domain and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub trust_domain: String,
    /// When the request asks for no lifetime (0 or less).
    pub default_ttl: Duration,
    /// Longer requests are cut to this.
    pub max_ttl: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            default_ttl: DEFAULT_TTL,
            max_ttl: MAX_TTL,
        }
    }
}

/// What a request that passed the policy gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub identity: SpiffeId,
    pub ttl: Duration,
}

impl Policy {
    /// The lifetime for a request's `validity_duration` (seconds): the default for 0 or
    /// less, the request itself up to `max_ttl`, `max_ttl` beyond it.
    pub fn validity(&self, requested_secs: i64) -> Duration {
        match u64::try_from(requested_secs) {
            Ok(0) | Err(_) => self.default_ttl.min(self.max_ttl),
            Ok(secs) => Duration::from_secs(secs).min(self.max_ttl),
        }
    }

    /// The identity a caller proven to be `account` may have: the account in this trust
    /// domain.
    pub fn identity_for(&self, account: &ServiceAccount) -> Result<SpiffeId, Refusal> {
        SpiffeId::for_account(&self.trust_domain, account)
            .map_err(|e| Refusal::new(Reason::Internal, format!("identity for {account}: {e}")))
    }

    /// The decision for a checked CSR from a caller proven to be `account`: it must ask for
    /// exactly the caller's identity.
    pub fn decide(
        &self,
        csr: &CheckedCsr,
        account: &ServiceAccount,
        requested_secs: i64,
    ) -> Result<Grant, Refusal> {
        let identity = self.identity_for(account)?;
        if csr.identity != identity {
            return Err(Refusal::new(
                Reason::IdentityMismatch,
                format!("CSR asks for {}, the token proves {identity}", csr.identity),
            ));
        }
        Ok(Grant {
            identity,
            ttl: self.validity(requested_secs),
        })
    }
}

/// Why a request got no certificate; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// No `authorization: Bearer` metadata.
    MissingToken,
    /// Malformed, forged, wrong issuer or subject, or rejected by the TokenReview.
    InvalidToken,
    ExpiredToken,
    /// Valid, but not for the `istio-ca` audience.
    WrongAudience,
    /// Not a PKCS#10 request, a bad self-signature, an unsupported key or extension.
    MalformedCsr,
    /// No SPIFFE URI, or names beside it (DNS, IP, a second URI).
    BadSan,
    /// basicConstraints CA:true asked for.
    CaRequested,
    /// A well-formed CSR for an identity other than the one the token proves.
    IdentityMismatch,
    /// The token could not be checked (the Kubernetes API server did not answer).
    AuthUnavailable,
    /// The CA failed to sign.
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::MissingToken,
        Reason::InvalidToken,
        Reason::ExpiredToken,
        Reason::WrongAudience,
        Reason::MalformedCsr,
        Reason::BadSan,
        Reason::CaRequested,
        Reason::IdentityMismatch,
        Reason::AuthUnavailable,
        Reason::Internal,
    ];

    /// The counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::InvalidToken => "invalid_token",
            Reason::ExpiredToken => "expired_token",
            Reason::WrongAudience => "wrong_audience",
            Reason::MalformedCsr => "malformed_csr",
            Reason::BadSan => "bad_san",
            Reason::CaRequested => "ca_requested",
            Reason::IdentityMismatch => "identity_mismatch",
            Reason::AuthUnavailable => "auth_unavailable",
            Reason::Internal => "internal",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A refused request: the reason (for the counter and the gRPC status) and a message for
/// the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

impl From<CsrError> for Refusal {
    fn from(e: CsrError) -> Refusal {
        let reason = match e {
            CsrError::NoSan | CsrError::ExtraSan(_) | CsrError::NotSpiffe { .. } => Reason::BadSan,
            CsrError::CaRequested => Reason::CaRequested,
            CsrError::TooLarge
            | CsrError::Pem
            | CsrError::Malformed(_)
            | CsrError::BadSignature
            | CsrError::UnsupportedKey(_)
            | CsrError::UnknownCritical(_) => Reason::MalformedCsr,
        };
        Refusal::new(reason, e.to_string())
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Refusal {
        let reason = match e {
            TokenError::Expired => Reason::ExpiredToken,
            TokenError::WrongAudience => Reason::WrongAudience,
            TokenError::Key(_) => Reason::Internal,
            TokenError::Malformed(_)
            | TokenError::NotOurs
            | TokenError::BadSignature
            | TokenError::NotYetValid
            | TokenError::WrongIssuer
            | TokenError::BadSubject(_) => Reason::InvalidToken,
        };
        Refusal::new(reason, e.to_string())
    }
}

/// Parses a duration such as `90s`, `30m`, `24h`, `7d` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (s, m, h, d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit {unit:?} is not s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: too long"))
}

#[cfg(test)]
mod tests;
