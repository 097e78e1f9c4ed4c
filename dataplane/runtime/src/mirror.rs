//! Request mirroring (Envoy `request_mirror_policies`): a copy of the
//! request goes to the mirror cluster from a task of its own, and its
//! response is read and dropped. Fire and forget: the primary request never
//! waits for the mirror and never sees its failures, which are only counted.
//!
//! Bounded: at most [`MAX_ACTIVE`] mirrors and [`MAX_BYTES`] of mirrored
//! bodies per worker are in flight; beyond that copies are dropped (counted
//! as `upstream_rq_pending_overflow` of the mirror cluster), so a slow mirror
//! cannot pile up memory.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spar_cluster::ClusterId;
use spar_http::{Limits, Method, ResponseBody, parse_response};

use crate::balance::ClusterLocal;
use crate::io::{READ_BUF, read_some, write_bytes};
use crate::upstream::{self, CxSlot, Upstream};
use crate::worker::{Local, Worker};

/// Mirrors in flight per worker.
const MAX_ACTIVE: usize = 1024;

/// Mirrored body bytes in flight per worker.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Time allowed for a mirror's whole exchange when its route has no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts a mirror of an already encoded request `head` (authority ending
/// in `-shadow`) with its `body`, if any.
pub(crate) fn send(
    ctx: &Rc<Worker>,
    local: &Rc<Local>,
    cluster: ClusterId,
    copy: Copy,
    timeout: Option<Duration>,
) {
    let cl = &local.clusters[cluster.0 as usize];
    let bytes = copy.body.as_ref().map_or(0, Bytes::len);
    let (active, in_flight) = (ctx.mirrors_active.get(), ctx.mirror_bytes.get());
    if active >= MAX_ACTIVE || in_flight + bytes > MAX_BYTES {
        cl.stats.upstream_rq_pending_overflow.inc();
        return;
    }
    ctx.mirrors_active.set(active + 1);
    ctx.mirror_bytes.set(in_flight + bytes);
    cl.stats.upstream_rq_mirrored.inc();
    let (ctx, local) = (ctx.clone(), local.clone());
    monoio::spawn(async move {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let _ = monoio::time::timeout(timeout, run(&ctx, &local, cluster, copy)).await;
        ctx.mirrors_active.set(ctx.mirrors_active.get() - 1);
        ctx.mirror_bytes.set(ctx.mirror_bytes.get() - bytes);
    });
}

/// What a mirror sends: the encoded head (authority ending in `-shadow`),
/// the request's method (to read the response right) and its body.
pub(crate) struct Copy {
    pub(crate) head: Bytes,
    pub(crate) method: Method,
    pub(crate) body: Option<Bytes>,
}

async fn run(ctx: &Rc<Worker>, local: &Rc<Local>, id: ClusterId, copy: Copy) -> Option<()> {
    let cluster = local.snapshot.cluster(id);
    let cl: &ClusterLocal = &local.clusters[id.0 as usize];
    // Released when this future ends or is dropped by the timeout.
    let Some(_admitted) = cl.shared.request(&cluster.thresholds) else {
        cl.stats.upstream_rq_pending_overflow.inc();
        return None;
    };
    let up = exchange(ctx, cl, cluster, copy).await?;
    if !ctx.drain.is_draining() {
        ctx.pool.borrow_mut().put(up, cluster, Instant::now());
    }
    Some(())
}

/// Sends the copy and reads the response; the connection back when it
/// ended cleanly with a Content-Length (or empty) body.
async fn exchange(
    ctx: &Rc<Worker>,
    cl: &ClusterLocal,
    cluster: &spar_cluster::Cluster,
    copy: Copy,
) -> Option<Upstream> {
    if cl.transport.http2.is_some() {
        // Mirrors speak HTTP/1.1 only for now: an HTTP/2 cluster is not sent copies.
        cl.stats.upstream_rq_pending_overflow.inc();
        return None;
    }
    let random = ctx.rng.borrow_mut().u64(..);
    let host = cl.pick(cluster, None, random, &[], None)?;
    let addr = cluster.endpoints[host].address;
    let key = upstream::pool_key(&cl.shared.breaker, addr);
    let pooled = ctx.pool.borrow_mut().take(key, Instant::now());
    let mut up = match pooled {
        Some(up) => up,
        None => {
            if !cl.shared.breaker.try_connection(&cluster.thresholds) {
                cl.stats.upstream_cx_overflow.inc();
                return None;
            }
            cl.stats.upstream_cx_total.inc();
            let slot = CxSlot::new(cl.shared.breaker.clone(), cl.open_to(host));
            upstream::connect(
                addr,
                cluster,
                cl.transport.tls.as_ref(),
                &cl.stats,
                slot,
                None,
            )
            .await
            .ok()?
        }
    };
    cl.stats.upstream_rq_total.inc();
    let method = copy.method;
    write_bytes(&mut up.stream, copy.head).await.ok()?;
    if let Some(body) = copy.body {
        write_bytes(&mut up.stream, body).await.ok()?;
    }
    let limits = Limits {
        max_headers: cluster.max_headers_count as usize,
        ..Limits::default()
    };
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let resp = loop {
        match parse_response(&mut buf, &limits, &method) {
            Ok(Some(r)) if r.status < 200 => continue,
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(_) => return None,
        }
        if read_some(&mut up.stream, &mut buf, READ_BUF).await.ok()? == 0 {
            return None;
        }
    };
    cl.stats.response(resp.status);
    let len = match resp.body {
        ResponseBody::None => 0,
        ResponseBody::Length(n) => usize::try_from(n).ok()?,
        // Chunked or until-close: not worth decoding to keep one
        // connection; dropping it closes it.
        ResponseBody::Chunked | ResponseBody::UntilClose => return None,
    };
    let mut left = len.saturating_sub(buf.len());
    let extra = buf.len().saturating_sub(len);
    while left > 0 {
        buf.clear();
        let n = read_some(&mut up.stream, &mut buf, READ_BUF.min(left))
            .await
            .ok()?;
        if n == 0 || n > left {
            return None;
        }
        left -= n;
    }
    (resp.keep_alive && extra == 0).then_some(up)
}
