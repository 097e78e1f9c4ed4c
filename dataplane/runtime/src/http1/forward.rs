//! Forwarding a routed request: cluster and endpoint choice, circuit
//! breakers, attempts with the route's retry policy, and the response relay.
//!
//! A request body that a retry or a mirror may need again is read whole
//! first (Content-Length bodies up to the cluster's buffer limit, as Envoy
//! buffers them); any other body streams through and makes the request
//! retriable only until its first byte is sent.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spar_cluster::{Cluster, OutlierResult};
use spar_http::{
    CHUNK_END, Chunk, ChunkedDecoder, ForwardOptions, Limits, Method, Position, RequestBody,
    RequestHead, ResponseBody, ResponseHead, Version, encode_chunk_header, encode_request_head,
    encode_response_head, parse_response,
};
use spar_route::{
    AttemptOutcome, HashOutcome, HeaderMutation, Route, RouteAction, Target, VirtualHost,
    WeightedCluster, request_hash,
};
use spar_telemetry::{Counter, Flag};
use tracing::debug;

use super::request::Fields;
use super::{
    BODY_CONNECT_FAILURE, BODY_NO_HEALTHY, BODY_OVERFLOW, BODY_PROTOCOL, BODY_TERMINATION,
    BODY_TIMEOUT, CONTINUE, Conn, Next,
};
use crate::balance::ClusterLocal;
use crate::body::{BodyError, Framing, Limit, Out, forward, within};
use crate::io::{BODY_CHUNK, READ_BUF, read_some, write_buf, write_bytes};
use crate::stream::Stream;
use crate::upstream::{self, ConnectError, CxSlot, Live, Upstream};
use crate::view::View;
use crate::worker::Local;

/// Largest body read whole so that retries and mirrors can replay it, when
/// the cluster's buffer limit is larger.
const MAX_REPLAY_BODY: u64 = 1024 * 1024;

/// How often a request waiting for a connection slot looks again: soon at
/// first, then less often, so a thousand waiting requests do not spin.
const PENDING_FIRST_RECHECK: Duration = Duration::from_millis(1);
const PENDING_LAST_RECHECK: Duration = Duration::from_millis(16);

/// The request body as attempts see it.
enum Body {
    None,
    /// Read whole: every attempt (and a mirror) sends it again.
    Buffered(Bytes),
    /// Still in the downstream socket: only the first send has it.
    Streamed {
        framing: Framing,
        sent: bool,
    },
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Streamed { sent: true, .. })
    }
}

/// Why an attempt produced no response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// Circuit breaker overflow (503 UO).
    Overflow,
    /// No usable endpoint (503 UH).
    NoHealthy,
    /// Connect failed or timed out (503 UF).
    Connect,
    /// Closed before a response head (503 UC).
    Reset,
    /// The per-try timeout passed (504 UT, retriable).
    PerTry,
    /// The route timeout passed (504 UT, final).
    Timeout,
    /// Invalid response head (502 UPE).
    Protocol,
}

impl Failed {
    fn outcome(self) -> Option<AttemptOutcome> {
        match self {
            Failed::Connect => Some(AttemptOutcome::ConnectFailure),
            Failed::Reset => Some(AttemptOutcome::Reset),
            Failed::PerTry => Some(AttemptOutcome::PerTryTimeout),
            Failed::Overflow | Failed::NoHealthy | Failed::Timeout | Failed::Protocol => None,
        }
    }

    fn reply(self) -> (u16, Flag, &'static [u8]) {
        match self {
            Failed::Overflow => (503, Flag::UpstreamOverflow, BODY_OVERFLOW),
            Failed::NoHealthy => (503, Flag::NoHealthyUpstream, BODY_NO_HEALTHY),
            Failed::Connect => (503, Flag::UpstreamConnectionFailure, BODY_CONNECT_FAILURE),
            Failed::Reset => (503, Flag::UpstreamConnectionTermination, BODY_TERMINATION),
            Failed::PerTry | Failed::Timeout => (504, Flag::UpstreamRequestTimeout, BODY_TIMEOUT),
            Failed::Protocol => (502, Flag::UpstreamProtocolError, BODY_PROTOCOL),
        }
    }
}

/// How sending the request and reading the response head ended.
enum Sent {
    Head {
        resp: ResponseHead,
        /// The upstream stopped reading the request body and answered early.
        cut_short: bool,
    },
    Failed(Failed),
    /// The downstream side failed: answered (or cut) already, nothing to retry.
    Downstream(Next),
}

/// What one attempt needs besides the request.
struct Try<'r> {
    cluster: &'r Cluster,
    cl: &'r ClusterLocal,
    host: usize,
    up_limits: &'r Limits,
    /// Take a fresh connection, not a pooled one (the keep-alive race retry).
    fresh: bool,
    per_try: Option<Duration>,
    /// Idle limit of each read and write (route `idle_timeout`, else the
    /// connection manager's `stream_idle_timeout`).
    idle: Option<Duration>,
    route_timeout: Option<Duration>,
    /// The request asks for an upgrade: a 101 answer is the start of a tunnel.
    upgrading: bool,
}

