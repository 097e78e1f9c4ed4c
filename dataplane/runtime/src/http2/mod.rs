//! The HTTP/2 connection manager: one downstream connection (h2c by prior knowledge, or
//! h2 by ALPN over TLS), many streams. The connection task drives h2 and accepts streams;
//! each stream runs in its own task through the same routing and forwarding code as
//! HTTP/1.1 (`down.rs` dresses a stream as a connection).
//!
//! Bounded against hostile clients by spar-h2 (flood guard, header list size, reset
//! streams, concurrent streams) and here: the handshake must finish within the request
//! headers timeout, an idle connection (no stream) is closed after the idle timeout with
//! GOAWAY, and a drain sends GOAWAY and lets in-flight streams finish.

mod down;
mod up;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
pub(crate) use down::H2Down;
use spar_config::{DEFAULT_REQUEST_HEADERS_TIMEOUT, ListenerKind};
use spar_h2::{FloodBudget, ServerConnection, ServerSettings};
use spar_http::{Limits, RequestBody};
use tracing::debug;
pub(crate) use up::H2Up;

use crate::conn::PeerIdentity;
use crate::http1::{At, Newer, newer_listener, serve_stream};
use crate::stream::Stream;
use crate::worker::{KindStats, Local, Worker};

pub(crate) async fn serve(
    ctx: &Rc<Worker>,
    local: Rc<Local>,
    index: usize,
    chain: usize,
    stream: Stream,
    peer: SocketAddr,
    peer_id: Option<Rc<PeerIdentity>>,
) {
    let (mut local, mut index, mut chain) = (local, index, chain);
    let ListenerKind::Http(settings) = &local.snapshot.listeners[index].chains[chain].kind else {
        return;
    };
    let KindStats::Http(stats) = &local.listeners[index].1[chain] else {
        return;
    };
    let stats = stats.clone();
    let settings = settings.clone();
    let tls = stream.is_tls();
    let local_addr = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let server = ServerSettings {
        max_concurrent_streams: settings.http2.max_concurrent_streams,
        initial_stream_window_size: settings.http2.initial_stream_window_size,
        initial_connection_window_size: settings.http2.initial_connection_window_size,
        max_header_list_kb: settings.max_request_headers_kb,
        ..ServerSettings::default()
    };
    let handshake_within = settings
        .request_headers_timeout
        .unwrap_or(DEFAULT_REQUEST_HEADERS_TIMEOUT);
    let handshake = ServerConnection::handshake(stream, &server, FloodBudget::default());
    let mut conn = match monoio::time::timeout(handshake_within, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "http/2 handshake failed");
            stats.reject("http2_handshake");
            return;
        }
        Err(_) => {
            stats.downstream_rq_header_timeout.inc();
            return;
        }
    };
    stats.downstream_cx_total.inc();
    stats.downstream_cx_http2_total.inc();
    stats.downstream_cx_active.inc();
    let active = Rc::new(Cell::new(0usize));
    let drain = ctx.drain.clone();
    let mut closing = false;
    loop {
        // No stream open: the connection's idle timeout runs.
        let idle = match (active.get(), settings.idle_timeout) {
            (0, Some(t)) if !closing => t,
            _ => Duration::MAX,
        };
        let next = monoio::select! {
            next = conn.accept() => next,
            _ = drain.wait(), if !closing => {
                closing = true;
                conn.graceful_shutdown();
                continue;
            }
            _ = monoio::time::sleep(idle), if idle != Duration::MAX => {
                stats.downstream_cx_idle_timeout.inc();
                closing = true;
                conn.graceful_shutdown();
                continue;
            }
        };
        let (req, respond) = match next {
            None => break,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) => {
                if let Some(reason) = conn.flood() {
                    stats.reject(reason.as_str());
                }
                debug!(%peer, error = %e, "http/2 connection ended");
                break;
            }
        };
        // A config push reaches open connections at their next stream.
        match newer_listener(ctx, &local, index, chain) {
            Newer::Same => {}
            Newer::Moved(newest, i, c) => (local, index, chain) = (newest, i, c),
            Newer::Gone => {
                closing = true;
                conn.graceful_shutdown();
            }
        }
        active.set(active.get() + 1);
        let task = Stream2 {
            ctx: ctx.clone(),
            local: local.clone(),
            at: At {
                index,
                chain,
                peer,
                peer_id: peer_id.clone(),
            },
            tls,
            local_addr,
            active: active.clone(),
        };
        monoio::spawn(task.run(req, respond));
    }
    // Streams still running hold their own handles; h2 finishes them as they end.
    stats.downstream_cx_active.dec();
}

