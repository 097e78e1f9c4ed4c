//! The per-worker pool of multiplexed HTTP/2 upstream connections.
//!
//! What it does: [`Pool::checkout`] gives a [`Lease`] on one stream of a connection to
//! (cluster key, address): an existing connection with a free stream if there is one,
//! else a new connection, up to `max_connections_per_endpoint` (then
//! [`PoolError::Overflow`], which the caller answers with 503). A connection's streams
//! are capped by the peer's SETTINGS_MAX_CONCURRENT_STREAMS (learnt before the first
//! stream: the pool waits for the reply to a PING, which follows the peer's SETTINGS) and
//! by `ClientSettings::max_concurrent_streams`; a full connection is skipped, never
//! queued on. A connection that received GOAWAY (seen in the bytes h2 reads) or whose
//! driver ended is taken out of the pool at once: its in-flight streams finish, new ones
//! go elsewhere. [`Pool::sweep`] closes connections idle past `idle_timeout`;
//! [`Pool::drain`] lets go of every connection (h2 sends GOAWAY and closes each once its
//! last stream ends). [`PoolStats`] counts what happened.
//!
//! What it does not do: load balancing (the caller picks the address), retries, timeouts
//! (the caller wraps `checkout` and `connect`), TLS (the caller's `connect` does it).
//! Connections to one endpoint are opened one at a time: a checkout that finds another
//! one connecting waits for it, then looks again.
//!
//! Single-threaded by design (`Rc`, `Cell`, `RefCell`): one pool per worker, and
//! connection drivers run on the worker with `monoio::spawn`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Ping, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::guard::FrameScanner;
use crate::settings::{ClientSettings, client_builder};

/// Pool-wide limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections to one (cluster, address), at most, connecting ones included. Default
    /// 64: with the usual 100 streams per connection that is 6,400 concurrent requests to
    /// one endpoint from one worker, past which the endpoint is overloaded anyway.
    pub max_connections_per_endpoint: u32,
    /// A connection without streams for this long is closed by [`Pool::sweep`]. None:
    /// never. Default 1 h (Envoy's upstream `idle_timeout`).
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections_per_endpoint: 64,
            idle_timeout: Some(Duration::from_secs(3600)),
        }
    }
}

/// Counters of one pool, read with [`Pool::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections established (handshake done).
    pub opened: u64,
    /// Connections whose driver ended (closed by either side or failed).
    pub closed: u64,
    /// Streams leased and not yet given back.
    pub streams_active: u64,
    /// Connections taken out of the pool because they received GOAWAY.
    pub goaway: u64,
    /// Checkouts refused by `max_connections_per_endpoint`.
    pub overflow: u64,
    /// Connects or handshakes that failed.
    pub connect_failed: u64,
    /// Connections closed by [`Pool::sweep`].
    pub idle_closed: u64,
}

/// Why no stream could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection allowed to the endpoint is full: 503 (`UO`, overflow).
    #[error("upstream connection pool overflow: {max} connections in use")]
    Overflow { max: u32 },
    /// The caller's `connect` failed.
    #[error("upstream connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The HTTP/2 handshake (or the SETTINGS round trip) failed.
    #[error("upstream http/2 handshake failed: {0}")]
    Handshake(#[source] h2::Error),
}

type Key = (u64, SocketAddr);

/// The per-worker HTTP/2 upstream pool. Cheap to clone (one `Rc`).
#[derive(Debug, Clone, Default)]
pub struct Pool {
    inner: Rc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    settings: PoolSettings,
    endpoints: RefCell<HashMap<Key, Endpoint>>,
    stats: Rc<Stats>,
    next_id: Cell<u64>,
}

#[derive(Debug, Default)]
struct Stats(Cell<PoolStats>);

impl Stats {
    fn update(&self, f: impl FnOnce(&mut PoolStats)) {
        let mut s = self.0.get();
        f(&mut s);
        self.0.set(s);
    }
}

#[derive(Debug, Default)]
struct Endpoint {
    conns: Vec<Conn>,
    /// A connect is in progress.
    connecting: bool,
    /// Checkouts waiting for it to finish.
    waiters: Vec<Waker>,
}

#[derive(Debug)]
struct Conn {
    send: SendRequest<Bytes>,
    state: Rc<ConnState>,
    /// Our own cap on its streams.
    cap: usize,
}

