//! `cargo xtask mesh`: the local mesh, the README's main job. Builds the binaries, then
//! starts on loopback, without Kubernetes or root:
//! - spar-control (xDS on 127.0.0.1:15010) reading the Istio YAML in deploy/mesh,
//! - the sample application (productpage, reviews v1 and v2, ratings: `spar-bench echo`
//!   processes that answer with their name),
//! - one spar-proxy sidecar per workload in explicit mode (Sidecar resources with
//!   captureMode NONE) and one spar-proxy ingress gateway on 8080, all configured by
//!   spar-control over ADS.
//!
//! It sends sample traffic (the canary split, header routing at the gateway and inside the
//! mesh), prints where to look, and runs until Ctrl-C. `--once` stops after the sample
//! traffic (exit status says whether it routed as configured); `--debug` uses debug builds.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::demo::{Kill, wait_listening};
use crate::{root, run as sh};

const XDS: &str = "127.0.0.1:15010";
const GATEWAY: &str = "127.0.0.1:8080";
const GATEWAY_ADMIN: u16 = 15000;

/// The embedded CA of spar-control (its default address).
const CA: &str = "127.0.0.1:15012";

/// A workload: name, labels, service account, application port, sidecar inbound and
/// outbound ports, admin.
struct Workload {
    name: &'static str,
    app: &'static str,
    service_account: &'static str,
    version: &'static str,
    app_port: u16,
    egress_port: u16,
    admin_port: u16,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "productpage-v1",
        service_account: "bookinfo-productpage",
        app: "productpage",
        version: "v1",
        app_port: 19080,
        egress_port: 15080,
        admin_port: 15100,
    },
    Workload {
        name: "reviews-v1",
        service_account: "bookinfo-reviews",
        app: "reviews",
        version: "v1",
        app_port: 19081,
        egress_port: 15081,
        admin_port: 15101,
    },
    Workload {
        name: "reviews-v2",
        service_account: "bookinfo-reviews",
        app: "reviews",
        version: "v2",
        app_port: 19082,
        egress_port: 15082,
        admin_port: 15102,
    },
    Workload {
        name: "ratings-v1",
        service_account: "bookinfo-ratings",
        app: "ratings",
        version: "v1",
        app_port: 19083,
        egress_port: 15083,
        admin_port: 15103,
    },
];

