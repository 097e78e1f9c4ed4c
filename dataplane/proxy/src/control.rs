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

use envoy_types::pb::envoy::config::core::v3 as envoy_types_node;

/// Where admin listens when the bootstrap has no `admin` section.
const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 15000);
/// How often the config file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

const INITIALIZING: u8 = 0;
const LIVE: u8 = 1;
const DRAINING: u8 = 2;

/// The config in force: the bootstrap file and what xDS added to it.
struct Config {
    base: spar_config::Bootstrap,
    dynamic: spar_ads::Update,
}

struct State {
    proxy: Mutex<Option<Arc<Proxy>>>,
    config: Mutex<Config>,
    readiness: AtomicU8,
    config_dump: Mutex<serde_json::Value>,
    version: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    quit: Notify,
    started: std::time::Instant,
    /// The mesh identity, when the proxy has one (`--ca-address`).
    identity: Option<Arc<spar_identity::Identity>>,
    /// The xDS client's counters.
    xds_stats: Arc<spar_ads::Stats>,
}

impl State {
    /// `base` with the identity's SDS secrets, as every compiled bootstrap needs them.
    fn with_secrets(&self, base: spar_config::Bootstrap) -> spar_config::Bootstrap {
        with_secrets(base, self.identity.as_ref())
    }
}

fn with_secrets(
    base: spar_config::Bootstrap,
    identity: Option<&Arc<spar_identity::Identity>>,
) -> spar_config::Bootstrap {
    match identity {
        Some(id) => base.with_secrets(id.clone()),
        None => base,
    }
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
        let mut dump = self
            .config_dump
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (Some(identity), Some(configs)) = (&self.identity, dump["configs"].as_array_mut()) {
            configs.push(crate::identity::secrets_dump(identity));
        }
        // The EDS assignments in force, built when asked for: an endpoint change does not
        // pay for a dump nobody reads.
        let endpoints = {
            let config = self.config.lock().unwrap_or_else(PoisonError::into_inner);
            let dynamic = &config.dynamic;
            (!dynamic.assignments.is_empty()).then(|| {
                spar_config::endpoints_config_dump(dynamic.assignments.iter().map(|(name, la)| {
                    let version = dynamic.assignment_versions.get(name);
                    (version.map_or("", String::as_str), la)
                }))
            })
        };
        if let (Some(endpoints), Some(configs)) = (endpoints, dump["configs"].as_array_mut()) {
            configs.push(endpoints);
        }
        dump
    }

    fn prometheus(&self) -> String {
        let Some(proxy) = self.proxy() else {
            return String::new();
        };
        let mut extra = format!(
            "# TYPE spar_config_reloads_total counter\nspar_config_reloads_total{{result=\"ok\"}} {}\nspar_config_reloads_total{{result=\"failed\"}} {}\n# TYPE spar_server_uptime_seconds gauge\nspar_server_uptime_seconds {}\n# TYPE spar_server_concurrency gauge\nspar_server_concurrency {}\n",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
            self.started.elapsed().as_secs(),
            proxy.concurrency(),
        );
        if let Some(identity) = &self.identity {
            extra.push_str(&crate::identity::prometheus(identity));
        }
        extra.push_str(&format!(
            "# TYPE spar_xds_eds_warming_timeouts_total counter\nspar_xds_eds_warming_timeouts_total {}\n",
            self.xds_stats.warming_timeouts.load(Ordering::Relaxed),
        ));
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

    fn certs(&self) -> serde_json::Value {
        match &self.identity {
            Some(identity) => serde_json::json!({ "certificates": [identity.describe()] }),
            None => serde_json::json!({ "certificates": [] }),
        }
    }

    fn quit(&self) {
        self.quit.notify_one();
    }
}

