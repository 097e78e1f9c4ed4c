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
use spar_cluster::{Breaker, Cluster};
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
    /// long as it lives, pooled or in use.
    pub(crate) live: Live,
    /// Holds the connection's place under the cluster's `max_connections`.
    pub(crate) slot: CxSlot,
}

impl Upstream {
    /// The pool key: the cluster (by its shared breaker) and the address, so
    /// clusters that share endpoints never trade connections.
    pub(crate) fn key(&self) -> PoolKey {
        (Arc::as_ptr(&self.slot.breaker) as usize, self.addr)
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
    fn new(stats: Arc<ClusterStats>) -> Live {
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
                idle.up.live.0.upstream_cx_idle_timeout.inc();
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
                if !keep {
                    i.up.live.0.upstream_cx_idle_timeout.inc();
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
/// `connect_timeout` bounds the TCP connect and the handshake together.
pub(crate) async fn connect(
    addr: SocketAddr,
    cluster: &Cluster,
    tls: Option<&UpstreamTls>,
    stats: &Arc<ClusterStats>,
    slot: CxSlot,
    deadline: Option<Instant>,
) -> Result<Upstream, ConnectError> {
    let fut = TcpStream::connect_addr(addr);
    // Never past what is left of the request's own deadline.
    let allowed = match deadline {
        Some(d) => cluster
            .connect_timeout
            .min(d.saturating_duration_since(Instant::now())),
        None => cluster.connect_timeout,
    };
    let started = Instant::now();
    let stream = match monoio::time::timeout(allowed, fut).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    if let Some(ka) = &cluster.tcp_keepalive {
        let _ = stream.set_tcp_keepalive(ka.time, ka.interval, ka.probes);
    }
    let stream = match tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            let poll = stream
                .try_into_poll_io()
                .map_err(|(e, _)| ConnectError::Io(e))?;
            let connector = tokio_rustls::TlsConnector::from(tls.built.config.clone());
            let name = tls.built.server_name(addr.ip());
            let left = allowed.saturating_sub(started.elapsed());
            match monoio::time::timeout(left, connector.connect(name, poll)).await {
                Err(_) => return Err(ConnectError::Timeout),
                Ok(Err(e)) => {
                    stats.ssl_connection_error.inc();
                    return Err(ConnectError::Tls(e));
                }
                Ok(Ok(s)) => {
                    stats.ssl_handshake.inc();
                    Stream::Client(Box::new(s))
                }
            }
        }
    };
    Ok(Upstream {
        stream,
        addr,
        reused: false,
        served: 1,
        born: Instant::now(),
        live: Live::new(stats.clone()),
        slot,
    })
}

/// How often each worker closes expired idle upstream connections.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
