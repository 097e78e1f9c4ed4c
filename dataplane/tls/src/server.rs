//! Downstream TLS (Envoy's `DownstreamTlsContext`) into a rustls `ServerConfig`.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::Built;
use crate::error::TlsError;
use crate::params::TlsParams;
use crate::pem::{CertKey, Pem};
use crate::san::{SanMatcher, cert_matches};
use crate::secrets::Secrets;

/// What a listener's filter chain says about terminating TLS, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTls {
    /// Envoy's `tls_certificates`. Each is offered to clients whose SNI matches one of its
    /// DNS SANs (exact first, then `*.` wildcards; the first certificate listed wins a
    /// tie); the first certificate is the default, for no SNI or an SNI no SAN matches.
    pub certs: Vec<CertKey>,
    /// `validation_context.trusted_ca`: client certificates are requested and, when sent,
    /// verified against it.
    pub client_ca: Option<Pem>,
    /// `require_client_certificate`: a client without a valid certificate is refused.
    pub require_client_cert: bool,
    /// `validation_context.match_typed_subject_alt_names` for client certificates.
    pub verify_client_san: Vec<SanMatcher>,
    /// `common_tls_context.alpn_protocols`, in preference order.
    pub alpn: Vec<Vec<u8>>,
    pub params: TlsParams,
    /// Envoy's `disable_stateless_session_resumption`: no session tickets sealed with the
    /// server's key (sessions are then resumed from the server's own cache).
    pub disable_session_tickets: bool,
    /// `tls_certificate_sds_secret_configs`: the certificate comes from this secret
    /// (instead of `certs`).
    pub sds_cert: Option<String>,
    /// `validation_context_sds_secret_config`: client certificates are required and
    /// verified against this trust bundle (instead of `client_ca`).
    pub sds_validation: Option<String>,
}

impl ServerTls {
    /// Loads every file and builds the config. `now` is for certificate validity warnings
    /// only. Called on the control thread at config load; the result is shared by every
    /// worker.
    pub fn build(&self, now: UnixTime) -> Result<Built<Arc<ServerConfig>>, TlsError> {
        self.build_with(now, None)
    }

    /// [`ServerTls::build`], with `secrets` answering the SDS secrets the context names.
    pub fn build_with(
        &self,
        now: UnixTime,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Built<Arc<ServerConfig>>, TlsError> {
        let mut warnings = Vec::new();
        let (provider, versions) = self.params.resolve(&mut warnings)?;
        let provider = Arc::new(provider);
        let resolver: Arc<dyn ResolvesServerCert> = match &self.sds_cert {
            Some(name) => {
                if !self.certs.is_empty() {
                    return Err(secret_error(
                        name,
                        "give tls_certificates or an SDS secret, not both",
                    ));
                }
                secret(secrets, name, |s| s.server_cert(name))?
            }
            None => {
                if self.certs.is_empty() {
                    return Err(TlsError::NoServerCertificate);
                }
                let mut resolver = SniResolver::default();
                for cert in &self.certs {
                    let key = cert.load(&provider, now, &mut warnings)?;
                    resolver.add(Arc::new(key));
                }
                Arc::new(resolver)
            }
        };
        let verifier = match &self.sds_validation {
            Some(name) => self.sds_client_verifier(name, secrets)?,
            None => self.client_verifier(&provider)?,
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.alpn_protocols = self.alpn.clone();
        if !self.disable_session_tickets {
            // Keys are random per process and rotate every 6 hours (12 h ticket lifetime).
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
        }
        Ok(Built {
            value: Arc::new(config),
            warnings,
        })
    }

    /// Client certificates checked against an SDS trust bundle: always required (a mesh
    /// mTLS port that lets clients without a certificate in is not mTLS).
    fn sds_client_verifier(
        &self,
        name: &str,
        secrets: Option<&dyn Secrets>,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        if self.client_ca.is_some() {
            return Err(secret_error(
                name,
                "give trusted_ca or an SDS validation secret, not both",
            ));
        }
        if !self.require_client_cert {
            return Err(secret_error(
                name,
                "an SDS trust bundle verifies client certificates: set require_client_certificate",
            ));
        }
        let inner = secret(secrets, name, |s| s.client_verifier(name))?;
        if self.verify_client_san.is_empty() {
            return Ok(inner);
        }
        Ok(Arc::new(SanClientVerifier {
            inner,
            sans: self.verify_client_san.clone(),
        }))
    }

    fn client_verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let Some(ca) = &self.client_ca else {
            if self.require_client_cert {
                return Err(TlsError::ClientCertWithoutCa);
            }
            if !self.verify_client_san.is_empty() {
                return Err(TlsError::SanWithoutCa);
            }
            return Ok(WebPkiClientVerifier::no_client_auth());
        };
        let builder = WebPkiClientVerifier::builder_with_provider(ca.roots()?, provider.clone());
        let builder = if self.require_client_cert {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let inner = builder.build().map_err(|e| TlsError::BadCertificate {
            source_name: ca.to_string(),
            reason: e.to_string(),
        })?;
        if self.verify_client_san.is_empty() {
            return Ok(inner);
        }
        Ok(Arc::new(SanClientVerifier {
            inner,
            sans: self.verify_client_san.clone(),
        }))
    }
}

pub(crate) fn secret_error(name: &str, reason: impl Into<String>) -> TlsError {
    TlsError::Secret {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// The hook `get` gives for secret `name`, or why there is none.
pub(crate) fn secret<T: ?Sized>(
    secrets: Option<&dyn Secrets>,
    name: &str,
    get: impl FnOnce(&dyn Secrets) -> Option<Arc<T>>,
) -> Result<Arc<T>, TlsError> {
    let Some(secrets) = secrets else {
        return Err(secret_error(
            name,
            "spar-proxy has no mesh identity (start it with --ca-address) to serve it",
        ));
    };
    get(secrets).ok_or_else(|| {
        secret_error(
            name,
            format!(
                "not served: the mesh identity serves `{}` and `{}`",
                crate::WORKLOAD_CERT,
                crate::ROOT_CA
            ),
        )
    })
}

/// Picks the certificate for a ClientHello's SNI.
#[derive(Debug, Default)]
struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    /// Lowercased DNS SAN to the index of the first certificate with it.
    exact: HashMap<String, usize>,
    /// `*.example.com` SANs by their `example.com` part.
    wildcard: HashMap<String, usize>,
}

impl SniResolver {
    fn add(&mut self, key: Arc<CertifiedKey>) {
        let index = self.keys.len();
        if let Some(leaf) = key.cert.first()
            && let Ok(cert) = webpki::EndEntityCert::try_from(leaf)
        {
            for name in cert.valid_dns_names() {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(rest) => self.wildcard.entry(rest.to_string()).or_insert(index),
                    None => self.exact.entry(name).or_insert(index),
                };
            }
        }
        self.keys.push(key);
    }

    fn pick(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let index = sni.and_then(|sni| {
            let sni = sni.to_ascii_lowercase();
            self.exact.get(&sni).or_else(|| {
                let (_, parent) = sni.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        self.keys.get(index.copied().unwrap_or(0))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name()).cloned()
    }
}

/// WebPKI verification, then the subject alt name matchers.
#[derive(Debug)]
struct SanClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatcher>,
}

impl ClientCertVerifier for SanClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !cert_matches(end_entity, &self.sans) {
            return Err(CertificateError::ApplicationVerificationFailure.into());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