#[derive(Debug)]
struct ConnState {
    id: u64,
    active: Cell<usize>,
    idle_since: Cell<Instant>,
    /// A GOAWAY frame was read.
    goaway: Rc<Cell<bool>>,
    /// The driver ended.
    closed: Cell<bool>,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.state.closed.get() && !self.state.goaway.get()
    }

    fn has_room(&self) -> bool {
        let peer = self.send.current_max_send_streams();
        self.state.active.get() < peer.min(self.cap)
    }
}

/// One stream's worth of a pooled connection. Send one request with
/// [`Lease::send_request`], and drop the lease when that stream is over (response and
/// both bodies done, or reset): until then it counts against the connection's streams.
#[derive(Debug)]
pub struct Lease {
    send: SendRequest<Bytes>,
    state: Rc<ConnState>,
    stats: Rc<Stats>,
}

impl Lease {
    /// Sends the request head on a new stream (see `h2::client::SendRequest`).
    pub fn send_request(
        &mut self,
        request: http::Request<()>,
        end_of_stream: bool,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), h2::Error> {
        self.send.send_request(request, end_of_stream)
    }

    /// Which connection this stream is on (unique within the pool), for logs and tests.
    pub fn connection_id(&self) -> u64 {
        self.state.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let left = self.state.active.get().saturating_sub(1);
        self.state.active.set(left);
        if left == 0 {
            self.state.idle_since.set(Instant::now());
        }
        self.stats
            .update(|s| s.streams_active = s.streams_active.saturating_sub(1));
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(settings: PoolSettings) -> Pool {
        Pool {
            inner: Rc::new(Inner {
                settings,
                ..Inner::default()
            }),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats.0.get()
    }

    /// Connections in the pool (taking new streams or idle), over all endpoints.
    pub fn connections(&self) -> usize {
        self.inner
            .endpoints
            .borrow()
            .values()
            .map(|e| e.conns.iter().filter(|c| c.usable()).count())
            .sum()
    }

    /// A stream on a connection to `addr` for the cluster `key`, opening a connection
    /// with `connect` and `settings` when none has a free stream. `connect` gives the
    /// transport (TCP, or TLS over it, ALPN h2 done); it is called at most once.
    pub async fn checkout<F, Fut, T>(
        &self,
        key: u64,
        addr: SocketAddr,
        settings: &ClientSettings,
        connect: F,
    ) -> Result<Lease, PoolError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = io::Result<T>>,
        T: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        loop {
            match self.pick((key, addr)) {
                Pick::Lease(mut lease) => match lease.send.clone().ready().await {
                    Ok(send) => {
                        lease.send = send;
                        return Ok(lease);
                    }
                    Err(e) => {
                        // The connection died under us; its driver marks it closed.
                        tracing::debug!(error = %e, "pooled http/2 connection not ready");
                        lease.state.closed.set(true);
                        continue;
                    }
                },
                Pick::Wait => {
                    WaitConnect {
                        pool: &self.inner,
                        key: (key, addr),
                    }
                    .await;
                }
                Pick::Overflow => {
                    self.inner.stats.update(|s| s.overflow += 1);
                    return Err(PoolError::Overflow {
                        max: self.inner.settings.max_connections_per_endpoint,
                    });
                }
                Pick::Connect => break,
            }
        }
        // Whatever happens next (an error, or the caller dropping this future on its
        // timeout), the endpoint stops being "connecting" and its waiters look again.
        let _connecting = Connecting {
            pool: &self.inner,
            key: (key, addr),
        };
        let conn = match self.open(settings, connect).await {
            Ok(conn) => conn,
            Err(e) => {
                self.inner.stats.update(|s| s.connect_failed += 1);
                return Err(e);
            }
        };
        // The stream that made us connect is ours before another checkout can take it.
        let lease = self.lease(&conn);
        if let Some(ep) = self.inner.endpoints.borrow_mut().get_mut(&(key, addr)) {
            ep.conns.push(conn);
        }
        Ok(lease)
    }

    fn lease(&self, conn: &Conn) -> Lease {
        conn.state.active.set(conn.state.active.get() + 1);
        self.inner.stats.update(|s| s.streams_active += 1);
        Lease {
            send: conn.send.clone(),
            state: conn.state.clone(),
            stats: self.inner.stats.clone(),
        }
    }

    fn pick(&self, key: Key) -> Pick {
        let mut endpoints = self.inner.endpoints.borrow_mut();
        let ep = endpoints.entry(key).or_default();
        let stats = &self.inner.stats;
        ep.conns.retain(|c| {
            if c.state.goaway.get() && !c.state.closed.get() {
                stats.update(|s| s.goaway += 1);
            }
            c.usable()
        });
        if let Some(conn) = ep.conns.iter().find(|c| c.has_room()) {
            return Pick::Lease(self.lease(conn));
        }
        if ep.connecting {
            return Pick::Wait;
        }
        let max = self.inner.settings.max_connections_per_endpoint as usize;
        if ep.conns.len() >= max {
            return Pick::Overflow;
        }
        ep.connecting = true;
        Pick::Connect
    }

    async fn open<F, Fut, T>(
        &self,
        settings: &ClientSettings,
        connect: F,
    ) -> Result<Conn, PoolError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = io::Result<T>>,
        T: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let io = connect().await.map_err(PoolError::Connect)?;
        let goaway = Rc::new(Cell::new(false));
        let io = GoawayWatch {
            io,
            scanner: FrameScanner::client(),
            goaway: goaway.clone(),
        };
        let (send, mut conn) = client_builder(settings)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(PoolError::Handshake)?;
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id + 1);
        let state = Rc::new(ConnState {
            id,
            active: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            goaway,
            closed: Cell::new(false),
        });
        let ping = conn.ping_pong();
        let stats = self.inner.stats.clone();
        stats.update(|s| s.opened += 1);
        let driver_state = state.clone();
        monoio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream http/2 connection ended");
            }
            driver_state.closed.set(true);
            stats.update(|s| s.closed += 1);
        });
        // The peer's SETTINGS come before its reply to our PING and are applied before
        // h2 reads on: after the PONG, the stream limit is the peer's.
        if let Some(mut ping) = ping {
            ping.ping(Ping::opaque())
                .await
                .map_err(PoolError::Handshake)?;
        }
        Ok(Conn {
            send,
            state,
            cap: usize::try_from(settings.max_concurrent_streams).unwrap_or(usize::MAX),
        })
    }

    /// Closes connections that have had no stream for `idle_timeout` at `now`, and drops
    /// those that went away; returns how many idle ones were closed.
    pub fn sweep(&self, now: Instant) -> usize {
        let Some(timeout) = self.inner.settings.idle_timeout else {
            return 0;
        };
        let mut closed = 0;
        self.inner.endpoints.borrow_mut().retain(|_, ep| {
            ep.conns.retain(|c| {
                let idle = c.state.active.get() == 0
                    && now.saturating_duration_since(c.state.idle_since.get()) >= timeout;
                closed += usize::from(idle && c.usable());
                c.usable() && !idle
            });
            !ep.conns.is_empty() || ep.connecting
        });
        self.inner.stats.update(|s| s.idle_closed += closed as u64);
        closed
    }

    /// Lets go of every connection: no new streams on them; each sends GOAWAY and closes
    /// once its in-flight streams end (at once when idle). Returns how many were let go.
    pub fn drain(&self) -> usize {
        let mut endpoints = self.inner.endpoints.borrow_mut();
        let n = endpoints.values().map(|e| e.conns.len()).sum();
        for ep in endpoints.values_mut() {
            ep.conns.clear();
        }
        endpoints.retain(|_, ep| ep.connecting);
        n
    }
}

