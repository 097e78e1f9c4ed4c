//! Network RBAC filters in front of tcp_proxy: a connection the rules deny is closed
//! before a byte is relayed; one they allow is proxied; HTTP fields never match a TCP
//! connection; every decision is counted by policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use spar_tests::free_port;
use spar_tests::proc::{Echo, SparProxy};

/// A tcp_proxy listener on `port` behind a network RBAC filter holding `rules` (YAML).
fn listener(name: &str, port: u16, rules: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: {name}
          rules: {rules}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {name}
          cluster: echo
"#
    )
}

/// An HTTP request through the TCP proxy: the status, or None when the connection closed
/// without an answer.
fn through(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

#[test]
fn network_rbac_closes_denied_connections_and_ignores_http_fields() {
    let echo = Echo::start(&[]);
    let (allowed, other, http_only, loopback) =
        (free_port(), free_port(), free_port(), free_port());
    let by_port = format!(
        "{{action: ALLOW, policies: {{by-port: {{permissions: [{{destination_port: {allowed}}}], principals: [{{any: true}}]}}}}}}"
    );
    let by_header = "{action: ALLOW, policies: {by-header: {permissions: [{header: {name: x-user, present_match: true}}], principals: [{any: true}]}}}";
    let deny_loopback = "{action: DENY, policies: {no-loopback: {permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: 127.0.0.0, prefix_len: 8}}]}}}";
    let yaml = format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {{admin}}}}}}
static_resources:
  listeners:
{}{}{}{}  clusters:
  - name: echo
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]
"#,
        listener("allowed", allowed, &by_port),
        listener("other", other, &by_port),
        listener("http-only", http_only, by_header),
        listener("loopback", loopback, deny_loopback),
        echo.addr.port(),
    );
    let proxy = SparProxy::start(&yaml, &[]);
    assert_eq!(through(allowed), Some(200), "the policy's port is allowed");
    assert_eq!(
        through(other),
        None,
        "another port: closed, nothing relayed"
    );
    assert_eq!(
        through(http_only),
        None,
        "a header rule never matches TCP: denied"
    );
    assert_eq!(through(loopback), None, "a DENY on the peer's address");
    let metrics = proxy.metrics();
    let count = |listener: String, policy: &str, reason: &str| {
        spar_tests::proc::metric_sum(
            &metrics,
            "spar_listener_rbac_decisions_total",
            &format!(
                "envoy_listener_address=\"{listener}\",policy=\"{policy}\",reason=\"{reason}\""
            ),
        )
    };
    // Envoy's label for a listener address: IP_PORT.
    let at = |port: u16| format!("127.0.0.1_{port}");
    assert_eq!(
        count(at(allowed), "by-port", "allowed_policy_matched"),
        1,
        "{metrics}"
    );
    assert_eq!(
        count(at(other), "none", "denied_no_policy_matched"),
        1,
        "{metrics}"
    );
    assert_eq!(
        count(at(http_only), "none", "denied_no_policy_matched"),
        1,
        "{metrics}"
    );
    assert_eq!(
        count(at(loopback), "no-loopback", "denied_policy_matched"),
        1,
        "{metrics}"
    );
    drop(echo);
}

/// A TCP backend that counts the bytes it receives (TLS passed through arrives as is).
fn counting_backend() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bytes = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = bytes.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (port, bytes)
}

/// A ClientHello for `sni` from openssl s_client; the handshake itself cannot finish (the
/// backend never answers), so the client gives up after a moment.
fn hello(port: u16, sni: &str) {
    let _ = std::process::Command::new("timeout")
        .args(["2", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", sni])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn passthrough_chains_judge_the_server_name_the_client_hello_asked_for() {
    use std::sync::atomic::Ordering;
    let (backend, bytes) = counting_backend();
    let port = free_port();
    let yaml = format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {{admin}}}}}}
static_resources:
  listeners:
  - name: passthrough
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    listener_filters:
    - name: tls_inspector
      typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}
    filter_chains:
    - filter_chain_match: {{transport_protocol: tls}}
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: passthrough
          rules: {{action: DENY, policies: {{blocked-sni: {{permissions: [{{requested_server_name: {{exact: blocked.test}}}}], principals: [{{any: true}}]}}}}}}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: passthrough
          cluster: backend
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}}}}}]}}]
"#
    );
    let proxy = SparProxy::start(&yaml, &[]);
    hello(port, "blocked.test");
    assert_eq!(
        bytes.load(Ordering::SeqCst),
        0,
        "a DENY on the server name closes the connection before a byte is relayed"
    );
    hello(port, "open.test");
    spar_tests::assert_eventually(
        Duration::from_secs(5),
        "another server name is passed through",
        || bytes.load(Ordering::SeqCst) > 0,
    );
    let metrics = proxy.metrics();
    assert_eq!(
        spar_tests::proc::metric_sum(
            &metrics,
            "spar_listener_rbac_decisions_total",
            "policy=\"blocked-sni\",reason=\"denied_policy_matched\"",
        ),
        1,
        "{metrics}"
    );
}