fn load(path: &Path) -> anyhow::Result<spar_config::Bootstrap> {
    let loaded = spar_config::load_bootstrap(path).map_err(|e| anyhow::anyhow!("{e}"));
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
    let base = load(&args.config_path)?;
    let identity = crate::identity::from_args(&args.identity, base.envoy.node.as_ref())?;
    let base = with_secrets(base, identity.as_ref().map(|(id, _)| id));
    let snapshot = spar_config::compile(&base, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dump = snapshot.config_dump.clone();
    if args.mode == Mode::Validate {
        info!(path = %args.config_path.display(), "configuration OK");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control thread runtime")?;
    rt.block_on(control(args, base, snapshot, dump, identity))
}

async fn control(
    args: Args,
    base: spar_config::Bootstrap,
    snapshot: spar_config::Snapshot,
    dump: serde_json::Value,
    identity: Option<(Arc<spar_identity::Identity>, spar_identity::Config)>,
) -> anyhow::Result<()> {
    // Bind admin before the workers start: a taken port fails the start
    // with nothing running.
    let admin_addr = snapshot.admin.unwrap_or(DEFAULT_ADMIN);
    let admin = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("admin: cannot listen on {admin_addr}"))?;
    let ads = snapshot.ads.clone();
    let node = base.envoy.node.clone().unwrap_or_default();
    let state = Arc::new(State {
        proxy: Mutex::new(None),
        config: Mutex::new(Config {
            base,
            dynamic: spar_ads::Update::default(),
        }),
        readiness: AtomicU8::new(INITIALIZING),
        config_dump: Mutex::new(dump),
        version: AtomicU64::new(1),
        reloads_ok: AtomicU64::new(0),
        reloads_failed: AtomicU64::new(0),
        quit: Notify::new(),
        started: std::time::Instant::now(),
        identity: identity.as_ref().map(|(id, _)| id.clone()),
        xds_stats: Arc::default(),
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
    // With a mesh identity, ready once its first certificate is held (mTLS listeners
    // cannot handshake before); the rotation keeps it supplied from then on.
    let rotation = match identity {
        None => {
            state.readiness.store(LIVE, Ordering::Relaxed);
            None
        }
        Some((id, config)) => {
            info!(identity = %id.spiffe_id(), ca = %config.ca_address, "fetching the mesh certificate");
            let ready = {
                let (state, id) = (state.clone(), id.clone());
                async move {
                    while !id.ready() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let _ = state.readiness.compare_exchange(
                        INITIALIZING,
                        LIVE,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    info!(identity = %id.spiffe_id(), "mesh certificate held: ready");
                }
            };
            tokio::spawn(ready);
            Some(tokio::spawn(async move {
                if let Err(e) = spar_identity::run(id, config, std::future::pending()).await {
                    error!(error = %e, "mesh identity: rotation stopped");
                }
            }))
        }
    };
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
    // Clusters and listeners over xDS, when the bootstrap names an ADS server.
    let xds = ads.map(|ads| {
        let node = istio_node(node);
        info!(server = %ads.address, node = %node.id, "subscribing to xDS");
        let mut config = spar_ads::AdsConfig::new(format!("http://{}", ads.address), node);
        config.stats = state.xds_stats.clone();
        let apply = XdsApply {
            state: state.clone(),
            proxy: proxy.clone(),
        };
        tokio::spawn(spar_ads::run(config, apply, std::future::pending()))
    });

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
    if let Some(task) = xds {
        task.abort();
    }
    if let Some(task) = rotation {
        task.abort();
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

/// Loads, compiles and applies the file (with what xDS added); on any error
/// the running config stays in force and the error is logged and counted.
fn reload(state: &State, proxy: &Proxy, path: &Path) {
    match load(path).and_then(|base| apply(state, proxy, Some(state.with_secrets(base)), None)) {
        Ok(version) => {
            state.reloads_ok.fetch_add(1, Ordering::Relaxed);
            info!(version, "configuration applied");
        }
        Err(e) => {
            state.reloads_failed.fetch_add(1, Ordering::Relaxed);
            error!(error = %format!("{e:#}"), "configuration rejected; keeping the running one");
        }
    }
}

/// What the xDS client's updates go through: checked, compiled with the bootstrap and
/// swapped in.
struct XdsApply {
    state: Arc<State>,
    proxy: Arc<Proxy>,
}

impl spar_ads::Apply for XdsApply {
    fn apply(&mut self, update: &spar_ads::Update) -> Result<(), String> {
        apply(&self.state, &self.proxy, None, Some(update.clone()))
            .map(|version| info!(version, "xDS configuration applied"))
            .map_err(|e| format!("{e:#}"))
    }

    fn check_assignment(
        &mut self,
        assignment: &envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment,
    ) -> Result<(), String> {
        spar_config::check_assignment(assignment).map_err(|e| e.to_string())
    }
}

/// Compiles the bootstrap and the xDS resources (the new one given, or the
/// one in force) into the next snapshot and applies it; returns its version.
/// Nothing changes on error.
fn apply(
    state: &State,
    proxy: &Proxy,
    base: Option<spar_config::Bootstrap>,
    dynamic: Option<spar_ads::Update>,
) -> anyhow::Result<u64> {
    let mut config = state.config.lock().unwrap_or_else(PoisonError::into_inner);
    let version = state.version.load(Ordering::Relaxed) + 1;
    let compiled = {
        let base = base.as_ref().unwrap_or(&config.base);
        let dynamic = dynamic.as_ref().unwrap_or(&config.dynamic);
        let xds = spar_config::Xds {
            clusters: &dynamic.clusters,
            listeners: &dynamic.listeners,
            assignments: &dynamic.assignments,
        };
        base.compile_xds(xds, version)
    };
    release_freed_memory();
    let snapshot = compiled.map_err(|e| anyhow::anyhow!("{e}"))?;
    let dump = snapshot.config_dump.clone();
    proxy.update(snapshot)?;
    state.version.store(version, Ordering::Relaxed);
    *state
        .config_dump
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = dump;
    if let Some(base) = base {
        config.base = base;
    }
    if let Some(dynamic) = dynamic {
        config.dynamic = dynamic;
    }
    Ok(version)
}

/// The node this proxy presents to the control plane: the bootstrap's, with
/// Istio's id form when the bootstrap gives none
/// (`sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`).
fn istio_node(mut node: envoy_types_node::Node) -> envoy_types_node::Node {
    if node.id.is_empty() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "spar-proxy".to_owned());
        node.id = format!("sidecar~127.0.0.1~{host}.default~default.svc.cluster.local");
    }
    if node.cluster.is_empty() {
        node.cluster = "spar-proxy".to_owned();
    }
    node
}
