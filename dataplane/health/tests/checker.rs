//! Health checker against local listeners: transitions, TCP payloads, and `sync` reuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use spar_cluster::health::{HealthCheck, HealthCheckKind};
use spar_cluster::{Cluster, Endpoint, SharedHealth};
use spar_health::HealthChecker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const FAST: Duration = Duration::from_millis(30);

/// Polls `cond` until true or panics after 10 s (generous for a loaded 2-core machine).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An HTTP server answering every request with the current `status`; counts connections
/// and records the last request head.
async fn http_server(status: Arc<AtomicU16>, conns: Arc<AtomicUsize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            conns.fetch_add(1, Ordering::Relaxed);
            let status = status.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got);
                assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
                assert!(head.contains("\r\nHost: backend\r\n"), "{head}");
                let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn check(kind: HealthCheckKind, unhealthy: u32, healthy: u32) -> HealthCheck {
    HealthCheck {
        timeout: Duration::from_secs(1),
        interval: FAST,
        interval_jitter: Duration::from_millis(5),
        unhealthy_threshold: unhealthy,
        healthy_threshold: healthy,
        kind,
    }
}

fn http_kind() -> HealthCheckKind {
    HealthCheckKind::Http {
        path: "/healthz".into(),
        host: None,
        expected: vec![spar_cluster::health::DEFAULT_EXPECTED],
    }
}

fn cluster(addrs: &[SocketAddr], checks: Vec<HealthCheck>) -> Arc<Cluster> {
    let mut c = Cluster::new(
        "backend",
        addrs.iter().map(|a| Endpoint::new(*a, 1)).collect(),
    );
    c.health_checks = checks;
    Arc::new(c)
}

fn health(map: &std::collections::HashMap<String, Arc<SharedHealth>>) -> Arc<SharedHealth> {
    map.get("backend").cloned().expect("backend is checked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_healthy_failing_healthy() {
    let status = Arc::new(AtomicU16::new(200));
    let conns = Arc::new(AtomicUsize::new(0));
    let addr = http_server(status.clone(), conns.clone()).await;
    let mut checker = HealthChecker::new();
    let h = health(&checker.sync(&[cluster(&[addr], vec![check(http_kind(), 2, 2)])]));
    eventually("first checks", || conns.load(Ordering::Relaxed) >= 2).await;
    assert!(!h.is_failed(0));
    status.store(503, Ordering::Relaxed); // outside expected: failed at once
    eventually("503 fails the host", || h.is_failed(0)).await;
    status.store(200, Ordering::Relaxed);
    eventually("two 200s bring it back", || !h.is_failed(0)).await;
    assert!(h.generation() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_count_towards_threshold() {
    // A port with no listener: bind, learn the port, close.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let status = Arc::new(AtomicU16::new(200));
    let live = http_server(status, Arc::new(AtomicUsize::new(0))).await;
    let mut checker = HealthChecker::new();
    let h = health(&checker.sync(&[cluster(&[live, dead], vec![check(http_kind(), 3, 1)])]));
    eventually("dead endpoint fails", || h.is_failed(1)).await;
    assert!(!h.is_failed(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_send_and_receive() {
    // Answers PING with "..PO" then "NG" in two writes; anything else with NOPE.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                if &buf == b"PING" {
                    let _ = s.write_all(b"..PO").await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = s.write_all(b"NG").await;
                } else {
                    let _ = s.write_all(b"NOPE").await;
                }
            });
        }
    });
    let tcp = |send: &[u8]| {
        check(
            HealthCheckKind::Tcp {
                send: Some(send.to_vec()),
                receive: vec![b"PO".to_vec(), b"NG".to_vec()],
            },
            1,
            1,
        )
    };
    let mut checker = HealthChecker::new();
    let good = health(&checker.sync(&[cluster(&[addr], vec![tcp(b"PING")])]));
    // Let several checks pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!good.is_failed(0));
    let bad = health(&checker.sync(&[cluster(&[addr], vec![tcp(b"XXXX")])]));
    assert!(!Arc::ptr_eq(&good, &bad), "changed checks start afresh");
    eventually("mismatch fails", || bad.is_failed(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reuses_and_stops() {
    let conns = Arc::new(AtomicUsize::new(0));
    let addr = http_server(Arc::new(AtomicU16::new(200)), conns.clone()).await;
    let mut checker = HealthChecker::new();
    let c = cluster(&[addr], vec![check(http_kind(), 1, 1)]);
    let first = health(&checker.sync(std::slice::from_ref(&c)));
    let again = health(&checker.sync(&[cluster(&[addr], vec![check(http_kind(), 1, 1)])]));
    assert!(
        Arc::ptr_eq(&first, &again),
        "unchanged cluster keeps its checker"
    );
    assert_eq!(checker.len(), 1);
    // A cluster without checks is not in the map.
    let plain = Arc::new(Cluster::new("plain", vec![Endpoint::new(addr, 1)]));
    let map = checker.sync(&[c, plain]);
    assert!(map.contains_key("backend") && !map.contains_key("plain"));
    // Removed: its tasks stop, so connections stop arriving.
    assert!(checker.sync(&[]).is_empty());
    assert!(checker.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await; // let in-flight checks finish
    let before = conns.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        conns.load(Ordering::Relaxed),
        before,
        "stopped checkers do not probe"
    );
}
