//! Upstream connections: connect with a timeout, and a per-worker pool of
//! idle keep-alive connections keyed by endpoint address.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use spar_cluster::{Breaker, Cluster, TcpKeepalive};
use spar_config::UpstreamTls;
use spar_telemetry::ClusterStats;

use crate::stream::Stream;

/// An upstream connection checked out for one request.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) stream: Stream,
    pub(crate) addr: SocketAddr,
    /// Taken from the pool rather than freshly connected: a failure before
    /// any response byte may be the keep-alive race, and worth one retry.
    pub(crate) reused: bool,
    /// Requests sent on this connection so far, this one included.
    pub(crate) served: u32,
    /// When it was connected, for the cluster's `max_connection_duration`.
    pub(crate) born: Instant,
    /// Counts the connection in its cluster's `upstream_cx_active` for as
    /// long as it lives, pooled or in use. None for an HTTP/2 stream (its
    /// connection, in the HTTP/2 pool, holds it).
    pub(crate) live: Option<Live>,
    /// Holds the connection's place under the cluster's `max_connections`
    /// (None for an HTTP/2 stream, as `live`).
    pub(crate) slot: Option<CxSlot>,
}

impl Upstream {
    /// The pool key: the cluster (by its shared breaker) and the address, so
    /// clusters that share endpoints never trade connections.
    pub(crate) fn key(&self) -> PoolKey {
        let breaker = self
            .slot
            .as_ref()
            .map_or(0, |s| Arc::as_ptr(&s.breaker) as usize);
        (breaker, self.addr)
    }
}

/// Which idle connections a request may take: its cluster's, to one address.
pub(crate) type PoolKey = (usize, SocketAddr);

/// The pool key for `addr` in the cluster whose breaker is `breaker`.
pub(crate) fn pool_key(breaker: &Arc<Breaker>, addr: SocketAddr) -> PoolKey {
    (Arc::as_ptr(breaker) as usize, addr)
}

/// One unit of a cluster's connection circuit breaker and of this worker's
/// count of connections to the endpoint, both given back when the
/// connection closes.
pub(crate) struct CxSlot {
    breaker: Arc<Breaker>,
    open: Rc<Cell<u32>>,
}

impl CxSlot {
    /// Takes the unit: `breaker`'s connection count must already include it.
    pub(crate) fn new(breaker: Arc<Breaker>, open: Rc<Cell<u32>>) -> CxSlot {
        open.set(open.get() + 1);
        CxSlot { breaker, open }
    }
}

impl std::fmt::Debug for CxSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CxSlot")
    }
}

impl Drop for CxSlot {
    fn drop(&mut self) {
        self.breaker.release_connection();
        self.open.set(self.open.get().saturating_sub(1));
    }
}

/// Keeps a cluster's active-connection gauge true by construction: made
/// when a connection opens, dropped (closing it) wherever it ends.
#[derive(Debug)]
pub(crate) struct Live(Arc<ClusterStats>);

impl Live {
    pub(crate) fn new(stats: Arc<ClusterStats>) -> Live {
        stats.upstream_cx_active.inc();
        Live(stats)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.upstream_cx_active.dec();
        self.0.upstream_cx_destroy.inc();
    }
}

#[derive(Debug)]
struct Idle {
    up: Upstream,
    expires: Option<Instant>,
}

/// Idle connections of one worker. LIFO per address: the most recently used
/// connection is the least likely to have been closed by the upstream.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: HashMap<PoolKey, Vec<Idle>>,
}

impl Pool {
    pub(crate) fn take(&mut self, key: PoolKey, now: Instant) -> Option<Upstream> {
        let list = self.idle.get_mut(&key)?;
        while let Some(idle) = list.pop() {
            if idle.expires.is_some_and(|e| e <= now) {
                if let Some(live) = &idle.up.live {
                    live.0.upstream_cx_idle_timeout.inc();
                }
                continue; // dropped: closes the socket
            }
            if !still_idle(&idle.up.stream) {
                continue;
            }
            let mut up = idle.up;
            up.reused = true;
            up.served += 1;
            return Some(up);
        }
        None
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub(crate) fn put(&mut self, up: Upstream, cluster: &Cluster, now: Instant) {
        if matches!(up.stream, Stream::H2Up(_)) {
            return; // a finished HTTP/2 stream: its connection stays in the HTTP/2 pool
        }
        let too_many = cluster
            .max_requests_per_connection
            .is_some_and(|max| up.served >= max);
        let too_old = cluster
            .max_connection_duration
            .is_some_and(|max| now >= up.born + max);
        if too_many || too_old {
            return; // dropped: closed and counted
        }
        let expires = cluster.idle_timeout.map(|t| now + t);
        self.idle
            .entry(up.key())
            .or_default()
            .push(Idle { up, expires });
    }

    /// Closes connections idle past their timeout; returns how many.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        let mut closed = 0;
        self.idle.retain(|_, list| {
            let before = list.len();
            list.retain(|i| {
                let keep = i.expires.is_none_or(|e| e > now);
                if !keep && let Some(live) = &i.up.live {
                    live.0.upstream_cx_idle_timeout.inc();
                }
                keep
            });
            closed += before - list.len();
            !list.is_empty()
        });
        closed
    }

