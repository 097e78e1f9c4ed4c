//! `tcp_proxy`: opaque bytes both ways, half-close carried through.
//!
//! Each direction reads into its own buffer and writes it out; when one side
//! finishes sending (EOF), the other side's write half is shut down and the
//! opposite direction keeps flowing until it ends too. An error in either
//! direction closes both. Copies go through a userspace buffer: io_uring
//! read+write of a 16-64 KiB buffer costs two submissions per chunk, the same
//! count as splice through a pipe, without the pipe (see README benchmarks).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use spar_cluster::OutlierResult;
use spar_config::TcpSettings;
use spar_telemetry::{Counter, TcpStats};
use tracing::debug;

use crate::stream::Stream;
use crate::upstream::{self, ConnectError, CxSlot};
use crate::worker::{Local, Worker};

/// Per-direction buffer: starts small (most TCP exchanges are small) and
/// doubles while reads fill it, up to 256 KiB for bulk transfers.
const START: usize = 16 * 1024;
const MAX: usize = 256 * 1024;

/// Opaque streams cannot be finished politely: on drain they run until the
/// drain deadline ends the process, as Envoy's do.
/// `early` holds downstream bytes already read (a ClientHello peeked to pick the chain):
/// they go upstream first.
pub(crate) async fn serve(
    ctx: &Rc<Worker>,
    local: &Rc<Local>,
    settings: &TcpSettings,
    stats: &TcpStats,
    downstream: Stream,
    early: Bytes,
) {
    stats.downstream_cx_total.inc();
    let id = if settings.clusters.len() == 1 {
        settings.clusters[0].0
    } else {
        settings.pick(ctx.rng.borrow_mut().u64(..))
    };
    let cluster = local.snapshot.cluster(id);
    let cl = &local.clusters[id.0 as usize];
    let mut upstream = None;
    let mut tried = Vec::new();
    for _ in 0..settings.max_connect_attempts.max(1) {
        let random = ctx.rng.borrow_mut().u64(..);
        let Some(host) = cl.pick(cluster, None, random, &tried, None) else {
            stats.downstream_cx_no_route.inc();
            return;
        };
        tried.push(host);
        let addr = cluster.endpoints[host].address;
        if !cl.shared.breaker.try_connection(&cluster.thresholds) {
            cl.stats.upstream_cx_overflow.inc();
            return;
        }
        let slot = CxSlot::new(cl.shared.breaker.clone(), cl.open_to(host));
        cl.stats.upstream_cx_total.inc();
        match upstream::connect(
            addr,
            cluster,
            cl.transport.tls.as_ref(),
            &cl.stats,
            slot,
            None,
        )
        .await
        {
            Ok(up) => {
                cl.record(cluster, host, OutlierResult::LocalOriginSuccess, || random);
                upstream = Some(up);
                break;
            }
            Err(ConnectError::Timeout) => {
                cl.stats.upstream_cx_connect_timeout.inc();
                cl.stats.upstream_cx_connect_fail.inc();
                cl.record(cluster, host, OutlierResult::LocalOriginFailure, || random);
            }
            Err(ConnectError::Io(e) | ConnectError::Tls(e)) => {
                debug!(upstream = %addr, error = %e, "tcp_proxy connect failed");
                cl.stats.upstream_cx_connect_fail.inc();
                cl.record(cluster, host, OutlierResult::LocalOriginFailure, || random);
            }
        }
    }
    let Some(up) = upstream else { return };
    // Counted active, and holding its connection slot, until this returns.
    let (_live, _slot) = (up.live, up.slot);
    let idle = settings.idle_timeout;
    let (rx, tx) = (
        &stats.downstream_cx_rx_bytes_total,
        &stats.downstream_cx_tx_bytes_total,
    );
    let (downstream, upstream) = match (downstream, up.stream) {
        (Stream::Plain(d), Stream::Plain(mut u)) => {
            if !early.is_empty() {
                rx.add(early.len() as u64);
                if u.write_all(early).await.0.is_err() {
                    return;
                }
            }
            (d, u)
        }
        // TLS on either side: relay through rustls in readiness style.
        (mut d, mut u) => {
            if !early.is_empty() {
                rx.add(early.len() as u64);
                if u.write_bytes(early).await.is_err() {
                    return;
                }
            }
            if let Err(end) = relay(&mut d, &mut u, idle, rx, tx).await {
                count(end, stats);
            }
            return;
        }
    };
    let last = Rc::new(Cell::new(Instant::now()));
    let (dr, dw) = downstream.into_split();
    let (ur, uw) = upstream.into_split();
    let splice_it = ctx.tcp_splice;
    let mut to_up = std::pin::pin!(direction(splice_it, dr, uw, idle, last.clone(), rx));
    let mut to_down = std::pin::pin!(direction(splice_it, ur, dw, idle, last, tx));
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        monoio::select! {
            r = &mut to_up, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(end) => { count(end, stats); break; }
            },
            r = &mut to_down, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(end) => { count(end, stats); break; }
            },
        }
    }
}

