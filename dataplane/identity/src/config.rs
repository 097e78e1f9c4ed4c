//! What the rotation task needs to know: where the CA is, how to trust it, who we are.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::FetchError;

/// Workload certificates live 24 h unless asked otherwise (Istio's `SECRET_TTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Text that is either given inline or read from a file each time it is needed, so that a
/// rotated file (a projected service-account token, a mesh root ConfigMap) is picked up
/// without a restart.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    Inline(String),
    File(PathBuf),
}

impl Source {
    /// The text now: the inline value, or the file's contents read at this call.
    pub fn read(&self) -> std::io::Result<String> {
        match self {
            Source::Inline(text) => Ok(text.clone()),
            Source::File(path) => std::fs::read_to_string(path),
        }
    }

    /// Where the text comes from, for error messages (never the text: it may be a token).
    pub fn origin(&self) -> String {
        match self {
            Source::Inline(_) => "inline".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }
}

impl std::fmt::Debug for Source {
    /// Never prints an inline value: it may be a bearer token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Inline(_) => f.write_str("Inline(..)"),
            Source::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The CA client's and the rotation task's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CA's gRPC address, `https://host:port` (Istio: `https://istiod.istio-system.svc:15012`).
    pub ca_address: String,
    /// PEM roots that the CA's serving certificate must chain to (Istio's
    /// `./var/run/secrets/istio/root-cert.pem`). Read at each request.
    pub ca_root: Source,
    /// The name the CA's serving certificate must carry (a DNS name or an IP address).
    pub ca_server_name: String,
    /// The bearer token for `authorization: Bearer <token>`, read at each request (a
    /// projected token is rotated by the kubelet). Surrounding whitespace is dropped.
    pub token: Source,
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
    /// Requested certificate lifetime; the CA may cut it.
    pub ttl: Duration,
    /// More PEM roots to trust for mesh peers besides those the CA returns (several roots
    /// during a root rotation, another trust domain's root). Read at each fetch.
    pub extra_roots: Option<Source>,
    /// Connecting to the CA gives up after this long.
    pub connect_timeout: Duration,
    /// One CreateCertificate call gives up after this long.
    pub request_timeout: Duration,
}

impl Config {
    /// A config with Istio's defaults: 24 h certificates, no extra roots, 5 s to connect and
    /// 30 s per request.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ca_address: impl Into<String>,
        ca_root: Source,
        ca_server_name: impl Into<String>,
        token: Source,
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Config {
        Config {
            ca_address: ca_address.into(),
            ca_root,
            ca_server_name: ca_server_name.into(),
            token,
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
            ttl: DEFAULT_TTL,
            extra_roots: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, checked: each part
    /// non-empty, without `/`, and made of the characters SPIFFE allows.
    pub fn spiffe_id(&self) -> Result<String, FetchError> {
        let parts = [
            ("trust domain", &self.trust_domain),
            ("namespace", &self.namespace),
            ("service account", &self.service_account),
        ];
        for (what, value) in parts {
            let ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                return Err(FetchError::Config(format!(
                    "{what} {value:?} is not a SPIFFE path segment (letters, digits, '-', '.', '_')"
                )));
            }
        }
        Ok(format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        ))
    }
}
