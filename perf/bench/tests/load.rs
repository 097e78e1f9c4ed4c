//! The load generator against the echo server and scripted upstreams, on
//! 127.0.0.1 with ephemeral ports. Timing bounds are loose on purpose: the
//! machines running this are shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spar_bench::load;
use spar_bench::report::Latency;
use support::{Reply, closed_port, config, echo, ok_response, scripted};

fn assert_ordered(l: &Latency) {
    assert!(
        l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max,
        "{l:?}"
    );
    assert!(l.mean >= l.min as f64 && l.mean <= l.max as f64, "{l:?}");
}

#[test]
fn closed_loop_against_echo() {
    let server = echo();
    for io in [spar_bench::Io::Uring, spar_bench::Io::Epoll] {
        let mut cfg = config(server.addr());
        cfg.connections = 4;
        cfg.io = io;
        let r = load::run(&cfg).unwrap();
        assert_eq!(r.errors_total, 0, "{io:?}: {:?}", r.errors);
        assert!(r.requests > 0, "{io:?}");
        assert_eq!(r.ok, r.requests);
        assert!(r.throughput_rps > 0.0);
        assert!((0.9..1.5).contains(&r.duration_s), "{}", r.duration_s);
        assert!(r.bytes_read > r.requests * 100, "{} bytes", r.bytes_read);
        assert_ordered(&r.latency_us);
    }
}

#[test]
fn warmup_is_not_measured() {
    let server = echo();
    let mut cfg = config(server.addr());
    cfg.warmup = Duration::from_millis(300);
    cfg.duration = Some(Duration::from_millis(300));
    let r = load::run(&cfg).unwrap();
    assert!(r.requests > 0);
    assert!((0.29..0.5).contains(&r.duration_s), "{}", r.duration_s);
}

#[test]
fn open_loop_sends_about_rate_times_duration() {
    let server = echo();
    let mut cfg = config(server.addr());
    cfg.connections = 4;
    cfg.rate = Some(200.0);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert!((120..=280).contains(&r.requests), "{} requests", r.requests);
    assert_eq!(r.mode, "open");
}

/// A server that stalls once for 300 ms. Open loop must show the stall in
/// its tail (latency from intended send time); closed loop hides it from
/// everything but the max, which is exactly the coordinated-omission bias.
#[test]
fn open_loop_corrects_coordinated_omission() {
    const STALL: Duration = Duration::from_millis(300);
    let stall_at = |n| {
        if n == 50 {
            Reply::After(STALL, ok_response())
        } else {
            Reply::Bytes(ok_response())
        }
    };

    let open = scripted(Arc::new(stall_at));
    let mut cfg = config(open.addr);
    cfg.connections = 1;
    cfg.rate = Some(200.0);
    cfg.duration = Some(Duration::from_millis(1500));
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert!(r.requests > 100, "{} requests", r.requests);
    assert!(r.latency_us.max >= 290_000, "open max {:?}", r.latency_us);
    assert!(r.latency_us.p99 >= 200_000, "open p99 {:?}", r.latency_us);

    let closed = scripted(Arc::new(stall_at));
    let mut cfg = config(closed.addr);
    cfg.connections = 1;
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert!(r.requests > 100, "{} requests", r.requests);
    assert!(r.latency_us.max >= 290_000, "closed max {:?}", r.latency_us);
    assert!(r.latency_us.p50 < 50_000, "closed p50 {:?}", r.latency_us);
}

#[test]
fn chunked_responses_are_framed() {
    let body = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                 5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                 0\r\nx-trailer: yes\r\n\r\n"
        .to_vec();
    let server = scripted(Arc::new(move |_| Reply::Bytes(body.clone())));
    let mut cfg = config(server.addr);
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(300);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.ok, 300);
    // Framing stayed in sync: one connection for all of them.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn head_requests_expect_no_body() {
    // The server announces a body length but, as HEAD requires, sends none;
    // a client that waited for the body would time out.
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec();
    let server = scripted(Arc::new(move |_| Reply::Bytes(head.clone())));
    let mut cfg = config(server.addr);
    cfg.method = "HEAD".to_owned();
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(100);
    cfg.timeout = Duration::from_millis(500);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.ok, 100);

    // And against the echo server.
    let server = echo();
    let mut cfg = config(server.addr());
    cfg.method = "HEAD".to_owned();
    cfg.duration = None;
    cfg.requests = Some(100);
    let r = load::run(&cfg).unwrap();
    assert_eq!((r.ok, r.errors_total), (100, 0), "{:?}", r.errors);
}

