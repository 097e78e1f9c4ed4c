//! Why a TLS config cannot be built, and what is worth a warning.

use std::fmt;

/// A TLS config that cannot be built. Each message names the file (or "inline PEM") and
/// what is wrong with it, for the config loader to put after the resource and field.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {source_name}: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("bad PEM in {source_name}: {reason}")]
    Pem { source_name: String, reason: String },
    #[error("no CERTIFICATE block in {source_name}")]
    NoCertificate { source_name: String },
    #[error("bad certificate in {source_name}: {reason}")]
    BadCertificate { source_name: String, reason: String },
    #[error(
        "no private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block) in {source_name}"
    )]
    NoPrivateKey { source_name: String },
    #[error("unusable private key in {source_name}: {reason}")]
    BadPrivateKey { source_name: String, reason: String },
    #[error("private key {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("a server TLS context needs at least one certificate (tls_certificates is empty)")]
    NoServerCertificate,
    #[error("cipher suite `{name}` {reason}")]
    CipherSuite { name: String, reason: &'static str },
    #[error("TLS versions {min} to {max}: {reason}")]
    Versions {
        min: TlsVersion,
        max: TlsVersion,
        reason: &'static str,
    },
    #[error("require_client_certificate needs a validation context with trusted_ca")]
    ClientCertWithoutCa,
    #[error("subject alt name matchers need a validation context with trusted_ca")]
    SanWithoutCa,
    #[error("`{name}` is not a valid SNI (a DNS name)")]
    BadSni { name: String },
    #[error("SDS secret `{name}`: {reason}")]
    Secret { name: String, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// Something in a TLS config that works but deserves a log line at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsWarning {
    /// A certificate's notAfter has passed: peers that check it will refuse it.
    Expired { source_name: String, not_after: i64 },
    /// A certificate's notBefore is still to come.
    NotYetValid {
        source_name: String,
        not_before: i64,
    },
    /// The minimum version asked for is below TLS 1.2, which spar-proxy does not speak.
    MinVersionRaised { asked: TlsVersion },
    /// An upstream context without trusted_ca: as in Envoy, the server certificate is not
    /// verified (handshake signatures still are).
    ServerNotVerified,
}

impl fmt::Display for TlsWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsWarning::Expired {
                source_name,
                not_after,
            } => write!(
                f,
                "certificate in {source_name} expired (notAfter {not_after} s since the epoch)"
            ),
            TlsWarning::NotYetValid {
                source_name,
                not_before,
            } => write!(
                f,
                "certificate in {source_name} is not valid yet (notBefore {not_before} s since the epoch)"
            ),
            TlsWarning::MinVersionRaised { asked } => {
                write!(
                    f,
                    "minimum TLS version {asked} raised to TLS 1.2 (1.0 and 1.1 are not supported)"
                )
            }
            TlsWarning::ServerNotVerified => f.write_str(
                "no trusted_ca: the upstream's certificate is not verified (Envoy's behaviour)",
            ),
        }
    }
}

/// A TLS protocol version, as Envoy's `tls_minimum_protocol_version` and
/// `tls_maximum_protocol_version` name them. Only 1.2 and 1.3 are ever negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls10 => "TLS 1.0",
            TlsVersion::Tls11 => "TLS 1.1",
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        })
    }
}
