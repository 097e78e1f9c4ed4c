//! TLS, TLS passthrough, HTTP/2 and gRPC through spar-proxy, driven by real clients and
//! servers no one here wrote: curl (over TLS, and `--http2-prior-knowledge`), h2load,
//! openssl s_client and s_server, and Python grpcio for the four gRPC call kinds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spar_tests::certs::{Ca, Leaf};
use spar_tests::proc::{Echo, SparProxy, scratch_dir};
use spar_tests::{assert_eventually, free_port, require_tool};

const ROUTER: &str = r#"          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}"#;

/// An HTTP connection manager routing everything to `cluster` (YAML at 6 spaces: a
/// filter chain's `filters` entry).
fn hcm(stat: &str, cluster: &str, extra: &str) -> String {
    format!(
        r#"      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat}
{extra}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: {cluster}, timeout: 0s }}
{ROUTER}
"#
    )
}

fn tcp_proxy(stat: &str, cluster: &str) -> String {
    format!(
        r#"      - name: tcp
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: {stat}, cluster: {cluster}}}
"#
    )
}

/// A DownstreamTlsContext with these certificates (YAML at 4 spaces: a chain's
/// `transport_socket`).
fn server_tls(certs: &[&Leaf], alpn: &str) -> String {
    let mut s = format!(
        r#"      transport_socket:
        name: tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [{alpn}]
            tls_certificates:
"#
    );
    for c in certs {
        s += &format!(
            "            - {{certificate_chain: {{filename: {}}}, private_key: {{filename: {}}}}}\n",
            c.cert.display(),
            c.key.display()
        );
    }
    s
}

fn cluster(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        r#"  - name: {name}
    connect_timeout: 2s
{extra}
    load_assignment:
      cluster_name: {name}
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: {ip}, port_value: {port}}}}}}}}}]}}]
"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

fn bootstrap(listeners: &str, clusters: &str) -> String {
    format!(
        "admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {{admin}}}}}}\nstatic_resources:\n  listeners:\n{listeners}  clusters:\n{clusters}"
    )
}

/// `openssl s_server -www` with `leaf`: answers any request with a status page naming
/// itself.
struct SServer {
    child: Child,
    addr: SocketAddr,
}

