//! The process around the data path: config errors at start, reloads with
//! zero failed requests, graceful drain, both I/O backends, admin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use spar_tests::http::{self, read_response};
use spar_tests::proc::{Echo, SparProxy, bin, scratch_dir};
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http_bootstrap};

#[test]
fn bad_config_exits_non_zero_naming_file_line_and_field() {
    let echo_addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let port = free_port();
    let good = http_bootstrap(port, echo_addr, "", "");
    let bad = good.replace(
        "stat_prefix: ingress_http",
        "stat_prefix: ingress_http\n          not_a_field: 1",
    );
    let dir = scratch_dir("badcfg");
    let path = dir.join("bad.yaml");
    std::fs::write(&path, bad.replace("{admin}", &free_port().to_string())).unwrap();
    let out = Command::new(bin("spar-proxy"))
        .arg("-c")
        .arg(&path)
        .args(["--no-pin"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:"), "no file name: {err}");
    assert!(err.contains("not_a_field"), "no field: {err}");
    // Nothing half-started: the listener port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());

    // A field Envoy knows but spar-proxy does not support yet is refused too.
    let unsupported = good.replace(
        "connect_timeout: 1s",
        "connect_timeout: 1s\n    lb_policy: CLUSTER_PROVIDED",
    );
    std::fs::write(
        &path,
        unsupported.replace("{admin}", &free_port().to_string()),
    )
    .unwrap();
    let out = Command::new(bin("spar-proxy"))
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lb_policy"));

    // A taken listener port: non-zero exit, clear message.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = taken.local_addr().unwrap().port();
    std::fs::write(
        &path,
        http_bootstrap(tport, echo_addr, "", "").replace("{admin}", &free_port().to_string()),
    )
    .unwrap();
    let out = Command::new(bin("spar-proxy"))
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
}

#[test]
fn validate_mode_checks_and_exits() {
    let dir = scratch_dir("validate");
    let path = dir.join("ok.yaml");
    std::fs::write(
        &path,
        http_bootstrap(free_port(), "127.0.0.1:9".parse().unwrap(), "", "").replace("{admin}", "0"),
    )
    .unwrap();
    let out = Command::new(bin("spar-proxy"))
        .arg("-c")
        .arg(&path)
        .args(["--mode", "validate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn route_to(proxy: &SparProxy, port: u16, upstream: std::net::SocketAddr) {
    let yaml = http_bootstrap(port, upstream, "", "");
    let admin = proxy.admin.port().to_string();
    let tmp = proxy.dir.join("next.yaml");
    std::fs::write(&tmp, yaml.replace("{admin}", &admin)).unwrap();
    std::fs::rename(&tmp, &proxy.config).unwrap();
}

fn tagged(tag: &'static str) -> Scripted {
    Scripted::start(move |mut c| {
        while c.read_head().is_some() {
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{tag}",
                tag.len()
            );
            c.write(reply.as_bytes());
        }
    })
}

#[test]
fn sighup_and_file_change_reload_routing() {
    let (blue, green) = (tagged("blue"), tagged("green"));
    let port = free_port();
    let proxy = SparProxy::start(&http_bootstrap(port, blue.addr, "", ""), &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(http::get(addr, "/").unwrap().body_text(), "blue");
    // File change alone (the watcher polls once a second).
    route_to(&proxy, port, green.addr);
    assert_eventually(Duration::from_secs(10), "file change applied", || {
        http::get(addr, "/").is_ok_and(|r| r.body_text() == "green")
    });
    // SIGHUP.
    route_to(&proxy, port, blue.addr);
    proxy.process.signal(libc::SIGHUP);
    assert_eventually(Duration::from_secs(10), "SIGHUP applied", || {
        http::get(addr, "/").is_ok_and(|r| r.body_text() == "blue")
    });
    // A broken file is refused; the running config stays.
    std::fs::write(&proxy.config, "static_resources: {listeners: [{name: 1}]}").unwrap();
    proxy.process.signal(libc::SIGHUP);
    assert_eventually(Duration::from_secs(10), "failed reload counted", || {
        proxy.metric("spar_config_reloads_total", "failed") >= 1
    });
    assert_eq!(http::get(addr, "/").unwrap().body_text(), "blue");
}

#[test]
fn reload_under_load_fails_no_request() {
    let (blue, green) = (tagged("blue"), tagged("green"));
    let port = free_port();
    let proxy = SparProxy::start(
        &http_bootstrap(port, blue.addr, "", ""),
        &["--concurrency", "2"],
    );
    let url = format!("http://127.0.0.1:{port}/");
    let load = Command::new(bin("spar-bench"))
        .args([
            "load", &url, "-c", "8", "-d", "4s", "--warmup", "0s", "--json", "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        route_to(
            &proxy,
            port,
            if i % 2 == 0 { green.addr } else { blue.addr },
        );
        proxy.process.signal(libc::SIGHUP);
    }
    let out = load.wait_with_output().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("spar-bench --json output");
    let total = report["requests"].as_u64().unwrap_or(0);
    let errors = report["errors_total"].as_u64().unwrap_or(u64::MAX);
    assert!(total > 100, "too little load to prove anything: {report}");
    assert_eq!(errors, 0, "requests failed during reloads: {report}");
    assert!(proxy.metric("spar_config_reloads_total", "ok") >= 3);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits() {
    let slow = Scripted::start(|mut c| {
        while c.read_head().is_some() {
            std::thread::sleep(Duration::from_millis(800));
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow");
        }
    });
    let port = free_port();
    let mut proxy = SparProxy::start(
        &http_bootstrap(port, slow.addr, "", ""),
        &["--drain-time-s", "10"],
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut idle = http::connect(addr).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    read_response(&mut idle, &mut Vec::new(), false).unwrap();
    let mut busy = http::connect(addr).unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    proxy.process.signal(libc::SIGTERM);
    // The in-flight request completes, told to close.
    let r = read_response(&mut busy, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body_text(), "slow");
    assert_eq!(r.header("connection"), Some("close"));
    // The idle keep-alive connection is closed politely (EOF, no reply).
    assert!(http::closed_by_peer(&mut idle));
    let code = proxy.process.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after drain"
    );
}

#[test]
fn both_io_backends_serve_traffic() {
    let echo = Echo::start(&[]);
    for io in ["epoll", "io_uring"] {
        let port = free_port();
        let proxy = SparProxy::start(
            &http_bootstrap(port, echo.addr, "", ""),
            &["--io", io, "--concurrency", "2"],
        );
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..20 {
            assert_eq!(http::get(addr, "/").unwrap().status, 200, "{io}");
        }
        let info = http::get(proxy.admin, "/server_info").unwrap().body_text();
        assert!(
            info.contains(&format!("\"io_backend\": \"{io}\"")),
            "{io}: {info}"
        );
    }
}

#[test]
fn admin_endpoints_answer() {
    let echo = Echo::start(&[]);
    let port = free_port();
    let proxy = SparProxy::start(&http_bootstrap(port, echo.addr, "", ""), &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    http::get(addr, "/").unwrap();
    assert_eq!(
        http::get(proxy.admin, "/ready").unwrap().body_text(),
        "LIVE\n"
    );
    let dump: serde_json::Value =
        serde_json::from_slice(&http::get(proxy.admin, "/config_dump").unwrap().body).unwrap();
    assert_eq!(
        dump["configs"][0]["bootstrap"]["static_resources"]["clusters"][0]["name"].as_str(),
        Some("backend")
    );
    let prom = proxy.metrics();
    assert!(prom.contains("# TYPE envoy_http_downstream_rq_total counter"));
    assert_eq!(
        spar_tests::proc::metric_sum(
            &prom,
            "envoy_http_downstream_rq_xx",
            "envoy_response_code_class=\"2\""
        ),
        1
    );
    assert!(
        http::get(proxy.admin, "/listeners")
            .unwrap()
            .body_text()
            .contains(&port.to_string())
    );
}
