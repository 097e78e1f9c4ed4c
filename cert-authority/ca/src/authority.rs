//! The signing CA: an issuing certificate and its key, the trusted roots, the token key and
//! the issuance policy. [`Ca::sign`] turns a checked CSR into a workload certificate; the
//! files it is loaded from are [`crate::store`]'s business.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::info;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::csr::{CsrError, check_csr};
use crate::policy::{Policy, Reason, Refusal};
use crate::spiffe::{ServiceAccount, SpiffeId};
use crate::stats::Stats;
use crate::token::{TokenError, TokenKey};

/// Certificates are backdated this much, for peers whose clocks run a little behind.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The CA's own serving certificate (gRPC over TLS) lives this long; it is issued anew at
/// every start.
pub const SERVING_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The `tracing` target of the audit log: one info line per certificate issued (serial,
/// identity, expiry), so that it can be routed or filtered on its own
/// (`RUST_LOG=spar_ca::audit=info`).
pub const AUDIT_TARGET: &str = "spar_ca::audit";

/// Why the CA could not be built from its certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Why [`Ca::sign`] issued nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("CSR asks for {asked}, the caller is {proven}")]
    IdentityMismatch { asked: String, proven: String },
    #[error("signing failed: {0}")]
    Signing(String),
}

impl From<SignError> for Refusal {
    fn from(e: SignError) -> Refusal {
        match e {
            SignError::Csr(e) => e.into(),
            SignError::IdentityMismatch { .. } => {
                Refusal::new(Reason::IdentityMismatch, e.to_string())
            }
            SignError::Signing(_) => Refusal::new(Reason::Internal, e.to_string()),
        }
    }
}

/// A certificate [`Ca::sign`] issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Hex, as in the audit log.
    pub serial: String,
    pub identity: SpiffeId,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// PEM, one certificate an entry: the leaf, the intermediates up to the root, and last
    /// the trust bundle (every trusted root, the issuing one first).
    pub chain: Vec<String>,
}

/// A loaded CA. Shared between requests behind an `Arc`; every method takes `&self`.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    issuer_not_after: OffsetDateTime,
    /// PEM, from the issuing certificate up to the root (not included); empty when a root
    /// signs.
    intermediates: Vec<String>,
    /// PEM of each trusted root.
    roots: Vec<String>,
    token_key: TokenKey,
    policy: Policy,
    server_names: Vec<String>,
    stats: Stats,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("roots", &self.roots.len())
            .field("intermediates", &self.intermediates.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Names in the CA's serving certificate unless told otherwise: what a local client dials,
/// and istiod's names, which Istio agents dial.
pub const DEFAULT_SERVER_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "spar-ca",
    "istiod",
    "istiod.istio-system.svc",
];

/// The parts of a CA as loaded from files; see [`Ca::from_parts`].
#[derive(Debug)]
pub(crate) struct Parts {
    /// Where the parts came from, for error messages.
    pub(crate) origin: String,
    pub(crate) issuer_cert: CertificateDer<'static>,
    pub(crate) issuer_key: KeyPair,
    /// From the issuing certificate's issuer up to the root (not included).
    pub(crate) intermediates: Vec<CertificateDer<'static>>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) token_key: TokenKey,
}

