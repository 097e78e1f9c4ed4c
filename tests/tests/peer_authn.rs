//! PeerAuthentication end to end: spar-control (with its embedded CA) translates a sidecar's
//! explicit ingress listener for a spar-proxy that holds a mesh identity. Without a policy
//! the listener is PERMISSIVE: plaintext and mesh mTLS both reach the application; a
//! mesh-wide STRICT policy, pushed live, leaves only mTLS with a certificate from the CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use spar_tests::mesh_ca::{token, workload_cert};
use spar_tests::proc::{Echo, Process, SparProxy, bin, scratch_dir};
use spar_tests::{assert_eventually, free_port, http};

fn control(config: &Path, ca_dir: &Path, xds: u16, ca: u16) -> Process {
    let child = Command::new(bin("spar-control"))
        .arg("--config-dir")
        .arg(config)
        .args(["--xds-address", &format!("127.0.0.1:{xds}")])
        .args([
            "--monitoring-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["--watch-every", "100ms", "-l", "warn"])
        .args(["--ca-address", &format!("127.0.0.1:{ca}")])
        .arg("--ca-dir")
        .arg(ca_dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start spar-control");
    Process { child }
}

fn sidecar(inbound: u16, app: std::net::SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{ name: reviews, namespace: default }}
spec:
  workloadSelector: {{ labels: {{ app: reviews }} }}
  ingress:
  - port: {{ number: {inbound}, protocol: HTTP, name: http }}
    bind: 127.0.0.1
    defaultEndpoint: {app}
    captureMode: NONE
"#
    )
}

const STRICT: &str = r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec:
  mtls: { mode: STRICT }
"#;

/// curl over mesh mTLS (server name not checked: the certificate names a SPIFFE URI), with
/// the ALPN an Istio client would not send; the status, or "fail".
fn curl_tls(port: u16, key: &Path, pem: &Path) -> String {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "5", "--key"])
        .arg(key)
        .arg("--cert")
        .arg(pem)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl (apt install curl)");
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        "fail".to_owned()
    }
}

/// openssl s_client offering Istio's client ALPN, then an HTTP/1.1 request: the status
/// line, or `nothing` when the connection was refused.
fn istio_client(port: u16, root: &Path, key: &Path, pem: &Path) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-alpn", "istio-http/1.1,istio,http/1.1", "-CAfile"])
        .arg(root)
        .arg("-key")
        .arg(key)
        .arg("-cert")
        .arg(pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl (apt install openssl)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().unwrap_or("nothing").to_owned()
}

fn plaintext(port: u16) -> String {
    match http::get(format!("127.0.0.1:{port}").parse().unwrap(), "/") {
        Ok(r) => r.status.to_string(),
        Err(_) => "refused".to_owned(),
    }
}

#[test]
fn permissive_by_default_and_strict_when_a_policy_says_so() {
    let config = scratch_dir("pa-config");
    let ca_dir = scratch_dir("pa-ca");
    let work = scratch_dir("pa-work");
    let (xds, ca) = (free_port(), free_port());
    let app = Echo::start(&[]);
    let inbound = free_port();
    std::fs::write(config.join("sidecar.yaml"), sidecar(inbound, app.addr)).unwrap();
    let _control = control(&config, &ca_dir, xds, ca);
    let root = ca_dir.join("root-cert.pem");
    assert_eventually(Duration::from_secs(20), "the CA serves", || {
        root.exists() && std::net::TcpStream::connect(("127.0.0.1", ca)).is_ok()
    });
    let token_file = work.join("reviews.token");
    std::fs::write(&token_file, token(&ca_dir, "default", "reviews")).unwrap();
    let _proxy = SparProxy::start(
        &spar_tests::ads_bootstrap(
            "sidecar~127.0.0.1~reviews-0.default~default.svc.cluster.local",
            "default",
            "app: reviews",
            xds,
        ),
        &[
            "--ca-address",
            &format!("https://127.0.0.1:{ca}"),
            "--ca-root",
            root.to_str().unwrap(),
            "--token-file",
            token_file.to_str().unwrap(),
            "--service-account",
            "reviews",
        ],
    );
    let (key, pem) = workload_cert(ca, &ca_dir, &work, "default", "productpage");

    // No PeerAuthentication: PERMISSIVE. Plaintext and mesh mTLS both get through.
    assert_eventually(Duration::from_secs(30), "plaintext through", || {
        plaintext(inbound) == "200"
    });
    assert_eq!(
        istio_client(inbound, &root, &key, &pem),
        "HTTP/1.1 200 OK",
        "mesh mTLS"
    );
    // TLS without an istio ALPN is not mesh traffic: no chain takes it.
    assert_eq!(curl_tls(inbound, &key, &pem), "fail");

    // Mesh-wide STRICT: plaintext is closed, mesh mTLS (any ALPN) still gets through.
    std::fs::write(config.join("strict.yaml"), STRICT).unwrap();
    assert_eventually(Duration::from_secs(30), "plaintext refused", || {
        plaintext(inbound) == "refused"
    });
    assert_eq!(curl_tls(inbound, &key, &pem), "200");
    assert_eq!(
        istio_client(inbound, &root, &key, &pem),
        "HTTP/1.1 200 OK",
        "mesh mTLS"
    );
}
