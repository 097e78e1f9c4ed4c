//! Secrets a TLS context names instead of carrying (Envoy's SDS secret configs): Istio's
//! `default` (the workload's certificate and key) and `ROOTCA` (the mesh trust bundle). The
//! proxy's mesh identity provides them as rustls hooks that read the current certificate
//! at each handshake, so a rotation needs no config rebuild.

use std::fmt;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;

/// Istio's name for the workload certificate secret.
pub const WORKLOAD_CERT: &str = "default";
/// Istio's name for the trust bundle secret.
pub const ROOT_CA: &str = "ROOTCA";

/// Where named secrets come from. Each method answers `None` for a name it does not serve.
pub trait Secrets: Send + Sync + fmt::Debug {
    /// The certificate a server shows.
    fn server_cert(&self, name: &str) -> Option<Arc<dyn ResolvesServerCert>>;
    /// The certificate a client shows.
    fn client_cert(&self, name: &str) -> Option<Arc<dyn ResolvesClientCert>>;
    /// A verifier that requires a client certificate chained to trust bundle `name`.
    fn client_verifier(&self, name: &str) -> Option<Arc<dyn ClientCertVerifier>>;
    /// A verifier of server certificates chained to trust bundle `name` whose URI SAN is
    /// one of `expected` (any, when empty).
    fn server_verifier(
        &self,
        name: &str,
        expected: Vec<String>,
    ) -> Option<Arc<dyn ServerCertVerifier>>;
}
