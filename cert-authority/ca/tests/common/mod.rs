//! Shared by the spar-ca integration tests: a CA served on a loopback port over TLS, a
//! tonic client that trusts its roots, CSRs made by rcgen, and checks on what comes back.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, UnixTime};
use spar_ca::service::pb::IstioCertificateRequest;
use spar_ca::service::pb::istio_certificate_service_client::IstioCertificateServiceClient;
use spar_ca::{Authenticator, Ca, ServiceAccount};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

pub const SLEEP_ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";

pub fn sleep() -> ServiceAccount {
    ServiceAccount::new("default", "sleep").unwrap()
}

/// A CA in a fresh scratch directory.
pub fn fresh_ca() -> Ca {
    fresh_ca_in().0
}

/// A CA in a fresh scratch directory, and that directory.
pub fn fresh_ca_in() -> (Ca, PathBuf) {
    let dir = spar_tests::proc::scratch_dir("ca");
    (Ca::load_or_create(&dir).unwrap(), dir)
}

/// A CA serving on 127.0.0.1; stops when dropped.
pub struct Served {
    pub ca: Arc<Ca>,
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    pub async fn start(ca: Ca, authenticator: Authenticator) -> Served {
        let ca = Arc::new(ca);
        let port = spar_tests::free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = ca.clone();
        let done = tokio::spawn(async move {
            spar_ca::serve(listener, serving, authenticator, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Served {
            ca,
            port,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// A client trusting `bundle` (PEM roots), dialling the server as `localhost`.
    pub async fn client_trusting(&self, bundle: &str) -> IstioCertificateServiceClient<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(bundle))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://127.0.0.1:{}", self.port))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        IstioCertificateServiceClient::new(channel)
    }

    pub async fn client(&self) -> IstioCertificateServiceClient<Channel> {
        self.client_trusting(&self.ca.trust_bundle()).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A PEM CSR from a new P-256 key for `sans`, with `edit` applied to the params.
pub fn csr_with(
    sans: Vec<SanType>,
    edit: impl FnOnce(&mut CertificateParams),
) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    edit(&mut params);
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

pub fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// A PEM CSR for one SPIFFE URI.
pub fn csr(id: &str) -> (String, KeyPair) {
    csr_with(vec![uri(id)], |_| {})
}

/// CreateCertificate with `authorization: Bearer <token>` when a token is given.
pub async fn create(
    client: &mut IstioCertificateServiceClient<Channel>,
    csr: &str,
    validity_secs: i64,
    token: Option<&str>,
) -> Result<Vec<String>, tonic::Status> {
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.to_owned(),
        validity_duration: validity_secs,
        metadata: None,
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client
        .create_certificate(request)
        .await
        .map(|r| r.into_inner().cert_chain)
}

pub fn der(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The seconds between a certificate's notBefore and notAfter.
pub fn lifetime_secs(cert: &X509Certificate<'_>) -> i64 {
    let v = cert.validity();
    v.not_after.timestamp() - v.not_before.timestamp()
}

/// Checks `chain` (leaf, intermediates, bundle last) as a TLS server checks a client's
/// certificate: rustls's WebPKI verifier, trusting only `roots` (PEM).
pub fn verify_as_client_cert(chain: &[String], roots: &str) {
    let mut store = rustls::RootCertStore::empty();
    for root in der(roots) {
        store.add(root).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(store.into(), provider)
            .build()
            .unwrap();
    let leaf = der(&chain[0]).remove(0);
    let intermediates: Vec<_> = chain[1..chain.len() - 1]
        .iter()
        .flat_map(|p| der(p))
        .collect();
    verifier
        .verify_client_cert(&leaf, &intermediates, UnixTime::now())
        .unwrap();
}

/// Checks `chain` as a TLS client checks a server's certificate chain: rustls's WebPKI path
/// validation for serverAuth, trusting only `roots` (PEM). (The name check is the mesh's
/// SPIFFE check, not a DNS name: the leaf has only its URI.)
pub fn verify_as_server_cert(chain: &[String], roots: &str) -> Result<(), rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    for root in der(roots) {
        store.add(root).unwrap();
    }
    let leaf = der(&chain[0]).remove(0);
    let intermediates: Vec<_> = chain[1..chain.len() - 1]
        .iter()
        .flat_map(|p| der(p))
        .collect();
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &rustls::server::ParsedCertificate::try_from(&leaf)?,
        &store,
        &intermediates,
        UnixTime::now(),
        algs.all,
    )
}

/// A compact JWS with any header and claims (JSON text), signed ES256 with the PKCS#8 key
/// in `key_pem` (a CA's `token-key.pem`): what a forger who stole nothing, or an attacker
/// holding the key, could make.
pub fn jws(key_pem: &str, header: &str, claims: &str) -> String {
    use base64::Engine as _;
    use rustls::pki_types::pem::PemObject;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .unwrap();
    let input = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", b64.encode(sig.as_ref()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Parses a DER certificate (leaked: tests only, a few certificates each).
pub fn parse(der: CertificateDer<'static>) -> X509Certificate<'static> {
    let bytes: &'static [u8] = Box::leak(der.as_ref().to_vec().into_boxed_slice());
    X509Certificate::from_der(bytes).unwrap().1
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}