impl Conn<'_> {
    pub(super) async fn forward(
        &mut self,
        head: &RequestHead,
        local: &Rc<Local>,
        vh: &VirtualHost,
        route: &Route,
        action: &RouteAction,
        cors_fields: Vec<(&'static str, Vec<u8>)>,
    ) -> Next {
        let settings = self.settings;
        let view = View {
            head,
            scheme: self.scheme(),
        };
        let (cref, picked): (_, Option<&WeightedCluster>) = match &action.target {
            Target::Cluster(c) => (c, None),
            Target::Weighted(w) => {
                let wc = w.pick(self.random());
                (&wc.cluster, Some(wc))
            }
        };
        let cid = cref.id;
        let cluster = local.snapshot.cluster(cid);
        let cl = &local.clusters[cid.0 as usize];
        // An upgrade is neither retried nor mirrored: after a 101 the
        // connection carries another protocol.
        let upgrading = head.upgrade.is_some() || head.method == Method::Connect;
        let retry = match upgrading {
            true => None,
            false => action.retry.as_ref().or(vh.retry_policy.as_ref()),
        };
        let metadata_match = picked
            .and_then(|w| w.metadata_match.as_deref())
            .or(action.metadata_match.as_deref());
        let route_timeout = timeout_for(action, head);
        let idle = match action.idle_timeout {
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
            None => settings.stream_idle_timeout,
        };

        // The outgoing head: rewrites, header mutations, forwarding fields.
        let path = route.rewritten_path(&view);
        let authority = route.rewritten_authority(&view, picked);
        let empty = HeaderMutation::default();
        let request_levels = [
            picked.map_or(&empty, |w| &w.request_headers),
            &route.request_headers,
            &vh.request_headers,
            &settings.routes.headers().request,
        ];
        let edits = self.plan_edits(head, None, &request_levels, &|n: &str| {
            head.header(n).is_some()
        });
        let remove: Vec<&str> = edits.remove.iter().map(String::as_str).collect();
        let extra: Vec<(&[u8], &[u8])> = edits
            .add
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice()))
            .collect();
        let mut request_id = [0u8; 36];
        let want_id = settings.generate_request_id && head.header("x-request-id").is_none();
        if want_id {
            let mut random = [0u8; 16];
            self.ctx.rng.borrow_mut().fill(&mut random);
            request_id = spar_http::uuid_v4(random);
        }
        let opts = ForwardOptions {
            append_xff: (settings.use_remote_address && !settings.skip_xff_append)
                .then(|| self.peer.ip()),
            set_xfp: Some(self.scheme()),
            request_id: want_id.then_some(&request_id[..]),
            path_override: path.as_deref(),
            extra_headers: &extra,
            upgrade: upgrading,
            remove_headers: &remove,
            authority_override: authority.as_deref(),
        };
        let hashed = if action.hash_policy.is_empty() {
            HashOutcome {
                hash: None,
                set_cookie: None,
            }
        } else {
            let random = self.random();
            request_hash(&action.hash_policy, &view, self.peer.ip(), random)
        };

        let has_body = !matches!(head.body, RequestBody::None | RequestBody::Length(0));
        if head.expect_continue && has_body && self.rbuf.is_empty() {
            self.wbuf.extend_from_slice(CONTINUE);
            if write_buf(&mut self.down, &mut self.wbuf).await.is_err() {
                return Next::Close;
            }
        }
        let replay = retry.is_some() || !action.mirrors.is_empty();
        let mut buffered_head = None;
        let limit = u64::from(cluster.buffer_limit_bytes).min(MAX_REPLAY_BODY);
        let mut body = match head.body {
            RequestBody::None | RequestBody::Length(0) => Body::None,
            RequestBody::Length(n) if replay && n <= limit => match self.read_whole(n).await {
                Ok(bytes) => Body::Buffered(bytes),
                Err(next) => return next,
            },
            RequestBody::Length(n) => Body::Streamed {
                framing: Framing::Length(n),
                sent: false,
            },
            // A chunked body a retry may need is read whole too, up to the limit (gRPC
            // over HTTP/2 sends no content-length); past it, it streams.
            RequestBody::Chunked if replay => match self.buffer_chunked(limit).await {
                Ok(Some(bytes)) => {
                    let mut whole = head.clone();
                    whole.body = RequestBody::Length(bytes.len() as u64);
                    buffered_head = Some(whole);
                    Body::Buffered(bytes)
                }
                Ok(None) => Body::Streamed {
                    framing: Framing::Chunked,
                    sent: false,
                },
                Err(next) => return next,
            },
            RequestBody::Chunked => Body::Streamed {
                framing: Framing::Chunked,
                sent: false,
            },
        };
        let head = buffered_head.as_ref().unwrap_or(head);

        for m in action.mirrors.iter().filter(|_| !upgrading) {
            if !m.fraction.hit(self.random()) {
                continue;
            }
            let copy_body = match &body {
                Body::None => None,
                Body::Buffered(b) => Some(b.clone()),
                Body::Streamed { .. } => continue, // only replayable bodies are mirrored
            };
            let shadow = shadow_authority(authority.as_deref().or(head.authority.as_deref()));
            let mirror_opts = ForwardOptions {
                authority_override: Some(&shadow),
                ..opts
            };
            let mut out = BytesMut::new();
            encode_request_head(&mut out, head, &mirror_opts);
            let copy = crate::mirror::Copy {
                head: out.freeze(),
                method: head.method.clone(),
                body: copy_body,
            };
            crate::mirror::send(self.ctx, local, m.cluster.id, copy, route_timeout);
        }

        // Upstream responses are held to the cluster's header count limit.
        let up_limits = Limits {
            max_headers: cluster.max_headers_count as usize,
            ..self.limits
        };
        // The route timeout runs from the end of the downstream request:
        // now, unless the body still streams (then from the end of the send).
        let mut deadline = match body {
            Body::Streamed { .. } => None,
            Body::None | Body::Buffered(_) => route_timeout.map(|t| Instant::now() + t),
        };
        let avoid_tried = retry.is_some_and(|r| r.retry_previous_hosts);
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = 0u32;
        // The retry admission of the attempt in flight, if it is a retry.
        let mut retry_slot = None;
        // Why the last attempt's outcome ends the request, when it is the
        // retry policy's doing (Envoy's URX and UO).
        let mut final_flag = None;
        // The keep-alive race: one free retry on a fresh connection when a
        // pooled one fails before any response byte.
        let mut raced = false;
        let idempotent = head.method.is_idempotent();
        let result = loop {
            let Some(admitted) = cl.shared.request(&cluster.thresholds) else {
                cl.stats.upstream_rq_pending_overflow.inc();
                cl.stats.upstream_rq_overflow.inc();
                break Err(Failed::Overflow);
            };
            let random = self.random();
            let avoid: &[usize] = if avoid_tried { &tried } else { &[] };
            let host = cl.pick(cluster, hashed.hash, random, avoid, metadata_match);
            let sent = match host {
                None => Sent::Failed(Failed::NoHealthy),
                Some(host) => {
                    if avoid_tried {
                        tried.push(host);
                    }
                    cl.started(host);
                    let t = Try {
                        cluster,
                        cl,
                        host,
                        up_limits: &up_limits,
                        fresh: raced,
                        per_try: retry.and_then(|r| r.per_try_timeout),
                        idle,
                        route_timeout,
                        upgrading,
                    };
                    let sent = self
                        .attempt(head, &opts, &mut body, &t, &mut deadline)
                        .await;
                    cl.finished(host);
                    sent
                }
            };
            drop(admitted);
            retry_slot = None;
            let (outcome, failed) = match sent {
                Sent::Downstream(next) => return next,
                Sent::Head { resp, cut_short } => {
                    // An overloaded upstream is never retried (Envoy).
                    if resp
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case(b"x-envoy-overloaded"))
                    {
                        break Ok((resp, cut_short));
                    }
                    let grpc_status = retry.and_then(|_| grpc_status(&resp));
                    (
                        AttemptOutcome::Response {
                            status: resp.status,
                            grpc_status,
                        },
                        Ok((resp, cut_short)),
                    )
                }
                Sent::Failed(Failed::Reset)
                    if !raced
                        && self.last_was_reused
                        && idempotent
                        && matches!(body, Body::None | Body::Buffered(_)) =>
                {
                    raced = true;
                    cl.stats.upstream_rq_retry.inc();
                    continue;
                }
                Sent::Failed(f) => match f.outcome() {
                    Some(o) => (o, Err(f)),
                    None => break Err(f),
                },
            };
            let Some(policy) = retry.filter(|p| p.should_retry(&outcome)) else {
                break failed;
            };
            if !body.replayable() || deadline.is_some_and(|d| Instant::now() >= d) {
                break failed;
            }
            if retries >= policy.num_retries {
                cl.stats.upstream_rq_retry_limit_exceeded.inc();
                final_flag = Some(Flag::UpstreamRetryLimitExceeded);
                break failed;
            }
            let Some(admitted) = cl.shared.retry(&cluster.thresholds) else {
                cl.stats.upstream_rq_retry_overflow.inc();
                final_flag = Some(Flag::UpstreamOverflow);
                break failed;
            };
            // The response being retried is not relayed: its connection is
            // dropped with the unread rest (Envoy resets the stream).
            self.ubuf.clear();
            self.pending_up = None;
            retries += 1;
            cl.stats.upstream_rq_retry.inc();
            let wait = policy.backoff(retries, self.random());
            let wait = match deadline {
                Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                None => wait,
            };
            if !wait.is_zero() {
                monoio::time::sleep(wait).await;
            }
            // The route timeout passed while backing off: no new attempt.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                cl.stats.upstream_rq_timeout.inc();
                break Err(Failed::Timeout);
            }
            retry_slot = Some(admitted);
        };
        drop(retry_slot);
        match result {
            Ok((resp, cut_short)) => {
                // A success only when the retried answer was not itself one
                // to retry (retries ran out or were refused: not a success).
                if retries > 0 && final_flag.is_none() {
                    cl.stats.upstream_rq_retry_success.inc();
                }
                if let Some(flag) = final_flag {
                    self.stats.flag(flag);
                }
                let Some(mut up) = self.pending_up.take() else {
                    return Next::Close;
                };
                let connected = head.method == Method::Connect && (200..300).contains(&resp.status);
                if resp.status == 101 || connected {
                    return self.tunnel(head, &resp, &mut up, idle).await;
                }
                let levels = [
                    picked.map_or(&empty, |w| &w.response_headers),
                    &route.response_headers,
                    &vh.response_headers,
                    &settings.routes.headers().response,
                ];
                let edits = self.plan_edits(head, Some(up.addr), &levels, &|n: &str| {
                    resp.headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case(n.as_bytes()))
                });
                let mut remove: Vec<&str> = edits.remove.iter().map(String::as_str).collect();
                let mut fields: Fields = edits
                    .add
                    .into_iter()
                    .map(|(n, v)| (n.into_bytes(), v))
                    .collect();
                // CORS fields replace the upstream's own (two allow-origin
                // values make browsers refuse the response).
                remove.extend(cors_fields.iter().map(|(n, _)| *n));
                fields.extend(
                    cors_fields
                        .into_iter()
                        .map(|(n, v)| (n.as_bytes().to_vec(), v)),
                );
                if let Some(cookie) = hashed.set_cookie {
                    fields.push((b"set-cookie".to_vec(), cookie));
                }
                let exchange = self
                    .relay_response(
                        head, resp, &mut up, deadline, idle, cut_short, &fields, &remove,
                    )
                    .await;
                match exchange {
                    Relayed::Done { next, reusable } => {
                        if reusable && !self.ctx.drain.is_draining() {
                            self.ctx.pool.borrow_mut().put(up, cluster, Instant::now());
                        }
                        next
                    }
                    Relayed::Aborted(flag) => {
                        self.stats.flag(flag);
                        Next::Close
                    }
                }
            }
            Err(failed) => {
                self.pending_up = None;
                let (status, flag, body_text) = failed.reply();
                let flag = if raced && failed == Failed::Reset {
                    Flag::UpstreamRetryLimitExceeded
                } else {
                    final_flag.unwrap_or(flag)
                };
                self.stats.flag(flag);
                // A body still (partly) in the socket leaves the stream out
                // of step; a buffered one was read whole.
                let close = !head.keep_alive || matches!(body, Body::Streamed { .. });
                let fields = if failed == Failed::Overflow {
                    vec![(b"x-envoy-overloaded".to_vec(), b"true".to_vec())]
                } else {
                    Vec::new()
                };
                // The route's response headers apply to the router's own
                // answers too (Envoy).
                self.local_answer(head, vh, route, status, body_text, fields, close)
                    .await;
                if close { Next::Close } else { Next::KeepAlive }
            }
        }
    }

    /// After a 101: the answer goes downstream, then bytes flow both ways
    /// as over a TCP proxy until either side closes or the stream idles.
    /// The connection is not reused afterwards.
    async fn tunnel(
        &mut self,
        head: &RequestHead,
        resp: &ResponseHead,
        up: &mut Upstream,
        idle: Option<Duration>,
    ) -> Next {
        self.wbuf.clear();
        encode_response_head(
            &mut self.wbuf,
            resp,
            &ResponseBody::None,
            false,
            head.version,
            &[],
            &[],
        );
        // Bytes the upstream sent right behind its 101 belong to the tunnel.
        self.wbuf.extend_from_slice(&self.ubuf);
        self.ubuf.clear();
        self.stats.response(resp.status);
        if write_buf(&mut self.down, &mut self.wbuf).await.is_err() {
            return Next::Close;
        }
        if !self.rbuf.is_empty() {
            let early = self.rbuf.split().freeze();
            if write_bytes(&mut up.stream, early).await.is_err() {
                return Next::Close;
            }
        }
        self.stats.downstream_cx_upgrades_total.inc();
        self.stats.downstream_cx_upgrades_active.inc();
        let (sent, received) = (Counter::default(), Counter::default());
        let _ = crate::tcp::tunnel(&mut self.down, &mut up.stream, idle, &sent, &received).await;
        self.stats.downstream_cx_upgrades_active.dec();
        Next::Close
    }

    /// CONNECT answered here (`connect_config`): a TCP connection to an endpoint of the
    /// route's cluster, `200` to the client, then bytes both ways until either side
    /// closes or the stream idles.
    pub(super) async fn connect_here(
        &mut self,
        head: &RequestHead,
        local: &Rc<Local>,
        vh: &VirtualHost,
        route: &Route,
        action: &RouteAction,
    ) -> Next {
        let cref = match &action.target {
            Target::Cluster(c) => c,
            Target::Weighted(w) => &w.pick(self.random()).cluster,
        };
        let cluster = local.snapshot.cluster(cref.id);
        let cl = &local.clusters[cref.id.0 as usize];
        let idle = match action.idle_timeout {
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
            None => self.settings.stream_idle_timeout,
        };
        let random = self.random();
        let Some(host) = cl.pick(cluster, None, random, &[], None) else {
            self.stats.flag(Flag::NoHealthyUpstream);
            self.local_answer(head, vh, route, 503, BODY_NO_HEALTHY, Vec::new(), true)
                .await;
            return Next::Close;
        };
        let t = Try {
            cluster,
            cl,
            host,
            up_limits: &self.limits.clone(),
            fresh: true,
            per_try: None,
            idle,
            route_timeout: action.timeout,
            upgrading: true,
        };
        let addr = cluster.endpoints[host].address;
        let wait_until = action.timeout.map(|d| Instant::now() + d);
        let mut up = match self.checkout(&t, addr, wait_until).await {
            Ok(up) => up,
            Err(f) => {
                if f == Failed::Connect {
                    cl.record(cluster, host, OutlierResult::LocalOriginFailure, || random);
                }
                let (status, flag, body) = f.reply();
                self.stats.flag(flag);
                self.local_answer(head, vh, route, status, body, Vec::new(), true)
                    .await;
                return Next::Close;
            }
        };
        cl.record(cluster, host, OutlierResult::LocalOriginSuccess, || random);
        cl.stats.upstream_rq_total.inc();
        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        self.stats.response(200);
        if write_buf(&mut self.down, &mut self.wbuf).await.is_err() {
            return Next::Close;
        }
        if !self.rbuf.is_empty() {
            let early = self.rbuf.split().freeze();
            if write_bytes(&mut up.stream, early).await.is_err() {
                return Next::Close;
            }
        }
        self.stats.downstream_cx_upgrades_total.inc();
        self.stats.downstream_cx_upgrades_active.inc();
        let (sent, received) = (Counter::default(), Counter::default());
        let _ = crate::tcp::tunnel(&mut self.down, &mut up.stream, idle, &sent, &received).await;
        self.stats.downstream_cx_upgrades_active.dec();
        Next::Close
    }

    /// Reads a Content-Length body of `n` bytes whole from the downstream.
    async fn read_whole(&mut self, n: u64) -> Result<Bytes, Next> {
        let n = usize::try_from(n).map_err(|_| Next::Close)?;
        let limit = Limit {
            deadline: None,
            idle: self.settings.stream_idle_timeout,
        };
        while self.rbuf.len() < n {
            let want = (n - self.rbuf.len()).max(READ_BUF);
            match within(&limit, read_some(&mut self.down, &mut self.rbuf, want)).await {
                Some(Ok(0) | Err(_)) => {
                    self.stats.flag(Flag::DownstreamConnectionTermination);
                    return Err(Next::Close);
                }
                Some(Ok(_)) => {}
                None => {
                    self.stats.downstream_rq_timeout.inc();
                    self.local_reply(408, b"", true).await;
                    return Err(Next::Close);
                }
            }
        }
        Ok(self.rbuf.split_to(n).freeze())
    }

    /// Reads a chunked request body whole when it ends within `limit` bytes. Past the
    /// limit, what was decoded is put back in front of the read buffer as chunked again,
    /// so the body streams on as if it had never been read (Ok(None)).
    async fn buffer_chunked(&mut self, limit: u64) -> Result<Option<Bytes>, Next> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut decoder = ChunkedDecoder::new(self.limits.max_trailer_bytes);
        let mut body = BytesMut::new();
        let idle = Limit {
            deadline: None,
            idle: self.settings.stream_idle_timeout,
        };
        loop {
            match decoder.decode(&mut self.rbuf) {
                Ok(Chunk::Data(d)) => {
                    body.extend_from_slice(&d);
                    if body.len() > limit {
                        let mut again = BytesMut::with_capacity(body.len() + 32 + self.rbuf.len());
                        let n = body.len();
                        match decoder.position() {
                            Position::InChunk(left) => {
                                encode_chunk_header(&mut again, n + left as usize);
                                again.extend_from_slice(&body);
                            }
                            Position::AfterChunkData => {
                                encode_chunk_header(&mut again, n);
                                again.extend_from_slice(&body);
                            }
                            Position::BetweenChunks | Position::Ended => {
                                encode_chunk_header(&mut again, n);
                                again.extend_from_slice(&body);
                                again.extend_from_slice(CHUNK_END);
                            }
                        }
                        again.extend_from_slice(&self.rbuf);
                        self.rbuf = again;
                        return Ok(None);
                    }
                }
                Ok(Chunk::End) => return Ok(Some(body.freeze())),
                Ok(Chunk::NeedMore) => {
                    match within(&idle, read_some(&mut self.down, &mut self.rbuf, BODY_CHUNK)).await
                    {
                        Some(Ok(n)) if n > 0 => {}
                        Some(_) => {
                            self.stats.flag(Flag::DownstreamConnectionTermination);
                            return Err(Next::Close);
                        }
                        None => {
                            self.stats.downstream_rq_timeout.inc();
                            self.local_reply(408, b"", true).await;
                            return Err(Next::Close);
                        }
                    }
                }
                Err(_) => {
                    self.stats.reject("bad_chunked_body");
                    self.stats.flag(Flag::DownstreamProtocolError);
                    self.local_reply(400, b"", true).await;
                    return Err(Next::Close);
                }
            }
        }
    }

    /// One attempt: an upstream connection, the request sent, the response
    /// head read. On success the connection waits in `self.pending_up`.
    async fn attempt(
        &mut self,
        head: &RequestHead,
        opts: &ForwardOptions<'_>,
        body: &mut Body,
        t: &Try<'_>,
        deadline: &mut Option<Instant>,
    ) -> Sent {
        let Try {
            cluster, cl, host, ..
        } = *t;
        let addr = cluster.endpoints[host].address;
        self.last_was_reused = false;
        // A request waits for a connection slot no longer than its route
        // timeout (from now when the body has not been sent yet).
        let wait_until = deadline.or_else(|| {
            Some(Instant::now() + t.route_timeout.unwrap_or(spar_route::DEFAULT_ROUTE_TIMEOUT))
        });
        let mut up = match self.checkout(t, addr, wait_until).await {
            Ok(up) => up,
            Err(f) => {
                if f == Failed::Connect {
                    cl.record(cluster, host, OutlierResult::LocalOriginFailure, || {
                        self.random()
                    });
                }
                return Sent::Failed(f);
            }
        };
        self.last_was_reused = up.reused;
        if !up.reused {
            cl.record(cluster, host, OutlierResult::LocalOriginSuccess, || {
                self.random()
            });
        }
        cl.stats.upstream_rq_total.inc();

        // The per-try timeout covers this attempt from here, the send
        // included when the body is at hand.
        let per_try = t.per_try.map(|d| Instant::now() + d);
        let bounded = |route: Option<Instant>| match (route, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        // Request: head, then the body.
        self.wbuf.clear();
        encode_request_head(&mut self.wbuf, head, opts);
        let mut cut_short = false;
        let send_limit = Limit {
            deadline: bounded(*deadline),
            idle: t.idle,
        };
        match body {
            Body::None => {
                match within(&send_limit, write_buf(&mut up.stream, &mut self.wbuf)).await {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return Sent::Failed(Failed::Reset),
                    None => return Sent::Failed(self.timed_out(t, per_try, *deadline)),
                }
            }
            Body::Buffered(bytes) => {
                let send = async {
                    write_buf(&mut up.stream, &mut self.wbuf).await?;
                    write_bytes(&mut up.stream, bytes.clone()).await
                };
                match within(&send_limit, send).await {
                    Some(Ok(())) => {}
                    // An upstream that answered early may have stopped
                    // reading: read on for its response.
                    Some(Err(_)) => cut_short = true,
                    None => return Sent::Failed(self.timed_out(t, per_try, *deadline)),
                }
            }
            Body::Streamed { sent, .. }
                if self.down.is_h2() && up.stream.is_h2_up() && self.rbuf.is_empty() =>
            {
                // HTTP/2 on both sides: the body goes frame by frame in a task of its
                // own while the response comes back (gRPC bidirectional streams need
                // both at once).
                *sent = true;
                match within(&send_limit, write_buf(&mut up.stream, &mut self.wbuf)).await {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return Sent::Failed(Failed::Reset),
                    None => return Sent::Failed(self.timed_out(t, per_try, *deadline)),
                }
                if let (Stream::H2Down(d), Stream::H2Up(u)) = (&mut self.down, &mut up.stream)
                    && let (Some(body), Some(send)) = (d.take_body(), u.take_send())
                {
                    monoio::spawn(crate::http2::pump(body, send));
                }
                if deadline.is_none() {
                    *deadline = t.route_timeout.map(|d| Instant::now() + d);
                }
            }
            Body::Streamed { framing, sent } => {
                *sent = true;
                let limit = Limit {
                    deadline: None,
                    idle: t.idle,
                };
                let max_trailer = self.limits.max_trailer_bytes;
                let mut out = Out {
                    io: &mut up.stream,
                    buf: &mut self.wbuf,
                    chunked: *framing == Framing::Chunked,
                    trailers: false,
                    limit,
                };
                let result = forward(
                    &mut self.down,
                    &mut self.rbuf,
                    *framing,
                    &mut out,
                    limit,
                    max_trailer,
                )
                .await;
                match result {
                    Ok(_) => {}
                    // The upstream stopped taking the request: it may have
                    // answered early (413, 401 before a large upload).
                    Err(BodyError::DstIo) => cut_short = true,
                    Err(BodyError::SrcFraming) => {
                        self.stats.reject("bad_chunked_body");
                        self.stats.flag(Flag::DownstreamProtocolError);
                        self.local_reply(400, b"", true).await;
                        return Sent::Downstream(Next::Close);
                    }
                    Err(BodyError::SrcTimeout) => {
                        self.stats.downstream_rq_timeout.inc();
                        self.stats.flag(Flag::DownstreamProtocolError);
                        self.local_reply(408, b"", true).await;
                        return Sent::Downstream(Next::Close);
                    }
                    Err(BodyError::SrcEof | BodyError::SrcIo) => {
                        self.stats.flag(Flag::DownstreamConnectionTermination);
                        return Sent::Downstream(Next::Close);
                    }
                }
                // The route timeout runs from the end of the request.
                if deadline.is_none() {
                    *deadline = t.route_timeout.map(|d| Instant::now() + d);
                }
            }
        }

        // Response head, within the route timeout and the per-try timeout.
        self.ubuf.clear();
        let resp = loop {
            match parse_response(&mut self.ubuf, t.up_limits, &head.method) {
                Ok(Some(r)) if r.status == 101 && t.upgrading => break r,
                Ok(Some(r)) if r.status == 101 => {
                    cl.record(cluster, host, OutlierResult::Status(502), || self.random());
                    return Sent::Failed(Failed::Protocol);
                }
                Ok(Some(r)) if r.status < 200 => continue, // 100 and other interim heads
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(e) => {
                    debug!(reason = e.reason(), "bad upstream response");
                    cl.record(cluster, host, OutlierResult::Status(502), || self.random());
                    return Sent::Failed(Failed::Protocol);
                }
            }
            let limit = Limit {
                deadline: bounded(*deadline),
                idle: t.idle,
            };
            let read = within(&limit, read_some(&mut up.stream, &mut self.ubuf, READ_BUF)).await;
            match read {
                None => {
                    self.ubuf = BytesMut::new();
                    cl.record(cluster, host, OutlierResult::LocalOriginFailure, || {
                        self.random()
                    });
                    return Sent::Failed(self.timed_out(t, per_try, *deadline));
                }
                Some(Ok(0) | Err(_)) => {
                    cl.record(cluster, host, OutlierResult::LocalOriginFailure, || {
                        self.random()
                    });
                    return Sent::Failed(Failed::Reset);
                }
                Some(Ok(_)) => {}
            }
        };
        cl.stats.response(resp.status);
        cl.record(cluster, host, OutlierResult::Status(resp.status), || {
            self.random()
        });
        self.pending_up = Some(up);
        Sent::Head { resp, cut_short }
    }

    /// Which limit cut an attempt: the per-try timeout (retriable), or the
    /// route timeout or the idle limit (final), counted.
    fn timed_out(&self, t: &Try<'_>, per_try: Option<Instant>, route: Option<Instant>) -> Failed {
        let now = Instant::now();
        let route_passed = route.is_some_and(|d| now >= d);
        if !route_passed && per_try.is_some_and(|d| now >= d) {
            t.cl.stats.upstream_rq_per_try_timeout.inc();
            Failed::PerTry
        } else {
            t.cl.stats.upstream_rq_timeout.inc();
            Failed::Timeout
        }
    }

    /// A pooled connection to `addr`, or a new one within the cluster's
    /// connection and pending-request limits.
    async fn checkout(
        &mut self,
        t: &Try<'_>,
        addr: SocketAddr,
        wait_until: Option<Instant>,
    ) -> Result<Upstream, Failed> {
        let (cluster, cl) = (t.cluster, t.cl);
        if let Some(h2) = cl.transport.http2 {
            return self.checkout_h2(t, addr, h2).await;
        }
        let key = upstream::pool_key(&cl.shared.breaker, addr);
        if !t.fresh
            && let Some(up) = self.ctx.pool.borrow_mut().take(key, Instant::now())
        {
            return Ok(up);
        }
        let breaker = &cl.shared.breaker;
        let thresholds = &cluster.thresholds;
        let open = cl.open_to(t.host);
        if !breaker.try_connection(thresholds) {
            cl.stats.upstream_cx_overflow.inc();
            if open.get() == 0 {
                // No connection to this host on this worker at all: open
                // one anyway, as Envoy's pools do, so a host is never cut
                // off by connections that other hosts or workers hold.
                breaker.force_connection();
            } else {
                // Wait, as a pending request, for one of this worker's
                // connections to the host to come back, or for a slot.
                let Some(_pending) = cl.shared.pending(thresholds) else {
                    cl.stats.upstream_rq_pending_overflow.inc();
                    return Err(Failed::Overflow);
                };
                let mut pause = PENDING_FIRST_RECHECK;
                loop {
                    if wait_until.is_some_and(|d| Instant::now() + pause >= d) {
                        cl.stats.upstream_rq_timeout.inc();
                        return Err(Failed::Timeout);
                    }
                    monoio::time::sleep(pause).await;
                    pause = (pause * 2).min(PENDING_LAST_RECHECK);
                    if let Some(up) = self.ctx.pool.borrow_mut().take(key, Instant::now()) {
                        return Ok(up);
                    }
                    if open.get() == 0 {
                        breaker.force_connection();
                        break;
                    }
                    if breaker.try_connection(thresholds) {
                        break;
                    }
                }
            }
        }
        let slot = CxSlot::new(breaker.clone(), open);
        cl.stats.upstream_cx_total.inc();
        match upstream::connect(
            addr,
            cluster,
            cl.transport.tls.as_ref(),
            &cl.stats,
            slot,
            wait_until,
        )
        .await
        {
            Ok(up) => Ok(up),
            Err(ConnectError::Timeout) => {
                cl.stats.upstream_cx_connect_timeout.inc();
                cl.stats.upstream_cx_connect_fail.inc();
                Err(Failed::Connect)
            }
            Err(ConnectError::Io(e) | ConnectError::Tls(e)) => {
                debug!(upstream = %addr, error = %e, "connect failed");
                cl.stats.upstream_cx_connect_fail.inc();
                Err(Failed::Connect)
            }
        }
    }

    /// A stream on a multiplexed connection to an HTTP/2 endpoint. The connection (not
    /// the stream) takes a place under the cluster's `max_connections` when it opens,
    /// and holds it, with its `upstream_cx_active` count, until it closes.
    async fn checkout_h2(
        &mut self,
        t: &Try<'_>,
        addr: SocketAddr,
        h2: spar_config::Http2Settings,
    ) -> Result<Upstream, Failed> {
        let (cluster, cl) = (t.cluster, t.cl);
        let client = spar_h2::ClientSettings {
            max_concurrent_streams: h2.max_concurrent_streams,
            initial_stream_window_size: h2.initial_stream_window_size,
            initial_connection_window_size: h2.initial_connection_window_size,
            ..spar_h2::ClientSettings::default()
        };
        let key = std::sync::Arc::as_ptr(&cl.shared.breaker) as u64;
        let breaker = cl.shared.breaker.clone();
        let thresholds = cluster.thresholds;
        let open = cl.open_to(t.host);
        let stats = cl.stats.clone();
        let tls = cl.transport.tls.clone();
        let timeout = cluster.connect_timeout;
        let keepalive = cluster.tcp_keepalive;
        let connect = || async move {
            if !breaker.try_connection(&thresholds) {
                if open.get() > 0 {
                    stats.upstream_cx_overflow.inc();
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::QuotaExceeded,
                        "max_connections",
                    ));
                }
                breaker.force_connection();
            }
            let slot = CxSlot::new(breaker, open);
            stats.upstream_cx_total.inc();
            let up = crate::upstream::connect_stream(
                addr,
                timeout,
                keepalive.as_ref(),
                tls.as_ref(),
                &stats,
            )
            .await
            .map_err(|e| match e {
                ConnectError::Timeout => {
                    stats.upstream_cx_connect_timeout.inc();
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout")
                }
                ConnectError::Io(e) | ConnectError::Tls(e) => e,
            })?;
            crate::upstream::Held::new(up, slot, Live::new(stats.clone()))
        };
        match self.ctx.h2pool.checkout(key, addr, &client, connect).await {
            Ok(lease) => Ok(Upstream {
                stream: Stream::H2Up(Box::new(crate::http2::H2Up::new(
                    lease,
                    cl.transport.tls.is_some(),
                ))),
                addr,
                reused: false,
                served: 1,
                born: Instant::now(),
                live: None,
                slot: None,
            }),
            Err(spar_h2::PoolError::Overflow { .. }) => {
                cl.stats.upstream_cx_overflow.inc();
                Err(Failed::Overflow)
            }
            Err(spar_h2::PoolError::Connect(e))
                if e.kind() == std::io::ErrorKind::QuotaExceeded =>
            {
                Err(Failed::Overflow)
            }
            Err(e) => {
                debug!(upstream = %addr, error = %e, "http/2 connect failed");
                cl.stats.upstream_cx_connect_fail.inc();
                Err(Failed::Connect)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn relay_response(
        &mut self,
        head: &RequestHead,
        resp: ResponseHead,
        up: &mut Upstream,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        cut_short: bool,
        fields: &Fields,
        remove: &[&str],
    ) -> Relayed {
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
        let extra: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        // The codec adds `connection: keep-alive` for a 1.0 client itself.
        encode_response_head(
            &mut self.wbuf,
            &resp,
            &out_framing,
            close,
            head.version,
            &extra,
            remove,
        );
        self.stats.response(resp.status);
        let chunked_out = matches!(out_framing, ResponseBody::Chunked) && input != Framing::None;
        let max_trailer = self.limits.max_trailer_bytes;
        let trailers = self.down.is_h2();
        let relayed = {
            let limit = Limit { deadline, idle };
            let mut out = Out {
                io: &mut self.down,
                buf: &mut self.wbuf,
                chunked: chunked_out,
                trailers,
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
                Relayed::Done { next, reusable }
            }
            Err(BodyError::SrcTimeout) => Relayed::Aborted(Flag::UpstreamRequestTimeout),
            Err(BodyError::SrcFraming) => Relayed::Aborted(Flag::UpstreamProtocolError),
            Err(BodyError::SrcEof | BodyError::SrcIo) => {
                Relayed::Aborted(Flag::UpstreamConnectionTermination)
            }
            Err(BodyError::DstIo) => Relayed::Aborted(Flag::DownstreamConnectionTermination),
        }
    }
}

/// The request's timeout: the route's, or with `grpc_timeout_header_max` set, a gRPC
/// request's `grpc-timeout` (capped by the maximum unless it is 0), as Envoy does.
fn timeout_for(action: &RouteAction, head: &RequestHead) -> Option<Duration> {
    let Some(max) = action.grpc_timeout_max else {
        return action.timeout;
    };
    let grpc = head
        .header("content-type")
        .is_some_and(|v| v.starts_with(b"application/grpc"));
    let asked = grpc
        .then(|| head.header("grpc-timeout"))
        .flatten()
        .and_then(|v| spar_route::grpc_timeout(v));
    match asked {
        Some(t) if max.is_zero() => Some(t),
        Some(t) => Some(t.min(max)),
        None => action.timeout,
    }
}

/// How relaying a response ended.
enum Relayed {
    /// The response was relayed in full.
    Done { next: Next, reusable: bool },
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

/// `grpc-status` from a response head (trailers-only responses carry it
/// there), for retry_on's gRPC conditions.
fn grpc_status(resp: &ResponseHead) -> Option<u32> {
    resp.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(b"grpc-status"))
        .and_then(|h| std::str::from_utf8(&h.value).ok()?.trim().parse().ok())
}

/// The authority a mirrored request carries: `-shadow` appended to the host,
/// before any port (`api:8080` -> `api-shadow:8080`), as Envoy does.
fn shadow_authority(authority: Option<&[u8]>) -> Vec<u8> {
    let a = authority.unwrap_or(b"");
    let split = match a.iter().rposition(|&b| b == b':') {
        // A port follows the last colon unless it is inside an IPv6 literal.
        Some(i) if !a[i..].contains(&b']') => i,
        _ => a.len(),
    };
    let mut out = Vec::with_capacity(a.len() + 7);
    out.extend_from_slice(&a[..split]);
    out.extend_from_slice(b"-shadow");
    out.extend_from_slice(&a[split..]);
    out
}

#[cfg(test)]
mod tests {
    use super::shadow_authority;

    #[test]
    fn shadow_host_goes_before_the_port() {
        for (input, want) in [
            ("api", "api-shadow"),
            ("api:8080", "api-shadow:8080"),
            ("[::1]:80", "[::1]-shadow:80"),
            ("[::1]", "[::1]-shadow"),
            ("", "-shadow"),
        ] {
            assert_eq!(
                shadow_authority(Some(input.as_bytes())),
                want.as_bytes(),
                "{input}"
            );
        }
    }
}
