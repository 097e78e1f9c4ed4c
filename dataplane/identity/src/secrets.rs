//! The identity as the SDS secrets spar-proxy's TLS contexts name: `default` (the
//! certificate, for either side) and `ROOTCA` (the trust bundle, for verifying either
//! side). Other names are not served.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;
use spar_tls::{ROOT_CA, Secrets, WORKLOAD_CERT};

use crate::Identity;

impl Secrets for Identity {
    fn server_cert(&self, name: &str) -> Option<Arc<dyn ResolvesServerCert>> {
        (name == WORKLOAD_CERT).then(|| self.server_cert_resolver())
    }

    fn client_cert(&self, name: &str) -> Option<Arc<dyn ResolvesClientCert>> {
        (name == WORKLOAD_CERT).then(|| self.client_cert_resolver())
    }

    fn client_verifier(&self, name: &str) -> Option<Arc<dyn ClientCertVerifier>> {
        (name == ROOT_CA).then(|| self.client_cert_verifier())
    }

    fn server_verifier(
        &self,
        name: &str,
        expected: Vec<String>,
    ) -> Option<Arc<dyn ServerCertVerifier>> {
        (name == ROOT_CA).then(|| self.server_cert_verifier(expected))
    }
}
