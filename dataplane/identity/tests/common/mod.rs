//! Shared by the spar-identity integration tests: an in-process spar-ca on a loopback port
//! (stoppable and restartable on the same port), configs pointing at it, TLS configs built
//! from an `Identity`, and an mTLS handshake over an in-memory pipe.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use spar_ca::{Authenticator, Ca, ServiceAccount};
use spar_identity::{Config, Identity, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub const TD: &str = "cluster.local";
pub const NS: &str = "default";

pub fn id(sa: &str) -> String {
    format!("spiffe://{TD}/ns/{NS}/sa/{sa}")
}

/// A fresh directory under the system's temp dir.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spar-identity-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// spar-ca serving on 127.0.0.1; stops when dropped.
pub struct TestCa {
    pub ca: Arc<Ca>,
    pub dir: PathBuf,
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestCa {
    pub async fn start() -> TestCa {
        let dir = scratch("ca");
        let ca = Arc::new(Ca::load_or_create(&dir).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut served = TestCa {
            ca,
            dir,
            port,
            stop: None,
            done: None,
        };
        served.serve(listener);
        served
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let ca = self.ca.clone();
        self.done = Some(tokio::spawn(async move {
            spar_ca::serve(listener, ca, Authenticator::local(), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }));
        self.stop = Some(stop);
    }

    /// Stops serving and waits until the port is closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }

    /// Serves again, same CA, same port.
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", self.port),
            }
        };
        self.serve(listener);
    }

    /// A token file for `sa`, valid for an hour.
    pub fn token_file(&self, sa: &str) -> PathBuf {
        let token = self
            .ca
            .mint_token(
                &ServiceAccount::new(NS, sa).unwrap(),
                Duration::from_secs(3600),
            )
            .unwrap();
        let path = self.dir.join(format!("token-{sa}"));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path
    }

    /// A config for `sa` in `default`: the root read from the CA's root file, the token
    /// from a file, certificates for `ttl`.
    pub fn config(&self, sa: &str, ttl: Duration) -> Config {
        let mut config = Config::new(
            format!("https://127.0.0.1:{}", self.port),
            Source::File(self.dir.join(spar_ca::ROOT_CERT)),
            "localhost",
            Source::File(self.token_file(sa)),
            TD,
            NS,
            sa,
        );
        config.ttl = ttl;
        config.connect_timeout = Duration::from_secs(2);
        config.request_timeout = Duration::from_secs(5);
        config
    }

    /// An identity for `sa` holding a certificate for `ttl`.
    pub async fn identity(&self, sa: &str, ttl: Duration) -> (Arc<Identity>, Config) {
        let config = self.config(sa, ttl);
        let identity = Arc::new(Identity::for_config(&config).unwrap());
        spar_identity::fetch(&identity, &config).await.unwrap();
        (identity, config)
    }

    /// A certificate for `sa` signed by this CA directly, valid for `ttl` from now, with
    /// its PKCS#8 key: a peer that does not go through spar-identity.
    pub fn sign_direct(
        &self,
        sa: &str,
        ttl: Duration,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![rcgen::SanType::URI(id(sa).try_into().unwrap())];
        let csr = params.serialize_request(&key).unwrap();
        let identity = spar_ca::SpiffeId::parse(&id(sa)).unwrap();
        let issued = self.ca.sign(csr.der(), &identity, ttl).unwrap();
        let leaf = der(&issued.chain[0]);
        (
            leaf,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn der(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(tls12_only: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    if tls12_only {
        &TLS12_ONLY
    } else {
        rustls::DEFAULT_VERSIONS
    }
}

/// A mesh server: presents the identity's certificate, requires a client certificate
/// from its trust bundle.
pub fn server_config(identity: &Identity, tls12_only: bool) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(tls12_only))
            .unwrap()
            .with_client_cert_verifier(identity.client_cert_verifier())
            .with_cert_resolver(identity.server_cert_resolver()),
    )
}

/// A mesh client: presents the identity's certificate, wants one of `expected`.
pub fn client_config(
    identity: &Identity,
    expected: Vec<String>,
    tls12_only: bool,
) -> Arc<ClientConfig> {
    client_config_with(
        identity.server_cert_verifier(expected),
        Some(identity),
        tls12_only,
    )
}

/// A client verifying with `verifier` and presenting `cert_from`'s certificate.
pub fn client_config_with(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    cert_from: Option<&Identity>,
    tls12_only: bool,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls12_only))
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match cert_from {
        Some(identity) => builder.with_client_cert_resolver(identity.client_cert_resolver()),
        None => builder.with_no_client_auth(),
    };
    // Full handshakes only: a resumed session re-uses the certificates of the first one,
    // and the tests are about what each new handshake presents and verifies.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A server with a fixed certificate (not from an `Identity`), verifying clients with
/// `identity`'s verifier.
pub fn static_server_config(
    identity: &Identity,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(identity.client_cert_verifier())
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// A client with a fixed certificate, verifying servers with `identity`'s verifier.
pub fn static_client_config(
    identity: &Identity,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(identity.server_cert_verifier(vec![]))
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// What each side saw of a completed handshake.
#[derive(Debug)]
pub struct Seen {
    /// The client's SPIFFE ID as the server saw it.
    pub client_id: Option<String>,
    /// The server's SPIFFE ID and leaf as the client saw them.
    pub server_id: Option<String>,
    pub server_leaf: CertificateDer<'static>,
}

/// An mTLS handshake over an in-memory pipe, then one message from server to client (in
/// TLS 1.3 a client learns that the server refused its certificate only when it reads).
/// `Err` carries both sides' errors.
pub async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> Result<Seen, String> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let serve = async move {
        let mut tls = TlsAcceptor::from(server)
            .accept(server_io)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(spar_tls::first_uri_san);
        tls.write_all(b"ok")
            .await
            .map_err(|e| format!("server: {e}"))?;
        tls.flush().await.map_err(|e| format!("server: {e}"))?;
        Ok::<_, String>(peer)
    };
    let connect = async move {
        let name = ServerName::try_from("mesh.invalid").unwrap();
        let mut tls = TlsConnector::from(client)
            .connect(name, client_io)
            .await
            .map_err(|e| format!("client: {e}"))?;
        let mut ok = [0u8; 2];
        tls.read_exact(&mut ok)
            .await
            .map_err(|e| format!("client: {e}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or("client: no server certificate")?;
        Ok::<_, String>((spar_tls::first_uri_san(&leaf), leaf.into_owned()))
    };
    let (served, connected) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(serve, connect)
    })
    .await
    .map_err(|_| "handshake timed out".to_string())?;
    match (served, connected) {
        (Ok(client_id), Ok((server_id, server_leaf))) => Ok(Seen {
            client_id,
            server_id,
            server_leaf,
        }),
        (s, c) => Err(format!("{:?} / {:?}", s.err(), c.err())),
    }
}

/// Polls `cond` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