/// Moves a request body from a downstream HTTP/2 stream to an upstream one, frame by
/// frame, trailers included. Flow-control credit goes back to the client only as the
/// upstream takes the bytes, so a slow upstream slows the client, never fills memory.
pub(crate) async fn pump(mut body: h2::RecvStream, mut send: h2::SendStream<Bytes>) {
    use std::future::poll_fn;
    loop {
        match poll_fn(|cx| body.poll_data(cx)).await {
            Some(Ok(mut data)) => {
                let n = data.len();
                if n > 0
                    && spar_h2::send_data(&mut send, &mut data, false)
                        .await
                        .is_err()
                {
                    return;
                }
                let _ = body.flow_control().release_capacity(n);
            }
            Some(Err(_)) => {
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            None => {
                match poll_fn(|cx| body.poll_trailers(cx)).await {
                    Ok(Some(trailers)) => {
                        let _ = send.send_trailers(trailers);
                    }
                    Ok(None) => {
                        let _ = spar_h2::send_data(&mut send, &mut Bytes::new(), true).await;
                    }
                    Err(_) => send.send_reset(h2::Reason::CANCEL),
                }
                return;
            }
        }
    }
}

/// One stream's task.
struct Stream2 {
    ctx: Rc<Worker>,
    local: Rc<Local>,
    at: At,
    tls: bool,
    local_addr: SocketAddr,
    active: Rc<Cell<usize>>,
}

impl Stream2 {
    async fn run(
        self,
        req: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
    ) {
        let ListenerKind::Http(settings) =
            &self.local.snapshot.listeners[self.at.index].chains[self.at.chain].kind
        else {
            return;
        };
        let limits = Limits {
            max_head_bytes: settings.max_request_headers_kb as usize * 1024,
            max_headers: settings.max_headers_count as usize,
            ..Limits::default()
        };
        let (parts, body) = req.into_parts();
        match spar_h2::request_head(&parts, body.is_end_stream(), &limits) {
            Err(e) => {
                if let KindStats::Http(stats) =
                    &self.local.listeners[self.at.index].1[self.at.chain]
                {
                    stats.reject(e.reason());
                    stats.response(e.status());
                }
                let status =
                    http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
                let mut resp = http::Response::new(());
                *resp.status_mut() = status;
                let _ = respond.send_response(resp, true);
            }
            Ok(h2req) => {
                let head = h2req.head;
                let chunked = head.body == RequestBody::Chunked;
                let down = H2Down::new(
                    body,
                    chunked,
                    respond,
                    head.method.clone(),
                    self.tls,
                    self.local_addr,
                );
                let down = Stream::H2Down(Box::new(down));
                // Boxed: the connection manager's future is ~10 KiB, and a spawned task
                // is copied whole when it starts; this keeps that copy small.
                let mut down =
                    Box::pin(serve_stream(&self.ctx, &self.local, &self.at, down, head)).await;
                if let Stream::H2Down(d) = &mut down {
                    d.reset_unfinished();
                }
            }
        }
    }
}

impl Drop for Stream2 {
    fn drop(&mut self) {
        self.active.set(self.active.get() - 1);
    }
}
