//! HTTP/1.1 proxying through a real spar-proxy process: keep-alive,
//! pipelining, bodies both ways, framing, header hygiene, upstream failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use spar_tests::http::{self, read_response};
use spar_tests::proc::{Echo, SparProxy};
use spar_tests::upstream::{Scripted, header_value};
use spar_tests::{free_port, http_bootstrap};

fn proxy_to(
    upstream: std::net::SocketAddr,
    hcm: &str,
    cluster: &str,
    args: &[&str],
) -> (SparProxy, std::net::SocketAddr) {
    let port = free_port();
    let p = SparProxy::start(&http_bootstrap(port, upstream, hcm, cluster), args);
    (p, format!("127.0.0.1:{port}").parse().unwrap())
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let echo = Echo::start(&["--echo-path"]);
    let (proxy, addr) = proxy_to(echo.addr, "", "", &["--concurrency", "2"]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    for i in 0..200 {
        write!(s, "GET /k/{i} HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-echo-path"), Some(format!("/k/{i}").as_str()));
    }
    assert_eq!(
        proxy.metric("envoy_http_downstream_cx_total", "ingress_http"),
        1
    );
    assert_eq!(
        proxy.metric("envoy_http_downstream_rq_total", "ingress_http"),
        200
    );
    // The upstream side was pooled: far fewer connections than requests.
    assert!(proxy.metric("envoy_cluster_upstream_cx_total", "backend") <= 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let echo = Echo::start(&["--echo-path"]);
    let (_proxy, addr) = proxy_to(echo.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    let mut burst = Vec::new();
    for i in 0..20 {
        burst.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes());
    }
    s.write_all(&burst).unwrap();
    let mut buf = Vec::new();
    for i in 0..20 {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(
            r.header("x-echo-path"),
            Some(format!("/p/{i}").as_str()),
            "response {i} out of order"
        );
    }
}

#[test]
fn chunked_request_body_is_streamed_and_rechunked() {
    let up = Scripted::start(|mut c| {
        while let Some(head) = c.read_head() {
            let body = if header_value(&head, "transfer-encoding").is_some() {
                c.read_chunked_body().unwrap()
            } else {
                let n: usize =
                    header_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
                c.read_exact_body(n).unwrap()
            };
            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            c.write(reply.as_bytes());
            c.write(&body);
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    let heads = up.seen.heads();
    assert!(
        header_value(&heads[0], "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    );
    assert!(header_value(&heads[0], "content-length").is_none());
}

#[test]
fn chunked_and_until_close_responses_reach_the_client_intact() {
    let up = Scripted::start(|mut c| {
        let Some(head) = c.read_head() else { return };
        if head.starts_with("GET /chunked") {
            c.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
        } else {
            // No framing: the body ends when the upstream closes.
            c.write(b"HTTP/1.1 200 OK\r\n\r\nuntil-close-body");
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let r = http::get(addr, "/chunked").unwrap();
    assert_eq!(r.body, b"abcdefg");
    let r = http::get(addr, "/close").unwrap();
    assert_eq!(r.body, b"until-close-body");
    // An HTTP/1.1 client gets it re-chunked, so its connection can stay open.
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"GET /close HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"until-close-body");
}

#[test]
fn head_204_and_304_have_no_body_and_keep_the_connection_in_step() {
    let up = Scripted::start(|mut c| {
        while let Some(head) = c.read_head() {
            let reply: &[u8] = if head.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
            } else if head.starts_with("GET /204") {
                b"HTTP/1.1 204 No Content\r\n\r\n"
            } else if head.starts_with("GET /304") {
                b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            c.write(reply);
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    s.write_all(b"HEAD /h HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("1234")));
    for (path, status) in [("/204", 204), ("/304", 304), ("/after", 200)] {
        write!(s, "GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, status, "{path}");
    }
    assert!(
        buf.is_empty(),
        "stray bytes after bodyless responses: {buf:?}"
    );
}

#[test]
fn hop_by_hop_headers_are_removed_and_forwarding_headers_added() {
    let up = Scripted::start(|mut c| {
        while c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive, x-up-secret\r\nx-up-secret: 1\r\nkeep-alive: timeout=5\r\n\r\n");
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "          use_remote_address: true", "", &[]);
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, x-secret\r\nx-secret: s\r\nkeep-alive: 5\r\nproxy-connection: keep-alive\r\nte: trailers\r\nx-forwarded-for: 10.9.9.9\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("x-up-secret").is_none() && r.header("keep-alive").is_none());
    let head = &up.seen.heads()[0];
    for gone in ["x-secret", "keep-alive", "proxy-connection", "te"] {
        assert!(
            header_value(head, gone).is_none(),
            "{gone} forwarded:\n{head}"
        );
    }
    assert_eq!(
        header_value(head, "x-forwarded-for").as_deref(),
        Some("10.9.9.9, 127.0.0.1")
    );
    assert_eq!(
        header_value(head, "x-forwarded-proto").as_deref(),
        Some("http")
    );
    let id = header_value(head, "x-request-id").expect("x-request-id generated");
    assert_eq!(id.len(), 36);
    // An existing request id is kept.
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-request-id: mine\r\n\r\n")
        .unwrap();
    read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(
        header_value(&up.seen.heads()[1], "x-request-id").as_deref(),
        Some("mine")
    );
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    let echo = Echo::start(&[]);
    let (_proxy, addr) = proxy_to(echo.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 25];
    std::io::Read::read_exact(&mut s, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn routes_by_domain_and_path_and_404s_the_rest() {
    let echo = Echo::start(&["--echo-path"]);
    let (proxy, addr) = proxy_to(echo.addr, "", "", &[]);
    assert_eq!(
        http::get_host(addr, "exact.test", "/only").unwrap().status,
        200
    );
    assert_eq!(
        http::get_host(addr, "exact.test:80", "/only")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http::get_host(addr, "exact.test", "/other").unwrap().status,
        404
    );
    assert_eq!(
        http::get_host(addr, "anything.else", "/other")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"NR\""),
        1
    );
}

#[test]
fn refused_upstream_gives_503_uf() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr_dead = dead.local_addr().unwrap();
    drop(dead);
    let (proxy, addr) = proxy_to(addr_dead, "", "", &[]);
    let r = http::get(addr, "/").unwrap();
    assert_eq!(r.status, 503);
    assert!(
        r.body_text().contains("connection failure"),
        "{}",
        r.body_text()
    );
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"UF\""),
        1
    );
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_cx_connect_fail", "backend"),
        1
    );
}

#[test]
fn slow_upstream_gives_504_ut() {
    let up = Scripted::start(|mut c| {
        let _ = c.read_head();
        std::thread::sleep(Duration::from_secs(4)); // route timeout is 2 s
    });
    let (proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let r = http::get(addr, "/").unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.body_text(), "upstream request timeout");
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"UT\""),
        1
    );
}

#[test]
fn upstream_dying_mid_response_truncates_and_closes_downstream() {
    let up = Scripted::start(|mut c| {
        let _ = c.read_head();
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly-some-bytes");
        // closes here
    });
    let (proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false);
    assert!(r.is_err(), "a truncated body must not look complete: {r:?}");
    spar_tests::assert_eventually(Duration::from_secs(5), "UC counted", || {
        proxy.metric("spar_http_response_flags_total", "response_flags=\"UC\"") == 1
    });
}

#[test]
fn stale_pooled_connection_is_retried_once_for_idempotent_requests() {
    // Connection 1 answers once, then drops the next request unanswered
    // (closed under the proxy's feet: the keep-alive race). Later
    // connections answer normally.
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up = Scripted::start(move |mut c| {
        let racy = first.swap(false, std::sync::atomic::Ordering::SeqCst);
        let mut served = 0;
        while c.read_head().is_some() {
            if racy && served == 1 {
                return;
            }
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            served += 1;
        }
    });
    let (proxy, addr) = proxy_to(up.addr, "", "", &["--concurrency", "1"]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    }
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry", "backend"),
        1
    );
}

#[test]
fn upstream_closed_while_pooled_is_noticed_before_reuse() {
    // Every connection answers one request, then closes while idle in the
    // pool: the proxy must see that and open a new one, failing nothing.
    let up = Scripted::start(|mut c| {
        if c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let (proxy, addr) = proxy_to(up.addr, "", "", &["--concurrency", "1"]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    for _ in 0..4 {
        s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n\r\nx")
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_cx_total", "backend"),
        4
    );
}

#[test]
fn failed_retry_of_a_stale_connection_gives_503_urx() {
    // Connection 1 answers once, then drops the next request unanswered;
    // every later connection drops its request too. Request 2 meets the
    // dead pooled connection, is retried once on a fresh one, which fails.
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up = Scripted::start(move |mut c| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) && c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
        let _ = c.read_head(); // then close without answering
    });
    let (proxy, addr) = proxy_to(up.addr, "", "", &["--concurrency", "1"]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 503);
    assert!(
        r.body_text().contains("connection termination"),
        "{}",
        r.body_text()
    );
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"URX\""),
        1
    );
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry", "backend"),
        1
    );
    // A POST is not retried: one attempt, flag UC.
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry", "backend"),
        1
    );
}

#[test]
fn idle_pooled_upstream_connections_expire_and_the_gauge_follows() {
    let echo = Echo::start(&[]);
    let (proxy, addr) = proxy_to(
        echo.addr,
        "",
        "    common_http_protocol_options: { idle_timeout: 1s }",
        &[],
    );
    for _ in 0..3 {
        assert_eq!(http::get(addr, "/").unwrap().status, 200);
    }
    assert!(proxy.metric("envoy_cluster_upstream_cx_active", "backend") >= 1);
    spar_tests::assert_eventually(
        Duration::from_secs(10),
        "idle upstream connections closed",
        || proxy.metric("envoy_cluster_upstream_cx_active", "backend") == 0,
    );
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_cx_destroy", "backend"),
        proxy.metric("envoy_cluster_upstream_cx_total", "backend")
    );
}

#[test]
fn an_early_upstream_answer_to_a_large_upload_is_relayed() {
    // The upstream refuses the upload after the head, without reading the
    // body, and closes: the client must see its 413, not a proxy 503.
    let up = Scripted::start(|mut c| {
        if c.read_head().is_some() {
            c.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!");
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "", "", &[]);
    let mut s = http::connect(addr).unwrap();
    let size = 32 << 20;
    write!(
        s,
        "POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: {size}\r\n\r\n"
    )
    .unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let block = vec![b'x'; 1 << 20];
            for _ in 0..32 {
                if w.write_all(&block).is_err() {
                    break;
                }
            }
        })
    };
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.body_text(), "too big!");
    assert_eq!(r.header("connection"), Some("close"));
    drop(s);
    writer.join().unwrap();
}

#[test]
fn stray_bytes_on_a_pooled_connection_never_reach_another_request() {
    // The first connection answers, then sends an unsolicited second
    // response while idle in the pool; later connections answer "fresh".
    let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up = Scripted::start(move |mut c| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if c.read_head().is_some() {
                c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
                std::thread::sleep(Duration::from_millis(50));
                c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nstray!");
                std::thread::sleep(Duration::from_secs(3));
            }
            return;
        }
        while c.read_head().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh");
        }
    });
    let (_proxy, addr) = proxy_to(up.addr, "", "", &["--concurrency", "1"]);
    assert_eq!(http::get(addr, "/").unwrap().body_text(), "hello");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http::get(addr, "/").unwrap().body_text(), "fresh");
}

