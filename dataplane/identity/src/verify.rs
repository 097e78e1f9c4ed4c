//! rustls hooks that read the identity's current state at every handshake: the
//! certificate we present (server and client side) and the trust bundle peers are checked
//! against. A `ServerConfig`/`ClientConfig` built once with these sees every rotation.
//!
//! Cost per handshake: one `ArcSwap` load (no lock) and, for verification, WebPKI path
//! building over the bundle's prebuilt root store and client verifier.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::identity::{Identity, State, TrustBundle};

impl Identity {
    /// Presents the current certificate to every client (whatever the SNI).
    pub fn server_cert_resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(CurrentCert(self.state.clone()))
    }

    /// Presents the current certificate when a server asks for one.
    pub fn client_cert_resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(CurrentCert(self.state.clone()))
    }

    /// Requires a client certificate that chains to the current trust bundle (WebPKI
    /// rules: signatures, validity period, clientAuth usage). Before the first certificate
    /// arrives there is no bundle and every client is refused.
    pub fn client_cert_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(MeshClientVerifier(self.state.clone()))
    }

    /// Verifies a server's chain against the current trust bundle (WebPKI rules, serverAuth
    /// usage, validity period) and requires the leaf to name one of `expected` as a URI SAN
    /// (SPIFFE IDs, `spiffe://td/ns/x/sa/y`); with an empty list, any SPIFFE ID. The TLS
    /// server name is not checked: mesh identities are URIs, not DNS names.
    pub fn server_cert_verifier(&self, expected: Vec<String>) -> Arc<dyn ServerCertVerifier> {
        Arc::new(MeshServerVerifier {
            state: self.state.clone(),
            expected,
        })
    }
}

#[derive(Debug)]
struct CurrentCert(Arc<State>);

impl CurrentCert {
    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.0
            .current
            .load()
            .as_ref()
            .map(|c| c.certified_key.clone())
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key()
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.key()?;
        key.key.choose_scheme(sigschemes)?;
        Some(key)
    }

    fn has_certs(&self) -> bool {
        self.0.current.load().is_some()
    }
}

/// The bundle now, or the error a handshake before the first certificate gets.
fn trust(state: &State) -> Result<Arc<TrustBundle>, Error> {
    state
        .current
        .load()
        .as_ref()
        .map(|c| c.trust.clone())
        .ok_or_else(|| {
            Error::General("no mesh trust bundle yet (no certificate from the CA)".into())
        })
}

fn tls12(
    state: &State,
    m: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    rustls::crypto::verify_tls12_signature(
        m,
        cert,
        dss,
        &state.provider.signature_verification_algorithms,
    )
}

fn tls13(
    state: &State,
    m: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    rustls::crypto::verify_tls13_signature(
        m,
        cert,
        dss,
        &state.provider.signature_verification_algorithms,
    )
}

fn schemes(state: &State) -> Vec<SignatureScheme> {
    state
        .provider
        .signature_verification_algorithms
        .supported_schemes()
}

#[derive(Debug)]
struct MeshClientVerifier(Arc<State>);

impl ClientCertVerifier for MeshClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names are sent: the bundle may change between handshakes, and mesh clients
    /// hold one certificate anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        trust(&self.0)?
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12(&self.0, m, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13(&self.0, m, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.0)
    }
}

#[derive(Debug)]
struct MeshServerVerifier {
    state: Arc<State>,
    expected: Vec<String>,
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let trust = trust(&self.state)?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.store,
            intermediates,
            now,
            self.state.provider.signature_verification_algorithms.all,
        )?;
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let matched = leaf.valid_uri_names().any(|uri| {
            if self.expected.is_empty() {
                uri.starts_with("spiffe://")
            } else {
                self.expected.iter().any(|e| e == uri)
            }
        });
        if !matched {
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12(&self.state, m, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13(&self.state, m, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.state)
    }
}
