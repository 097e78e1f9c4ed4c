//! The mesh CA from outside: tokens from `spar-ca token`, CSRs from openssl, certificates
//! through a Python grpcio client (tests/peers/ca_client.py), as a workload that is not
//! spar-proxy would get them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::proc::{Process, bin};

/// `spar-ca serve` on 127.0.0.1:`port` with its state in `dir`.
pub fn serve(dir: &Path, port: u16) -> Process {
    serve_with(dir, port, &[])
}

/// [`serve`] with more flags (`--max-ttl 4s` for rotation tests).
pub fn serve_with(dir: &Path, port: u16, extra: &[&str]) -> Process {
    let child = Command::new(bin("spar-ca"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(dir)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("start spar-ca");
    let root = dir.join("root-cert.pem");
    crate::assert_eventually(std::time::Duration::from_secs(20), "spar-ca serves", || {
        root.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Process { child }
}

/// A token for `namespace`/`sa` signed by the CA whose state is in `ca_dir`.
pub fn token(ca_dir: &Path, namespace: &str, sa: &str) -> String {
    let out = Command::new(bin("spar-ca"))
        .args(["token", "--namespace", namespace, "--service-account", sa])
        .args(["--ttl", "1h", "--dir"])
        .arg(ca_dir)
        .output()
        .expect("spar-ca token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A P-256 key (`dir/name.key`) and a CSR for `spiffe_id` (returned), made by openssl.
pub fn csr(dir: &Path, name: &str, spiffe_id: &str) -> PathBuf {
    let path = dir.join(format!("{name}.csr"));
    let status = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=spar-test"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .args([
            "-addext",
            &format!("subjectAltName=URI:{spiffe_id}"),
            "-out",
        ])
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(status.success());
    path
}

/// CreateCertificate through the Python client: its JSON answer.
pub fn create(ca: u16, root: &Path, csr: &Path, token: &str) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/ca_client.py"))
        .arg(format!("127.0.0.1:{ca}"))
        .arg(root)
        .arg(csr)
        .arg(token)
        .output()
        .expect("python3 ca_client.py");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// A workload certificate for `namespace`/`sa` from the CA on `ca` (state in `ca_dir`):
/// writes `dir/name.key` and `dir/name.pem` (leaf and chain) and returns their paths.
pub fn workload_cert(
    ca: u16,
    ca_dir: &Path,
    dir: &Path,
    namespace: &str,
    sa: &str,
) -> (PathBuf, PathBuf) {
    let name = format!("{namespace}-{sa}");
    let id = format!("spiffe://cluster.local/ns/{namespace}/sa/{sa}");
    let csr = csr(dir, &name, &id);
    let got = create(
        ca,
        &ca_dir.join("root-cert.pem"),
        &csr,
        &token(ca_dir, namespace, sa),
    );
    assert_eq!(got["ok"], true, "{got}");
    let chain: String = got["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .filter_map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("");
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, chain).expect("write chain");
    (dir.join(format!("{name}.key")), pem)
}
