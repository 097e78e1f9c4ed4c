//! The rotation task against an in-process spar-ca with short-lived certificates: renewal
//! at half-life with handshakes succeeding throughout, and a CA outage that keeps the old
//! certificate until the restarted CA answers again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use spar_identity::{FailureReason, Identity};
use tokio::sync::oneshot;

/// Starts `run` for `sa`; the task stops when the sender is dropped or fired.
fn start(
    ca: &TestCa,
    sa: &str,
    ttl: Duration,
) -> (
    Arc<Identity>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let config = ca.config(sa, ttl);
    let identity = Arc::new(Identity::for_config(&config).unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(spar_identity::run(identity.clone(), config, async {
        let _ = stopped.await;
    }));
    let done = tokio::spawn(async move { task.await.unwrap().unwrap() });
    (identity, stop, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_at_half_life_while_handshakes_keep_succeeding() {
    let ca = TestCa::start().await;
    let ttl = Duration::from_secs(4);
    let (server, stop_server, server_task) = start(&ca, "httpbin", ttl);
    let (client, stop_client, client_task) = start(&ca, "sleep", ttl);
    eventually(Duration::from_secs(10), "both identities ready", || {
        server.ready() && client.ready()
    })
    .await;
    // Built once: every handshake below goes through these same configs.
    let server_config = server_config(&server, false);
    let client_config = client_config(&client, vec![id("httpbin")], false);

    let first = server.current().unwrap().serial.clone();
    let mut installs = vec![(Instant::now(), first)];
    let mut seen_serials = BTreeSet::new();
    let (mut ok, mut failed) = (0u32, Vec::new());
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        match handshake(server_config.clone(), client_config.clone()).await {
            Ok(seen) => {
                ok += 1;
                assert_eq!(seen.client_id, Some(id("sleep")));
                seen_serials.insert(spar_identity_serial(&seen.server_leaf));
            }
            Err(e) => failed.push(e),
        }
        let serial = server.current().unwrap().serial.clone();
        if installs.last().map(|(_, s)| s) != Some(&serial) {
            installs.push((Instant::now(), serial));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        failed.is_empty(),
        "{} of {} handshakes failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 50, "only {ok} handshakes");
    // 4 s certificates renewed at ~2 s: three or four in 7 s, each renewal at about 2 s
    // (2 s +-40 ms, plus the fetch itself, well before the 4 s expiry).
    assert!(
        (3..=5).contains(&installs.len()),
        "{} installs: {:?}",
        installs.len(),
        installs
            .iter()
            .map(|(t, _)| t.duration_since(installs[0].0))
            .collect::<Vec<_>>()
    );
    for pair in installs.windows(2).skip(1) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(
            gap >= Duration::from_millis(1700) && gap <= Duration::from_millis(3000),
            "renewed after {gap:?}"
        );
    }
    // The handshakes used the rotated certificates, not only the first.
    assert!(seen_serials.len() >= 3, "{seen_serials:?}");
    assert!(server.stats().successes() >= 3);
    assert_eq!(server.stats().total_failures(), 0);
    assert_eq!(client.stats().total_failures(), 0);

    let _ = stop_server.send(());
    let _ = stop_client.send(());
    tokio::time::timeout(Duration::from_secs(5), async {
        server_task.await.unwrap();
        client_task.await.unwrap();
    })
    .await
    .expect("run returns on shutdown");
}

fn spar_identity_serial(leaf: &rustls::pki_types::CertificateDer<'_>) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_outage_keeps_the_old_certificate_and_a_restarted_ca_is_used_again() {
    let mut ca = TestCa::start().await;
    let (identity, stop, task) = start(&ca, "sleep", Duration::from_secs(6));
    eventually(Duration::from_secs(10), "ready", || identity.ready()).await;
    let held = identity.current().unwrap();
    let serial = held.serial.clone();

    ca.stop().await;
    // The renewal at ~3 s fails, then retries with backoff: several connect failures.
    eventually(
        Duration::from_secs(10),
        "renewals fail while the CA is down",
        || identity.stats().failures(FailureReason::Connect) >= 3,
    )
    .await;
    let still = identity.current().unwrap();
    assert_eq!(still.serial, serial, "the old certificate is kept");
    assert!(identity.ready());
    assert_eq!(identity.stats().successes(), 1);
    // ...and still works for handshakes while it is valid.
    assert!(still.not_after > std::time::SystemTime::now());
    handshake(
        server_config(&identity, false),
        client_config(&identity, vec![id("sleep")], false),
    )
    .await
    .unwrap();
    // Retries back off: not a tight loop.
    let failures = identity.stats().total_failures();
    assert!(failures < 10, "{failures} failures in a few seconds");

    ca.restart().await;
    eventually(
        Duration::from_secs(20),
        "a new certificate after the restart",
        || identity.current().unwrap().serial != serial,
    )
    .await;
    assert_eq!(identity.stats().successes(), 2);
    handshake(
        server_config(&identity, false),
        client_config(&identity, vec![id("sleep")], false),
    )
    .await
    .unwrap();

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_fetch_retries_until_the_ca_comes_up() {
    let mut ca = TestCa::start().await;
    ca.stop().await;
    let (identity, stop, task) = start(&ca, "sleep", Duration::from_secs(3600));
    eventually(
        Duration::from_secs(10),
        "fetches fail while the CA is down",
        || identity.stats().failures(FailureReason::Connect) >= 2,
    )
    .await;
    assert!(!identity.ready());
    ca.restart().await;
    eventually(Duration::from_secs(20), "ready once the CA is up", || {
        identity.ready()
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();

    // A config naming another identity is refused at once.
    let config = ca.config("sleep", Duration::from_secs(3600));
    let other = Arc::new(Identity::new(id("httpbin")));
    let err = spar_identity::run(other, config, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), FailureReason::Config, "{err}");
}
