//! `sparctl analyze` as a user runs it: exit codes, the istioctl-shaped lines, JSON.

#![allow(clippy::expect_used)] // a test: setup failures should stop it loudly

use std::path::PathBuf;
use std::process::{Command, Output};

fn sparctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparctl"))
        .args(args)
        .output()
        .expect("sparctl runs")
}

/// A fresh directory under the system temp dir holding `files`.
fn dir_with(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sparctl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

const VS_ALONE: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
";

const BAD_PA: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: bad
  namespace: foo
spec:
  mtls:
    mode: BLAH
";

const GOOD_SE: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
";

#[test]
fn one_document_alone_gives_warnings_and_exit_0() {
    let dir = dir_with("alone", &[("vs.yaml", VS_ALONE)]);
    let file = dir.join("vs.yaml");
    let out = sparctl(&["analyze", file.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let f = file.display();
    assert_eq!(
        stdout,
        format!(
            "Warning [IST0101] (VirtualService default/reviews {f}:7) spec.gateways[0]: Referenced gateway not found: \"default/bookinfo-gateway\"\n\
             Warning [IST0101] (VirtualService default/reviews {f}:10) spec.http[0].route[0].destination.host: Referenced host not found: \"reviews\"\n\
             Warning [IST0101] (VirtualService default/reviews {f}:10) spec.http[0].route[0].destination.subset: Referenced host+subset in destinationrule not found: \"reviews+v1\"\n"
        )
    );
}

#[test]
fn an_error_exits_1_and_directories_are_searched() {
    let dir = dir_with(
        "dir",
        &[
            ("a/pa.yaml", BAD_PA),
            ("b/se.yml", GOOD_SE),
            ("notes.txt", "not yaml: ["),
        ],
    );
    let out = sparctl(&["analyze", dir.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("Error [IST0106] (PeerAuthentication foo/bad ")
            && line.contains("pa.yaml:8) spec.mtls.mode: Unsupported value: \"BLAH\""),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn clean_input_says_so() {
    let dir = dir_with("clean", &[("se.yaml", GOOD_SE)]);
    let out = sparctl(&[
        "analyze",
        "-n",
        "prod",
        dir.join("se.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "✔ No validation issues found when analyzing namespace: prod.\n"
    );
}

#[test]
fn json_output() {
    let dir = dir_with("json", &[("pa.yaml", BAD_PA), ("vs.yaml", VS_ALONE)]);
    let out = sparctl(&["analyze", "-o", "json", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let items = v.as_array().expect("an array");
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["level"], "Error");
    assert_eq!(items[0]["code"], "IST0106");
    assert_eq!(items[0]["resource"]["namespace"], "foo");
    assert_eq!(items[0]["line"], 8);
    assert_eq!(items[0]["path"], "spec.mtls.mode");
    assert!(items[1..].iter().all(|m| m["level"] == "Warning"));
}

#[test]
fn unreadable_path_exits_2() {
    let out = sparctl(&["analyze", "/nonexistent/sparctl/input.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read /nonexistent/sparctl/input.yaml")
    );
}

#[test]
fn stdin_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparctl"))
        .args(["analyze", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(BAD_PA.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(PeerAuthentication foo/bad -:8)"));
}

#[test]
fn what_spar_proxy_cannot_do_yet_is_a_warning_on_its_field() {
    let dir = dir_with(
        "unsupported",
        &[(
            "gw.yaml",
            "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [\"*\"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [\"*\"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 3306, name: mysql, protocol: TCP}
    hosts: [\"*\"]
",
        )],
    );
    let out = sparctl(&["analyze", dir.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not an error: {stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Warning [SPR0004] (Gateway default/gw "))
        .unwrap_or_else(|| panic!("no SPR0004 line: {stdout}"));
    assert!(
        line.contains("gw.yaml:11) spec.servers[1].tls: TLS termination on gateways"),
        "{line}"
    );
    // A TCP server is no longer something spar-proxy cannot do.
    assert!(!stdout.contains("servers[2]"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "reported once: {stdout}");
}
