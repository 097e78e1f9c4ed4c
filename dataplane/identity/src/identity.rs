//! The current certificate and trust bundle, swapped atomically when a new certificate
//! arrives, and what the admin endpoint shows of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::Config;
use crate::error::FetchError;
use crate::key::PendingKey;
use crate::stats::Stats;

/// The workload's mesh identity: its current certificate and the roots it trusts. Shared
/// by the rotation task (which installs certificates) and by every TLS config (through the
/// resolvers and verifiers it hands out, which read the current state at each handshake).
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) state: Arc<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) spiffe_id: String,
    pub(crate) current: ArcSwapOption<Current>,
    pub(crate) stats: Stats,
    pub(crate) provider: Arc<CryptoProvider>,
    trust_versions: AtomicU64,
}

/// One certificate and the trust bundle it came with. Immutable: a rotation installs a
/// new one.
#[derive(Debug)]
pub struct Current {
    /// The key and the chain presented to peers (the leaf and any intermediates, no root).
    pub certified_key: Arc<CertifiedKey>,
    /// PEM of the presented chain, leaf first.
    pub chain_pem: Vec<String>,
    /// The leaf's URI SAN (equal to the identity's SPIFFE ID).
    pub spiffe_id: String,
    /// The leaf's serial, lowercase hex.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub trust: Arc<TrustBundle>,
}

/// The roots peers' certificates must chain to: the CA's bundle (the last entry of its
/// answer) and the configured extra roots. Rebuilt only when its roots change; `version`
/// then goes up.
pub struct TrustBundle {
    pub version: u64,
    pub roots: Vec<CertificateDer<'static>>,
    pub(crate) store: Arc<RootCertStore>,
    /// WebPKI client-certificate verifier over `store`, built once per bundle.
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustBundle")
            .field("version", &self.version)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// What an admin `/certs` endpoint shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertsView {
    /// The identity this workload asks for.
    pub identity: String,
    /// Whether a certificate is held.
    pub ready: bool,
    pub certificate: Option<CertView>,
    /// PEM of every trusted root.
    pub roots: Vec<String>,
    pub trust_bundle_version: Option<u64>,
}

/// The held certificate, for [`CertsView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertView {
    pub spiffe_id: String,
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// Leaf first.
    pub chain_pem: Vec<String>,
}

impl Identity {
    /// An identity for `spiffe_id` holding no certificate yet. The ID is not checked here;
    /// [`Identity::for_config`] builds and checks it from its parts.
    pub fn new(spiffe_id: impl Into<String>) -> Identity {
        Identity {
            state: Arc::new(State {
                spiffe_id: spiffe_id.into(),
                current: ArcSwapOption::empty(),
                stats: Stats::default(),
                provider: Arc::new(rustls::crypto::ring::default_provider()),
                trust_versions: AtomicU64::new(0),
            }),
        }
    }

    /// An identity for the config's trust domain, namespace and service account.
    pub fn for_config(config: &Config) -> Result<Identity, FetchError> {
        Ok(Identity::new(config.spiffe_id()?))
    }

    /// The SPIFFE ID this workload asks certificates for.
    pub fn spiffe_id(&self) -> &str {
        &self.state.spiffe_id
    }

    /// Whether a certificate is held (it may have expired if the CA has been unreachable
    /// for its whole second half of life; see [`Current::not_after`]).
    pub fn ready(&self) -> bool {
        self.state.current.load().is_some()
    }

    /// The certificate and trust bundle now.
    pub fn current(&self) -> Option<Arc<Current>> {
        self.state.current.load_full()
    }

    /// Fetch counters.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// What an admin `/certs` endpoint shows.
    pub fn describe(&self) -> CertsView {
        let current = self.current();
        CertsView {
            identity: self.state.spiffe_id.clone(),
            ready: current.is_some(),
            certificate: current.as_ref().map(|c| CertView {
                spiffe_id: c.spiffe_id.clone(),
                serial: c.serial.clone(),
                not_before: rfc3339(c.not_before),
                not_after: rfc3339(c.not_after),
                chain_pem: c.chain_pem.clone(),
            }),
            roots: current
                .as_ref()
                .map(|c| c.trust.roots.iter().map(|r| pem(r)).collect())
                .unwrap_or_default(),
            trust_bundle_version: current.as_ref().map(|c| c.trust.version),
        }
    }