/// One direction, copied through a buffer or spliced through a pipe.
async fn direction(
    splice_it: bool,
    from: OwnedReadHalf<TcpStream>,
    to: OwnedWriteHalf<TcpStream>,
    idle: Option<Duration>,
    last: Rc<Cell<Instant>>,
    bytes: &Counter,
) -> Result<(), End> {
    if splice_it {
        splice(from, to, idle, last, bytes).await
    } else {
        pipe(from, to, idle, last, bytes).await
    }
}

pub(crate) enum End {
    Idle,
    Io,
}

/// Relays bytes both ways between `a` and `b` until both directions have
/// ended (a half-close is carried across), one fails, or the pair stays idle
/// for `idle`. Used after an HTTP/1.1 upgrade (WebSocket), where the
/// connections belong to the HTTP connection manager and stay borrowed.
pub(crate) async fn tunnel(
    a: &mut Stream,
    b: &mut Stream,
    idle: Option<Duration>,
    a_to_b: &Counter,
    b_to_a: &Counter,
) -> Result<(), End> {
    let (Stream::Plain(a), Stream::Plain(b)) = (&mut *a, &mut *b) else {
        return relay(a, b, idle, a_to_b, b_to_a).await;
    };
    // Each direction needs a reader and a writer at once: write through a
    // second descriptor of the same socket (shutdown acts on the socket).
    let a_out = duplicate(a).map_err(|_| End::Io)?;
    let b_out = duplicate(b).map_err(|_| End::Io)?;
    let last = Rc::new(Cell::new(Instant::now()));
    let mut forth = std::pin::pin!(pipe(a, b_out, idle, last.clone(), a_to_b));
    let mut back = std::pin::pin!(pipe(b, a_out, idle, last, b_to_a));
    let (mut forth_done, mut back_done) = (false, false);
    while !(forth_done && back_done) {
        monoio::select! {
            r = &mut forth, if !forth_done => { r?; forth_done = true; },
            r = &mut back, if !back_done => { r?; back_done = true; },
        }
    }
    Ok(())
}

/// [`tunnel`] when either side speaks TLS: both streams in readiness style (a plain one
/// is converted in place), each direction through its own buffer, half-close carried.
async fn relay(
    a: &mut Stream,
    b: &mut Stream,
    idle: Option<Duration>,
    a_to_b: &Counter,
    b_to_a: &Counter,
) -> Result<(), End> {
    for s in [&mut *a, &mut *b] {
        if matches!(s, Stream::Plain(_)) {
            let plain = std::mem::replace(s, Stream::Gone);
            *s = plain.into_poll(Bytes::new()).map_err(|_| End::Io)?;
        }
    }
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let last = Rc::new(Cell::new(Instant::now()));
    let mut forth = std::pin::pin!(pipe_poll(ar, bw, idle, last.clone(), a_to_b));
    let mut back = std::pin::pin!(pipe_poll(br, aw, idle, last, b_to_a));
    let (mut forth_done, mut back_done) = (false, false);
    while !(forth_done && back_done) {
        monoio::select! {
            r = &mut forth, if !forth_done => { r?; forth_done = true; },
            r = &mut back, if !back_done => { r?; back_done = true; },
        }
    }
    Ok(())
}

