//! Interop with OpenSSL, a peer users meet: CSRs that `openssl req` makes (ECDSA P-256, and
//! RSA 2048 as Istio's pilot-agent makes by default) are signed, and `openssl verify`
//! accepts the chain for both TLS client and server purposes; `openssl x509` reads the
//! fields Istio's peers rely on. Fails, never skips, when openssl is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use spar_ca::Authenticator;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed by this test (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `openssl req` for the SPIFFE URI with a new key of `newkey` (openssl's syntax); the CSR
/// PEM. The key stays in `dir/key.pem`.
fn openssl_csr(dir: &Path, newkey: &[&str], uri: &str) -> String {
    let san = format!("subjectAltName=URI:{uri}");
    let mut args = vec![
        "req", "-new", "-nodes", "-keyout", "key.pem", "-out", "csr.pem",
    ];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-subj", "/O=cluster.local", "-addext", &san]);
    openssl(dir, &args);
    std::fs::read_to_string(dir.join("csr.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_csrs_are_signed_and_openssl_verifies_the_chain() {
    let served = Served::start(fresh_ca(), Authenticator::local()).await;
    let token = served
        .ca
        .mint_token(&sleep(), Duration::from_secs(600))
        .unwrap();
    let mut client = served.client().await;
    let keys: [&[&str]; 2] = [
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &["-newkey", "rsa:2048"],
    ];
    for newkey in keys {
        let dir = spar_tests::proc::scratch_dir("ca-openssl");
        let csr = openssl_csr(&dir, newkey, SLEEP_ID);
        let chain = create(&mut client, &csr, 3600, Some(&token)).await.unwrap();
        write(&dir, "leaf.pem", &chain[0]);
        write(&dir, "root.pem", chain.last().unwrap());
        for purpose in ["sslclient", "sslserver"] {
            let out = openssl(
                &dir,
                &[
                    "verify", "-CAfile", "root.pem", "-purpose", purpose, "leaf.pem",
                ],
            );
            assert_eq!(out.trim(), "leaf.pem: OK", "{newkey:?} {purpose}");
        }
        let text = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
        for want in [
            "CA:FALSE",
            "Digital Signature, Key Encipherment",
            "TLS Web Server Authentication, TLS Web Client Authentication",
            &format!("URI:{SLEEP_ID}"),
        ] {
            assert!(text.contains(want), "{want} in {newkey:?}:\n{text}");
        }
        // The requested subject is not copied; only the URI names the workload.
        assert!(!text.contains("O = cluster.local"), "{text}");
        assert!(!text.contains("DNS:"), "{text}");
        // The certificate is for the key openssl generated.
        let cert_key = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
        let own_key = openssl(&dir, &["pkey", "-in", "key.pem", "-pubout"]);
        assert_eq!(cert_key, own_key, "{newkey:?}");
    }

    // A short RSA key is refused.
    let dir = spar_tests::proc::scratch_dir("ca-openssl");
    let weak = openssl_csr(&dir, &["-newkey", "rsa:1024"], SLEEP_ID);
    let status = create(&mut client, &weak, 0, Some(&token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("RSA of 1024 bits"), "{status:?}");
    served.stop().await;
}
