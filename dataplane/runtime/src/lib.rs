//! spar-runtime: the thread-per-core data path of spar-proxy.
//!
//! [`Proxy::start`] binds every listener (one `SO_REUSEPORT` socket per
//! worker per port, all bound before any worker starts, so a bad address
//! fails the start with nothing half-running), then starts N worker threads.
//! Each worker is pinned to a CPU and runs its own monoio runtime (io_uring,
//! or epoll when io_uring is unavailable or asked for). A worker owns its
//! sockets, its upstream connection pool, its buffers and its counters:
//! nothing on the request path is shared, locked or atomically contended.
//!
//! Config reaches workers as an immutable [`spar_config::Snapshot`]; a
//! connection keeps the snapshot it was accepted under, a new connection
//! takes the newest ([`Proxy::update`]). [`Proxy::drain`] stops accepting,
//! lets in-flight requests finish, and closes idle keep-alive connections.
//!
//! Not here: config parsing (spar-config), HTTP parsing (spar-http), routing
//! decisions (spar-route), load-balancing decisions (spar-cluster), the admin
//! server (spar-proxy's control thread).

mod authz;
mod balance;
mod bind;
mod body;
mod conn;
mod drain;
mod http1;
mod http2;
mod io;
mod mirror;
mod pin;
mod stream;
mod tcp;
mod upstream;
mod view;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use spar_config::Snapshot;
use spar_telemetry::WorkerStats;
use tokio::sync::mpsc;

pub use bind::BindError;

/// Which kernel interface the workers use for I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring when the kernel allows it, else epoll (logged once).
    Auto,
    IoUring,
    Epoll,
}

/// What a worker actually runs on, after [`IoBackend::Auto`] was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveBackend {
    IoUring,
    Epoll,
}

impl std::fmt::Display for ActiveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActiveBackend::IoUring => "io_uring",
            ActiveBackend::Epoll => "epoll",
        })
    }
}

/// How to run the workers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads; 0 means one per CPU this process may use.
    pub concurrency: usize,
    pub io: IoBackend,
    /// Pin worker i to the i-th CPU of the allowed set.
    pub pin: bool,
    /// TCP proxy copies with splice(2) through a pipe instead of a userspace
    /// buffer.
    pub tcp_splice: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 0,
            io: IoBackend::Auto,
            pin: true,
            tcp_splice: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("io_uring requested but unavailable: {0}")]
    IoUringUnavailable(std::io::Error),
    #[error("starting worker thread: {0}")]
    Thread(std::io::Error),
    #[error("worker {0} failed to start its runtime: {1}")]
    Runtime(usize, std::io::Error),
}

/// A message from the control thread to one worker.
pub(crate) enum Command {
    /// Adopt `snapshot` for new connections; start accepting on `add`
    /// (listener name, socket, shared connection count), stop accepting on
    /// `remove` (listener names).
    Update {
        snapshot: Arc<Snapshot>,
        /// Cross-worker cluster state (breakers, health), by cluster index.
        shared: Arc<worker::SharedClusters>,
        add: Vec<bind::BoundListener>,
        remove: Vec<String>,
    },
    /// Stop accepting, finish in-flight requests, close idle connections.
    Drain,
}

struct WorkerHandle {
    commands: mpsc::UnboundedSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Listener state the control thread keeps across updates.
struct ListenerSlot {
    address: SocketAddr,
    /// The address actually bound (the real port when the config said 0).
    local: SocketAddr,
}

/// Binds one listener's sockets (one per worker, queued in `per_worker`)
/// and returns the control thread's record of it.
fn bind_listener(
    l: &spar_config::Listener,
    per_worker: &mut [Vec<bind::BoundListener>],
) -> Result<ListenerSlot, BindError> {
    // Open connections on this listener across all workers, for its
    // connection limit: one atomic per connection open and close.
    let open = Arc::new(AtomicU64::new(0));
    let (local, socks) = bind::bind_reuseport(&l.name, l.address, per_worker.len())?;
    for (queue, socket) in per_worker.iter_mut().zip(socks) {
        queue.push(bind::BoundListener {
            name: l.name.clone(),
            socket,
            open: open.clone(),
        });
    }
    Ok(ListenerSlot {
        address: l.address,
        local,
    })
}

/// The running data path.
pub struct Proxy {
    workers: Vec<WorkerHandle>,
    stats: Vec<Arc<WorkerStats>>,
    backend: ActiveBackend,
    listeners: Mutex<HashMap<String, ListenerSlot>>,
    clusters: Mutex<balance::Registry>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("workers", &self.workers.len())
            .field("backend", &self.backend)
            .finish()
    }
}

