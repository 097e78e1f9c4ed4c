//! Hostile and broken input: every case gets the right status, a counted
//! reason, and never reaches the upstream (request smuggling, RFC 9112 6.3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use spar_tests::http::{self, closed_by_peer, read_response};
use spar_tests::proc::SparProxy;
use spar_tests::upstream::Scripted;
use spar_tests::{assert_eventually, free_port, http_bootstrap};

fn ok_upstream() -> Scripted {
    Scripted::start(|mut c| {
        while c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    })
}

fn start(up: &Scripted, hcm: &str) -> (SparProxy, std::net::SocketAddr) {
    let port = free_port();
    let p = SparProxy::start(&http_bootstrap(port, up.addr, hcm, ""), &[]);
    (p, format!("127.0.0.1:{port}").parse().unwrap())
}

/// (name, request bytes, expected status)
const SMUGGLING: &[(&str, &[u8], u16)] = &[
    ("cl_and_te", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_and_cl", b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n", 400),
    ("duplicate_cl_same", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nab", 400),
    ("duplicate_cl_conflicting", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ncontent-length: 5\r\n\r\nab", 400),
    ("cl_list", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2, 2\r\n\r\nab", 400),
    ("cl_sign", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +2\r\n\r\nab", 400),
    ("cl_not_digits", b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0x2\r\n\r\nab", 400),
    ("te_gzip", b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip\r\n\r\n", 400),
    ("te_chunked_not_last", b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, gzip\r\n\r\n", 400),
    ("te_chunked_twice", b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_unknown", b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: xchunked\r\n\r\n", 400),
    ("te_http10", b"POST / HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs_fold", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: b\r\n c\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length : 0\r\n\r\n", 400),
    ("bare_lf", b"GET / HTTP/1.1\nhost: a\n\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: b\x00c\r\n\r\n", 400),
    ("bad_method", b"G(T / HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    ("no_host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", 400),
    ("bad_target", b"GET nope HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    ("http2_version", b"GET / HTTP/2.0\r\nhost: a\r\n\r\n", 505),
];

#[test]
fn smuggling_attempts_are_refused_and_never_forwarded() {
    let up = ok_upstream();
    let (proxy, addr) = start(&up, "");
    for (name, req, status) in SMUGGLING {
        let mut s = http::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let r =
            read_response(&mut s, &mut Vec::new(), false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, *status, "{name}");
        assert!(
            closed_by_peer(&mut s),
            "{name}: connection left open after a refused request"
        );
    }
    assert_eq!(
        up.seen.connections.load(Ordering::Relaxed),
        0,
        "a refused request reached the upstream"
    );
    let rejected = proxy.metric("spar_http_downstream_rq_rejected_total", "");
    assert_eq!(rejected, SMUGGLING.len() as i64);
}

#[test]
fn bad_chunk_sizes_are_refused_and_the_connection_closed() {
    let cases: &[&[u8]] = &[
        b"zz\r\nab\r\n0\r\n\r\n",
        b"-1\r\n",
        b"ffffffffffffffffff\r\n",
        b"2\r\nabc\r\n0\r\n\r\n",
        b"2\nab\n0\n\n",
    ];
    let up = Scripted::start(|mut c| {
        // Reads whatever arrives; a bad body must never be answered as if complete.
        while c.read_head().is_some() {
            let _ = c.read_chunked_body();
        }
    });
    let (_proxy, addr) = start(&up, "");
    for body in cases {
        let mut s = http::connect(addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap();
        s.write_all(body).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false);
        if let Ok(r) = &r {
            assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        }
        assert!(
            closed_by_peer(&mut s),
            "{:?}: left open",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn long_request_line_is_414_and_big_or_many_headers_431() {
    let up = ok_upstream();
    let (_proxy, addr) = start(&up, "          max_request_headers_kb: 8");
    let long = format!("GET /{} HTTP/1.1\r\nhost: a\r\n\r\n", "a".repeat(20_000));
    assert_eq!(http::raw(addr, long.as_bytes()).unwrap().status, 414);
    let big = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(http::raw(addr, big.as_bytes()).unwrap().status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nhost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(http::raw(addr, many.as_bytes()).unwrap().status, 431);
    assert_eq!(up.seen.connections.load(Ordering::Relaxed), 0);
}

#[test]
fn bad_upstream_responses_are_502_and_not_relayed() {
    let up = Scripted::start(|mut c| {
        let Some(head) = c.read_head() else { return };
        let reply: &[u8] = match head.split_whitespace().nth(1).unwrap_or("") {
            "/cl-te" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "/two-cl" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            "/garbage" => b"HTTTP/9 OK\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        };
        c.write(reply);
    });
    let (proxy, addr) = start(&up, "");
    for path in ["/cl-te", "/two-cl", "/garbage", "/te-gzip"] {
        let r = http::get(addr, path).unwrap();
        assert_eq!(r.status, 502, "{path}");
    }
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"UPE\""),
        4
    );
}

#[test]
fn slow_header_senders_get_408_and_idle_connections_close() {
    let up = ok_upstream();
    let hcm = "          request_headers_timeout: 0.5s\n          common_http_protocol_options: { idle_timeout: 1s }";
    let (proxy, addr) = start(&up, hcm);
    // Slowloris: a head that never completes.
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 408);
    // Idle keep-alive connection: closed after the idle timeout, no reply.
    let mut idle = http::connect(addr).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    read_response(&mut idle, &mut Vec::new(), false).unwrap();
    let started = std::time::Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(idle.read(&mut b).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eventually(Duration::from_secs(5), "timeouts counted", || {
        proxy.metric("envoy_http_downstream_rq_header_timeout", "") == 1
            && proxy.metric("envoy_http_downstream_cx_idle_timeout", "") >= 1
    });
}

#[test]
fn listener_connection_limit_refuses_the_excess() {
    let up = ok_upstream();
    let port = free_port();
    let mut yaml = http_bootstrap(port, up.addr, "", "");
    yaml.push_str(
        "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n      envoy.resource_limits.listener.http.connection_limit: 3\n",
    );
    let proxy = SparProxy::start(&yaml, &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| {
            let mut s = http::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
            read_response(&mut s, &mut Vec::new(), false).unwrap();
            s
        })
        .collect();
    let mut extra = http::connect(addr).unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    assert!(
        read_response(&mut extra, &mut Vec::new(), false).is_err(),
        "4th connection was served"
    );
    assert_eq!(proxy.metric("envoy_listener_downstream_cx_overflow", ""), 1);
    drop(held);
    assert_eventually(Duration::from_secs(5), "a slot frees up", || {
        http::get(addr, "/").is_ok_and(|r| r.status == 200)
    });
}
