//! One worker thread: its monoio runtime, its listeners, its snapshot slot.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monoio::net::TcpListener;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use spar_config::{ListenerKind, Snapshot};
use spar_telemetry::{HttpStats, ListenerStats, TcpStats, WorkerStats};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::balance::{ClusterLocal, Shared};
use crate::bind::BoundListener;
use crate::drain::Drain;
use crate::upstream::{Pool, SWEEP_EVERY};
use crate::{ActiveBackend, Command, IoBackend, StartError};

/// io_uring submission queue size per worker: room for one read and one
/// write per connection in a burst of a few hundred connections.
const URING_ENTRIES: u32 = 1024;

/// Decides the backend once, before workers start, so every worker runs the
/// same one and the fallback is logged once.
pub(crate) fn resolve_backend(io: IoBackend) -> Result<ActiveBackend, StartError> {
    match io {
        IoBackend::Epoll => Ok(ActiveBackend::Epoll),
        IoBackend::IoUring => match RuntimeBuilder::<IoUringDriver>::new().build() {
            Ok(_) => Ok(ActiveBackend::IoUring),
            Err(e) => Err(StartError::IoUringUnavailable(e)),
        },
        IoBackend::Auto => match RuntimeBuilder::<IoUringDriver>::new().build() {
            Ok(_) => Ok(ActiveBackend::IoUring),
            Err(e) => {
                warn!(error = %e, "io_uring unavailable, falling back to epoll");
                Ok(ActiveBackend::Epoll)
            }
        },
    }
}

/// Per-listener stats a worker keeps for one snapshot.
pub(crate) enum KindStats {
    Http(Arc<HttpStats>),
    Tcp(Arc<TcpStats>),
}

/// A snapshot plus this worker's state derived from it, indexed the same way
/// (cluster id, listener index), so the request path never looks up by name.
pub(crate) struct Local {
    pub(crate) snapshot: Arc<Snapshot>,
    /// Shared with the previous snapshot's `Local` for clusters that did not
    /// change, so balancer and outlier state survive config pushes.
    pub(crate) clusters: Vec<Rc<ClusterLocal>>,
    /// By listener index: the listener's stats, and its chains' stats by chain index.
    pub(crate) listeners: Vec<(Arc<ListenerStats>, Vec<KindStats>)>,
}

impl Local {
    fn new(
        snapshot: Arc<Snapshot>,
        shared: &SharedClusters,
        previous: Option<&Local>,
        stats: &WorkerStats,
        rng: &mut fastrand::Rng,
    ) -> Local {
        let clusters = snapshot
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let kept = previous.and_then(|p| {
                    let j = p.snapshot.clusters.iter().position(|o| o.name == c.name)?;
                    let same = *p.snapshot.clusters[j] == **c
                        && p.snapshot.transports.get(j) == snapshot.transports.get(i)
                        && Some(&p.clusters[j].shared) == shared.get(i);
                    same.then(|| p.clusters[j].clone())
                });
                kept.unwrap_or_else(|| {
                    let shared = shared.get(i).cloned().unwrap_or_else(Shared::detached);
                    Rc::new(ClusterLocal::new(
                        c,
                        snapshot.transports.get(i).cloned().unwrap_or_default(),
                        stats.cluster(&c.name),
                        shared,
                        rng.u64(..),
                    ))
                })
            })
            .collect();
        let listeners = snapshot
            .listeners
            .iter()
            .map(|l| {
                let ls = stats.listener(&listener_label(l.address));
                let ks = l
                    .chains
                    .iter()
                    .map(|c| match &c.kind {
                        ListenerKind::Http(h) => KindStats::Http(stats.http(&h.stat_prefix)),
                        ListenerKind::Tcp(t) => KindStats::Tcp(stats.tcp(&t.stat_prefix)),
                    })
                    .collect();
                (ls, ks)
            })
            .collect();
        Local {
            snapshot,
            clusters,
            listeners,
        }
    }
}

/// Envoy labels listener stats with the address, `:` replaced by `_`.
fn listener_label(addr: std::net::SocketAddr) -> String {
    format!("{}_{}", addr.ip(), addr.port())
}

