//! spar-admin: the admin endpoint of spar-proxy, served on the control
//! thread's tokio runtime (never on a worker).
//!
//! Endpoints, shaped like Envoy's admin so operators' habits carry over:
//! `GET /ready` (200 `LIVE`, 503 `DRAINING` / `PRE_INITIALIZING`),
//! `GET /config_dump` (JSON), `GET /stats/prometheus`, `GET /stats` (the same
//! counters, text), `GET /listeners`, `POST /quitquitquit` (start a drain),
//! `POST /drain_listeners`, `GET /server_info`.
//!
//! Requests are parsed with spar-http's strict parser; one request per
//! connection, no body accepted. Not here: what the values are (the proxy
//! binary supplies them through [`AdminState`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use spar_http::{Limits, Method, encode_local_reply, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// Readiness as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Initializing,
    Live,
    Draining,
}

/// What the admin endpoint shows and controls.
pub trait AdminState: Send + Sync + 'static {
    fn readiness(&self) -> Readiness;
    fn config_dump(&self) -> serde_json::Value;
    fn prometheus(&self) -> String;
    /// `name address` lines.
    fn listeners(&self) -> Vec<(String, SocketAddr)>;
    fn server_info(&self) -> serde_json::Value;
    /// The mesh certificates held (`/certs`): chain, serial, identity, validity.
    fn certs(&self) -> serde_json::Value {
        serde_json::json!({ "certificates": [] })
    }
    /// Starts a graceful drain and exit.
    fn quit(&self);
}

/// Admin requests are tiny; anything bigger is refused.
const MAX_REQUEST: usize = 8 * 1024;

/// Serves admin connections until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<dyn AdminState>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, state).await {
                debug!(peer = %peer, error = %e, "admin connection failed");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, state: Arc<dyn AdminState>) -> std::io::Result<()> {
    let limits = Limits {
        max_head_bytes: MAX_REQUEST,
        ..Limits::default()
    };
    let mut buf = BytesMut::with_capacity(1024);
    let head = loop {
        match parse_request(&mut buf, &limits) {
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(e) => {
                return reply(&mut stream, e.status(), "text/plain", e.reason().as_bytes()).await;
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let path = head.path().to_vec();
    let (status, ctype, body) = route(&head.method, &path, state.as_ref());
    reply(&mut stream, status, ctype, &body).await
}

fn route(method: &Method, path: &[u8], state: &dyn AdminState) -> (u16, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=UTF-8";
    const JSON: &str = "application/json";
    let get = matches!(method, Method::Get | Method::Head);
    let post = matches!(method, Method::Post);
    match path {
        b"/ready" if get => match state.readiness() {
            Readiness::Live => (200, TEXT, b"LIVE\n".to_vec()),
            Readiness::Draining => (503, TEXT, b"DRAINING\n".to_vec()),
            Readiness::Initializing => (503, TEXT, b"PRE_INITIALIZING\n".to_vec()),
        },
        b"/config_dump" if get => (200, JSON, pretty(&state.config_dump())),
        b"/server_info" if get => (200, JSON, pretty(&state.server_info())),
        b"/certs" if get => (200, JSON, pretty(&state.certs())),
        b"/stats/prometheus" if get => (200, "text/plain; version=0.0.4", state.prometheus().into_bytes()),
        b"/stats" if get => (200, TEXT, stats_text(&state.prometheus()).into_bytes()),
        b"/listeners" if get => {
            let mut out = String::new();
            for (name, addr) in state.listeners() {
                out.push_str(&format!("{name}::{addr}\n"));
            }
            (200, TEXT, out.into_bytes())
        }
        b"/quitquitquit" | b"/drain_listeners" if post => {
            state.quit();
            (200, TEXT, b"OK\n".to_vec())
        }
        b"/quitquitquit" | b"/drain_listeners" => (405, TEXT, b"use POST\n".to_vec()),
        _ => (404, TEXT, b"invalid path. admin commands: /ready /config_dump /server_info /certs /stats /stats/prometheus /listeners /quitquitquit /drain_listeners\n".to_vec()),
    }
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Envoy's `/stats` plain form (`name: value`), derived from the Prometheus
/// text so the two never disagree.
fn stats_text(prom: &str) -> String {
    let mut out = String::new();
    for line in prom
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some((name, value)) = line.rsplit_once(' ') {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

async fn reply(
    stream: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(body.len() + 128);
    if ctype.starts_with("text/plain; charset") || status >= 400 {
        encode_local_reply(&mut out, status, body, true);
    } else {
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                spar_http::reason_phrase(status),
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl AdminState for Fake {
        fn readiness(&self) -> Readiness {
            Readiness::Draining
        }
        fn config_dump(&self) -> serde_json::Value {
            serde_json::json!({"configs": []})
        }
        fn prometheus(&self) -> String {
            "# TYPE a counter\na{x=\"1\"} 3\n".into()
        }
        fn listeners(&self) -> Vec<(String, SocketAddr)> {
            vec![("l".into(), SocketAddr::from(([127, 0, 0, 1], 1)))]
        }
        fn server_info(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn quit(&self) {}
    }

    #[test]
    fn routes() {
        assert_eq!(route(&Method::Get, b"/ready", &Fake).0, 503);
        assert_eq!(route(&Method::Get, b"/config_dump", &Fake).0, 200);
        assert_eq!(route(&Method::Get, b"/quitquitquit", &Fake).0, 405);
        assert_eq!(route(&Method::Post, b"/quitquitquit", &Fake).0, 200);
        assert_eq!(route(&Method::Get, b"/nope", &Fake).0, 404);
        let (_, _, body) = route(&Method::Get, b"/stats", &Fake);
        assert_eq!(body, b"a{x=\"1\"}: 3\n");
        let (_, _, body) = route(&Method::Get, b"/listeners", &Fake);
        assert_eq!(body, b"l::127.0.0.1:1\n");
    }
}