enum Pick {
    Lease(Lease),
    /// Another checkout is connecting; wait for it.
    Wait,
    Overflow,
    Connect,
}

/// Marks an endpoint's connect as finished when dropped, waking the checkouts that wait.
struct Connecting<'p> {
    pool: &'p Inner,
    key: Key,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if let Some(ep) = self.pool.endpoints.borrow_mut().get_mut(&self.key) {
            ep.connecting = false;
            for waker in ep.waiters.drain(..) {
                waker.wake();
            }
        }
    }
}

/// Waits until the endpoint's connect in progress finishes.
struct WaitConnect<'p> {
    pool: &'p Inner,
    key: Key,
}

impl Future for WaitConnect<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut endpoints = self.pool.endpoints.borrow_mut();
        match endpoints.get_mut(&self.key) {
            Some(ep) if ep.connecting => {
                if !ep.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    ep.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

/// Client-side I/O wrapper that flags a GOAWAY frame in what h2 reads.
struct GoawayWatch<T> {
    io: T,
    scanner: FrameScanner,
    goaway: Rc<Cell<bool>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for GoawayWatch<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let goaway = &this.goaway;
            let read = buf.filled().get(before..).unwrap_or_default();
            this.scanner.feed(read, |head| {
                if head.is_goaway() {
                    goaway.set(true);
                }
                true
            });
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GoawayWatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