/// Everything one worker owns.
pub(crate) struct Worker {
    pub(crate) current: RefCell<Rc<Local>>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) pool: RefCell<Pool>,
    /// Multiplexed connections to HTTP/2 upstreams.
    pub(crate) h2pool: spar_h2::Pool,
    pub(crate) drain: Drain,
    /// Connections being served by this worker.
    pub(crate) active: Cell<usize>,
    pub(crate) rng: RefCell<fastrand::Rng>,
    pub(crate) tcp_splice: bool,
    /// For `%HOSTNAME%` in header templates.
    pub(crate) hostname: String,
    /// Requests delayed or aborted by fault injection right now.
    pub(crate) active_faults: Cell<u32>,
    /// Mirrored requests in flight, and their body bytes.
    pub(crate) mirrors_active: Cell<usize>,
    pub(crate) mirror_bytes: Cell<usize>,
}

/// Cross-worker state of each cluster of a snapshot, by cluster index.
pub(crate) type SharedClusters = Vec<Shared>;

type Ready = std::sync::mpsc::Sender<Result<(), (usize, std::io::Error)>>;

/// What a worker thread is told at spawn.
pub(crate) struct Spawn {
    pub(crate) id: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) backend: ActiveBackend,
    pub(crate) tcp_splice: bool,
}

pub(crate) fn run(
    Spawn {
        id,
        cpu,
        backend,
        tcp_splice,
    }: Spawn,
    stats: Arc<WorkerStats>,
    first: Command,
    rx: mpsc::UnboundedReceiver<Command>,
    ready: Ready,
) {
    if let Some(cpu) = cpu
        && let Err(e) = crate::pin::pin_current_thread(cpu)
    {
        warn!(worker = id, cpu, error = %e, "cannot pin worker");
    }
    let main = worker_main(id, tcp_splice, stats, first, rx);
    match backend {
        ActiveBackend::IoUring => {
            // Kernels before 6.1 refuse the tuned flags: run untuned there.
            let built = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .uring_builder(tuned_uring())
                .enable_timer()
                .build()
                .or_else(|_| {
                    RuntimeBuilder::<IoUringDriver>::new()
                        .with_entries(URING_ENTRIES)
                        .enable_timer()
                        .build()
                });
            match built {
                Ok(mut rt) => {
                    let _ = ready.send(Ok(()));
                    rt.block_on(main);
                }
                Err(e) => {
                    let _ = ready.send(Err((id, e)));
                }
            }
        }
        ActiveBackend::Epoll => {
            match RuntimeBuilder::<LegacyDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
            {
                Ok(mut rt) => {
                    let _ = ready.send(Ok(()));
                    rt.block_on(main);
                }
                Err(e) => {
                    let _ = ready.send(Err((id, e)));
                }
            }
        }
    }
}

/// io_uring setup for a ring used by exactly one thread.
///
/// Without these flags a completion runs as task work the moment the peer's
/// data lands, interrupting the worker (and on loopback, spinning on the
/// socket lock the sending CPU still holds). `DEFER_TASKRUN` (which needs
/// `SINGLE_ISSUER`) runs task work only when the worker asks for
/// completions; `COOP_TASKRUN` + `TASKRUN_FLAG` drop the interrupting
/// notifications. Measured with perf/peers/spar-proxy.sh, h1 workload: see
/// the README benchmark table.
fn tuned_uring() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_single_issuer()
        .setup_defer_taskrun();
    b
}