/// [`pipe`] for readiness-style halves.
async fn pipe_poll<R, W>(
    mut from: R,
    mut to: W,
    idle: Option<Duration>,
    last: Rc<Cell<Instant>>,
    bytes: &Counter,
) -> Result<(), End>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; START];
    loop {
        let n = unless_idle(idle, &last, from.read(&mut buf))
            .await
            .ok_or(End::Idle)?
            .map_err(|_| End::Io)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        last.set(Instant::now());
        bytes.add(n as u64);
        to.write_all(&buf[..n]).await.map_err(|_| End::Io)?;
        to.flush().await.map_err(|_| End::Io)?;
        last.set(Instant::now());
        if n == buf.len() && buf.len() < MAX {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// A second monoio stream on a duplicate of `s`'s descriptor.
#[allow(unsafe_code)]
fn duplicate(s: &TcpStream) -> std::io::Result<TcpStream> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `s`, which outlives this borrow; it
    // is only duplicated here, never closed.
    let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
    let owned = fd.try_clone_to_owned()?;
    TcpStream::from_std(std::net::TcpStream::from(owned))
}

fn count(end: End, stats: &TcpStats) {
    if let End::Idle = end {
        stats.idle_timeout.inc();
    }
}

/// Copies one direction until EOF, then shuts down the writer.
async fn pipe<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    idle: Option<Duration>,
    last: Rc<Cell<Instant>>,
    bytes: &Counter,
) -> Result<(), End> {
    let mut buf = BytesMut::with_capacity(START);
    loop {
        // The read stays in flight across idle re-checks: cancelling it
        // could drop bytes that completed just as the timer fired.
        let read = unless_idle(idle, &last, from.read(buf)).await;
        let Some(read) = read else {
            return Err(End::Idle);
        };
        let (res, mut filled) = read;
        let n = res.map_err(|_| End::Io)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        last.set(Instant::now());
        bytes.add(n as u64);
        let full = n == filled.capacity();
        let (res, mut back) = to.write_all(filled).await;
        res.map_err(|_| End::Io)?;
        last.set(Instant::now());
        back.clear();
        if full && back.capacity() < MAX {
            back.reserve(back.capacity() * 2);
        }
        filled = back;
        buf = filled;
    }
}

/// Waits for `fut` while the connection is not idle; None when it went idle.
async fn unless_idle<F: std::future::Future>(
    idle: Option<Duration>,
    last: &Cell<Instant>,
    fut: F,
) -> Option<F::Output> {
    let Some(idle) = idle else {
        return Some(fut.await);
    };
    let mut fut = std::pin::pin!(fut);
    loop {
        let since = last.get().elapsed();
        if since >= idle {
            return None;
        }
        match monoio::time::timeout(idle - since, &mut fut).await {
            Ok(out) => return Some(out),
            Err(_) => continue, // the other direction may have been active
        }
    }
}

/// Like [`pipe`], but moves bytes socket -> pipe -> socket with splice(2),
/// never through userspace (`--tcp-splice`; see the README for when it pays).
async fn splice(
    mut from: OwnedReadHalf<TcpStream>,
    mut to: OwnedWriteHalf<TcpStream>,
    idle: Option<Duration>,
    last: Rc<Cell<Instant>>,
    bytes: &Counter,
) -> Result<(), End> {
    use monoio::io::splice::{SpliceDestination, SpliceSource};
    let (mut pipe_r, mut pipe_w) = monoio::net::unix::new_pipe().map_err(|_| End::Io)?;
    loop {
        let moved = unless_idle(idle, &last, from.splice_to_pipe(&mut pipe_w, MAX as u32)).await;
        let n = moved.ok_or(End::Idle)?.map_err(|_| End::Io)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        last.set(Instant::now());
        bytes.add(u64::from(n));
        let mut left = n;
        while left > 0 {
            left -= to
                .splice_from_pipe(&mut pipe_r, left)
                .await
                .map_err(|_| End::Io)?;
        }
        last.set(Instant::now());
    }
}