    pub(crate) fn clear(&mut self) {
        self.idle.clear();
    }
}

/// True when a pooled connection is still usable: the upstream has neither
/// closed it nor sent a byte since the last response (stray bytes would be
/// read as the next request's response). One non-blocking peek per reuse;
/// nothing watches the socket while it sits in the pool.
#[allow(unsafe_code)]
fn still_idle(stream: &Stream) -> bool {
    let Some(fd) = stream.raw_fd() else {
        return false;
    };
    let mut byte = 0u8;
    // SAFETY: the fd belongs to `stream`, which outlives the call; the buffer
    // is one writable byte, and the length passed is 1.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

#[derive(Debug)]
pub(crate) enum ConnectError {
    Timeout,
    Io(io::Error),
    /// The TLS handshake failed (the endpoint's certificate, no common version or suite).
    Tls(io::Error),
}

/// Connects to `addr`, with a TLS handshake when the cluster originates TLS; `slot` is the
/// connection's circuit-breaker unit, already taken by the caller. The cluster's
/// `connect_timeout` (never past `deadline`) bounds the TCP connect and the handshake
/// together.
pub(crate) async fn connect(
    addr: SocketAddr,
    cluster: &Cluster,
    tls: Option<&UpstreamTls>,
    stats: &Arc<ClusterStats>,
    slot: CxSlot,
    deadline: Option<Instant>,
) -> Result<Upstream, ConnectError> {
    // Never past what is left of the request's own deadline.
    let allowed = match deadline {
        Some(d) => cluster
            .connect_timeout
            .min(d.saturating_duration_since(Instant::now())),
        None => cluster.connect_timeout,
    };
    let stream = connect_stream(addr, allowed, cluster.tcp_keepalive.as_ref(), tls, stats).await?;
    Ok(Upstream {
        stream,
        addr,
        reused: false,
        served: 1,
        born: Instant::now(),
        live: Some(Live::new(stats.clone())),
        slot: Some(slot),
    })
}

/// A connected socket to `addr` within `allowed`, TLS when `tls` says so.
pub(crate) async fn connect_stream(
    addr: SocketAddr,
    allowed: Duration,
    keepalive: Option<&TcpKeepalive>,
    tls: Option<&UpstreamTls>,
    stats: &ClusterStats,
) -> Result<Stream, ConnectError> {
    let started = Instant::now();
    let stream = match monoio::time::timeout(allowed, TcpStream::connect_addr(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    if let Some(ka) = keepalive {
        let _ = stream.set_tcp_keepalive(ka.time, ka.interval, ka.probes);
    }
    let Some(tls) = tls else {
        return Ok(Stream::Plain(stream));
    };
    let poll = stream
        .try_into_poll_io()
        .map_err(|(e, _)| ConnectError::Io(e))?;
    let connector = tokio_rustls::TlsConnector::from(tls.built.config.clone());
    let name = tls.built.server_name(addr.ip());
    let left = allowed.saturating_sub(started.elapsed());
    match monoio::time::timeout(left, connector.connect(name, poll)).await {
        Err(_) => Err(ConnectError::Timeout),
        Ok(Err(e)) => {
            stats.ssl_connection_error.inc();
            Err(ConnectError::Tls(e))
        }
        Ok(Ok(s)) => {
            stats.ssl_handshake.inc();
            Ok(Stream::Client(Box::new(s)))
        }
    }
}

/// A connection handed to the HTTP/2 pool, in readiness style, with its circuit-breaker
/// unit and its `upstream_cx_active` count: both given back when the pool drops it.
pub(crate) struct Held {
    stream: Stream,
    _slot: CxSlot,
    _live: Live,
}

impl Held {
    pub(crate) fn new(stream: Stream, slot: CxSlot, live: Live) -> io::Result<Held> {
        let stream = stream.into_poll(bytes::Bytes::new())?;
        Ok(Held {
            stream,
            _slot: slot,
            _live: live,
        })
    }
}

impl tokio::io::AsyncRead for Held {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Held {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// How often each worker closes expired idle upstream connections.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
