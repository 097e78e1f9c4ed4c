//! HTTP/1.1 upgrades (WebSocket) through spar-proxy: enabled by
//! `upgrade_configs` on the connection manager or the route, relayed as a
//! byte tunnel after the upstream's 101, refused with 403 otherwise; and a
//! real WebSocket client and server (Python `websockets`) talking through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use spar_tests::http;
use spar_tests::proc::SparProxy;
use spar_tests::upstream::Scripted;
use spar_tests::{free_port, http_bootstrap};

const UPGRADE: &[u8] =
    b"GET /chat HTTP/1.1\r\nhost: ws.test\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n";

/// Answers an upgrade with 101 (plus `early` tunnel bytes right behind it),
/// then echoes every byte until the client closes its side, then closes.
fn echo_after_101(early: &'static [u8]) -> Scripted {
    Scripted::start(move |mut c| {
        let Some(head) = c.read_head() else { return };
        if !head.to_ascii_lowercase().contains("upgrade: websocket") {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain");
            return;
        }
        c.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n");
        c.write(early);
        let pending = std::mem::take(&mut c.buf);
        c.write(&pending);
        let mut buf = [0u8; 4096];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !c.write(&buf[..n]) {
                        return;
                    }
                }
            }
        }
    })
}

/// Reads a response head (a 101 is not interim here: the test client's
/// parser would skip it); returns the head and the bytes read past it.
fn read_head(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).to_ascii_lowercase();
            return (head, buf[i + 4..].to_vec());
        }
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn start(up: &Scripted, hcm: &str, route_upgrades: Option<&str>) -> (SparProxy, SocketAddr) {
    let port = free_port();
    let mut yaml = http_bootstrap(port, up.addr, hcm, "");
    if let Some(route) = route_upgrades {
        yaml = yaml.replace(
            "route: { cluster: backend, timeout: 2s }",
            &format!("route: {{ cluster: backend, timeout: 2s, upgrade_configs: [{route}] }}"),
        );
    }
    let proxy = SparProxy::start(&yaml, &[]);
    (proxy, format!("127.0.0.1:{port}").parse().unwrap())
}

const WS_ON: &str = "          upgrade_configs: [{ upgrade_type: websocket }]";

#[test]
fn websocket_upgrade_becomes_a_tunnel_with_half_close() {
    let up = echo_after_101(b"hello-from-upstream");
    let (proxy, addr) = start(&up, WS_ON, None);
    let mut s = http::connect(addr).unwrap();
    s.write_all(UPGRADE).unwrap();
    let (head, buf) = read_head(&mut s);
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    // Tunnel bytes: the upstream's early bytes, then an echo of ours.
    let mut got = buf;
    while got.len() < b"hello-from-upstream".len() {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, b"hello-from-upstream");
    s.write_all(b"\x81\x04ping").unwrap();
    let mut echo = [0u8; 6];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"\x81\x04ping");
    // Half-close: our FIN reaches the upstream, which then closes; we see EOF.
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(proxy.metric("envoy_http_downstream_cx_upgrades_total", "") >= 1);
    // The upgrade request went upstream with its Upgrade and Connection.
    let head = up.seen.heads()[0].to_ascii_lowercase();
    assert!(
        head.contains("upgrade: websocket") && head.contains("connection: upgrade"),
        "{head}"
    );
}

#[test]
fn upgrades_are_refused_unless_enabled() {
    let up = echo_after_101(b"");
    // Not enabled anywhere: 403, nothing upstream.
    let (_p1, addr) = start(&up, "", None);
    let r = http::raw(addr, UPGRADE).unwrap();
    assert_eq!(r.status, 403);
    assert!(up.seen.heads().is_empty());
    // Enabled on the manager but disabled on the route: 403.
    let (_p2, addr) = start(
        &up,
        WS_ON,
        Some("{ upgrade_type: websocket, enabled: false }"),
    );
    assert_eq!(http::raw(addr, UPGRADE).unwrap().status, 403);
    // Enabled on the route only: 101.
    let (_p3, addr) = start(&up, "", Some("{ upgrade_type: websocket }"));
    let mut s = http::connect(addr).unwrap();
    s.write_all(UPGRADE).unwrap();
    assert!(read_head(&mut s).0.starts_with("http/1.1 101 "));
}

#[test]
fn an_upstream_that_declines_the_upgrade_answers_normally() {
    // This upstream answers without switching.
    let up = Scripted::start(|mut c| {
        while c.read_head().is_some() {
            c.write(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 3\r\n\r\nno!");
        }
    });
    let (_proxy, addr) = start(&up, WS_ON, None);
    let r = http::raw(addr, UPGRADE).unwrap();
    assert_eq!((r.status, r.body_text().as_str()), (426, "no!"));
}

#[test]
fn python_websockets_client_and_server_talk_through_the_proxy() {
    let server_port = free_port();
    let server = r#"
import sys
from websockets.sync.server import serve
def echo(ws):
    for message in ws:
        ws.send(message)
with serve(echo, "127.0.0.1", int(sys.argv[1])) as server:
    print("ready", flush=True)
    server.serve_forever()
"#;
    let mut srv = Command::new("python3")
        .args(["-c", server, &server_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (websockets: cargo xtask test installs it)");
    let mut line = [0u8; 6];
    srv.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .expect("server ready");
    let port = free_port();
    let upstream: SocketAddr = format!("127.0.0.1:{server_port}").parse().unwrap();
    let yaml = http_bootstrap(port, upstream, WS_ON, "");
    let _proxy = SparProxy::start(&yaml, &[]);
    let client = r#"
import sys
from websockets.sync.client import connect
with connect(f"ws://127.0.0.1:{sys.argv[1]}/chat", open_timeout=10, close_timeout=5) as ws:
    for i in range(20):
        ws.send(f"text {i}")
        assert ws.recv(timeout=10) == f"text {i}"
    big = bytes(range(256)) * 1024
    ws.send(big)
    assert ws.recv(timeout=10) == big
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", client, &port.to_string()])
        .output()
        .unwrap();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        out.status.success() && out.stdout.starts_with(b"ok"),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
