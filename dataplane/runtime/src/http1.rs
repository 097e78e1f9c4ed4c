//! The HTTP/1.1 connection manager: one downstream connection, requests in
//! order (pipelined requests wait in the read buffer), each routed to a
//! cluster and proxied over a pooled upstream connection.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::TcpStream;
use spar_config::HttpSettings;
use spar_http::{
    ForwardOptions, Limits, Method, RequestBody, RequestHead, ResponseBody, ResponseHead, Version,
    encode_local_reply, encode_request_head, encode_response_head, parse_request, parse_response,
};
use spar_telemetry::{Flag, HttpStats};
use tracing::debug;

use crate::body::{BodyError, Framing, Limit, Out, forward, within};
use crate::io::{READ_BUF, read_some, write_buf};
use crate::upstream::{self, ConnectError, Upstream};
use crate::worker::{ClusterLocal, Local, Worker};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

// Envoy's local reply bodies, so tooling that matches on them keeps working.
const BODY_CONNECT_FAILURE: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const BODY_TERMINATION: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination";
const BODY_PROTOCOL: &[u8] =
    b"upstream connect error or disconnect/reset before headers. reset reason: protocol error";
const BODY_TIMEOUT: &[u8] = b"upstream request timeout";
const BODY_NO_HEALTHY: &[u8] = b"no healthy upstream";
const BODY_HEADER_TIMEOUT: &[u8] = b"request header timeout";
const BODY_UPGRADE: &[u8] = b"upgrade not allowed";

/// What to do with the downstream connection after a request.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// Per-connection buffers, reused across the connection's requests.
struct Conn<'a> {
    ctx: &'a Rc<Worker>,
    local: &'a Local,
    settings: &'a HttpSettings,
    stats: &'a HttpStats,
    limits: Limits,
    down: TcpStream,
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
}

pub(crate) async fn serve(
    ctx: &Rc<Worker>,
    local: &Local,
    settings: &HttpSettings,
    stats: &HttpStats,
    down: TcpStream,
    peer: SocketAddr,
) {
    stats.downstream_cx_total.inc();
    stats.downstream_cx_active.inc();
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
        rbuf: BytesMut::with_capacity(READ_BUF),
        wbuf: BytesMut::with_capacity(READ_BUF),
        ubuf: BytesMut::new(),
        served: 0,
        opened: Instant::now(),
        linger: false,
    };
    loop {
        c.shrink_buffers();
        let Some(head) = c.read_request().await else {
            break;
        };
        c.served += 1;
        stats.downstream_rq_total.inc();
        stats.downstream_rq_active.inc();
        let next = c.request(head).await;
        stats.downstream_rq_active.dec();
        if next == Next::Close {
            break;
        }
        if c.last_request() || ctx.drain.is_draining() {
            break;
        }
    }
    if c.linger
        && let Some(wait) = settings.delayed_close_timeout
    {
        linger_close(&mut c.down, wait).await;
    }
    stats.downstream_cx_active.dec();
}

