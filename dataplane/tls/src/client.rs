//! Upstream TLS (Envoy's `UpstreamTlsContext`) into a rustls `ClientConfig`.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::Built;
use crate::error::{TlsError, TlsWarning};
use crate::params::TlsParams;
use crate::pem::{CertKey, Pem};
use crate::san::{SanMatcher, SanType, StringMatch, cert_matches};
use crate::secrets::Secrets;
use crate::server::{secret, secret_error};

/// Servers whose sessions a client config remembers by default (rustls's default size).
pub const DEFAULT_SESSION_CACHE: usize = 256;

/// What a cluster's transport socket says about originating TLS, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// Envoy's `sni`: sent in the ClientHello. `None`: no SNI.
    pub sni: Option<String>,
    /// `validation_context.trusted_ca`. `None`: as in Envoy, the server's certificate is
    /// not verified at all (a warning says so).
    pub ca: Option<Pem>,
    /// `match_typed_subject_alt_names`: the server certificate must have a matching SAN.
    pub verify_san: Vec<SanMatcher>,
    /// Also check the server certificate against `sni` (Envoy's
    /// `auto_sni_san_validation`, and what a browser does). Envoy checks nothing but the
    /// chain and `verify_san` otherwise.
    pub verify_sni: bool,
    /// The client certificate, for upstreams that ask for one (mTLS).
    pub client_cert: Option<CertKey>,
    /// `common_tls_context.alpn_protocols`.
    pub alpn: Vec<Vec<u8>>,
    pub params: TlsParams,
    /// How many servers' sessions to keep for resumption; 0 turns resumption off (Envoy's
    /// `max_session_keys: 0`).
    pub session_cache: usize,
    /// `tls_certificate_sds_secret_configs`: the client certificate comes from this secret.
    pub sds_cert: Option<String>,
    /// `validation_context_sds_secret_config`: the server's certificate must chain to this
    /// trust bundle, and its URI SAN be one of the exact `verify_san` URIs (if any).
    pub sds_validation: Option<String>,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            sni: None,
            ca: None,
            verify_san: Vec::new(),
            verify_sni: false,
            client_cert: None,
            alpn: Vec::new(),
            params: TlsParams::default(),
            session_cache: DEFAULT_SESSION_CACHE,
            sds_cert: None,
            sds_validation: None,
        }
    }
}

/// A built upstream TLS context: the rustls config and the name to connect with.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub config: Arc<ClientConfig>,
    /// The configured SNI, parsed.
    pub sni: Option<ServerName<'static>>,
    session_cache: usize,
}

impl UpstreamTls {
    /// The name to hand `rustls::ClientConnection::new` for a connection to `peer`: the
    /// configured SNI, or else the peer's address (rustls sends no SNI for an address).
    pub fn server_name(&self, peer: IpAddr) -> ServerName<'static> {
        self.sni
            .clone()
            .unwrap_or(ServerName::IpAddress(peer.into()))
    }

    /// The same context with a session cache of its own, for one worker: rustls's cache
    /// takes a lock, which workers should not share.
    pub fn for_worker(&self) -> UpstreamTls {
        let mut config = (*self.config).clone();
        config.resumption = resumption(self.session_cache);
        UpstreamTls {
            config: Arc::new(config),
            sni: self.sni.clone(),
            session_cache: self.session_cache,
        }
    }
}

fn resumption(sessions: usize) -> Resumption {
    if sessions == 0 {
        Resumption::disabled()
    } else {
        Resumption::in_memory_sessions(sessions)
    }
}

impl ClientTls {
    /// Loads every file and builds the config. `now` is for certificate validity warnings
    /// only. Called on the control thread at config load.
    pub fn build(&self, now: UnixTime) -> Result<Built<UpstreamTls>, TlsError> {
        self.build_with(now, None)
    }

    /// [`ClientTls::build`], with `secrets` answering the SDS secrets the context names.
    pub fn build_with(
        &self,
        now: UnixTime,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Built<UpstreamTls>, TlsError> {
        let mut warnings = Vec::new();
        let (provider, versions) = self.params.resolve(&mut warnings)?;
        let provider = Arc::new(provider);
        let sni = match &self.sni {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .ok()
                    .filter(|n| matches!(n, ServerName::DnsName(_)))
                    .ok_or_else(|| TlsError::BadSni { name: name.clone() })?,
            ),
        };
        let verifier: Arc<dyn ServerCertVerifier> = match &self.sds_validation {
            Some(name) => self.sds_server_verifier(name, secrets)?,
            None => {
                let roots = match &self.ca {
                    Some(ca) => Some(ca.roots()?),
                    None if !self.verify_san.is_empty() => return Err(TlsError::SanWithoutCa),
                    None => {
                        warnings.push(TlsWarning::ServerNotVerified);
                        None
                    }
                };
                Arc::new(ServerVerifier {
                    roots,
                    algorithms: provider.signature_verification_algorithms,
                    sans: self.verify_san.clone(),
                    verify_name: self.verify_sni,
                })
            }
        };
        let client_key: Option<Arc<dyn rustls::client::ResolvesClientCert>> =
            match (&self.client_cert, &self.sds_cert) {
                (Some(_), Some(name)) => {
                    return Err(secret_error(
                        name,
                        "give tls_certificates or an SDS secret, not both",
                    ));
                }
                (Some(cert), None) => Some(Arc::new(OneClientCert(Arc::new(cert.load(
                    &provider,
                    now,
                    &mut warnings,
                )?)))),
                (None, Some(name)) => Some(secret(secrets, name, |s| s.client_cert(name))?),
                (None, None) => None,
            };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match client_key {
            Some(resolver) => builder.with_client_cert_resolver(resolver),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config.resumption = resumption(self.session_cache);
        let value = UpstreamTls {
            config: Arc::new(config),
            sni,
            session_cache: self.session_cache,
        };
        Ok(Built { value, warnings })
    }
}

impl ClientTls {
    /// The server's certificate checked against an SDS trust bundle: the mesh's way, by
    /// SPIFFE identity (exact URI SANs), not by DNS name.
    fn sds_server_verifier(
        &self,
        name: &str,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
        if self.ca.is_some() {
            return Err(secret_error(
                name,
                "give trusted_ca or an SDS validation secret, not both",
            ));
        }
        if self.verify_sni {
            return Err(secret_error(
                name,
                "auto_sni_san_validation checks DNS names; mesh peers are checked by URI SAN",
            ));
        }
        let mut expected = Vec::with_capacity(self.verify_san.len());
        for m in &self.verify_san {
            match (&m.san_type, &m.matcher, m.ignore_case) {
                (SanType::Uri, StringMatch::Exact(uri), false) => expected.push(uri.clone()),
                _ => {
                    return Err(secret_error(
                        name,
                        "with an SDS trust bundle, subject alt names are matched as exact URIs (SPIFFE identities) only",
                    ));
                }
            }
        }
        secret(secrets, name, |s| s.server_verifier(name, expected))
    }
}

/// The one client certificate, offered whenever a server asks.
#[derive(Debug)]
struct OneClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Envoy's upstream verification: the chain against trusted_ca (when there is one), then
/// the SAN matchers, and the SNI only when asked.
#[derive(Debug)]
struct ServerVerifier {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
    sans: Vec<SanMatcher>,
    verify_name: bool,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.verify_name {
            verify_server_name(&cert, server_name)?;
        }
        if !cert_matches(end_entity, &self.sans) {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
