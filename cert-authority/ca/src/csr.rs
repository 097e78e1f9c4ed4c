//! The certificate signing request checker: DER (or PEM) bytes in, the requested SPIFFE
//! identity and the public key out, or the reason the request is refused. No I/O, no clock.
//!
//! A request is accepted when it parses with nothing after it, its self-signature verifies
//! (the caller holds the private key), its key is one spar-ca signs for (ECDSA P-256 or
//! P-384, RSA of 2048 bits or more, Ed25519), and it asks for exactly one subject
//! alternative name, a URI that is an Istio SPIFFE identity. It is refused when it asks for
//! CA:true in basicConstraints, for any other name (DNS, IP, e-mail, a second URI), or
//! carries a critical extension spar-ca does not know. The subject, key usages and extended
//! key usages it asks for are ignored: the CA decides those.

use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::spiffe::{SpiffeError, SpiffeId};

/// The largest CSR accepted, PEM or DER: a P-256 CSR is under 1 KiB, an RSA 4096 one under
/// 2 KiB; 16 KiB leaves room for any honest request and bounds the parser's work.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// The smallest RSA modulus accepted (Istio's agents use 2048).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("CSR larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    #[error("CSR is not PEM `CERTIFICATE REQUEST`")]
    Pem,
    #[error("CSR is not a PKCS#10 request: {0}")]
    Malformed(String),
    #[error("CSR signature does not verify with its own key")]
    BadSignature,
    #[error("CSR key is not one spar-ca signs for: {0}")]
    UnsupportedKey(String),
    #[error("CSR asks for no subject alternative name; it needs the SPIFFE URI")]
    NoSan,
    #[error("CSR asks for another name beside the one SPIFFE URI: {0}")]
    ExtraSan(String),
    #[error("CSR URI {uri:?} is not a SPIFFE identity: {reason}")]
    NotSpiffe { uri: String, reason: SpiffeError },
    #[error("CSR asks for a CA certificate (basicConstraints CA:true)")]
    CaRequested,
    #[error("CSR carries a critical extension spar-ca does not know: {0}")]
    UnknownCritical(String),
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    /// The one identity it asks for.
    pub identity: SpiffeId,
    /// Its SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
}

/// The DER of a PEM `CERTIFICATE REQUEST`.
pub fn csr_der_from_pem(pem: &str) -> Result<Vec<u8>, CsrError> {
    if pem.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    let der =
        CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).map_err(|_| CsrError::Pem)?;
    Ok(der.as_ref().to_vec())
}

/// Checks a DER CSR; see the module doc for what passes.
pub fn check_csr(der: &[u8]) -> Result<CheckedCsr, CsrError> {
    if der.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    check_key(info.subject_pki.raw, info.subject_pki.parsed().ok())?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let mut requests = info
        .iter_attributes()
        .filter_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(r) => Some(r),
            _ => None,
        });
    let extensions = match (requests.next(), requests.next()) {
        (None, _) => return Err(CsrError::NoSan),
        (Some(_), Some(_)) => {
            return Err(CsrError::Malformed(
                "more than one extensionRequest attribute".into(),
            ));
        }
        (Some(r), None) => &r.extensions,
    };
    let mut uri = None;
    let mut seen_san = false;
    for ext in extensions {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                if seen_san {
                    return Err(CsrError::ExtraSan(
                        "a second subjectAltName extension".into(),
                    ));
                }
                seen_san = true;
                for name in &san.general_names {
                    match (name, uri) {
                        (GeneralName::URI(u), None) => uri = Some(*u),
                        (GeneralName::URI(u), Some(_)) => {
                            return Err(CsrError::ExtraSan(format!("URI {u}")));
                        }
                        (other, _) => return Err(CsrError::ExtraSan(describe(other))),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(CsrError::CaRequested);
            }
            ParsedExtension::BasicConstraints(_)
            | ParsedExtension::KeyUsage(_)
            | ParsedExtension::ExtendedKeyUsage(_)
            | ParsedExtension::SubjectKeyIdentifier(_) => {}
            ParsedExtension::ParseError { error } => {
                return Err(CsrError::Malformed(format!(
                    "extension {}: {error}",
                    ext.oid
                )));
            }
            _ if ext.critical => return Err(CsrError::UnknownCritical(ext.oid.to_id_string())),
            _ => {}
        }
    }
    let uri = uri.ok_or(CsrError::NoSan)?;
    let identity = SpiffeId::parse(uri).map_err(|reason| CsrError::NotSpiffe {
        uri: uri.chars().take(256).collect(),
        reason,
    })?;
    Ok(CheckedCsr {
        identity,
        public_key: info.subject_pki.raw.to_vec(),
    })
}

/// The key must be one rcgen can put in a certificate, and an RSA key must be long enough.
fn check_key(spki: &[u8], parsed: Option<PublicKey<'_>>) -> Result<(), CsrError> {
    rcgen::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|_| CsrError::UnsupportedKey("algorithm".into()))?;
    match parsed {
        Some(PublicKey::RSA(rsa)) if rsa.key_size() < MIN_RSA_BITS => Err(
            CsrError::UnsupportedKey(format!("RSA of {} bits", rsa.key_size())),
        ),
        // Other keys are checked by the signature verification that follows.
        _ => Ok(()),
    }
}

fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS {d}"),
        GeneralName::IPAddress(_) => "IP address".into(),
        GeneralName::RFC822Name(_) => "e-mail address".into(),
        GeneralName::DirectoryName(_) => "directory name".into(),
        _ => "a non-URI name".into(),
    }
}

#[cfg(test)]
mod tests;
