//! spar-identity against an in-process spar-ca: fetching a certificate (the key stays
//! here, the chain and identity are right, tokens are read per request), and mTLS
//! handshakes between configs built from `Identity` (who is accepted and who is refused).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use spar_identity::{FailureReason, FetchError, Identity, Source};
use x509_parser::prelude::{FromDer, X509Certificate};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_installs_our_identity_with_our_key() {
    let ca = TestCa::start().await;
    let config = ca.config("sleep", HOUR);
    let identity = Identity::for_config(&config).unwrap();
    assert_eq!(identity.spiffe_id(), id("sleep"));
    assert!(!identity.ready() && identity.current().is_none());
    assert!(!identity.describe().ready);

    let current = spar_identity::fetch(&identity, &config).await.unwrap();
    assert!(identity.ready());
    assert_eq!(current.spiffe_id, id("sleep"));
    // We present the leaf only (the root is not sent), issued by the CA's root for us.
    let presented = &current.certified_key.cert;
    assert_eq!(presented.len(), 1);
    let (_, leaf) = X509Certificate::from_der(presented[0].as_ref()).unwrap();
    let root_der = der(&ca.ca.roots()[0]).remove(0);
    let (_, root) = X509Certificate::from_der(root_der.as_ref()).unwrap();
    assert_eq!(leaf.issuer(), root.subject());
    assert_eq!(spar_tls::first_uri_san(&presented[0]), Some(id("sleep")));
    // The leaf carries the public half of the key we sign with; the private half is in
    // the process only (the CSR's contents are checked in key.rs's tests).
    let ours = current.certified_key.key.public_key().unwrap();
    assert_eq!(leaf.public_key().raw, ours.as_ref());
    current.certified_key.keys_match().unwrap();
    // Validity and serial as the certificate says; an hour asked, an hour given.
    let v = leaf.validity();
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(secs(current.not_before), v.not_before.timestamp());
    assert_eq!(secs(current.not_after), v.not_after.timestamp());
    let left = current.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > HOUR - Duration::from_secs(30) && left <= HOUR,
        "{left:?}"
    );
    let serial: String = leaf
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(current.serial, serial);
    // The trust bundle is the CA's roots.
    assert_eq!(current.trust.roots, der(&ca.ca.trust_bundle()));
    assert_eq!(current.trust.version, 1);
    // The admin view says the same, as JSON.
    let view = serde_json::to_value(identity.describe()).unwrap();
    assert_eq!(view["identity"], id("sleep"));
    assert_eq!(view["ready"], true);
    assert_eq!(view["certificate"]["serial"], serial.as_str());
    assert_eq!(
        view["certificate"]["not_after"],
        v.not_after
            .to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let chain_pem = view["certificate"]["chain_pem"][0].as_str().unwrap();
    assert_eq!(der(chain_pem), vec![presented[0].clone()]);
    let roots: Vec<_> = view["roots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| der(r.as_str().unwrap()))
        .collect();
    assert_eq!(roots, current.trust.roots);
    assert_eq!(identity.stats().successes(), 1);
    assert_eq!(identity.stats().total_failures(), 0);

    // Another fetch: another key and serial, the same bundle (not rebuilt).
    let again = spar_identity::fetch(&identity, &config).await.unwrap();
    assert_ne!(again.serial, current.serial);
    assert_ne!(
        again.certified_key.key.public_key(),
        current.certified_key.key.public_key()
    );
    assert_eq!(again.trust.version, 1);
    assert!(std::sync::Arc::ptr_eq(&again.trust, &current.trust));
    assert_eq!(identity.current().unwrap().serial, again.serial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_read_at_each_request_and_refusals_are_counted() {
    let ca = TestCa::start().await;
    let config = ca.config("sleep", HOUR);
    let Source::File(token_path) = &config.token else {
        unreachable!()
    };
    let identity = Identity::for_config(&config).unwrap();

    std::fs::write(token_path, "not-a-token").unwrap();
    let err = spar_identity::fetch(&identity, &config).await.unwrap_err();
    assert_eq!(err.reason(), FailureReason::Unauthenticated, "{err}");

    // A valid token for another account: the CA will not sign our identity.
    let other = std::fs::read_to_string(ca.token_file("httpbin")).unwrap();
    std::fs::write(token_path, other).unwrap();
    let err = spar_identity::fetch(&identity, &config).await.unwrap_err();
    assert_eq!(err.reason(), FailureReason::PermissionDenied, "{err}");

    std::fs::remove_file(token_path).unwrap();
    let err = spar_identity::fetch(&identity, &config).await.unwrap_err();
    assert!(matches!(err, FetchError::Token { .. }), "{err}");
    assert!(!identity.ready());

    // The file is rotated: the next request uses it, no restart.
    ca.token_file("sleep");
    spar_identity::fetch(&identity, &config).await.unwrap();
    assert!(identity.ready());
    let stats = identity.stats();
    assert_eq!(stats.successes(), 1);
    assert_eq!(stats.failures(FailureReason::Unauthenticated), 1);
    assert_eq!(stats.failures(FailureReason::PermissionDenied), 1);
    assert_eq!(stats.failures(FailureReason::Token), 1);
    assert_eq!(stats.total_failures(), 3);
    assert_eq!(stats.snapshot().failures.len(), FailureReason::ALL.len());

    // A CA whose serving certificate does not chain to the configured root: refused
    // before any token is sent.
    let stranger = TestCa::start().await;
    let mut wrong = config.clone();
    wrong.ca_root = Source::Inline(stranger.ca.trust_bundle());
    let err = spar_identity::fetch(&identity, &wrong).await.unwrap_err();
    assert_eq!(err.reason(), FailureReason::Connect, "{err}");
    // Nor does a wrong server name pass.
    let mut wrong = config.clone();
    wrong.ca_server_name = "not-the-ca.example".into();
    let err = spar_identity::fetch(&identity, &wrong).await.unwrap_err();
    assert_eq!(err.reason(), FailureReason::Connect, "{err}");
    assert!(identity.ready(), "failures never drop the certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_mtls_handshake_both_ways_over_tls13_and_tls12() {
    let ca = TestCa::start().await;
    let (server, _) = ca.identity("httpbin", HOUR).await;
    let (client, _) = ca.identity("sleep", HOUR).await;
    for tls12_only in [false, true] {
        let seen = handshake(
            server_config(&server, tls12_only),
            client_config(&client, vec![id("httpbin")], tls12_only),
        )
        .await
        .unwrap();
        assert_eq!(
            seen.client_id,
            Some(id("sleep")),
            "the server sees who called"
        );
        assert_eq!(seen.server_id, Some(id("httpbin")));
        // Any SPIFFE ID from the bundle when none is expected.
        let seen = handshake(
            server_config(&server, tls12_only),
            client_config(&client, vec![], tls12_only),
        )
        .await
        .unwrap();
        assert_eq!(seen.server_id, Some(id("httpbin")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_san_mismatch_is_refused_by_the_client() {
    let ca = TestCa::start().await;
    let (server, _) = ca.identity("httpbin", HOUR).await;
    let (client, _) = ca.identity("sleep", HOUR).await;
    let err = handshake(
        server_config(&server, false),
        client_config(&client, vec![id("reviews"), id("ratings")], false),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("client:") && err.contains("NotValidForName"),
        "{err}"
    );
    // One of several expected is enough (the control).
    handshake(
        server_config(&server, false),
        client_config(&client, vec![id("reviews"), id("httpbin")], false),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_from_another_ca_are_refused_unless_their_root_is_added() {
    let ca = TestCa::start().await;
    let other = TestCa::start().await;
    let (server, server_config_) = ca.identity("httpbin", HOUR).await;
    let (ours, _) = ca.identity("sleep", HOUR).await;
    let (theirs, _) = other.identity("sleep", HOUR).await;

    // A client presenting a certificate from another CA (but trusting our server).
    let err = handshake(
        server_config(&server, false),
        client_config_with(ours.server_cert_verifier(vec![]), Some(&theirs), false),
    )
    .await
    .unwrap_err();
    // Both CAs' roots have the same subject, so WebPKI finds "an issuer" by name and then
    // the signature does not verify; either way the chain does not lead to our bundle.
    let not_ours = |e: &str| e.contains("UnknownIssuer") || e.contains("BadSignature");
    assert!(err.contains("server:") && not_ours(&err), "{err}");
    // A client with no certificate at all.
    let err = handshake(
        server_config(&server, false),
        client_config_with(ours.server_cert_verifier(vec![]), None, false),
    )
    .await
    .unwrap_err();
    assert!(err.contains("server:"), "{err}");
    // A server from another CA, as the client sees it.
    let err = handshake(
        server_config(&theirs, false),
        client_config(&ours, vec![], false),
    )
    .await
    .unwrap_err();
    assert!(err.contains("client:") && not_ours(&err), "{err}");
    // The control: our own CA's client is accepted by the same server config.
    handshake(
        server_config(&server, false),
        client_config(&ours, vec![], false),
    )
    .await
    .unwrap();

    // The other CA's root as an extra root: the next certificate's bundle has both, and
    // the same server (same ServerConfig) now accepts their client.
    let config = server_config(&server, false);
    let mut extended = server_config_;
    extended.extra_roots = Some(Source::Inline(other.ca.trust_bundle()));
    let before = server.current().unwrap().trust.version;
    let current = spar_identity::fetch(&server, &extended).await.unwrap();
    assert_eq!(current.trust.roots.len(), 2);
    assert_eq!(current.trust.version, before + 1);
    let seen = handshake(
        config,
        client_config_with(ours.server_cert_verifier(vec![]), Some(&theirs), false),
    )
    .await
    .unwrap();
    assert_eq!(seen.client_id, Some(id("sleep")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_peer_certificates_are_refused() {
    let ca = TestCa::start().await;
    let (ours, _) = ca.identity("sleep", HOUR).await;
    // Certificates from our own CA, for a second: wait until they are past not_after.
    let (server_chain, server_key) = ca.sign_direct("httpbin", Duration::from_secs(1));
    let (client_chain, client_key) = ca.sign_direct("reviews", Duration::from_secs(1));
    let (fresh_chain, fresh_key) = ca.sign_direct("reviews", HOUR);
    let (_, leaf) = X509Certificate::from_der(server_chain[0].as_ref()).unwrap();
    let expires = leaf.validity().not_after.timestamp();
    eventually(
        Duration::from_secs(10),
        "the short certificates expire",
        || {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            now > expires + 1
        },
    )
    .await;

    // An expired server, as our client sees it.
    let err = handshake(
        static_server_config(&ours, server_chain, server_key),
        client_config(&ours, vec![], false),
    )
    .await
    .unwrap_err();
    assert!(err.contains("client:") && err.contains("Expired"), "{err}");
    // An expired client, as our server sees it.
    let err = handshake(
        server_config(&ours, false),
        static_client_config(&ours, client_chain, client_key),
    )
    .await
    .unwrap_err();
    assert!(err.contains("server:") && err.contains("Expired"), "{err}");
    // The control: the same kind of client, not expired, is accepted.
    let seen = handshake(
        server_config(&ours, false),
        static_client_config(&ours, fresh_chain, fresh_key),
    )
    .await
    .unwrap();
    assert_eq!(seen.client_id, Some(id("reviews")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_nothing_is_presented_or_trusted() {
    let ca = TestCa::start().await;
    let (ready, _) = ca.identity("sleep", HOUR).await;
    let empty = Identity::new(id("httpbin"));
    // As a server: no certificate to present.
    let err = handshake(
        server_config(&empty, false),
        client_config(&ready, vec![], false),
    )
    .await
    .unwrap_err();
    assert!(err.contains("server:"), "{err}");
    // As a client: no bundle to verify the server with.
    let err = handshake(
        server_config(&ready, false),
        client_config(&empty, vec![], false),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("client:") && err.contains("no mesh trust bundle"),
        "{err}"
    );
}

/// spar-proxy's control thread runs a current-thread tokio runtime: fetching works there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_runs_on_a_current_thread_runtime() {
    let ca = TestCa::start().await;
    let config = ca.config("sleep", HOUR);
    let identity = Identity::for_config(&config).unwrap();
    let on_thread = identity.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(spar_identity::fetch(&on_thread, &config))
            .map(|c| c.serial.clone())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        identity.current().unwrap().serial,
        fetched,
        "clones share the state"
    );
}