/// A spar-proxy bootstrap that takes everything from spar-control over ADS.
fn bootstrap(node_id: &str, labels: &str, service_account: &str, admin_port: u16) -> String {
    let (xds_ip, xds_port) = XDS.split_once(':').unwrap_or(("127.0.0.1", "15010"));
    format!(
        r#"node:
  id: "{node_id}"
  cluster: spar-mesh
  metadata: {{ NAMESPACE: default, SERVICE_ACCOUNT: {service_account}, LABELS: {{ {labels} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
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
        - endpoint: {{ address: {{ socket_address: {{ address: {xds_ip}, port_value: {xds_port} }} }} }}
"#
    )
}

/// One GET on a fresh connection with these fields: (status code, body).
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("host: bookinfo.local\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn tally(addr: &str, path: &str, headers: &[(&str, &str)], n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let key = match get(addr, path, headers) {
            Ok((200, body)) => body,
            Ok((status, _)) => format!("HTTP {status}"),
            Err(e) => format!("error: {e}"),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

fn wait_serving(addr: &str, path: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if matches!(get(addr, path, &[]), Ok((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{addr}{path} did not answer 200 within 60 s")
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let once = args.iter().any(|a| a == "--once");
    let debug = args.iter().any(|a| a == "--debug");
    let mut build = Command::new("cargo");
    build.arg("build");
    if !debug {
        build.arg("--release");
    }
    sh(build.args([
        "-p",
        "spar-proxy",
        "-p",
        "spar-bench",
        "-p",
        "spar-control",
        "-p",
        "spar-ca",
    ]))?;
    let bin = root().join(if debug {
        "target/debug"
    } else {
        "target/release"
    });
    let config_dir = root().join("deploy/mesh");
    let scratch = root().join("target/mesh");
    std::fs::create_dir_all(&scratch)?;

    let mut children = Vec::new();
    let mut spawn = |cmd: &mut Command| -> anyhow::Result<()> {
        children.push(Kill(cmd.stdout(Stdio::null()).spawn()?));
        Ok(())
    };
    spawn(
        Command::new(bin.join("spar-control"))
            .arg("--config-dir")
            .arg(&config_dir)
            .args(["--xds-address", XDS, "-l", "warn"])
            .arg("--ca-dir")
            .arg(scratch.join("ca")),
    )?;
    wait_listening(XDS)?;
    wait_listening(CA)?;
    for w in &WORKLOADS {
        let app = format!("127.0.0.1:{}", w.app_port);
        spawn(Command::new(bin.join("spar-bench")).args([
            "echo",
            "--listen",
            &app,
            "--name",
            &format!("{}-{}", w.app, w.version),
        ]))?;
        let node = format!(
            "sidecar~127.0.0.1~{}-0.default~default.svc.cluster.local",
            w.name
        );
        let labels = format!("app: {}, version: {}", w.app, w.version);
        start_proxy(
            &mut spawn,
            &bin,
            &scratch,
            w.name,
            &bootstrap(&node, &labels, w.service_account, w.admin_port),
            w.service_account,
        )?;
    }
    let node = "router~127.0.0.1~ingressgateway-0.default~default.svc.cluster.local";
    start_proxy(
        &mut spawn,
        &bin,
        &scratch,
        "ingressgateway",
        &bootstrap(
            node,
            "istio: ingressgateway",
            "istio-ingressgateway",
            GATEWAY_ADMIN,
        ),
        "istio-ingressgateway",
    )?;
    wait_serving(GATEWAY, "/productpage")?;
    let ok = sample_traffic()?;
    if once {
        // Proxies first, then the control plane, so nothing logs a lost stream.
        while let Some(child) = children.pop() {
            drop(child);
        }
        anyhow::ensure!(
            ok,
            "the mesh did not route as deploy/mesh/routing.yaml says"
        );
        return Ok(());
    }
    println!("Try:");
    println!("  curl http://{GATEWAY}/productpage");
    println!("  curl http://{GATEWAY}/reviews                         # 90/10 canary, v1/v2");
    println!("  curl -H 'end-user: jason' http://{GATEWAY}/reviews    # always v2");
    println!("  curl http://{GATEWAY}/ratings/internal                # 403: security.yaml");
    println!(
        "  curl -H 'host: reviews' http://127.0.0.1:15080/       # from productpage's sidecar"
    );
    println!(
        "  curl http://127.0.0.1:{GATEWAY_ADMIN}/stats/prometheus            # gateway metrics (sidecars: 15100-15103)"
    );
    println!(
        "  curl http://127.0.0.1:{GATEWAY_ADMIN}/config_dump                 # what spar-control pushed"
    );
    println!(
        "  cargo run -p sparctl -- analyze deploy/mesh             # validate the mesh config"
    );
    println!(
        "  edit {}/routing.yaml and save: routing changes live",
        config_dir.display()
    );
    println!("\nRunning until Ctrl-C.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Starts a proxy with a mesh identity: a token for its service account from the CA's
/// state directory, the CA's root to trust it.
fn start_proxy(
    spawn: &mut impl FnMut(&mut Command) -> anyhow::Result<()>,
    bin: &Path,
    scratch: &Path,
    name: &str,
    bootstrap: &str,
    service_account: &str,
) -> anyhow::Result<()> {
    let path = scratch.join(format!("{name}.yaml"));
    std::fs::write(&path, bootstrap)?;
    let ca_dir = scratch.join("ca");
    let token = Command::new(bin.join("spar-ca"))
        .args(["token", "--namespace", "default", "--service-account"])
        .arg(service_account)
        .arg("--dir")
        .arg(&ca_dir)
        .output()?;
    anyhow::ensure!(
        token.status.success(),
        "spar-ca token: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token_file = scratch.join(format!("{name}.token"));
    std::fs::write(&token_file, &token.stdout)?;
    spawn(
        Command::new(bin.join("spar-proxy"))
            .arg("-c")
            .arg(&path)
            .args(["--concurrency", "1", "--no-pin", "-l", "warn"])
            .args(["--ca-address", &format!("https://{CA}")])
            .arg("--ca-root")
            .arg(ca_dir.join("root-cert.pem"))
            .arg("--token-file")
            .arg(&token_file),
    )
}

/// Sends the sample requests and prints what answered; true when routing matched the
/// configuration (every request answered; jason always on v2; the canary mostly v1).
fn sample_traffic() -> anyhow::Result<bool> {
    println!("\n== the local mesh is up: spar-control on {XDS}, gateway on {GATEWAY}\n");
    let page = tally(GATEWAY, "/productpage", &[], 5);
    println!("GET /productpage x5 via the gateway:            {page:?}");
    let canary = tally(GATEWAY, "/reviews", &[], 200);
    println!("GET /reviews x200 via the gateway (90/10):      {canary:?}");
    let jason = tally(GATEWAY, "/reviews", &[("end-user", "jason")], 20);
    println!("GET /reviews x20 as end-user jason:             {jason:?}");
    let egress = &format!("127.0.0.1:{}", WORKLOADS[0].egress_port);
    let inside = tally(egress, "/", &[("host", "reviews")], 20);
    println!("reviews x20 from productpage's sidecar:         {inside:?}");
    let inside_jason = tally(
        egress,
        "/",
        &[("host", "reviews"), ("end-user", "jason")],
        20,
    );
    println!("reviews x20 from productpage's sidecar, jason:  {inside_jason:?}");
    // deploy/mesh/security.yaml: a mesh-wide DENY, and ratings' ALLOW for reads only.
    let admin = tally(GATEWAY, "/admin", &[], 1);
    println!("GET /admin via the gateway (mesh-wide DENY):    {admin:?}");
    let internal = tally(GATEWAY, "/ratings/internal", &[], 1);
    println!("GET /ratings/internal (ratings' ALLOW):         {internal:?}");
    let ratings = tally(GATEWAY, "/ratings", &[], 5);
    println!("GET /ratings x5 via the gateway (its identity): {ratings:?}");
    let from_productpage = tally(egress, "/", &[("host", "ratings")], 1);
    println!("ratings from productpage's sidecar (refused):   {from_productpage:?}");
    let plaintext = tally("127.0.0.1:9083", "/", &[("host", "ratings")], 1);
    println!("plaintext to ratings' sidecar (STRICT mTLS):    {plaintext:?}\n");
    let v1 = canary.get("reviews-v1").copied().unwrap_or(0);
    let ok = page.get("productpage-v1") == Some(&5)
        && v1 + canary.get("reviews-v2").copied().unwrap_or(0) == 200
        && v1 > 150
        && jason.get("reviews-v2") == Some(&20)
        && inside.get("reviews-v1") == Some(&20)
        && inside_jason.get("reviews-v2") == Some(&20)
        && admin.get("HTTP 403") == Some(&1)
        && internal.get("HTTP 403") == Some(&1)
        && ratings.get("ratings-v1") == Some(&5)
        && from_productpage.get("HTTP 403") == Some(&1)
        && !plaintext.contains_key("ratings-v1");
    Ok(ok)
}