async fn worker_main(
    id: usize,
    tcp_splice: bool,
    stats: Arc<WorkerStats>,
    first: Command,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let Command::Update {
        snapshot,
        shared,
        add,
        remove: _,
    } = first
    else {
        return;
    };
    let mut rng = fastrand::Rng::new();
    let local = Rc::new(Local::new(snapshot, &shared, None, &stats, &mut rng));
    let ctx = Rc::new(Worker {
        current: RefCell::new(local),
        stats,
        pool: RefCell::new(Pool::default()),
        h2pool: spar_h2::Pool::new(spar_h2::PoolSettings::default()),
        drain: Drain::default(),
        active: Cell::new(0),
        rng: RefCell::new(rng),
        tcp_splice,
        hostname: crate::view::hostname(),
        active_faults: Cell::new(0),
        mirrors_active: Cell::new(0),
        mirror_bytes: Cell::new(0),
    });
    let mut stops: HashMap<String, Drain> = HashMap::new();
    start_listeners(&ctx, add, &mut stops);
    monoio::spawn(sweeper(ctx.clone()));
    debug!(worker = id, "worker started");

    // Anything but an update (a drain, or the control thread gone) ends the loop.
    while let Some(Command::Update {
        snapshot,
        shared,
        add,
        remove,
    }) = rx.recv().await
    {
        for name in remove {
            if let Some(stop) = stops.remove(&name) {
                stop.start();
            }
        }
        let previous = ctx.current.borrow().clone();
        let local = Local::new(
            snapshot,
            &shared,
            Some(&previous),
            &ctx.stats,
            &mut ctx.rng.borrow_mut(),
        );
        *ctx.current.borrow_mut() = Rc::new(local);
        start_listeners(&ctx, add, &mut stops);
        debug!(worker = id, "snapshot applied");
    }

    // Drain: stop accepting, tell idle connections to close, wait for the rest.
    for (_, stop) in stops.drain() {
        stop.start();
    }
    ctx.drain.start();
    ctx.pool.borrow_mut().clear();
    ctx.h2pool.drain();
    while ctx.active.get() > 0 {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    info!(worker = id, "worker drained");
}

fn start_listeners(ctx: &Rc<Worker>, add: Vec<BoundListener>, stops: &mut HashMap<String, Drain>) {
    for b in add {
        let name = b.name.clone();
        match TcpListener::from_std(b.socket) {
            Ok(listener) => {
                let stop = Drain::default();
                stops.insert(name.clone(), stop.clone());
                monoio::spawn(accept_loop(ctx.clone(), listener, name, b.open, stop));
            }
            Err(e) => {
                warn!(listener = %name, error = %e, "cannot register listener with the runtime")
            }
        }
    }
}

/// Decrements the open-connection counts when a connection ends.
pub(crate) struct ConnGuard {
    ctx: Rc<Worker>,
    open: Arc<AtomicU64>,
    listener: Arc<ListenerStats>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.ctx.active.set(self.ctx.active.get() - 1);
        self.listener.downstream_cx_active.dec();
    }
}

async fn accept_loop(
    ctx: Rc<Worker>,
    listener: TcpListener,
    name: String,
    open: Arc<AtomicU64>,
    stop: Drain,
) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = stop.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors or a transient error: back off a
                // little instead of spinning on the error.
                debug!(listener = %name, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let local = ctx.current.borrow().clone();
        let Some(index) = local.snapshot.listeners.iter().position(|l| l.name == name) else {
            continue; // listener removed in this snapshot; its stop is on the way
        };
        let config = &local.snapshot.listeners[index];
        let lstats = local.listeners[index].0.clone();
        let before = open.fetch_add(1, Ordering::Relaxed);
        if config
            .connection_limit
            .is_some_and(|limit| before >= u64::from(limit))
        {
            open.fetch_sub(1, Ordering::Relaxed);
            lstats.downstream_cx_overflow.inc();
            continue; // dropping the stream closes it
        }
        lstats.downstream_cx_total.inc();
        lstats.downstream_cx_active.inc();
        ctx.active.set(ctx.active.get() + 1);
        let guard = ConnGuard {
            ctx: ctx.clone(),
            open: open.clone(),
            listener: lstats,
        };
        let _ = stream.set_nodelay(true);
        monoio::spawn(crate::conn::serve(
            ctx.clone(),
            local,
            index,
            stream,
            peer,
            guard,
        ));
    }
    debug!(listener = %name, "stopped accepting");
}

async fn sweeper(ctx: Rc<Worker>) {
    loop {
        monoio::select! {
            _ = monoio::time::sleep(SWEEP_EVERY) => {}
            _ = ctx.drain.wait() => break,
        }
        let closed = ctx.pool.borrow_mut().sweep(Instant::now()) + ctx.h2pool.sweep(Instant::now());
        if closed > 0 {
            debug!(closed, "closed idle upstream connections");
        }
    }
}