#[test]
fn keep_alive_reuses_one_connection() {
    let server = scripted(Arc::new(|_| Reply::Bytes(ok_response())));
    let mut cfg = config(server.addr);
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(2000);
    let r = load::run(&cfg).unwrap();
    assert_eq!((r.ok, r.errors_total), (2000, 0), "{:?}", r.errors);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2000);
}

#[test]
fn new_conn_opens_one_connection_per_request() {
    let server = scripted(Arc::new(|_| Reply::Bytes(ok_response())));
    let mut cfg = config(server.addr);
    cfg.connections = 2;
    cfg.new_conn = true;
    cfg.duration = None;
    cfg.requests = Some(50);
    let r = load::run(&cfg).unwrap();
    assert_eq!((r.ok, r.errors_total), (50, 0), "{:?}", r.errors);
    assert_eq!(server.connections.load(Ordering::SeqCst), 50);
    assert!(r.new_conn);
}

#[test]
fn server_closing_keep_alive_reconnects() {
    // Every third response asks to close; the client must reconnect.
    let server = scripted(Arc::new(|n| {
        if n % 3 == 2 {
            Reply::Bytes(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_vec(),
            )
        } else {
            Reply::Bytes(ok_response())
        }
    }));
    let mut cfg = config(server.addr);
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(30);
    let r = load::run(&cfg).unwrap();
    assert_eq!((r.ok, r.errors_total), (30, 0), "{:?}", r.errors);
    assert_eq!(server.connections.load(Ordering::SeqCst), 10);
}

#[test]
fn errors_are_counted_by_kind() {
    // Nothing listening: connect errors, and the report says all failed.
    let mut cfg = config(closed_port());
    cfg.duration = None;
    cfg.requests = Some(20);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors.connect, 20, "{:?}", r.errors);
    assert_eq!(r.requests, 0);
    assert!(r.all_failed());

    // Status classes.
    let server = scripted(Arc::new(|n| {
        let code = [503, 404, 302, 200][n as usize % 4];
        Reply::Bytes(format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n").into_bytes())
    }));
    let mut cfg = config(server.addr);
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(40);
    let r = load::run(&cfg).unwrap();
    let s = r.errors.status;
    assert_eq!((s.s5xx, s.s4xx, s.s3xx, r.ok), (10, 10, 10, 10), "{s:?}");
    assert_eq!(r.requests, 40);

    // Garbage instead of a response: parse errors.
    let server = scripted(Arc::new(|_| Reply::Bytes(b"SMTP ready\r\n\r\n".to_vec())));
    let mut cfg = config(server.addr);
    cfg.duration = None;
    cfg.requests = Some(10);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors.parse, 10, "{:?}", r.errors);

    // Closed mid-body: read errors.
    let server = scripted(Arc::new(|_| {
        Reply::ThenClose(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec())
    }));
    let mut cfg = config(server.addr);
    cfg.duration = None;
    cfg.requests = Some(10);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors.read, 10, "{:?}", r.errors);
}

#[test]
fn silent_server_times_out() {
    let server = scripted(Arc::new(|_| Reply::Silence));
    let mut cfg = config(server.addr);
    cfg.connections = 2;
    cfg.duration = None;
    cfg.requests = Some(4);
    cfg.timeout = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.errors.timeout, 4, "{:?}", r.errors);
    assert!(r.all_failed());
    // Two rounds of 200 ms on each connection, plus slack for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn run_ends_on_time_with_a_stalled_request_in_flight() {
    // One request never answers; the duration still bounds the run and the
    // cut request is neither a response nor an error.
    let server = scripted(Arc::new(|_| Reply::Silence));
    let mut cfg = config(server.addr);
    cfg.connections = 1;
    cfg.duration = Some(Duration::from_millis(300));
    cfg.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let r = load::run(&cfg).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((r.requests, r.errors_total), (0, 0), "{:?}", r.errors);
}

#[test]
fn request_bodies_reach_the_server_framed() {
    let server = echo();
    let mut cfg = config(server.addr());
    cfg.method = "POST".to_owned();
    cfg.body_size = 20_000;
    cfg.duration = None;
    cfg.requests = Some(200);
    let r = load::run(&cfg).unwrap();
    assert_eq!((r.ok, r.errors_total), (200, 0), "{:?}", r.errors);
    assert!(r.bytes_written >= 200 * 20_000);
}