/// Closes a connection whose peer may still be sending: shut down our side
/// so the reply is followed by FIN, then read and discard until the peer
/// closes or `wait` passes (Envoy's delayed close). Dropping a socket with
/// unread input would send RST, and an RST can discard the reply the peer
/// has not read yet (RFC 9112 section 9.6).
async fn linger_close(down: &mut TcpStream, wait: Duration) {
    use monoio::io::AsyncWriteRent;
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
        let close = close || self.last_request();
        self.linger |= close;
        self.wbuf.clear();
        encode_local_reply(&mut self.wbuf, status, body, close);
        self.stats.response(status);
        let _ = write_buf(&mut self.down, &mut self.wbuf).await;
    }

    async fn request(&mut self, head: RequestHead) -> Next {
        let has_body = !matches!(head.body, RequestBody::None | RequestBody::Length(0));
        // A reply sent without reading the request body leaves the stream
        // out of step: close unless there was no body.
        let close_after_reply = has_body || !head.keep_alive;

        if head.upgrade.is_some() || matches!(head.method, Method::Connect) {
            self.local_reply(403, BODY_UPGRADE, true).await;
            return Next::Close;
        }
        let authority: &[u8] = head.authority.as_deref().unwrap_or(b"");
        let Some(route) = self.settings.routes.find(authority, head.path()) else {
            self.stats.flag(Flag::NoRoute);
            self.local_reply(404, b"", close_after_reply).await;
            return if close_after_reply {
                Next::Close
            } else {
                Next::KeepAlive
            };
        };
        let cid = route.action.cluster;
        let timeout = route.action.timeout;
        let cluster = self.local.snapshot.cluster(cid);
        let cl = &self.local.clusters[cid.0 as usize];
        // Upstream responses are held to the cluster's header count limit.
        let up_limits = Limits {
            max_headers: cluster.max_headers_count as usize,
            ..self.limits
        };

        // How the outgoing head is written; each attempt encodes it straight
        // into the write buffer (a retry is rare: re-encoding it then is
        // cheaper than keeping a copy of every head).
        let mut request_id = [0u8; 36];
        let want_id = self.settings.generate_request_id && head.header("x-request-id").is_none();
        if want_id {
            let mut random = [0u8; 16];
            self.ctx.rng.borrow_mut().fill(&mut random);
            request_id = spar_http::uuid_v4(random);
        }
        let xff = (self.settings.use_remote_address && !self.settings.skip_xff_append)
            .then(|| self.peer.ip());
        let opts = ForwardOptions {
            append_xff: xff,
            set_xfp: Some(b"http"),
            request_id: want_id.then_some(&request_id[..]),
            path_override: None,
            extra_headers: &[],
            upgrade: false,
        };

        if head.expect_continue && has_body && self.rbuf.is_empty() {
            self.wbuf.extend_from_slice(CONTINUE);
            if write_buf(&mut self.down, &mut self.wbuf).await.is_err() {
                return Next::Close;
            }
        }

        // One retry on a fresh connection when a pooled one fails before any
        // response byte and nothing of the downstream body was consumed.
        let retryable = !has_body && head.method.is_idempotent();
        let mut retried = false;
        loop {
            let mut up = match self.checkout(cluster, cl, retried).await {
                Ok(up) => up,
                Err((status, flag, body)) => {
                    self.stats.flag(flag);
                    self.local_reply(status, body, close_after_reply).await;
                    return if close_after_reply {
                        Next::Close
                    } else {
                        Next::KeepAlive
                    };
                }
            };
            cl.stats.upstream_rq_total.inc();
            match self
                .exchange(&head, &opts, &mut up, cl, &up_limits, timeout)
                .await
            {
                Exchange::Done { next, reusable } => {
                    // Not reusable: dropping `up` closes it and counts it.
                    if reusable && !self.ctx.drain.is_draining() {
                        self.ctx.pool.borrow_mut().put(up, cluster, Instant::now());
                    }
                    return next;
                }
                Exchange::Failed {
                    status,
                    flag,
                    body,
                    consumed_body,
                } => {
                    let reused = up.reused;
                    drop(up);
                    if flag == Flag::UpstreamConnectionTermination
                        && reused
                        && retryable
                        && !retried
                    {
                        retried = true;
                        cl.stats.upstream_rq_retry.inc();
                        continue;
                    }
                    let flag = if retried && flag == Flag::UpstreamConnectionTermination {
                        Flag::UpstreamRetryLimitExceeded
                    } else {
                        flag
                    };
                    self.stats.flag(flag);
                    let close = close_after_reply || consumed_body;
                    self.local_reply(status, body, close).await;
                    return if close { Next::Close } else { Next::KeepAlive };
                }
                Exchange::Aborted(flag) => {
                    // Headers already went downstream: all we can do is cut
                    // the connection so the client sees a truncated response.
                    drop(up);
                    self.stats.flag(flag);
                    return Next::Close;
                }
            }
        }
    }

    /// A pooled connection to the next endpoint, or a new one.
    async fn checkout(
        &mut self,
        cluster: &spar_cluster::Cluster,
        cl: &ClusterLocal,
        fresh: bool,
    ) -> Result<Upstream, (u16, Flag, &'static [u8])> {
        let Some(addr) = cl.rr.borrow_mut().pick(cluster).map(|e| e.address) else {
            return Err((503, Flag::NoHealthyUpstream, BODY_NO_HEALTHY));
        };
        if !fresh && let Some(up) = self.ctx.pool.borrow_mut().take(addr, Instant::now()) {
            return Ok(up);
        }
        cl.stats.upstream_cx_total.inc();
        match upstream::connect(addr, cluster, &cl.stats).await {
            Ok(up) => Ok(up),
            Err(ConnectError::Timeout) => {
                cl.stats.upstream_cx_connect_timeout.inc();
                cl.stats.upstream_cx_connect_fail.inc();
                Err((503, Flag::UpstreamConnectionFailure, BODY_CONNECT_FAILURE))
            }
            Err(ConnectError::Io(e)) => {
                debug!(upstream = %addr, error = %e, "connect failed");
                cl.stats.upstream_cx_connect_fail.inc();
                Err((503, Flag::UpstreamConnectionFailure, BODY_CONNECT_FAILURE))
            }
        }
    }

    /// Sends one request on `up` and relays the response.
    async fn exchange(
        &mut self,
        head: &RequestHead,
        opts: &ForwardOptions<'_>,
        up: &mut Upstream,
        cl: &ClusterLocal,
        up_limits: &Limits,
        timeout: Option<Duration>,
    ) -> Exchange {
        // Request: head, then the body re-framed (Content-Length kept,
        // chunked re-chunked), all from the downstream read buffer.
        let input = match head.body {
            RequestBody::None => Framing::None,
            RequestBody::Length(n) => Framing::Length(n),
            RequestBody::Chunked => Framing::Chunked,
        };
        self.wbuf.clear();
        encode_request_head(&mut self.wbuf, head, opts);
        let max_trailer = self.limits.max_trailer_bytes;
        let sent = {
            // Request body: each read and write bounded by the stream idle
            // timeout, however long the whole upload takes.
            let limit = Limit {
                deadline: None,
                idle: self.settings.stream_idle_timeout,
            };
            let mut out = Out {
                io: &mut up.stream,
                buf: &mut self.wbuf,
                chunked: input == Framing::Chunked,
                limit,
            };
            forward(
                &mut self.down,
                &mut self.rbuf,
                input,
                &mut out,
                limit,
                max_trailer,
            )
            .await
        };
        let consumed_body = input != Framing::None;
        // The upstream stopped taking the request: it may have answered
        // early (413, 401 before a large upload). Read on: a response that
        // arrived is relayed; if none did, the read below fails with UC.
        // Either way the rest of the downstream body was never read, so the
        // downstream connection closes afterwards.
        let mut cut_short = false;
        match sent {
            Ok(_) => {}
            Err(BodyError::DstIo) => cut_short = true,
            Err(BodyError::SrcFraming) => {
                self.stats.reject("bad_chunked_body");
                return Exchange::Failed {
                    status: 400,
                    flag: Flag::DownstreamProtocolError,
                    body: b"",
                    consumed_body: true,
                };
            }
            Err(BodyError::SrcTimeout) => {
                self.stats.downstream_rq_timeout.inc();
                return Exchange::Failed {
                    status: 408,
                    flag: Flag::DownstreamProtocolError,
                    body: b"",
                    consumed_body: true,
                };
            }
            Err(BodyError::SrcEof | BodyError::SrcIo) => {
                return Exchange::Aborted(Flag::DownstreamConnectionTermination);
            }
        }

        // Response head. The route timeout runs from the end of the request.
        let deadline = timeout.map(|t| Instant::now() + t);
        self.ubuf.clear();
        let resp = loop {
            match parse_response(&mut self.ubuf, up_limits, &head.method) {
                Ok(Some(r)) if r.status == 101 => {
                    return Exchange::Failed {
                        status: 502,
                        flag: Flag::UpstreamProtocolError,
                        body: BODY_PROTOCOL,
                        consumed_body,
                    };
                }
                Ok(Some(r)) if r.status < 200 => continue, // 100 and other interim heads
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(e) => {
                    debug!(reason = e.reason(), "bad upstream response");
                    return Exchange::Failed {
                        status: 502,
                        flag: Flag::UpstreamProtocolError,
                        body: BODY_PROTOCOL,
                        consumed_body,
                    };
                }
            }
            let limit = Limit {
                deadline,
                idle: self.settings.stream_idle_timeout,
            };
            let read = within(&limit, read_some(&mut up.stream, &mut self.ubuf, READ_BUF)).await;
            match read {
                None => {
                    cl.stats.upstream_rq_timeout.inc();
                    self.ubuf = BytesMut::new();
                    return Exchange::Failed {
                        status: 504,
                        flag: Flag::UpstreamRequestTimeout,
                        body: BODY_TIMEOUT,
                        consumed_body,
                    };
                }
                Some(Ok(0) | Err(_)) => {
                    return Exchange::Failed {
                        status: 503,
                        flag: Flag::UpstreamConnectionTermination,
                        body: BODY_TERMINATION,
                        consumed_body,
                    };
                }
                Some(Ok(_)) => {}
            }
        };
        cl.stats.response(resp.status);
        self.relay_response(head, resp, up, deadline, cut_short)
            .await
    }

    async fn relay_response(
        &mut self,
        head: &RequestHead,
        resp: ResponseHead,
        up: &mut Upstream,
        deadline: Option<Instant>,
        cut_short: bool,
    ) -> Exchange {
        let http11 = head.version == Version::Http11;
        let (input, out_framing) = match resp.body {
            ResponseBody::None => (Framing::None, bodyless_framing(&resp)),
            ResponseBody::Length(n) => (Framing::Length(n), ResponseBody::Length(n)),
            ResponseBody::Chunked if http11 => (Framing::Chunked, ResponseBody::Chunked),
            ResponseBody::Chunked => (Framing::Chunked, ResponseBody::UntilClose),
            ResponseBody::UntilClose if http11 => (Framing::UntilClose, ResponseBody::Chunked),
            ResponseBody::UntilClose => (Framing::UntilClose, ResponseBody::UntilClose),
        };
        let until_close = matches!(out_framing, ResponseBody::UntilClose) && input != Framing::None;
        self.linger |= cut_short;
        let close = cut_short
            || !head.keep_alive
            || until_close
            || self.ctx.drain.is_draining()
            || self.last_request();
        self.wbuf.clear();
        // The codec adds `connection: keep-alive` for a 1.0 client itself.
        encode_response_head(
            &mut self.wbuf,
            &resp,
            &out_framing,
            close,
            head.version,
            &[],
        );
        self.stats.response(resp.status);
        let chunked_out = matches!(out_framing, ResponseBody::Chunked) && input != Framing::None;
        let max_trailer = self.limits.max_trailer_bytes;
        let relayed = {
            let limit = Limit {
                deadline,
                idle: self.settings.stream_idle_timeout,
            };
            let mut out = Out {
                io: &mut self.down,
                buf: &mut self.wbuf,
                chunked: chunked_out,
                limit,
            };
            forward(
                &mut up.stream,
                &mut self.ubuf,
                input,
                &mut out,
                limit,
                max_trailer,
            )
            .await
        };
        match relayed {
            Ok(_) => {
                let reusable = !cut_short
                    && resp.keep_alive
                    && input != Framing::UntilClose
                    && self.ubuf.is_empty();
                self.ubuf.clear();
                let next = if close { Next::Close } else { Next::KeepAlive };
                Exchange::Done { next, reusable }
            }
            Err(BodyError::SrcTimeout) => Exchange::Aborted(Flag::UpstreamRequestTimeout),
            Err(BodyError::SrcFraming) => Exchange::Aborted(Flag::UpstreamProtocolError),
            Err(BodyError::SrcEof | BodyError::SrcIo) => {
                Exchange::Aborted(Flag::UpstreamConnectionTermination)
            }
            Err(BodyError::DstIo) => Exchange::Aborted(Flag::DownstreamConnectionTermination),
        }
    }
}

/// How a request-response exchange on one upstream connection ended.
enum Exchange {
    /// The response was relayed in full.
    Done { next: Next, reusable: bool },
    /// Nothing was sent downstream yet: answer with a local reply.
    Failed {
        status: u16,
        flag: Flag,
        body: &'static [u8],
        consumed_body: bool,
    },
    /// The response had started downstream: the connection must be cut.
    Aborted(Flag),
}

/// Framing header to keep on a response that carries no body (HEAD, 204,
/// 304): the upstream's Content-Length describes the representation and is
/// passed on; no body bytes follow either way.
fn bodyless_framing(resp: &ResponseHead) -> ResponseBody {
    if resp.status == 204 || resp.status < 200 {
        return ResponseBody::None;
    }
    let cl = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(b"content-length"))
        .and_then(|h| std::str::from_utf8(&h.value).ok()?.parse::<u64>().ok());
    match cl {
        Some(n) => ResponseBody::Length(n),
        None => ResponseBody::None,
    }
}
