//! TCP and TLS traffic from Istio config, end to end: spar-control (its CA embedded)
//! translates Sidecar TCP listeners, AuthorizationPolicies and a TLS-passthrough Gateway for
//! real spar-proxy processes.
//!
//! - A client sidecar's egress TCP listener relays opaque bytes, over mesh mTLS, to a server
//!   sidecar's TCP ingress listener (STRICT) and on to a TCP echo application.
//! - An ALLOW policy on that port admits the client's identity and closes the connection of
//!   another identity; a DENY policy whose only operation is `paths` (HTTP-only) then denies
//!   the client's every connection by its source, as Istio does on TCP.
//! - A gateway's TLS PASSTHROUGH server sends each SNI to the backend that owns it (openssl
//!   s_server), never terminating TLS; an unknown SNI gets nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use spar_tests::certs::Ca;
use spar_tests::mesh_ca::{token, workload_cert};
use spar_tests::proc::{Process, SparProxy, bin, scratch_dir};
use spar_tests::{assert_eventually, free_port};

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

/// A TCP echo application: every byte read is written back, until the peer closes.
fn echo_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg` over a plain TCP connection to 127.0.0.1:`port`; what came back before the
/// connection closed or went quiet for 3 s.
fn exchange(port: u16, msg: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    if s.write_all(msg).is_err() {
        return Vec::new();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < msg.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// openssl s_client speaking mesh mTLS (Istio's TCP client ALPN) to 127.0.0.1:`port` with
/// the certificate `pem` and key `key`, sending `msg`: what came back before the server
/// closed the connection or 5 s passed.
fn mtls_exchange(port: u16, root: &Path, key: &Path, pem: &Path, msg: &str) -> String {
    let child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-alpn", "istio-peer-exchange,istio", "-CAfile"])
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
    // Killed when dropped: the echo never closes an allowed connection.
    let mut client = Process { child };
    let mut stdout = client.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // stdin stays open (s_client would end the session at its end) until this returns.
    let mut stdin = client.child.stdin.take().unwrap();
    stdin.write_all(msg.as_bytes()).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(bytes) => got.extend(bytes),
            Err(_) => break, // closed, or nothing more in time
        }
    }
    drop(stdin);
    drop(client);
    String::from_utf8_lossy(&got).into_owned()
}

fn sidecars(client_port: u16, server_port: u16, app: SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{ name: sleep, namespace: default }}
spec:
  workloadSelector: {{ labels: {{ app: sleep }} }}
  egress:
  - port: {{ number: {client_port}, protocol: TCP, name: tcp }}
    bind: 127.0.0.1
    captureMode: NONE
    hosts: [./db.default.svc.cluster.local]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{ name: db, namespace: default }}
spec:
  workloadSelector: {{ labels: {{ app: db }} }}
  ingress:
  - port: {{ number: {server_port}, protocol: TCP, name: tcp }}
    bind: 127.0.0.1
    defaultEndpoint: {app}
    captureMode: NONE
---
apiVersion: v1
kind: Service
metadata: {{ name: db, namespace: default }}
spec:
  selector: {{ app: db }}
  ports: [{{ name: tcp, port: 5432 }}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: default
  annotations: {{ spar.dev/endpoints: "127.0.0.1:{server_port}" }}
spec:
  template:
    metadata: {{ labels: {{ app: db, security.istio.io/tlsMode: istio }} }}
    spec: {{ serviceAccountName: db }}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{ name: default, namespace: istio-system }}
spec:
  mtls: {{ mode: STRICT }}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{ name: db-clients, namespace: default }}
spec:
  selector: {{ matchLabels: {{ app: db }} }}
  action: ALLOW
  rules:
  - from: [{{ source: {{ principals: ["cluster.local/ns/default/sa/sleep"] }} }}]
"#
    )
}

/// A DENY policy whose operation is HTTP-only: on TCP Istio ignores `paths`, so it denies
/// every connection from the client's identity.
const DENY_BY_PATH: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: default }
spec:
  selector: { matchLabels: { app: db } }
  action: DENY
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/default/sa/sleep"] } }]
    to: [{ operation: { paths: ["/admin"] } }]
"#;

/// A sidecar spar-proxy for `app` with the identity default/`sa` from the CA on `ca`.
fn sidecar_proxy(xds: u16, ca: u16, ca_dir: &Path, work: &Path, app: &str, sa: &str) -> SparProxy {
    let token_file = work.join(format!("{sa}.token"));
    std::fs::write(&token_file, token(ca_dir, "default", sa)).unwrap();
    let root = ca_dir.join("root-cert.pem");
    SparProxy::start(
        &spar_tests::ads_bootstrap(
            &format!("sidecar~127.0.0.1~{app}-0.default~default.svc.cluster.local"),
            "default",
            &format!("app: {app}"),
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
            sa,
        ],
    )
}

#[test]
fn tcp_through_sidecars_with_mtls_and_network_authorization() {
    spar_tests::require_tool("openssl");
    let config = scratch_dir("tcp-config");
    let ca_dir = scratch_dir("tcp-ca");
    let work = scratch_dir("tcp-work");
    let (xds, ca) = (free_port(), free_port());
    let app = echo_app();
    let (egress, inbound) = (free_port(), free_port());
    std::fs::write(config.join("mesh.yaml"), sidecars(egress, inbound, app)).unwrap();
    let _control = control(&config, &ca_dir, xds, ca);
    let root = ca_dir.join("root-cert.pem");
    assert_eventually(Duration::from_secs(20), "the CA serves", || {
        root.exists() && TcpStream::connect(("127.0.0.1", ca)).is_ok()
    });
    let server = sidecar_proxy(xds, ca, &ca_dir, &work, "db", "db");
    let _client = sidecar_proxy(xds, ca, &ca_dir, &work, "sleep", "sleep");

    // Opaque bytes through the client's egress listener, mTLS between the proxies, the
    // server's TCP ingress listener, to the echo application and back.
    let msg = b"\x00\x01 not http at all \xff\r\n";
    assert_eventually(
        Duration::from_secs(30),
        "bytes echoed through both sidecars",
        || exchange(egress, msg) == msg,
    );
    // Plaintext to the STRICT ingress listener: no chain takes it.
    assert_eq!(exchange(inbound, b"plain"), b"", "STRICT refuses plaintext");

    // The ALLOW policy admits the client's identity and closes another's connection.
    let (sleep_key, sleep_pem) = workload_cert(ca, &ca_dir, &work, "default", "sleep");
    let (other_key, other_pem) = workload_cert(ca, &ca_dir, &work, "default", "other");
    assert_eq!(
        mtls_exchange(inbound, &root, &sleep_key, &sleep_pem, "from sleep\n"),
        "from sleep\n",
        "the allowed principal over mesh mTLS"
    );
    assert_eq!(
        mtls_exchange(inbound, &root, &other_key, &other_pem, "from other\n"),
        "",
        "another principal: closed, nothing relayed"
    );
    let metrics = server.metrics();
    let decisions = |policy: &str, reason: &str| {
        spar_tests::proc::metric_sum(
            &metrics,
            "spar_listener_rbac_decisions_total",
            &format!("policy=\"{policy}\",reason=\"{reason}\""),
        )
    };
    assert!(
        decisions(
            "ns[default]-policy[db-clients]-rule[0]",
            "allowed_policy_matched"
        ) >= 2,
        "decisions are counted under the policy's name: {metrics}"
    );
    assert_eq!(
        decisions("none", "denied_no_policy_matched"),
        1,
        "{metrics}"
    );

    // DENY with only an HTTP field (paths): on TCP it denies the client outright.
    std::fs::write(config.join("deny.yaml"), DENY_BY_PATH).unwrap();
    assert_eventually(Duration::from_secs(30), "the client is denied", || {
        exchange(egress, msg).is_empty()
    });
    assert_eq!(
        mtls_exchange(inbound, &root, &sleep_key, &sleep_pem, "from sleep\n"),
        "",
        "denied by its source, whatever the paths"
    );
    assert!(
        server.metric(
            "spar_listener_rbac_decisions_total",
            "policy=\"ns[default]-policy[no-admin]-rule[0]\",reason=\"denied_policy_matched\""
        ) >= 1,
        "{}",
        server.metrics()
    );
}

/// openssl s_client to 127.0.0.1:`port` with `sni`: the subject of the certificate the
/// server presented (empty when the handshake failed).
fn subject_for_sni(port: u16, sni: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", sni])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl (apt install openssl)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_owned()
}

/// `openssl s_server` on 127.0.0.1:`port` with `cert` and `key`.
fn tls_backend(port: u16, leaf: &spar_tests::certs::Leaf) -> Process {
    let child = Command::new("openssl")
        .args(["s_server", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&leaf.cert)
        .arg("-key")
        .arg(&leaf.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl (apt install openssl)");
    let process = Process { child };
    assert_eventually(Duration::from_secs(10), "s_server listens", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    process
}

fn passthrough_config(gateway: u16, a: u16, b: u16) -> String {
    let mut y = String::new();
    for (name, port) in [("a", a), ("b", b)] {
        y.push_str(&format!(
            r#"apiVersion: v1
kind: Service
metadata: {{ name: {name}, namespace: default }}
spec:
  selector: {{ app: {name} }}
  ports: [{{ name: tls, port: 443 }}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
  annotations: {{ spar.dev/endpoints: "127.0.0.1:{port}" }}
spec:
  template:
    metadata: {{ labels: {{ app: {name} }} }}
---
"#
        ));
    }
    y.push_str(&format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{ name: edge, namespace: istio-system }}
spec:
  selector: {{ istio: ingressgateway }}
  servers:
  - port: {{ number: {gateway}, name: tls, protocol: TLS }}
    hosts: ["*/*.example.com"]
    tls: {{ mode: PASSTHROUGH }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: sni, namespace: default }}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [istio-system/edge]
  tls:
  - match: [{{ sniHosts: [a.example.com] }}]
    route: [{{ destination: {{ host: a }} }}]
  - match: [{{ sniHosts: [b.example.com] }}]
    route: [{{ destination: {{ host: b }} }}]
"#
    ));
    y
}

#[test]
fn gateway_passes_tls_through_to_the_backend_that_owns_the_sni() {
    spar_tests::require_tool("openssl");
    let config = scratch_dir("sni-config");
    let certs = scratch_dir("sni-certs");
    let backend_ca = Ca::new(&certs, "backends");
    let (a_port, b_port, gateway, xds) = (free_port(), free_port(), free_port(), free_port());
    let _a = tls_backend(a_port, &backend_ca.server("a", &["a.example.com"]));
    let _b = tls_backend(b_port, &backend_ca.server("b", &["b.example.com"]));
    std::fs::write(
        config.join("edge.yaml"),
        passthrough_config(gateway, a_port, b_port),
    )
    .unwrap();
    let _control = spar_tests::proc::spar_control(&config, xds, free_port());
    let _gw = SparProxy::start(
        &spar_tests::ads_bootstrap(
            "router~127.0.0.1~gw-0.istio-system~istio-system.svc.cluster.local",
            "istio-system",
            "istio: ingressgateway",
            xds,
        ),
        &[],
    );
    // The backend's own certificate comes back: the gateway did not terminate TLS.
    assert_eventually(Duration::from_secs(30), "a.example.com reaches a", || {
        subject_for_sni(gateway, "a.example.com").contains("a.example.com")
    });
    let b = subject_for_sni(gateway, "b.example.com");
    assert!(b.contains("b.example.com"), "{b}");
    assert!(
        subject_for_sni(gateway, "c.example.com").is_empty(),
        "an SNI no route names matches no chain: closed"
    );
}
