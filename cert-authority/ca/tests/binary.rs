//! The `spar-ca` binary as a user runs it: `token` mints, `serve` answers CreateCertificate
//! over TLS with the root that `root` prints, logs one audit line per certificate, serves
//! its counters at /metrics, and exits cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const SIGTERM: i32 = 15;

/// `GET path` on 127.0.0.1:port: the status line and the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_mints_tokens_and_counts() {
    let dir = spar_tests::proc::scratch_dir("ca-bin").join("state");
    let bin = env!("CARGO_BIN_EXE_spar-ca");
    // The state directory from the environment, as a user's shell would set it.
    let out = Command::new(bin)
        .env("SPAR_CA_DIR", &dir)
        .args([
            "token",
            "--namespace",
            "default",
            "--service-account",
            "sleep",
        ])
        .args(["--ttl", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (port, metrics_port) = (spar_tests::free_port(), spar_tests::free_port());
    let child = Command::new(bin)
        .args(["serve", "--dir"])
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut process = spar_tests::proc::Process { child };
    spar_tests::assert_eventually(Duration::from_secs(20), "spar-ca listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok()
    });
    // The root the binary created, as `spar-ca root` prints it.
    let out = Command::new(bin)
        .args(["root", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let bundle = String::from_utf8(out.stdout).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&bundle))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        spar_ca::service::pb::istio_certificate_service_client::IstioCertificateServiceClient::new(
            channel,
        );
    let chain = create(&mut client, &csr(SLEEP_ID).0, 0, Some(&token))
        .await
        .unwrap();
    verify_as_client_cert(&chain, &bundle);
    let refused = create(&mut client, &csr(SLEEP_ID).0, 0, Some("not-a-token")).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    let other = "spiffe://cluster.local/ns/default/sa/productpage";
    let refused = create(&mut client, &csr(other).0, 0, Some(&token)).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);

    let (status, body) = http_get(metrics_port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for line in [
        "spar_ca_certificates_issued_total 1",
        r#"spar_ca_requests_refused_total{reason="invalid_token"} 1"#,
        r#"spar_ca_requests_refused_total{reason="identity_mismatch"} 1"#,
        r#"spar_ca_requests_refused_total{reason="expired_token"} 0"#,
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }
    assert_eq!(http_get(metrics_port, "/").0, "HTTP/1.1 404 Not Found");

    process.signal(SIGTERM);
    assert_eq!(
        process.wait_exit(Duration::from_secs(10)),
        Some(0),
        "clean exit on SIGTERM"
    );
    // The audit line for the one certificate issued, on its own target.
    let mut stderr = String::new();
    process
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let audits: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(spar_ca::AUDIT_TARGET))
        .collect();
    assert_eq!(audits.len(), 1, "{stderr}");
    let serial = hex(parse(der(&chain[0]).remove(0)).raw_serial());
    for field in [
        format!("identity={SLEEP_ID}"),
        format!("serial={serial}"),
        "not_after=".to_owned(),
    ] {
        assert!(audits[0].contains(&field), "{field} in {}", audits[0]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn bad_flags_and_files_fail_with_a_message() {
    let bin = env!("CARGO_BIN_EXE_spar-ca");
    let dir = spar_tests::proc::scratch_dir("ca-bin-bad");
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "token",
                "--namespace",
                "Default",
                "--service-account",
                "sleep",
            ],
            "namespace",
        ),
        (
            &[
                "serve",
                "--trust-domain",
                "Bad Domain",
                "--listen",
                "127.0.0.1:0",
            ],
            "--trust-domain",
        ),
        (
            &["root", "--plugin-certs", "/nonexistent/cacerts"],
            "ca-cert.pem",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(bin)
            .env("SPAR_CA_DIR", &dir)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
