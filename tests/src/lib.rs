//! Shared helpers for Spar's end-to-end tests: start real spar-proxy and
//! spar-bench processes on ephemeral loopback ports, talk raw HTTP/1.1 to
//! them, wait for conditions with a bounded poll.
//!
//! Every process started here is killed when its handle drops, and every
//! socket is on 127.0.0.1: tests stop by themselves and touch nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod certs;
pub mod differential;
pub mod http;
pub mod load;
pub mod mesh_ca;
pub mod proc;
pub mod upstream;

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds or `within` passes; panics with
/// `what` then. Use instead of sleeping.
pub fn assert_eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < until, "not true after {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago on 127.0.0.1, for a test to listen on.
///
/// Taken from 20000-31999, below the kernel's ephemeral range (32768 and up), never from
/// `bind(0)`: a port the kernel hands out for binding it also hands out as the local port
/// of outgoing connections, and a test's many client connections could take it before
/// the test's server binds it. Each test process starts at its own offset (from its pid)
/// and walks on, skipping ports that are in use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (base + n) % SPAN).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}-{}", LOW + SPAN - 1)
}

/// Fails the test with a clear message when a tool the test drives is not
/// installed (`cargo xtask test` installs them): never a silent pass.
pub fn require_tool(tool: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed: run `cargo xtask test`, which installs it"
    );
}

/// A bootstrap with one HTTP listener on `port` routing everything to the
/// cluster `backend` at `upstream`. `hcm_extra` is spliced into the
/// HttpConnectionManager (YAML at 10 spaces), `cluster_extra` into the
/// cluster (4 spaces). `{admin}` stays for [`proc::SparProxy::start`].
pub fn http_bootstrap(
    port: u16,
    upstream: std::net::SocketAddr,
    hcm_extra: &str,
    cluster_extra: &str,
) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }}
static_resources:
  listeners:
  - name: http
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
{hcm_extra}
          route_config:
            name: local
            virtual_hosts:
            - name: exact
              domains: ["exact.test"]
              routes:
              - match: {{ path: "/only" }}
                route: {{ cluster: backend }}
            - name: any
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend, timeout: 2s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
{cluster_extra}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {uport} }}
"#,
        ip = upstream.ip(),
        uport = upstream.port(),
    )
}

/// A spar-proxy bootstrap that takes its clusters and listeners over ADS from an xDS
/// server on 127.0.0.1:`xds_port`, presenting `node_id` with Istio's `NAMESPACE` and
/// `LABELS` metadata (`labels` is a YAML flow-mapping body such as `app: reviews`).
/// `{admin}` stays for [`proc::SparProxy::start`].
pub fn ads_bootstrap(node_id: &str, namespace: &str, labels: &str, xds_port: u16) -> String {
    format!(
        r#"node:
  id: "{node_id}"
  cluster: spar-tests
  metadata: {{ NAMESPACE: {namespace}, LABELS: {{ {labels} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds-grpc }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds_port} }} }} }}
"#
    )
}

/// A Kubernetes Service `name` (namespace default) selecting `app: name` on HTTP port
/// `port`, as a YAML document preceded by `---`.
pub fn kube_service(name: &str, port: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{ name: {name}, namespace: default }}\nspec:\n  selector: {{ app: {name} }}\n  ports: [{{ name: http, port: {port} }}]\n"
    )
}

/// A Deployment `name` (namespace default) whose one replica, labelled `app` and
/// `version`, is at `addr` (the local mesh's `spar.dev/endpoints` annotation), as a YAML
/// document preceded by `---`.
pub fn kube_deployment(name: &str, app: &str, version: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{ spar.dev/endpoints: \"{addr}\" }}\nspec:\n  template:\n    metadata: {{ labels: {{ app: {app}, version: {version} }} }}\n"
    )
}

pub mod fake_kube;
