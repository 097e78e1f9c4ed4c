//! PEM certificates and keys from files or inline bytes (Envoy's `DataSource`), parsed
//! with rustls-pki-types.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;

use crate::error::{TlsError, TlsWarning};
use crate::x509;

/// Where PEM text comes from: Envoy's `DataSource` with `filename` or `inline_bytes` /
/// `inline_string` (the config compiler resolves `environment_variable` to `Inline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(Vec<u8>),
}

impl fmt::Display for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => write!(f, "{}", path.display()),
            Pem::Inline(_) => f.write_str("inline PEM"),
        }
    }
}

/// A certificate chain (leaf first) and its private key: one of Envoy's `tls_certificates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    pub cert_chain: Pem,
    pub private_key: Pem,
}

impl Pem {
    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, TlsError> {
        match self {
            Pem::Inline(bytes) => Ok(bytes.into()),
            Pem::File(path) => {
                std::fs::read(path)
                    .map(Into::into)
                    .map_err(|error| TlsError::Read {
                        source_name: self.to_string(),
                        error,
                    })
            }
        }
    }

    fn pem_error(&self, e: pem::Error) -> TlsError {
        TlsError::Pem {
            source_name: self.to_string(),
            reason: e.to_string(),
        }
    }

    /// Every CERTIFICATE block, in order; at least one.
    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.bytes()?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.pem_error(e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                source_name: self.to_string(),
            });
        }
        Ok(certs)
    }

    /// The first private key block (PKCS#8, PKCS#1 RSA or SEC1 EC).
    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.bytes()?;
        match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(key) => Ok(key),
            Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
                source_name: self.to_string(),
            }),
            Err(e) => Err(self.pem_error(e)),
        }
    }

    /// A trust store of every certificate in this PEM.
    pub(crate) fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates()? {
            roots.add(cert).map_err(|e| TlsError::BadCertificate {
                source_name: self.to_string(),
                reason: e.to_string(),
            })?;
        }
        Ok(Arc::new(roots))
    }
}

impl CertKey {
    /// The chain and key, checked to belong together, with warnings for a leaf outside its
    /// validity period at `now`.
    pub(crate) fn load(
        &self,
        provider: &CryptoProvider,
        now: UnixTime,
        warnings: &mut Vec<TlsWarning>,
    ) -> Result<CertifiedKey, TlsError> {
        let chain = self.cert_chain.certificates()?;
        let key = self.private_key.private_key()?;
        let cert_name = self.cert_chain.to_string();
        let key_name = self.private_key.to_string();
        let signing_key =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::BadPrivateKey {
                    source_name: key_name.clone(),
                    reason: e.to_string(),
                })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch {
                    cert: cert_name,
                    key: key_name,
                });
            }
            // The key cannot say what its public half is: rustls cannot compare, nor can we.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => {
                return Err(TlsError::BadCertificate {
                    source_name: cert_name,
                    reason: e.to_string(),
                });
            }
        }
        if let Some(leaf) = certified.cert.first() {
            x509::check_validity(leaf, &cert_name, now, warnings)?;
        }
        Ok(certified)
    }
}