impl SServer {
    fn start(leaf: &Leaf) -> SServer {
        require_tool("openssl");
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(&leaf.cert)
            .arg("-key")
            .arg(&leaf.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eventually(Duration::from_secs(10), "s_server listens", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        SServer { child, addr }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `openssl s_client` against `addr` with `args`, sending `input`; returns its
/// stdout and stderr together.
fn s_client(addr: SocketAddr, args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    // s_client exits when stdin closes (after the answer has had time to arrive).
    std::thread::sleep(Duration::from_millis(700));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// curl's status line facts: `CODE VERSION` (e.g. `200 2`).
fn curl(args: &[&str]) -> String {
    require_tool("curl");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

#[test]
fn tls_termination_picks_certificates_by_sni_and_speaks_h1_and_h2() {
    let dir = scratch_dir("tls");
    let ca = Ca::new(&dir, "test");
    let a = ca.server("a", &["a.test"]);
    let b = ca.server("b", &["b.test"]);
    let echo = Echo::start(&["--name", "echo"]);
    let port = free_port();
    let listeners = format!(
        "  - name: tls\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{}{}",
        hcm("tls", "backend", ""),
        server_tls(&[&a, &b], "h2, http/1.1")
    );
    let proxy = SparProxy::start(
        &bootstrap(&listeners, &cluster("backend", echo.addr, "")),
        &[],
    );
    let ca_arg = ca.cert.display().to_string();
    for (host, want) in [("a.test", "200 1.1"), ("b.test", "200 1.1")] {
        let url = format!("https://{host}:{port}/x");
        let resolve = format!("{host}:{port}:127.0.0.1");
        assert_eq!(
            curl(&[
                "--http1.1",
                "--cacert",
                &ca_arg,
                "--resolve",
                &resolve,
                &url
            ]),
            want,
            "{host} over HTTP/1.1 (curl checks the certificate names {host})"
        );
        assert_eq!(
            curl(&["--cacert", &ca_arg, "--resolve", &resolve, &url]),
            "200 2",
            "{host} over HTTP/2 by ALPN"
        );
    }
    // The certificate served is the one whose SAN matches the SNI.
    let out = s_client(addr(port), &["-servername", "b.test"], "");
    assert!(
        out.contains("CN = b.test") || out.contains("CN=b.test"),
        "{out}"
    );
    // No TLS 1.1, no TLS 1.0: the handshake fails.
    for old in ["-tls1_1", "-tls1"] {
        let out = s_client(addr(port), &[old, "-servername", "a.test"], "");
        assert!(
            !out.contains("Cipher is ECDHE") && !out.contains("New, TLSv1"),
            "{old} must be refused: {out}"
        );
    }
    // Session resumption with a ticket.
    let sess = dir.join("sess.pem");
    let sess = sess.to_str().unwrap();
    let first = s_client(
        addr(port),
        &["-servername", "a.test", "-sess_out", sess],
        "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n",
    );
    assert!(first.contains("New,"), "{first}");
    let again = s_client(
        addr(port),
        &["-servername", "a.test", "-sess_in", sess],
        "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n",
    );
    assert!(
        again.contains("Reused,"),
        "a ticket resumes the session: {again}"
    );
    assert!(proxy.metric("envoy_listener_ssl_handshake", "") >= 6);
    assert!(proxy.metric("envoy_listener_ssl_connection_error", "") >= 2);
}

#[test]
fn sni_passthrough_forwards_tls_untouched_and_other_names_are_terminated() {
    let dir = scratch_dir("passthrough");
    let ca = Ca::new(&dir, "test");
    let own = ca.server("own", &["own.test"]);
    let backend_cert = ca.server("backend", &["pass.test"]);
    let backend = SServer::start(&backend_cert);
    let echo = Echo::start(&["--name", "echo"]);
    let port = free_port();
    let strict_port = free_port();
    let listeners = format!(
        "  - name: edge\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    listener_filters:\n    - name: tls_inspector\n      typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}\n    filter_chains:\n    - filter_chain_match: {{server_names: [pass.test, \"*.pass.test\"]}}\n      filters:\n{}    - filters:\n{}{}  - name: strict\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {strict_port}}}}}\n    filter_chains:\n    - filter_chain_match: {{server_names: [only.test]}}\n      filters:\n{}",
        tcp_proxy("pass", "tlsraw"),
        hcm("edge", "backend", ""),
        server_tls(&[&own], "http/1.1"),
        tcp_proxy("strict", "tlsraw"),
    );
    let clusters = cluster("tlsraw", backend.addr, "") + &cluster("backend", echo.addr, "");
    let proxy = SparProxy::start(&bootstrap(&listeners, &clusters), &[]);
    // pass.test and a wildcard match reach the backend's own certificate, end to end.
    for name in ["pass.test", "x.pass.test"] {
        let out = s_client(addr(port), &["-servername", name], "GET / HTTP/1.0\r\n\r\n");
        assert!(
            out.contains("CN = pass.test") || out.contains("CN=pass.test"),
            "{name}: {out}"
        );
        assert!(out.contains("s_server"), "the backend answered: {out}");
    }
    // Any other name is terminated here with the proxy's certificate.
    let out = s_client(addr(port), &["-servername", "other.test"], "");
    assert!(
        out.contains("CN = own.test") || out.contains("CN=own.test"),
        "{out}"
    );
    // A listener without a default chain closes what matches nothing, and counts it.
    let _ = s_client(addr(strict_port), &["-servername", "nope.test"], "");
    assert_eventually(
        Duration::from_secs(5),
        "no_filter_chain_match counted",
        || proxy.metric("envoy_listener_no_filter_chain_match", "") >= 1,
    );
}

#[test]
fn upstream_tls_is_verified_against_the_trusted_ca() {
    let dir = scratch_dir("upstream-tls");
    let ca = Ca::new(&dir, "test");
    let stranger = Ca::new(&dir, "stranger");
    let backend_cert = ca.server("backend", &["backend.test"]);
    let backend = SServer::start(&backend_cert);
    let port = free_port();
    let listeners = format!(
        "  - name: plain\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{}",
        hcm("plain", "trusted", "")
    );
    let upstream_tls = |ca: &Path| {
        format!(
            "    transport_socket:\n      name: tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: backend.test\n        auto_sni_san_validation: true\n        common_tls_context:\n          validation_context: {{trusted_ca: {{filename: {}}}}}",
            ca.display()
        )
    };
    let good = bootstrap(
        &listeners,
        &cluster("trusted", backend.addr, &upstream_tls(&ca.cert)),
    );
    let proxy = SparProxy::start(&good, &[]);
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(curl(&[&url]), "200 1.1");
    assert!(proxy.metric("envoy_cluster_ssl_handshake", "trusted") >= 1);
    drop(proxy);

    // The same backend, trusted against another CA: refused, 503, counted.
    let bad = bootstrap(
        &listeners,
        &cluster("trusted", backend.addr, &upstream_tls(&stranger.cert)),
    );
    let proxy = SparProxy::start(&bad, &[]);
    assert_eq!(curl(&[&url]), "503 1.1");
    assert!(proxy.metric("envoy_cluster_ssl_connection_error", "trusted") >= 1);
}

#[test]
fn h2c_prior_knowledge_and_http1_share_a_port_curl_and_h2load() {
    require_tool("h2load");
    let echo = Echo::start(&["--name", "echo"]);
    let port = free_port();
    let listeners = format!(
        "  - name: auto\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{}",
        hcm("auto", "backend", "")
    );
    let proxy = SparProxy::start(
        &bootstrap(&listeners, &cluster("backend", echo.addr, "")),
        &[],
    );
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(curl(&["--http2-prior-knowledge", &url]), "200 2");
    assert_eq!(curl(&[&url]), "200 1.1");
    // A body with no content-length over HTTP/2 (DATA frames) reaches the upstream whole.
    let body = "x".repeat(200_000);
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
            "--http2-prior-knowledge",
            "--max-time",
            "10",
            "--data-binary",
            "@-",
            "-H",
            "content-type: text/plain",
        ])
        .arg(format!("{url}echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 200000");
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "4", "-m", "10", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 succeeded, 0 failed"),
        "h2load through spar-proxy: {text}"
    );
    assert!(proxy.metric("envoy_http_downstream_cx_http2_total", "") >= 5);
}

/// `grpc_peer.py serve` on a free port.
struct GrpcServer {
    child: Child,
    addr: SocketAddr,
}

fn peer_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/grpc_peer.py")
}

fn require_grpcio() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python grpcio is not installed: run `cargo xtask test`, which installs it"
    );
}

impl GrpcServer {
    fn start(tag: &str) -> GrpcServer {
        require_grpcio();
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(peer_script())
            .args(["serve", &port.to_string(), tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start grpc server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        GrpcServer {
            child,
            addr: addr(port),
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn grpc_unary_and_streaming_calls_pass_through_with_status_and_trailers() {
    let server = GrpcServer::start("A");
    let port = free_port();
    let listeners = format!(
        "  - name: grpc\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{}",
        hcm("grpc", "grpc", "")
    );
    let h2 = "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http2_protocol_options: {}}";
    let proxy = SparProxy::start(
        &bootstrap(&listeners, &cluster("grpc", server.addr, h2)),
        &[],
    );
    let out = Command::new("python3")
        .arg(peer_script())
        .args(["call", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for check in [
        "unary",
        "server_streaming",
        "client_streaming",
        "bidi_streaming",
        "status_and_message",
        "large_message",
    ] {
        assert!(
            text.contains(&format!("\"check\": \"{check}\", \"ok\": true")),
            "{check} through spar-proxy:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(out.status.success());
    // One multiplexed upstream connection per worker at most carried all the calls.
    assert!(proxy.metric("envoy_cluster_upstream_cx_total", "grpc") <= 2);
}

#[test]
fn grpc_timeout_is_capped_by_the_route_and_unavailable_is_retried() {
    let server = GrpcServer::start("A");
    let port = free_port();
    let extra_route = "max_stream_duration: {grpc_timeout_header_max: 0.3s}, retry_policy: {retry_on: unavailable, num_retries: 1}";
    let listeners = format!(
        "  - name: grpc\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{}",
        hcm("grpc", "grpc", "").replace("timeout: 0s }", &format!("timeout: 0s, {extra_route} }}"))
    );
    let h2 = "    http2_protocol_options: {}";
    let _proxy = SparProxy::start(
        &bootstrap(&listeners, &cluster("grpc", server.addr, h2)),
        &[],
    );
    let out = Command::new("python3")
        .arg(peer_script())
        .args([
            "call",
            &format!("127.0.0.1:{port}"),
            "deadline",
            "retry_on_unavailable",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("upstream request timeout"), "{text}");
}

#[test]
fn connect_is_terminated_by_the_route_and_refused_where_not_enabled() {
    let echo = Echo::start(&["--name", "tunnelled"]);
    let port = free_port();
    let plain_port = free_port();
    let connect_hcm = r#"      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: connect
          upgrade_configs: [{upgrade_type: CONNECT}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {connect_matcher: {}}
                route: {cluster: backend, upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "not a tunnel"}}
"#;
    let listeners = format!(
        "  - name: connect\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{connect_hcm}{ROUTER}\n  - name: plain\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {plain_port}}}}}\n    filter_chains:\n    - filters:\n{}",
        hcm("plain", "backend", "")
    );
    let _proxy = SparProxy::start(
        &bootstrap(&listeners, &cluster("backend", echo.addr, "")),
        &[],
    );
    // curl opens a CONNECT tunnel through the proxy (-p) and speaks HTTP inside it: the
    // request reaches the cluster's endpoint whatever host curl named.
    let out = Command::new("curl")
        .args([
            "-s",
            "-p",
            "-x",
            &format!("http://127.0.0.1:{port}"),
            "--max-time",
            "10",
        ])
        .arg("http://anywhere.test/inside")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("tunnelled"), "through the tunnel: {body:?}");
    // The same CONNECT on a listener whose routes have no connect_matcher: no route, 404.
    let mut s = std::net::TcpStream::connect(addr(plain_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"CONNECT anywhere.test:80 HTTP/1.1\r\nhost: anywhere.test:80\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