impl Proxy {
    /// Binds every listener of `snapshot` and starts the workers.
    pub fn start(snapshot: Snapshot, opts: &Options) -> Result<Proxy, StartError> {
        let cpus = pin::allowed_cpus();
        let n = if opts.concurrency == 0 {
            cpus.len().max(1)
        } else {
            opts.concurrency
        };
        let backend = worker::resolve_backend(opts.io)?;

        // Bind everything first: an error here leaves nothing running.
        let mut slots = HashMap::new();
        let mut per_worker: Vec<Vec<bind::BoundListener>> = (0..n).map(|_| Vec::new()).collect();
        for l in &snapshot.listeners {
            let slot = bind_listener(l, &mut per_worker)?;
            slots.insert(l.name.clone(), slot);
        }

        let mut registry = balance::Registry::new();
        let shared = registry.sync(&snapshot);
        let snapshot = Arc::new(snapshot);
        let mut workers = Vec::with_capacity(n);
        let mut stats = Vec::with_capacity(n);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for (id, listeners) in per_worker.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            let ws = Arc::new(WorkerStats::default());
            stats.push(ws.clone());
            let cpu = if opts.pin {
                cpus.get(id % cpus.len().max(1)).copied()
            } else {
                None
            };
            let first = Command::Update {
                snapshot: snapshot.clone(),
                shared: shared.clone(),
                add: listeners,
                remove: Vec::new(),
            };
            let ready = ready_tx.clone();
            let tcp_splice = opts.tcp_splice;
            let thread = std::thread::Builder::new()
                .name(format!("spar-worker-{id}"))
                .spawn(move || {
                    worker::run(
                        worker::Spawn {
                            id,
                            cpu,
                            backend,
                            tcp_splice,
                        },
                        ws,
                        first,
                        rx,
                        ready,
                    )
                })
                .map_err(StartError::Thread)?;
            workers.push(WorkerHandle {
                commands: tx,
                thread: Mutex::new(Some(thread)),
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err((id, e))) => return Err(StartError::Runtime(id, e)),
                Err(_) => {
                    return Err(StartError::Runtime(
                        0,
                        std::io::Error::other("worker exited before it was ready"),
                    ));
                }
            }
        }
        Ok(Proxy {
            workers,
            stats,
            backend,
            listeners: Mutex::new(slots),
            clusters: Mutex::new(registry),
        })
    }

    /// Hands a new snapshot to every worker. Listeners whose name and address
    /// are unchanged keep their sockets (no connection is dropped); new ones
    /// are bound first, so a bind failure leaves the old config in force.
    pub fn update(&self, snapshot: Snapshot) -> Result<(), StartError> {
        let n = self.workers.len();
        let mut slots = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut per_worker: Vec<Vec<bind::BoundListener>> = (0..n).map(|_| Vec::new()).collect();
        let mut new_slots = Vec::new();
        let mut remove = Vec::new();
        for (name, slot) in slots.iter() {
            let kept = snapshot
                .listeners
                .iter()
                .any(|l| &l.name == name && l.address == slot.address);
            if !kept {
                remove.push(name.clone());
            }
        }
        for l in &snapshot.listeners {
            let unchanged = slots.get(&l.name).is_some_and(|s| s.address == l.address);
            if unchanged {
                continue;
            }
            // A listener moving address is removed and re-added; if the old
            // one held the same address the bind would fail, so remove first
            // only when addresses collide (rare): here we bind new first.
            new_slots.push((l.name.clone(), bind_listener(l, &mut per_worker)?));
        }
        for name in &remove {
            slots.remove(name);
        }
        for (name, slot) in new_slots {
            slots.insert(name, slot);
        }
        let shared = self
            .clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync(&snapshot);
        let snapshot = Arc::new(snapshot);
        for (w, add) in self.workers.iter().zip(per_worker) {
            let cmd = Command::Update {
                snapshot: snapshot.clone(),
                shared: shared.clone(),
                add,
                remove: remove.clone(),
            };
            // A worker that is gone has already stopped; nothing to update.
            let _ = w.commands.send(cmd);
        }
        Ok(())
    }

    /// The addresses listeners are bound to, by listener name.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let slots = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = slots.iter().map(|(k, s)| (k.clone(), s.local)).collect();
        v.sort();
        v
    }

    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    pub fn backend(&self) -> ActiveBackend {
        self.backend
    }

    pub fn concurrency(&self) -> usize {
        self.workers.len()
    }

    /// Starts draining every worker. Returns at once; [`Proxy::wait`] joins.
    pub fn drain(&self) {
        for w in &self.workers {
            let _ = w.commands.send(Command::Drain);
        }
    }

    /// Waits until every worker has finished draining, or `deadline` passed
    /// (the remaining connections are then closed when the process exits).
    /// Returns true when every worker finished in time.
    pub fn wait(&self, deadline: Duration) -> bool {
        let until = std::time::Instant::now() + deadline;
        let mut all = true;
        for w in &self.workers {
            let taken = w
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = taken {
                while !t.is_finished() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if t.is_finished() {
                    let _ = t.join();
                } else {
                    all = false;
                }
            }
        }
        all
    }
}