#[test]
fn stream_idle_timeout_bounds_each_read_not_the_whole_upload() {
    let echo = Echo::start(&[]);
    let (_proxy, addr) = proxy_to(echo.addr, "          stream_idle_timeout: 1s", "", &[]);
    let mut s = http::connect(addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 12\r\n\r\n")
        .unwrap();
    // 2.4 s in all, never more than 0.2 s between pieces.
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"x").unwrap();
    }
    assert_eq!(
        read_response(&mut s, &mut Vec::new(), false)
            .unwrap()
            .status,
        200
    );
    // A stalled upload is cut after the idle timeout.
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 408);
}

#[test]
fn the_last_request_allowed_on_a_connection_is_told_to_close() {
    let echo = Echo::start(&[]);
    let hcm = "          common_http_protocol_options: { max_requests_per_connection: 2 }";
    let (_proxy, addr) = proxy_to(echo.addr, hcm, "", &[]);
    let mut s = http::connect(addr).unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let r1 = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r1.header("connection"), None);
    let r2 = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r2.header("connection"), Some("close"));
    assert!(http::closed_by_peer(&mut s));
}

#[test]
fn trusted_hops_choose_the_client_address_rbac_sees() {
    let up = Echo::start(&[]);
    const DENY_DOC_NET: &str = r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  doc-net:
                    permissions: [{any: true}]
                    principals: [{remote_ip: {address_prefix: 203.0.113.0, prefix_len: 24}}]
"#;
    let port = free_port();
    let bootstrap = http_bootstrap(
        port,
        up.addr,
        "          use_remote_address: true\n          xff_num_trusted_hops: 1",
        "",
    )
    .replacen(
        "          http_filters:\n",
        &format!("          http_filters:\n{DENY_DOC_NET}"),
        1,
    );
    let _proxy = SparProxy::start(&bootstrap, &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // One trusted hop: the rightmost x-forwarded-for entry is the client; what a client
    // wrote further left is not believed.
    for (xff, status) in [
        (None, 200),
        (Some("203.0.113.7"), 403),
        (Some("198.51.100.1, 203.0.113.7"), 403),
        (Some("203.0.113.7, 198.51.100.1"), 200),
    ] {
        let extra = xff.map_or(String::new(), |v| format!("x-forwarded-for: {v}\r\n"));
        let mut s = http::connect(addr).unwrap();
        s.write_all(format!("GET / HTTP/1.1\r\nhost: a\r\n{extra}\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
        assert_eq!(r.status, status, "x-forwarded-for {xff:?}");
    }
}