impl Ca {
    /// Checks that the key is the issuing certificate's, that the certificate is a CA, and
    /// builds the CA with the default policy.
    pub(crate) fn from_parts(parts: Parts) -> Result<Ca, CaError> {
        let invalid = |reason: String| CaError::Invalid {
            path: parts.origin.clone(),
            reason,
        };
        let (_, cert) = X509Certificate::from_der(&parts.issuer_cert)
            .map_err(|e| invalid(format!("issuing certificate: {e}")))?;
        if cert.public_key().raw != parts.issuer_key.subject_public_key_info().as_slice() {
            return Err(invalid(
                "the key is not the issuing certificate's key".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(invalid(
                "the issuing certificate is not a CA (basicConstraints CA:true)".into(),
            ));
        }
        if parts.roots.is_empty() {
            return Err(invalid("no trusted root".into()));
        }
        let issuer_not_after = cert.validity().not_after.to_datetime();
        if issuer_not_after <= OffsetDateTime::now_utc() {
            return Err(invalid(format!(
                "the issuing certificate expired at {}",
                issuer_not_after.format(&Rfc3339).unwrap_or_default()
            )));
        }
        if !parts.roots.contains(&parts.issuer_cert) {
            check_chain(cert, &parts.intermediates, &parts.roots).map_err(invalid)?;
        }
        let issuer = Issuer::from_ca_cert_der(&parts.issuer_cert, parts.issuer_key)
            .map_err(|e| invalid(format!("issuing certificate: {e}")))?;
        let is_root = parts.roots.contains(&parts.issuer_cert);
        let mut intermediates = Vec::new();
        if !is_root {
            intermediates.push(pem("CERTIFICATE", &parts.issuer_cert));
            intermediates.extend(parts.intermediates.iter().map(|c| pem("CERTIFICATE", c)));
        }
        Ok(Ca {
            issuer,
            issuer_not_after,
            intermediates,
            roots: parts.roots.iter().map(|c| pem("CERTIFICATE", c)).collect(),
            token_key: parts.token_key,
            policy: Policy::default(),
            server_names: DEFAULT_SERVER_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            stats: Stats::default(),
        })
    }

    /// The same CA with another issuance policy (trust domain, lifetimes).
    pub fn with_policy(mut self, policy: Policy) -> Ca {
        self.policy = policy;
        self
    }

    /// The same CA with other names (DNS names or IP addresses) in its serving certificate.
    pub fn with_server_names(mut self, names: Vec<String>) -> Ca {
        self.server_names = names;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn token_key(&self) -> &TokenKey {
        &self.token_key
    }

    pub fn server_names(&self) -> &[String] {
        &self.server_names
    }

    /// Every trusted root, PEM, one certificate an entry.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// Every trusted root, PEM, concatenated: what workloads trust.
    pub fn trust_bundle(&self) -> String {
        self.roots.concat()
    }

    /// A token for `account`, valid for `ttl` from now.
    pub fn mint_token(
        &self,
        account: &ServiceAccount,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        self.token_key.mint(account, unix_now(), ttl.as_secs())
    }

    /// The account a token this CA minted names, if it is valid now.
    pub fn verify_token(&self, token: &str) -> Result<ServiceAccount, TokenError> {
        self.token_key.verify(token, unix_now())
    }

    /// Signs a DER CSR for `identity`, valid for `ttl` (cut at the issuing certificate's
    /// own expiry). The CSR must pass [`check_csr`] and ask for exactly `identity`; the
    /// certificate is CA:false, key usage digitalSignature and keyEncipherment, extended key
    /// usage serverAuth and clientAuth, with the SPIFFE URI as its only name (critical, the
    /// subject being empty). One audit line (info) per certificate.
    pub fn sign(
        &self,
        csr_der: &[u8],
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<Issued, SignError> {
        let csr = check_csr(csr_der)?;
        if csr.identity != *identity {
            return Err(SignError::IdentityMismatch {
                asked: csr.identity.to_string(),
                proven: identity.to_string(),
            });
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(&csr.public_key)
            .map_err(|e| SignError::Signing(e.to_string()))?;
        let uri = identity
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| SignError::Signing(e.to_string()))?;
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial);
        let now = OffsetDateTime::now_utc();
        if self.issuer_not_after <= now {
            return Err(SignError::Signing(
                "the issuing certificate has expired".into(),
            ));
        }
        params.not_before = now - CLOCK_SKEW;
        params.not_after = (now + ttl).min(self.issuer_not_after);
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| SignError::Signing(e.to_string()))?;
        let mut chain = Vec::with_capacity(self.intermediates.len() + 2);
        chain.push(cert.pem());
        chain.extend(self.intermediates.iter().cloned());
        chain.push(self.trust_bundle());
        let issued = Issued {
            serial: serial_hex,
            identity: identity.clone(),
            not_before: params.not_before,
            not_after: params.not_after,
            chain,
        };
        info!(
            target: AUDIT_TARGET,
            serial = %issued.serial,
            identity = %issued.identity,
            not_after = %issued.not_after.format(&Rfc3339).unwrap_or_default(),
            "certificate issued"
        );
        Ok(issued)
    }

    /// A certificate and key for the CA's own TLS listener, for [`Ca::server_names`]
    /// (IP addresses become IP names): the PEM chain (leaf and intermediates) and the PEM
    /// PKCS#8 key.
    pub fn serving_certificate(&self) -> Result<(String, String), SignError> {
        let signing = |e: rcgen::Error| SignError::Signing(e.to_string());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(signing)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "spar-ca");
        for name in &self.server_names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into().map_err(signing)?),
            };
            params.subject_alt_names.push(san);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?.0);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = (now + SERVING_TTL).min(self.issuer_not_after);
        let cert = params.signed_by(&key, &self.issuer).map_err(signing)?;
        let chain = std::iter::once(cert.pem())
            .chain(self.intermediates.iter().cloned())
            .collect();
        Ok((chain, key.serialize_pem()))
    }
}

/// A certificate chain a workload can verify: `issuing`, signed by the first intermediate,
/// signed by the next, ..., the last one signed by one of `roots`. Checked once at load,
/// so that a plug-in CA with a missing or misordered `cert-chain.pem`, or a `root-cert.pem`
/// from another CA, fails to start instead of issuing certificates nobody can verify.
fn check_chain(
    issuing: X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
) -> Result<(), String> {
    let mut child = issuing;
    for (i, der) in intermediates.iter().enumerate() {
        let (_, next) = X509Certificate::from_der(der)
            .map_err(|e| format!("certificate {} of the chain: {e}", i + 1))?;
        child
            .verify_signature(Some(next.public_key()))
            .map_err(|_| {
                format!(
                    "{} is not signed by {} (cert-chain.pem out of order or incomplete?)",
                    child.subject(),
                    next.subject()
                )
            })?;
        child = next;
    }
    let signed_by_a_root = roots.iter().any(|der| {
        X509Certificate::from_der(der)
            .is_ok_and(|(_, root)| child.verify_signature(Some(root.public_key())).is_ok())
    });
    if signed_by_a_root {
        Ok(())
    } else {
        Err(format!(
            "the chain ends at {}, which no trusted root signed (root-cert.pem of another CA, or an intermediate missing from cert-chain.pem?)",
            child.subject()
        ))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 16 random bytes, the first one's top bit clear (a positive INTEGER of fixed length) and
/// not zero (no leading zero byte to strip); and its hex.
pub(crate) fn random_serial() -> Result<(SerialNumber, String), SignError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SignError::Signing("no randomness for a serial number".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok((SerialNumber::from_slice(&bytes), hex))
}

/// PEM of a DER object, 64 columns.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
