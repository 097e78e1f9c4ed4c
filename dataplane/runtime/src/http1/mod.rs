//! The HTTP/1.1 connection manager: one downstream connection, requests in
//! order (pipelined requests wait in the read buffer), each routed
//! (`request.rs`) and answered locally or forwarded over a pooled upstream
//! connection (`forward.rs`).

mod authz;
mod forward;
mod request;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use spar_config::{HttpSettings, ListenerKind};
use spar_http::{Limits, RequestHead, encode_local_reply, encode_local_reply_with, parse_request};
use spar_telemetry::{Flag, HttpStats};
use tracing::debug;

use crate::body::{Limit, within};
use crate::conn::PeerIdentity;
use crate::io::{READ_BUF, read_some, write_buf};
use crate::stream::Stream;
use crate::upstream::Upstream;
use crate::worker::{KindStats, Local, Worker};

pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

// Envoy's local reply bodies, so tooling that matches on them keeps working.
pub(super) const BODY_CONNECT_FAILURE: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: connection failure";
pub(super) const BODY_TERMINATION: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination";
pub(super) const BODY_PROTOCOL: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: protocol error";
pub(super) const BODY_TIMEOUT: &[u8] = b"upstream request timeout";
pub(super) const BODY_NO_HEALTHY: &[u8] = b"no healthy upstream";
pub(super) const BODY_OVERFLOW: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: overflow";
const BODY_HEADER_TIMEOUT: &[u8] = b"request header timeout";
pub(super) const BODY_UPGRADE: &[u8] = b"upgrade not allowed";

/// What to do with the downstream connection after a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    KeepAlive,
    Close,
}

/// Per-connection buffers, reused across the connection's requests.
pub(super) struct Conn<'a> {
    ctx: &'a Rc<Worker>,
    local: &'a Rc<Local>,
    settings: &'a HttpSettings,
    stats: &'a HttpStats,
    limits: Limits,
    down: Stream,
    peer: SocketAddr,
    /// Downstream bytes read but not yet consumed (pipelined requests).
    rbuf: BytesMut,
    /// Bytes queued for the downstream or upstream socket.
    wbuf: BytesMut,
    /// Upstream bytes read but not yet forwarded.
    ubuf: BytesMut,
    served: u32,
    opened: Instant,
    /// The peer may still be sending (a refused or cut-short request): close
    /// gently, or the kernel's reset can destroy the reply in flight.
    linger: bool,
    /// The upstream connection whose response head was just read, waiting
    /// for the relay (or dropped when the attempt is retried).
    pending_up: Option<Upstream>,
    /// Whether the last attempt's connection came from the pool.
    last_was_reused: bool,
    local_addr: Option<SocketAddr>,
    /// The listener left the config: close after the current request.
    retiring: bool,
    /// The current request is gRPC: local replies take gRPC's form.
    grpc: bool,
    /// What TLS said about the peer (None for plaintext).
    peer_id: Option<Rc<PeerIdentity>>,
}

/// Where a downstream connection stands: listener and chain in its snapshot, the peer.
pub(crate) struct At {
    pub(crate) index: usize,
    pub(crate) chain: usize,
    pub(crate) peer: SocketAddr,
    /// What TLS said about the peer (None for plaintext).
    pub(crate) peer_id: Option<Rc<PeerIdentity>>,
}

