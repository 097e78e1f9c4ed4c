//! spar-runtime driven in the test process: port-0 listeners, both I/O
//! backends, snapshot swaps under load, drain. No binary in between, so a
//! failure points straight at the library.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use spar_config::{Format, compile, load_bootstrap_str};
use spar_runtime::{IoBackend, Options, Proxy};
use spar_tests::http::{self, read_response};
use spar_tests::upstream::Scripted;

fn snapshot(upstream: SocketAddr, version: u64) -> spar_config::Snapshot {
    let yaml = spar_tests::http_bootstrap(0, upstream, "", "").replace("{admin}", "0");
    let b = load_bootstrap_str(&yaml, "in-process.yaml", Format::Yaml).unwrap();
    compile(&b, version).unwrap()
}

fn tagged(tag: &'static str) -> Scripted {
    Scripted::start(move |mut c| {
        while c.read_head().is_some() {
            c.write(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{tag}",
                    tag.len()
                )
                .as_bytes(),
            );
        }
    })
}

fn listen_addr(p: &Proxy) -> SocketAddr {
    p.listener_addrs()
        .into_iter()
        .find(|(n, _)| n == "http")
        .unwrap()
        .1
}

#[test]
fn both_backends_serve_on_port_zero_listeners() {
    let up = tagged("ok");
    for io in [IoBackend::Epoll, IoBackend::IoUring] {
        let opts = Options {
            concurrency: 2,
            io,
            pin: false,
            tcp_splice: false,
        };
        let proxy = Proxy::start(snapshot(up.addr, 1), &opts).unwrap();
        let addr = listen_addr(&proxy);
        assert_ne!(addr.port(), 0);
        for _ in 0..10 {
            assert_eq!(http::get(addr, "/").unwrap().body_text(), "ok");
        }
        proxy.drain();
        assert!(
            proxy.wait(Duration::from_secs(5)),
            "{io:?}: drain did not finish"
        );
    }
}

#[test]
fn snapshot_swaps_under_load_fail_no_request_and_keep_connections() {
    let (blue, green) = (tagged("blue"), tagged("green"));
    let opts = Options {
        concurrency: 2,
        io: IoBackend::Auto,
        pin: false,
        tcp_splice: false,
    };
    let proxy = Arc::new(Proxy::start(snapshot(blue.addr, 1), &opts).unwrap());
    let addr = listen_addr(&proxy);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                // One keep-alive connection per client for the whole run:
                // swaps must not drop it.
                let mut s = http::connect(addr).unwrap();
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sent = s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").is_ok();
                    match read_response(&mut s, &mut buf, false) {
                        Ok(r) if sent && r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for v in 2..12 {
        std::thread::sleep(Duration::from_millis(100));
        let target = if v % 2 == 0 { green.addr } else { blue.addr };
        proxy.update(snapshot(target, v)).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 100);
    // New connections see the newest snapshot (v11: blue).
    assert_eq!(http::get(addr, "/").unwrap().body_text(), "blue");
    proxy.drain();
    assert!(proxy.wait(Duration::from_secs(5)));
}

#[test]
fn a_listener_that_cannot_bind_fails_the_start_with_nothing_running() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = spar_tests::http_bootstrap(port, "127.0.0.1:9".parse().unwrap(), "", "")
        .replace("{admin}", "0");
    let b = load_bootstrap_str(&yaml, "x.yaml", Format::Yaml).unwrap();
    let err = Proxy::start(compile(&b, 1).unwrap(), &Options::default()).unwrap_err();
    assert!(err.to_string().contains("cannot listen"), "{err}");
}
