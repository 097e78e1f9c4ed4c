//! The control thread: admin server, reloads (SIGHUP, file change), drain
//! (SIGTERM, SIGINT, /quitquitquit). Runs a current-thread tokio runtime; the
//! workers never wait on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use spar_admin::{AdminState, Readiness};
use spar_runtime::{IoBackend, Options, Proxy};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::{Args, IoArg, Mode};

/// Where admin listens when the bootstrap has no `admin` section.
const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 15000);
/// How often the config file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

const INITIALIZING: u8 = 0;
const LIVE: u8 = 1;
const DRAINING: u8 = 2;

struct State {
    proxy: Mutex<Option<Arc<Proxy>>>,
    readiness: AtomicU8,
    config_dump: Mutex<serde_json::Value>,
    version: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    quit: Notify,
    started: std::time::Instant,
}

impl State {
    fn proxy(&self) -> Option<Arc<Proxy>> {
        self.proxy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AdminState for State {
    fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Relaxed) {
            LIVE => Readiness::Live,
            DRAINING => Readiness::Draining,
            _ => Readiness::Initializing,
        }
    }

    fn config_dump(&self) -> serde_json::Value {
        self.config_dump
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn prometheus(&self) -> String {
        let Some(proxy) = self.proxy() else {
            return String::new();
        };
        let extra = format!(
            "# TYPE spar_config_reloads_total counter\nspar_config_reloads_total{{result=\"ok\"}} {}\nspar_config_reloads_total{{result=\"failed\"}} {}\n# TYPE spar_server_uptime_seconds gauge\nspar_server_uptime_seconds {}\n# TYPE spar_server_concurrency gauge\nspar_server_concurrency {}\n",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
            self.started.elapsed().as_secs(),
            proxy.concurrency(),
        );
        spar_telemetry::render_prometheus(proxy.stats(), &extra)
    }

    fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.proxy().map(|p| p.listener_addrs()).unwrap_or_default()
    }

    fn server_info(&self) -> serde_json::Value {
        let proxy = self.proxy();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "state": format!("{:?}", self.readiness()).to_uppercase(),
            "uptime_current_epoch": format!("{}s", self.started.elapsed().as_secs()),
            "concurrency": proxy.as_ref().map(|p| p.concurrency()),
            "io_backend": proxy.as_ref().map(|p| p.backend().to_string()),
        })
    }

    fn quit(&self) {
        self.quit.notify_one();
    }
}

fn load(path: &Path, version: u64) -> anyhow::Result<(spar_config::Snapshot, serde_json::Value)> {
    let loaded = (|| {
        let bootstrap = spar_config::load_bootstrap(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let snapshot =
            spar_config::compile(&bootstrap, version).map_err(|e| anyhow::anyhow!("{e}"))?;
        // The snapshot goes to the workers; admin keeps its dump.
        let dump = snapshot.config_dump.clone();
        Ok((snapshot, dump))
    })();
    release_freed_memory();
    loaded
}

/// Loading a config churns a few MB of heap (YAML tree, descriptors,
/// dynamic messages) that is free again afterwards; hand it back to the
/// kernel so an idle proxy stays small (README: idle RSS).
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; no pointers of
    // ours are involved, and it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (snapshot, dump) = load(&args.config_path, 1)?;
    if args.mode == Mode::Validate {
        info!(path = %args.config_path.display(), "configuration OK");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control thread runtime")?;
    rt.block_on(control(args, snapshot, dump))
}

async fn control(
    args: Args,
    snapshot: spar_config::Snapshot,
    dump: serde_json::Value,
) -> anyhow::Result<()> {
    // Bind admin before the workers start: a taken port fails the start
    // with nothing running.
    let admin_addr = snapshot.admin.unwrap_or(DEFAULT_ADMIN);
    let admin = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("admin: cannot listen on {admin_addr}"))?;
    let state = Arc::new(State {
        proxy: Mutex::new(None),
        readiness: AtomicU8::new(INITIALIZING),
        config_dump: Mutex::new(dump),
        version: AtomicU64::new(1),
        reloads_ok: AtomicU64::new(0),
        reloads_failed: AtomicU64::new(0),
        quit: Notify::new(),
        started: std::time::Instant::now(),
    });
    let opts = Options {
        concurrency: args.concurrency,
        io: match args.io {
            IoArg::Auto => IoBackend::Auto,
            IoArg::IoUring => IoBackend::IoUring,
            IoArg::Epoll => IoBackend::Epoll,
        },
        pin: !args.no_pin,
        tcp_splice: args.tcp_splice,
    };
    let proxy = Arc::new(Proxy::start(snapshot, &opts)?);
    *state.proxy.lock().unwrap_or_else(PoisonError::into_inner) = Some(proxy.clone());
    state.readiness.store(LIVE, Ordering::Relaxed);
    let admin_local = admin.local_addr().unwrap_or(admin_addr);
    for (name, addr) in proxy.listener_addrs() {
        info!(listener = %name, address = %addr, "listening");
    }
    info!(
        admin = %admin_local,
        workers = proxy.concurrency(),
        io = %proxy.backend(),
        "spar-proxy started"
    );
    tokio::spawn(spar_admin::serve(admin, state.clone()));

    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let path = args.config_path.clone();
    let mut seen = fingerprint(&path);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP: reloading configuration");
                seen = fingerprint(&path);
                reload(&state, &proxy, &path);
            }
            _ = tick.tick() => {
                let now = fingerprint(&path);
                if now.is_some() && now != seen {
                    seen = now;
                    info!("configuration file changed: reloading");
                    reload(&state, &proxy, &path);
                }
            }
            _ = term.recv() => { info!("SIGTERM: draining"); break; }
            _ = int.recv() => { info!("SIGINT: draining"); break; }
            _ = state.quit.notified() => { info!("quitquitquit: draining"); break; }
        }
    }
    state.readiness.store(DRAINING, Ordering::Relaxed);
    proxy.drain();
    let deadline = Duration::from_secs(args.drain_time_s);
    let finished = tokio::task::spawn_blocking(move || proxy.wait(deadline))
        .await
        .unwrap_or(false);
    if finished {
        info!("drained, exiting");
    } else {
        warn!("drain deadline reached, closing remaining connections");
    }
    Ok(())
}

/// Changes when the file's content does: length, mtime and a content hash
/// (an editor may rewrite a file within one mtime tick).
fn fingerprint(path: &PathBuf) -> Option<(u64, std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some((meta.len(), meta.modified().ok()?, hash))
}

/// Loads, compiles and applies the file; on any error the running config
/// stays in force and the error is logged and counted.
fn reload(state: &State, proxy: &Proxy, path: &Path) {
    let version = state.version.load(Ordering::Relaxed) + 1;
    match load(path, version).and_then(|(s, d)| proxy.update(s).map(|()| d).map_err(Into::into)) {
        Ok(dump) => {
            state.version.store(version, Ordering::Relaxed);
            *state
                .config_dump
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = dump;
            state.reloads_ok.fetch_add(1, Ordering::Relaxed);
            info!(version, "configuration applied");
        }
        Err(e) => {
            state.reloads_failed.fetch_add(1, Ordering::Relaxed);
            error!(error = %format!("{e:#}"), "configuration rejected; keeping the running one");
        }
    }
}
