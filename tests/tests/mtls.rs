//! Mesh mTLS in spar-proxy: its key made in the process, its certificate from the mesh CA
//! (spar-ca) before it says ready, served to listeners and clusters as Istio's SDS secrets
//! `default` and `ROOTCA`. Clients that are not ours (openssl s_client, curl) with
//! certificates from the CA get through; no certificate, another CA's certificate, a
//! plaintext request or TLS 1.1 do not; RBAC sees the client's SPIFFE identity; an
//! upstream whose SAN is not the expected identity is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use spar_tests::mesh_ca::{serve, serve_with, token, workload_cert};
use spar_tests::proc::{Echo, SparProxy, scratch_dir};
use spar_tests::{free_port, http};

const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";

fn bootstrap(mtls: u16, plain: u16, echo: std::net::SocketAddr) -> String {
    let sds = r#"
            tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}]"#;
    let hcm = |prefix: &str, routes: &str, rbac: &str| {
        format!(
            r#"    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          route_config:
            virtual_hosts: [{{name: all, domains: ["*"], routes: [{routes}]}}]
          http_filters:{rbac}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
        )
    };
    let rbac = format!(
        r#"
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                policies:
                  mesh-callers:
                    permissions: [{{any: true}}]
                    principals:
                    - authenticated: {{principal_name: {{exact: "spiffe://cluster.local/ns/default/sa/sleep"}}}}
                    - authenticated: {{principal_name: {{exact: "{REVIEWS}"}}}}"#
    );
    let upstream = |expect: &str| {
        format!(
            r#"    transport_socket:
      name: tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:{sds}
            alpn_protocols: [istio-http/1.1, istio, http/1.1]
            combined_validation_context:
              default_validation_context:
                match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{expect}"}}}}]
              validation_context_sds_secret_config: {{name: ROOTCA}}
"#
        )
    };
    let cluster = |name: &str, port: u16, tls: &str| {
        format!(
            r#"  - name: {name}
    connect_timeout: 2s
{tls}    load_assignment:
      cluster_name: {name}
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]
"#
        )
    };
    format!(
        r#"node:
  id: "sidecar~127.0.0.1~reviews-0.default~default.svc.cluster.local"
  metadata: {{NAMESPACE: default, SERVICE_ACCOUNT: reviews}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {{admin}}}}}}
static_resources:
  listeners:
  - name: inbound_mtls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {mtls}}}}}
    filter_chains:
{inbound}      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:{sds}
            alpn_protocols: [h2, http/1.1]
            validation_context_sds_secret_config: {{name: ROOTCA, sds_config: {{ads: {{}}}}}}
  - name: outbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: {plain}}}}}
    filter_chains:
{outbound}  clusters:
{app}{mesh}{wrong}"#,
        inbound = hcm(
            "inbound",
            "{match: {prefix: /}, route: {cluster: app}}",
            &rbac
        ),
        outbound = hcm(
            "outbound",
            "{match: {prefix: /wrong}, route: {cluster: wrong}}, {match: {prefix: /}, route: {cluster: mesh}}",
            ""
        ),
        app = cluster("app", echo.port(), ""),
        mesh = cluster("mesh", mtls, &upstream(REVIEWS)),
        wrong = cluster(
            "wrong",
            mtls,
            &upstream("spiffe://cluster.local/ns/default/sa/ratings")
        ),
    )
}

/// spar-proxy as `default/reviews` with a token from the CA in `ca_dir` (on `ca_port`),
/// [`bootstrap`]'s listeners in front of `echo`: (proxy, mTLS port, plaintext port).
fn reviews_proxy(ca_dir: &Path, ca_port: u16, work: &Path, echo: &Echo) -> (SparProxy, u16, u16) {
    let token_file = work.join("reviews.token");
    std::fs::write(&token_file, token(ca_dir, "default", "reviews")).unwrap();
    let root = ca_dir.join("root-cert.pem");
    let (mtls, plain) = (free_port(), free_port());
    let proxy = SparProxy::start(
        &bootstrap(mtls, plain, echo.addr),
        &[
            "--ca-address",
            &format!("https://127.0.0.1:{ca_port}"),
            "--ca-root",
            root.to_str().unwrap(),
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    (proxy, mtls, plain)
}

/// curl over TLS to the mTLS port (server name not checked: mesh certificates carry a
/// SPIFFE URI, not a DNS name); "STATUS" or "fail".
fn curl(port: u16, cert: Option<(&Path, &Path)>, extra: &[&str]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ]);
    if let Some((key, pem)) = cert {
        cmd.arg("--key").arg(key).arg("--cert").arg(pem);
    }
    let out = cmd
        .args(extra)
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        code
    } else {
        "fail".to_owned()
    }
}