/// Serves HTTP/1.1 on `down` with the settings of the chain `at` names; `first` holds
/// bytes already read (inspection, preface sniffing).
pub(crate) async fn serve(
    ctx: &Rc<Worker>,
    local: Rc<Local>,
    at: At,
    down: Stream,
    first: BytesMut,
) {
    let At {
        index,
        chain,
        peer,
        peer_id,
    } = at;
    let mut local = local;
    let mut index = index;
    let mut chain = chain;
    let mut rbuf = first;
    if rbuf.capacity() < READ_BUF {
        rbuf.reserve(READ_BUF - rbuf.len());
    }
    let mut carried = Carry {
        down,
        rbuf,
        wbuf: BytesMut::with_capacity(READ_BUF),
        ubuf: BytesMut::new(),
        served: 0,
        opened: Instant::now(),
        local_addr: None,
    };
    let mut first = true;
    let mut waiting: Option<RequestHead> = None;
    // One pass per snapshot: a new snapshot takes over between requests.
    loop {
        let ListenerKind::Http(settings) = &local.snapshot.listeners[index].chains[chain].kind
        else {
            return;
        };
        let KindStats::Http(stats) = &local.listeners[index].1[chain] else {
            return;
        };
        if first {
            stats.downstream_cx_total.inc();
            first = false;
        }
        stats.downstream_cx_active.inc();
        let limits = Limits {
            max_head_bytes: settings.max_request_headers_kb as usize * 1024,
            max_headers: settings.max_headers_count as usize,
            ..Limits::default()
        };
        let mut c = Conn {
            ctx,
            local: &local,
            settings,
            stats,
            limits,
            down: carried.down,
            peer,
            rbuf: carried.rbuf,
            wbuf: carried.wbuf,
            ubuf: carried.ubuf,
            served: carried.served,
            opened: carried.opened,
            linger: false,
            pending_up: None,
            last_was_reused: false,
            local_addr: carried.local_addr,
            retiring: false,
            grpc: false,
            peer_id: peer_id.clone(),
        };
        let newer = loop {
            let head = match waiting.take() {
                Some(head) => head,
                None => {
                    c.shrink_buffers();
                    let Some(head) = c.read_request().await else {
                        break None;
                    };
                    // Routes changed while this connection was open: the
                    // next request follows the newest config (as Envoy applies
                    // a route update to new requests on open connections).
                    match newer_listener(ctx, &local, index, chain) {
                        Newer::Same => {}
                        Newer::Moved(newest, i, c) => {
                            waiting = Some(head);
                            break Some((newest, i, c));
                        }
                        // The listener is gone from the config: this
                        // request is the connection's last.
                        Newer::Gone => c.retiring = true,
                    }
                    head
                }
            };
            c.served += 1;
            stats.downstream_rq_total.inc();
            stats.downstream_rq_active.inc();
            let next = c.request(head).await;
            stats.downstream_rq_active.dec();
            if next == Next::Close || c.last_request() || ctx.drain.is_draining() {
                break None;
            }
        };
        stats.downstream_cx_active.dec();
        match newer {
            Some((newest, i, ci)) => {
                carried = Carry {
                    down: c.down,
                    rbuf: c.rbuf,
                    wbuf: c.wbuf,
                    ubuf: c.ubuf,
                    served: c.served,
                    opened: c.opened,
                    local_addr: c.local_addr,
                };
                local = newest;
                index = i;
                chain = ci;
            }
            None => {
                if c.linger
                    && let Some(wait) = settings.delayed_close_timeout
                {
                    linger_close(&mut c.down, wait).await;
                }
                return;
            }
        }
    }
}

/// Serves one request that arrived on another protocol (an HTTP/2 stream, dressed as a
/// connection by `down`), with the settings of chain `chain` of listener `index`. Returns
/// the stream so the caller can see whether the response finished.
pub(crate) async fn serve_stream(
    ctx: &Rc<Worker>,
    local: &Rc<Local>,
    at: &At,
    down: Stream,
    head: RequestHead,
) -> Stream {
    let (index, chain, peer) = (at.index, at.chain, at.peer);
    let ListenerKind::Http(settings) = &local.snapshot.listeners[index].chains[chain].kind else {
        return down;
    };
    let KindStats::Http(stats) = &local.listeners[index].1[chain] else {
        return down;
    };
    let limits = Limits {
        max_head_bytes: settings.max_request_headers_kb as usize * 1024,
        max_headers: settings.max_headers_count as usize,
        ..Limits::default()
    };
    let mut c = Conn {
        ctx,
        local,
        settings,
        stats,
        limits,
        down,
        peer,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        ubuf: BytesMut::new(),
        served: 1,
        opened: Instant::now(),
        linger: false,
        pending_up: None,
        last_was_reused: false,
        local_addr: None,
        retiring: false,
        grpc: false,
        peer_id: at.peer_id.clone(),
    };
    stats.downstream_rq_total.inc();
    stats.downstream_rq_active.inc();
    let _ = c.request(head).await;
    stats.downstream_rq_active.dec();
    c.down
}

