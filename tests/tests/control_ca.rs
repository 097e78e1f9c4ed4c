//! The CA inside spar-control: a gRPC client that is not ours (Python grpcio, as an Istio
//! agent would call istiod on 15012) gets a certificate for the identity its token proves,
//! and nothing else; the root is created on first start with 0600 keys and kept across
//! restarts; the monitoring port counts what was issued and refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use spar_tests::mesh_ca::{create, csr, token};
use spar_tests::proc::{Process, bin, metric_sum, scratch_dir};
use spar_tests::{assert_eventually, free_port, http};

fn control(config: &Path, ca_dir: &Path, ca: u16, monitoring: u16) -> Process {
    let child = Command::new(bin("spar-control"))
        .arg("--config-dir")
        .arg(config)
        .args(["--xds-address", &format!("127.0.0.1:{}", free_port())])
        .args(["--monitoring-address", &format!("127.0.0.1:{monitoring}")])
        .args(["--ca-address", &format!("127.0.0.1:{ca}")])
        .arg("--ca-dir")
        .arg(ca_dir)
        .args(["-l", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start spar-control");
    Process { child }
}

#[test]
fn spar_control_signs_the_identity_a_token_proves_and_nothing_else() {
    let config = scratch_dir("ca-config");
    let ca_dir = scratch_dir("ca-state");
    let work = scratch_dir("ca-client");
    let (ca, monitoring) = (free_port(), free_port());
    let mut control = control(&config, &ca_dir, ca, monitoring);
    let root = ca_dir.join("root-cert.pem");
    assert_eventually(Duration::from_secs(20), "the CA serves", || {
        root.exists() && std::net::TcpStream::connect(("127.0.0.1", ca)).is_ok()
    });
    let mode = std::fs::metadata(ca_dir.join("root-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the root key is private");

    let reviews = "spiffe://cluster.local/ns/default/sa/reviews";
    let token = token(&ca_dir, "default", "reviews");
    let got = create(ca, &root, &csr(&work, "reviews", reviews), &token);
    assert_eq!(got["ok"], true, "{got}");
    let chain: Vec<&str> = got["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(chain.len() >= 2, "leaf and root: {got}");
    let root_pem = std::fs::read_to_string(&root).unwrap();
    assert_eq!(chain.last().unwrap().trim(), root_pem.trim(), "root last");
    // openssl agrees: the leaf chains to the root and names exactly the identity.
    std::fs::write(work.join("leaf.pem"), chain[0]).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&root)
        .arg(work.join("leaf.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,basicConstraints",
            "-in",
        ])
        .arg(work.join("leaf.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("URI:{reviews}")), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");

    // The same token does not buy another identity, and a forged one buys nothing.
    let other = csr(
        &work,
        "ratings",
        "spiffe://cluster.local/ns/default/sa/ratings",
    );
    let got = create(ca, &root, &other, &token);
    assert_eq!(got["code"], "PERMISSION_DENIED", "{got}");
    let got = create(ca, &root, &other, &format!("{token}x"));
    assert_eq!(got["code"], "UNAUTHENTICATED", "{got}");

    let metrics = http::get(
        format!("127.0.0.1:{monitoring}").parse().unwrap(),
        "/metrics",
    )
    .unwrap()
    .body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(
        metric_sum(&metrics, "spar_ca_certificates_issued_total", ""),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "spar_ca_requests_refused_total",
            "identity_mismatch"
        ),
        1,
        "{metrics}"
    );

    // A restart keeps the root (and so every certificate issued under it).
    control.signal(libc::SIGTERM);
    assert!(
        control.wait_exit(Duration::from_secs(10)).is_some(),
        "stops on SIGTERM"
    );
    let _control = self::control(&config, &ca_dir, ca, monitoring);
    assert_eventually(Duration::from_secs(20), "the CA serves again", || {
        std::net::TcpStream::connect(("127.0.0.1", ca)).is_ok()
    });
    assert_eq!(std::fs::read_to_string(&root).unwrap(), root_pem);
    let got = create(ca, &root, &csr(&work, "reviews2", reviews), &token);
    assert_eq!(got["ok"], true, "tokens stay valid across restarts: {got}");
}