/// openssl s_client's verdict on the server (chain against `root`) and what it printed.
fn s_client(port: u16, root: &Path, cert: Option<(&Path, &Path)>, extra: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
    ])
    .arg(root)
    .args(["-showcerts", "-verify_return_error"]);
    if let Some((key, pem)) = cert {
        cmd.arg("-key").arg(key).arg("-cert").arg(pem);
    }
    let out = cmd
        .args(extra)
        .stdin(Stdio::piped())
        .output()
        .expect("openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn mesh_mtls_with_certificates_from_the_ca() {
    let ca_dir = scratch_dir("mtls-ca");
    let work = scratch_dir("mtls-work");
    let ca_port = free_port();
    let _ca = serve(&ca_dir, ca_port);
    let root = ca_dir.join("root-cert.pem");
    let echo = Echo::start(&[]);
    // /ready waits for the certificate: SparProxy::start returns once it is held.
    let (proxy, mtls, plain) = reviews_proxy(&ca_dir, ca_port, &work, &echo);

    // /certs: the identity, its serial and expiry; the key is not there.
    let certs = String::from_utf8(http::get(proxy.admin, "/certs").unwrap().body).unwrap();
    let certs: serde_json::Value = serde_json::from_str(&certs).unwrap();
    let held = &certs["certificates"][0];
    assert_eq!(held["identity"], REVIEWS, "{certs}");
    assert_eq!(held["ready"], true, "{certs}");
    assert!(
        held["certificate"]["serial"]
            .as_str()
            .is_some_and(|s| s.len() >= 16)
    );
    assert!(!certs.to_string().contains("PRIVATE KEY"), "{certs}");

    // `sparctl proxy-config secret`: Istio's table from the SDS secrets in /config_dump.
    let out = Command::new(spar_tests::proc::bin("sparctl"))
        .args([
            "proxy-config",
            "secret",
            "--admin",
            &proxy.admin.to_string(),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let serial = held["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {name} row: {table}"))
    };
    let default = row("default");
    assert_eq!(
        default[1..5],
        ["Cert", "Chain", "ACTIVE", "true"],
        "{table}"
    );
    assert_eq!(
        default[5].trim_start_matches('0'),
        serial.trim_start_matches('0'),
        "{table}"
    );
    assert_eq!(row("ROOTCA")[1..4], ["CA", "ACTIVE", "true"], "{table}");
    let dump = String::from_utf8(http::get(proxy.admin, "/config_dump").unwrap().body).unwrap();
    assert!(
        dump.contains("[redacted]") && !dump.contains("PRIVATE KEY"),
        "no key in the dump"
    );

    // openssl: the server's chain verifies against the mesh root, its identity is reviews.
    let (sleep_key, sleep_pem) = workload_cert(ca_port, &ca_dir, &work, "default", "sleep");
    let sleep = Some((sleep_key.as_path(), sleep_pem.as_path()));
    let out = s_client(mtls, &root, sleep, &["-tls1_3"]);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    std::fs::write(work.join("server.pem"), {
        let start = out.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end = out[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
        out[start..end].to_owned()
    })
    .unwrap();
    let san = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(work.join("server.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&san.stdout).contains(&format!("URI:{REVIEWS}")));

    // curl with the CA's certificate for sleep: through, and RBAC knows who it is.
    assert_eq!(curl(mtls, sleep, &[]), "200");
    assert_eq!(curl(mtls, sleep, &["--tlsv1.2", "--tls-max", "1.2"]), "200");
    // A certificate from the CA for another identity: authenticated, not authorized.
    let (other_key, other_pem) = workload_cert(ca_port, &ca_dir, &work, "default", "other");
    assert_eq!(curl(mtls, Some((&other_key, &other_pem)), &[]), "403");
    assert!(
        proxy.metric(
            "spar_http_rbac_decisions_total",
            "policy=\"none\",reason=\"denied_no_policy_matched\""
        ) >= 1
    );

    // No certificate, a certificate from another CA, plaintext, TLS 1.1: refused.
    assert_eq!(curl(mtls, None, &[]), "fail", "no client certificate");
    let stranger = spar_tests::certs::Ca::new(&work, "stranger");
    let fake = stranger.workload("fake", "spiffe://cluster.local/ns/default/sa/sleep");
    assert_eq!(
        curl(mtls, Some((&fake.key, &fake.cert)), &[]),
        "fail",
        "a forged identity from another CA"
    );
    let plain_text = http::raw(
        format!("127.0.0.1:{mtls}").parse().unwrap(),
        b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
    );
    assert!(
        plain_text.is_err(),
        "plaintext to an mTLS port: {plain_text:?}"
    );
    let out = s_client(mtls, &root, sleep, &["-tls1_1"]);
    assert!(
        out.contains("Cipher is (NONE)") && !out.contains("Server certificate"),
        "TLS 1.1: {out}"
    );

    // The proxy as an mTLS client: its own identity, the server's checked against the
    // expected SAN; a cluster expecting another identity is refused.
    let via = |path: &str| {
        http::raw(
            format!("127.0.0.1:{plain}").parse().unwrap(),
            format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .map(|r| r.status)
        .unwrap()
    };
    assert_eq!(
        via("/"),
        200,
        "mesh cluster: the server is reviews, as expected"
    );
    assert!(proxy.metric("envoy_cluster_ssl_handshake", "mesh") >= 1);
    assert_eq!(
        via("/wrong"),
        503,
        "the server is not the identity the cluster expects"
    );
    assert!(proxy.metric("envoy_cluster_ssl_connection_error", "wrong") >= 1);
    drop(echo);
}

/// The serial of the certificate the proxy holds now.
fn serial(admin: std::net::SocketAddr) -> String {
    let certs = String::from_utf8(http::get(admin, "/certs").unwrap().body).unwrap();
    let certs: serde_json::Value = serde_json::from_str(&certs).unwrap();
    certs["certificates"][0]["certificate"]["serial"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn rotation_under_load_and_a_ca_outage_fail_no_request() {
    let ca_dir = scratch_dir("rotation-ca");
    let work = scratch_dir("rotation-work");
    let ca_port = free_port();
    // The test's client certificate lives a day; then the CA restarts with a 4 s maximum,
    // so the proxy's certificates rotate about every 2 s.
    let ca = serve(&ca_dir, ca_port);
    let (key, pem) = workload_cert(ca_port, &ca_dir, &work, "default", "sleep");
    drop(ca);
    let ca = serve_with(&ca_dir, ca_port, &["--max-ttl", "4s"]);
    let echo = Echo::start(&[]);
    let (proxy, mtls, plain) = reviews_proxy(&ca_dir, ca_port, &work, &echo);

    // New connections (full handshakes on the mTLS port, the proxy's certificate on the
    // server side and as a client through the mesh cluster) while certificates rotate.
    let serials = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut failures = Vec::new();
    let mut sent = 0;
    // Until three certificates have served (renewals every ~2 s), bounded for a slow machine.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while serials.lock().unwrap().len() < 3 && std::time::Instant::now() < until {
        let got = curl(mtls, Some((&key, &pem)), &[]);
        let via = http::raw(
            format!("127.0.0.1:{plain}").parse().unwrap(),
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        )
        .map(|r| r.status);
        sent += 2;
        if got != "200" {
            failures.push(format!("direct: {got}"));
        }
        if !matches!(via, Ok(200)) {
            failures.push(format!("via the mesh cluster: {via:?}"));
        }
        serials.lock().unwrap().insert(serial(proxy.admin));
    }
    let seen = serials.lock().unwrap().len();
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
    assert!(seen >= 3, "the certificate rotated: {seen} serials seen");

    // The CA goes away for less than a certificate's life: nothing fails meanwhile.
    drop(ca);
    let held = serial(proxy.admin);
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1000);
    while std::time::Instant::now() < until {
        assert_eq!(
            curl(mtls, Some((&key, &pem)), &[]),
            "200",
            "with the CA down"
        );
    }
    assert_eq!(serial(proxy.admin), held, "the held certificate is kept");
    // A renewal comes due about every 2 s: the window above may have held none.
    spar_tests::assert_eventually(
        std::time::Duration::from_secs(5),
        "failed renewals are counted",
        || proxy.metric("spar_identity_cert_fetches_total", "result=\"connect\"") >= 1,
    );
    // Back: renewals resume (with backoff), and requests still pass.
    let _ca = serve_with(&ca_dir, ca_port, &["--max-ttl", "4s"]);
    spar_tests::assert_eventually(
        std::time::Duration::from_secs(15),
        "a new certificate after the CA is back",
        || serial(proxy.admin) != held,
    );
    assert_eq!(curl(mtls, Some((&key, &pem)), &[]), "200");
    drop(echo);
}

#[test]
fn sslyze_finds_only_tls_1_2_and_1_3_with_strong_suites() {
    let ca_dir = scratch_dir("sslyze-ca");
    let work = scratch_dir("sslyze-work");
    let ca_port = free_port();
    let _ca = serve(&ca_dir, ca_port);
    let echo = Echo::start(&[]);
    let (_proxy, mtls, _) = reviews_proxy(&ca_dir, ca_port, &work, &echo);
    let (key, pem) = workload_cert(ca_port, &ca_dir, &work, "default", "sleep");
    // sslyze's legacy OpenSSL (SSL 2/3, TLS 1.0/1.1 scans) cannot load an EC client key:
    // the old versions are scanned without a client certificate (refused at the hello,
    // before any certificate is asked), the current ones with it.
    let scan = |name: &str, versions: &[&str], cert: bool| -> serde_json::Value {
        let json = work.join(format!("{name}.json"));
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "sslyze", "--quiet"]).args(versions);
        if cert {
            cmd.arg("--cert").arg(&pem).arg("--key").arg(&key);
        }
        let out = cmd
            .arg(format!("--json_out={}", json.display()))
            .arg(format!("127.0.0.1:{mtls}"))
            .output()
            .expect("python3 -m sslyze");
        let report = std::fs::read_to_string(&json).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        report["server_scan_results"][0].clone()
    };
    let accepted = |result: &serde_json::Value, scan: &str| -> Vec<String> {
        let r = &result["scan_result"][scan];
        assert_eq!(r["status"], "COMPLETED", "{scan}: {r}");
        r["result"]["accepted_cipher_suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["cipher_suite"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let old = scan(
        "old",
        &["--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1"],
        false,
    );
    let current = scan("current", &["--tlsv1_2", "--tlsv1_3"], true);
    assert_eq!(current["scan_status"], "COMPLETED", "{current}");
    for version in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert_eq!(old["scan_status"], "COMPLETED", "{old}");
        assert_eq!(
            accepted(&old, version),
            Vec::<String>::new(),
            "{version} must be refused"
        );
        let tried = old["scan_result"][version]["result"]["rejected_cipher_suites"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(tried > 0, "{version}: suites were tried");
    }
    let tls12 = accepted(&current, "tls_1_2_cipher_suites");
    assert!(!tls12.is_empty(), "TLS 1.2 is spoken");
    for suite in &tls12 {
        assert!(
            suite.contains("ECDHE") && (suite.contains("GCM") || suite.contains("CHACHA20")),
            "TLS 1.2 suite {suite} is not forward-secret AEAD"
        );
    }
    let tls13 = accepted(&current, "tls_1_3_cipher_suites");
    assert!(!tls13.is_empty(), "TLS 1.3 is spoken");
    drop(echo);
}