/// The gRPC status for an HTTP status the proxy answers with (Envoy's mapping).
fn grpc_code(status: u16) -> u32 {
    match status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// What a connection keeps when it moves to a newer snapshot.
struct Carry {
    down: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    ubuf: BytesMut,
    served: u32,
    opened: Instant,
    local_addr: Option<SocketAddr>,
}

/// Where a connection's listener and filter chain stand in the worker's newest snapshot.
pub(crate) enum Newer {
    /// The connection already runs on the newest snapshot.
    Same,
    /// A newer snapshot has this listener at this index, with an HTTP chain of the same
    /// match at this chain index.
    Moved(Rc<Local>, usize, usize),
    /// A newer snapshot no longer has this listener, or that chain as HTTP.
    Gone,
}

pub(crate) fn newer_listener(ctx: &Worker, local: &Rc<Local>, index: usize, chain: usize) -> Newer {
    let current = ctx.current.borrow();
    if Rc::ptr_eq(&current, local) {
        return Newer::Same;
    }
    let old = &local.snapshot.listeners[index];
    let matcher = &old.chains[chain].matcher;
    let Some(i) = current
        .snapshot
        .listeners
        .iter()
        .position(|l| l.name == old.name)
    else {
        return Newer::Gone;
    };
    match current.snapshot.listeners[i]
        .chains
        .iter()
        .position(|c| &c.matcher == matcher && matches!(c.kind, ListenerKind::Http(_)))
    {
        Some(c) => Newer::Moved(current.clone(), i, c),
        None => Newer::Gone,
    }
}

/// Closes a connection whose peer may still be sending: shut down our side
/// so the reply is followed by FIN, then read and discard until the peer
/// closes or `wait` passes (Envoy's delayed close). Dropping a socket with
/// unread input would send RST, and an RST can discard the reply the peer
/// has not read yet (RFC 9112 section 9.6).
async fn linger_close(down: &mut Stream, wait: Duration) {
    if down.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + wait;
    let mut sink = BytesMut::with_capacity(READ_BUF);
    loop {
        sink.clear();
        match monoio::time::timeout_at(until.into(), read_some(down, &mut sink, READ_BUF)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}

impl Conn<'_> {
    /// Reads the next request head. None: the connection is done (closed by
    /// the peer, timed out, drained, or answered with an error already).
    async fn read_request(&mut self) -> Option<RequestHead> {
        let mut head_started = (!self.rbuf.is_empty()).then(Instant::now);
        loop {
            match parse_request(&mut self.rbuf, &self.limits) {
                Ok(Some(head)) => return Some(head),
                Ok(None) => {}
                Err(e) => {
                    debug!(peer = %self.peer, reason = e.reason(), "bad request");
                    self.stats.reject(e.reason());
                    self.stats.flag(Flag::DownstreamProtocolError);
                    self.local_reply(e.status(), b"", true).await;
                    return None;
                }
            }
            let read = match head_started {
                None => {
                    // Between requests: idle timeout, or close on drain.
                    if self.ctx.drain.is_draining() {
                        return None;
                    }
                    let drain = self.ctx.drain.clone();
                    let idle = Limit {
                        deadline: None,
                        idle: self.settings.idle_timeout,
                    };
                    monoio::select! {
                        r = within(&idle, read_some(&mut self.down, &mut self.rbuf, READ_BUF)) => match r {
                            Some(r) => r,
                            None => {
                                self.stats.downstream_cx_idle_timeout.inc();
                                return None;
                            }
                        },
                        _ = drain.wait() => return None,
                    }
                }
                Some(started) => {
                    let head_deadline = Limit {
                        deadline: self.settings.request_headers_timeout.map(|t| started + t),
                        idle: None,
                    };
                    match within(
                        &head_deadline,
                        read_some(&mut self.down, &mut self.rbuf, READ_BUF),
                    )
                    .await
                    {
                        Some(r) => r,
                        None => {
                            self.stats.downstream_rq_header_timeout.inc();
                            self.rbuf = BytesMut::with_capacity(READ_BUF);
                            self.local_reply(408, BODY_HEADER_TIMEOUT, true).await;
                            return None;
                        }
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if head_started.is_none() {
                        head_started = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Between requests: a buffer that a large body grew goes back to its
    /// starting size, so an idle keep-alive connection holds 32 KiB, not
    /// the peak of its largest exchange.
    fn shrink_buffers(&mut self) {
        const KEEP: usize = 4 * READ_BUF;
        if self.rbuf.is_empty() && self.rbuf.capacity() > KEEP {
            self.rbuf = BytesMut::with_capacity(READ_BUF);
        }
        if self.wbuf.capacity() > KEEP {
            self.wbuf = BytesMut::with_capacity(READ_BUF);
        }
        if self.ubuf.capacity() > KEEP {
            self.ubuf = BytesMut::new();
        }
    }

    /// True when the connection must close after the current request
    /// (`max_requests_per_connection`, `max_connection_duration`), so its
    /// response says `connection: close` before the proxy closes.
    fn last_request(&self) -> bool {
        if self.retiring {
            return true;
        }
        let max_requests = self
            .settings
            .max_requests_per_connection
            .is_some_and(|m| self.served >= m);
        let too_old = self
            .settings
            .max_connection_duration
            .is_some_and(|d| self.opened.elapsed() >= d);
        max_requests || too_old
    }

    /// Sends a proxy-generated reply and counts it.
    async fn local_reply(&mut self, status: u16, body: &[u8], close: bool) {
        if self.grpc {
            return self.local_reply_with(status, body, close, &[]).await;
        }
        let close = close || self.last_request();
        self.linger |= close;
        self.wbuf.clear();
        encode_local_reply(&mut self.wbuf, status, body, close);
        self.stats.response(status);
        let _ = write_buf(&mut self.down, &mut self.wbuf).await;
    }

    /// [`Conn::local_reply`] with more response fields.
    pub(super) async fn local_reply_with(
        &mut self,
        status: u16,
        body: &[u8],
        close: bool,
        fields: &[(&[u8], &[u8])],
    ) {
        let close = close || self.last_request();
        self.linger |= close;
        self.wbuf.clear();
        let code = grpc_code(status).to_string();
        let grpc_fields: Vec<(&[u8], &[u8])>;
        let (status, body, fields) = if self.grpc && status != 200 {
            // A gRPC client reads errors from grpc-status, not from the HTTP status: answer
            // as Envoy does, 200 with the mapped status and the text as grpc-message.
            let message = if body.is_empty() {
                spar_http::reason_phrase(status).as_bytes()
            } else {
                body
            };
            let mut all: Vec<(&[u8], &[u8])> = fields.to_vec();
            all.push((b"content-type", b"application/grpc"));
            all.push((b"grpc-status", code.as_bytes()));
            all.push((b"grpc-message", message));
            grpc_fields = all;
            (200, &b""[..], grpc_fields.as_slice())
        } else {
            (status, body, fields)
        };
        encode_local_reply_with(&mut self.wbuf, status, body, close, fields);
        self.stats.response(status);
        let _ = write_buf(&mut self.down, &mut self.wbuf).await;
    }

    /// The address the client connected to, looked up once per connection
    /// and only when a header template asks for it.
    pub(super) fn local_addr(&mut self) -> SocketAddr {
        *self.local_addr.get_or_insert_with(|| {
            self.down
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        })
    }
}
