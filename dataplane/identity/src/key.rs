//! The workload key and its certificate request.
//!
//! A fresh ECDSA P-256 key for every request (as Istio's agents do): rcgen generates it with
//! ring, the CSR carries its public half and the SPIFFE URI as the only name, and the
//! private half goes straight into a rustls signing key. It is never serialized to PEM,
//! written to a file or sent; the PKCS#8 bytes exist only for the moment rustls parses them.

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PublicKeyData, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::SigningKey;

use crate::error::FetchError;

/// A key waiting for its certificate.
pub(crate) struct PendingKey {
    /// PEM `CERTIFICATE REQUEST`: what is sent to the CA.
    pub(crate) csr_pem: String,
    /// The public key (DER SubjectPublicKeyInfo) that the certificate must carry.
    pub(crate) spki: Vec<u8>,
    pub(crate) signing_key: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for PendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingKey").finish_non_exhaustive()
    }
}

/// A new P-256 key and a CSR for `spiffe_id` signed with it.
pub(crate) fn generate(spiffe_id: &str) -> Result<PendingKey, FetchError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| FetchError::Key(e.to_string()))?;
    request(key, spiffe_id)
}

/// A CSR for `spiffe_id` signed with `key`, which is then consumed.
fn request(key: KeyPair, spiffe_id: &str) -> Result<PendingKey, FetchError> {
    let err = |e: rcgen::Error| FetchError::Key(e.to_string());
    let mut params = CertificateParams::default();
    // An empty subject: the identity is the URI SAN and nothing else.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().map_err(err)?)];
    let csr_pem = params
        .serialize_request(&key)
        .map_err(err)?
        .pem()
        .map_err(err)?;
    let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = rustls::crypto::ring::sign::any_ecdsa_type(&pkcs8)
        .map_err(|e| FetchError::Key(e.to_string()))?;
    Ok(PendingKey {
        csr_pem,
        spki: key.subject_public_key_info(),
        signing_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateSigningRequestDer;
    use rustls::pki_types::pem::PemObject;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    const ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";

    #[test]
    fn csr_names_only_the_spiffe_uri_and_carries_only_the_public_key() {
        let pending = generate(ID).unwrap();
        let der = CertificateSigningRequestDer::from_pem_slice(pending.csr_pem.as_bytes()).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).unwrap();
        csr.verify_signature().unwrap();
        let info = &csr.certification_request_info;
        assert!(info.subject.iter().next().is_none(), "empty subject");
        assert_eq!(info.subject_pki.raw, pending.spki.as_slice());
        let sans: Vec<_> = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(sans, vec![GeneralName::URI(ID)]);
        // The signing key's public half is the CSR's.
        let public = pending.signing_key.public_key().unwrap();
        assert_eq!(public.as_ref(), pending.spki.as_slice());
        assert!(!pending.csr_pem.contains("PRIVATE"));
    }

    #[test]
    fn the_private_scalar_is_not_in_the_request() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = key.serialize_der();
        // PKCS#8 wraps RFC 5915's ECPrivateKey: version 1 (02 01 01), then the 32-byte
        // private scalar as an OCTET STRING (04 20).
        let at = pkcs8
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .unwrap()
            + 5;
        let scalar = pkcs8[at..at + 32].to_vec();
        let pending = request(key, ID).unwrap();
        let der = CertificateSigningRequestDer::from_pem_slice(pending.csr_pem.as_bytes()).unwrap();
        assert!(!der.as_ref().windows(32).any(|w| w == scalar.as_slice()));
        // ...and the request is no bigger than a public key, a name and a signature.
        assert!(der.as_ref().len() < 400, "{} bytes", der.as_ref().len());
    }

    #[test]
    fn every_request_has_a_new_key() {
        let a = generate(ID).unwrap();
        let b = generate(ID).unwrap();
        assert_ne!(a.spki, b.spki);
    }

    #[test]
    fn a_non_ascii_identity_is_refused() {
        assert!(generate("spiffe://cluster.local/ns/d\u{e9}faut/sa/x").is_err());
    }
}