    /// Checks the CA's answer to `key`'s request and installs it: the leaf must carry
    /// `key`'s public key and exactly our SPIFFE ID, and verify (as a server and as a
    /// client certificate, at `now`) against the bundle it came with plus `extra_roots`.
    /// Anything wrong leaves the current certificate in place.
    pub(crate) fn install(
        &self,
        key: PendingKey,
        cert_chain: &[String],
        extra_roots: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<Current>, FetchError> {
        let bad = |m: String| FetchError::BadChain(m);
        let [first, middle @ .., last] = cert_chain else {
            return Err(bad(format!(
                "{} entries; want the leaf first and the roots last",
                cert_chain.len()
            )));
        };
        let mut presented = certs(first).map_err(|e| bad(format!("leaf: {e}")))?;
        for entry in middle {
            presented.extend(certs(entry).map_err(|e| bad(format!("intermediate: {e}")))?);
        }
        let mut roots = certs(last).map_err(|e| bad(format!("roots: {e}")))?;
        if let Some(extra) = extra_roots {
            roots.extend(certs(extra).map_err(|e| bad(format!("extra roots: {e}")))?);
        }
        let Some(leaf) = presented.first().cloned() else {
            return Err(bad("no leaf certificate".into()));
        };
        if roots.is_empty() {
            return Err(bad("no root certificate".into()));
        }
        let mut unique: Vec<CertificateDer<'static>> = Vec::with_capacity(roots.len());
        for root in roots {
            if !unique.contains(&root) {
                unique.push(root);
            }
        }
        let previous = self.current();
        let trust = match previous.as_ref().map(|c| &c.trust) {
            Some(trust) if trust.roots == unique => trust.clone(),
            _ => Arc::new(self.trust_bundle(unique)?),
        };

        let parsed = ParsedCertificate::try_from(&leaf).map_err(|e| bad(e.to_string()))?;
        if parsed.subject_public_key_info().as_ref() != key.spki.as_slice() {
            return Err(bad("the leaf does not carry our public key".into()));
        }
        let uris: Vec<String> = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| bad(e.to_string()))?
            .valid_uri_names()
            .map(str::to_owned)
            .collect();
        if uris != [self.state.spiffe_id.as_str()] {
            return Err(bad(format!(
                "the leaf names {uris:?}, not {}",
                self.state.spiffe_id
            )));
        }
        let unix = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
        let intermediates = &presented[1..];
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.store,
            intermediates,
            unix,
            self.state.provider.signature_verification_algorithms.all,
        )
        .map_err(|e| bad(format!("as a server certificate: {e}")))?;
        trust
            .client_verifier
            .verify_client_cert(&leaf, intermediates, unix)
            .map_err(|e| bad(format!("as a client certificate: {e}")))?;

        let (_, x509) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| bad(e.to_string()))?;
        let validity = x509.validity();
        let current = Arc::new(Current {
            spiffe_id: self.state.spiffe_id.clone(),
            serial: hex(x509.raw_serial()),
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            chain_pem: presented.iter().map(pem).collect(),
            certified_key: Arc::new(CertifiedKey::new(presented, key.signing_key)),
            trust,
        });
        self.state.current.store(Some(current.clone()));
        Ok(current)
    }

    fn trust_bundle(&self, roots: Vec<CertificateDer<'static>>) -> Result<TrustBundle, FetchError> {
        let mut store = RootCertStore::empty();
        for root in &roots {
            store
                .add(root.clone())
                .map_err(|e| FetchError::BadChain(format!("root: {e}")))?;
        }
        let store = Arc::new(store);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(store.clone(), self.state.provider.clone())
                .build()
                .map_err(|e| FetchError::BadChain(format!("roots: {e}")))?;
        Ok(TrustBundle {
            version: self.state.trust_versions.fetch_add(1, Ordering::Relaxed) + 1,
            roots,
            store,
            client_verifier,
        })
    }
}

/// Every certificate in a PEM text (an entry of the CA's answer may hold several).
fn certs(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// PEM text of a DER certificate, 64 columns.
fn pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    // Base64 is ASCII: every 64-byte chunk is a char boundary.
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn system_time(unix_secs: i64) -> SystemTime {
    match u64::try_from(unix_secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let der = CertificateDer::from(bytes.clone());
            let text = pem(&der);
            let back: Vec<_> = CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            if len == 0 {
                continue;
            }
            assert_eq!(back, vec![CertificateDer::from(bytes)], "{len}");
        }
    }

    #[test]
    fn times_and_serials() {
        assert_eq!(rfc3339(system_time(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(system_time(86_400 + 61)), "1970-01-02T00:01:01Z");
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
    }
}
