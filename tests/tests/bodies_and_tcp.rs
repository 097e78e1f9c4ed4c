//! Large streamed bodies with bounded memory, the TCP proxy with half-close,
//! and real clients no one here wrote (curl, wrk).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::time::Duration;

use spar_tests::http::{self, read_response};
use spar_tests::proc::{Echo, SparProxy};
use spar_tests::upstream::{Scripted, header_value};
use spar_tests::{free_port, http_bootstrap, require_tool};

/// An upstream that reads and discards a body of any size, answering its length.
fn sink() -> Scripted {
    Scripted::start(|mut c| {
        while let Some(head) = c.read_head() {
            let mut left: u64 =
                header_value(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            let mut total = 0u64;
            let mut chunk = vec![0u8; 1 << 20];
            let pre = c.buf.len() as u64;
            let take = pre.min(left);
            c.buf.drain(..take as usize);
            left -= take;
            total += take;
            while left > 0 {
                let want = usize::try_from(left.min(chunk.len() as u64)).unwrap();
                let n = c.stream.read(&mut chunk[..want]).unwrap();
                assert!(n > 0, "client body ended early");
                left -= n as u64;
                total += n as u64;
            }
            let body = total.to_string();
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

#[test]
fn serial_one_gib_upload_streams_with_bounded_memory() {
    const SIZE: u64 = 1 << 30;
    let up = sink();
    let port = free_port();
    let proxy = SparProxy::start(
        &http_bootstrap(port, up.addr, "", ""),
        &["--concurrency", "1"],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Warm up so the baseline includes the connection's normal buffers.
    http::get(addr, "/").unwrap();
    let (_, rss_before) = proxy.process.memory_kib();
    let mut s = http::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: {SIZE}\r\n\r\n"
    )
    .unwrap();
    let block = vec![b'x'; 1 << 20];
    let mut peak_growth = 0u64;
    for i in 0..(SIZE / block.len() as u64) {
        s.write_all(&block).unwrap();
        if i % 64 == 0 {
            let (_, rss) = proxy.process.memory_kib();
            peak_growth = peak_growth.max(rss.saturating_sub(rss_before));
        }
    }
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), SIZE.to_string());
    // Bounded: a few body buffers (64 KiB each) plus allocator slack, not the body.
    assert!(
        peak_growth < 16 * 1024,
        "RSS grew by {peak_growth} KiB while streaming 1 GiB"
    );
}

#[test]
fn large_download_streams_through_intact() {
    const SIZE: usize = 64 << 20;
    let up = Scripted::start(|mut c| {
        while c.read_head().is_some() {
            c.write(format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n").as_bytes());
            let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
            for _ in 0..SIZE / block.len() {
                if !c.write(&block) {
                    return;
                }
            }
        }
    });
    let port = free_port();
    let _proxy = SparProxy::start(&http_bootstrap(port, up.addr, "", ""), &[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = http::get(addr, "/big").unwrap();
    assert_eq!(r.body.len(), SIZE);
    assert!(
        r.body
            .chunks(1 << 20)
            .all(|c| c.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8))
    );
}

fn tcp_bootstrap(port: u16, upstream: SocketAddr) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }}
static_resources:
  listeners:
  - name: tcp
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp_test
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {uport} }}
"#,
        ip = upstream.ip(),
        uport = upstream.port()
    )
}

#[test]
fn tcp_proxy_carries_half_close_both_ways() {
    half_close_through(&[]);
}

#[test]
fn tcp_proxy_with_splice_carries_half_close_both_ways() {
    half_close_through(&["--tcp-splice"]);
}

fn half_close_through(args: &[&str]) {
    // The upstream reads until the client's EOF, then answers and closes:
    // only works if the proxy carries the client's FIN through.
    let up = Scripted::start(|mut c| {
        let mut got = Vec::new();
        c.stream.read_to_end(&mut got).unwrap();
        c.write(format!("got {} bytes", got.len()).as_bytes());
        let _ = c.stream.shutdown(Shutdown::Write);
    });
    let port = free_port();
    let proxy = SparProxy::start(&tcp_bootstrap(port, up.addr), args);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&vec![7u8; 300_000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 300000 bytes");
    spar_tests::assert_eventually(Duration::from_secs(5), "bytes counted", || {
        proxy.metric("envoy_tcp_downstream_cx_rx_bytes_total", "tcp_test") == 300_000
    });
}

#[test]
fn curl_through_spar_proxy() {
    require_tool("curl");
    let echo = Echo::start(&["--echo-path", "--body-size", "1000"]);
    let port = free_port();
    let _proxy = SparProxy::start(&http_bootstrap(port, echo.addr, "", ""), &[]);
    let url = format!("http://127.0.0.1:{port}/curl/path?q=1");
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", &url, &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert_eq!(text.matches("http/1.1 200").count(), 2, "{text}");
    assert!(text.contains("x-echo-path: /curl/path"), "{text}");
    // curl's chunked upload.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "transfer-encoding: chunked",
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn wrk_through_spar_proxy_sees_no_errors() {
    require_tool("wrk");
    let echo = Echo::start(&[]);
    let port = free_port();
    let _proxy = SparProxy::start(
        &http_bootstrap(port, echo.addr, "", ""),
        &["--concurrency", "2"],
    );
    let out = Command::new("wrk")
        .args(["-t1", "-c16", "-d2s", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{text}"
    );
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 1000, "{text}");
}
