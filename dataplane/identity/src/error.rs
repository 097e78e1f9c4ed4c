//! Why a certificate could not be fetched, and the counted reason of each.

use serde::Serialize;

/// Why one fetch failed; [`FetchError::reason`] is the counted label.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("reading the token from {origin}: {reason}")]
    Token { origin: String, reason: String },
    #[error("reading the CA root from {origin}: {reason}")]
    CaRoot { origin: String, reason: String },
    #[error("generating the key or CSR: {0}")]
    Key(String),
    #[error("connecting to the CA at {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("the CA refused: {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("the CA's answer is unusable: {0}")]
    BadChain(String),
}

/// Counted reasons of fetch failures (label values for Prometheus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The config is wrong (an identity that is not a SPIFFE ID, a bad address).
    Config,
    /// The token file could not be read or is empty.
    Token,
    /// The CA root file could not be read or holds no certificate.
    CaRoot,
    /// Key or CSR generation failed.
    Key,
    /// The CA could not be reached, or TLS with it failed.
    Connect,
    /// UNAUTHENTICATED: the token was refused.
    Unauthenticated,
    /// PERMISSION_DENIED: the token proves another identity.
    PermissionDenied,
    /// Another gRPC status (INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED, ...).
    Status,
    /// The chain came back but is not ours, does not verify or has expired.
    BadChain,
}

impl FailureReason {
    pub const ALL: [FailureReason; 9] = [
        FailureReason::Config,
        FailureReason::Token,
        FailureReason::CaRoot,
        FailureReason::Key,
        FailureReason::Connect,
        FailureReason::Unauthenticated,
        FailureReason::PermissionDenied,
        FailureReason::Status,
        FailureReason::BadChain,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Config => "config",
            FailureReason::Token => "token",
            FailureReason::CaRoot => "ca_root",
            FailureReason::Key => "key",
            FailureReason::Connect => "connect",
            FailureReason::Unauthenticated => "unauthenticated",
            FailureReason::PermissionDenied => "permission_denied",
            FailureReason::Status => "status",
            FailureReason::BadChain => "bad_chain",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl FetchError {
    pub fn reason(&self) -> FailureReason {
        match self {
            FetchError::Config(_) => FailureReason::Config,
            FetchError::Token { .. } => FailureReason::Token,
            FetchError::CaRoot { .. } => FailureReason::CaRoot,
            FetchError::Key(_) => FailureReason::Key,
            FetchError::Connect { .. } => FailureReason::Connect,
            FetchError::Refused { code, .. } => match code {
                tonic::Code::Unauthenticated => FailureReason::Unauthenticated,
                tonic::Code::PermissionDenied => FailureReason::PermissionDenied,
                _ => FailureReason::Status,
            },
            FetchError::BadChain(_) => FailureReason::BadChain,
        }
    }
}
