//! Control-plane scale benchmark: a generated mesh (services with endpoints,
//! VirtualServices with header matches and weighted subsets, DestinationRules, Sidecars)
//! goes through the control plane's own path (spar-istio load and analysis, spar-translate
//! registry and translation, spar-xds snapshots and ADS server) to in-process proxies
//! running spar-proxy's xDS client (spar-ads). It measures translation time, the time until
//! every proxy has ACKed every type, the bytes each proxy holds, the process's memory, and
//! the time for one endpoint change to reach every proxy.
//!
//! Threads: the control plane runs on its own thread with a current-thread tokio runtime,
//! as spar-control does; the proxies share a second current-thread runtime on the caller's
//! thread. On a 2-core machine each side has about a core.
//!
//! What it does not do: no Kubernetes source, no file watching (an endpoint change is taken
//! from the moment the changed files are read), no data plane beyond the xDS client.

#![forbid(unsafe_code)]

pub mod control;
pub mod mesh;
pub mod proxies;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use spar_xds::{Cache, type_url};

use crate::control::Mesh;
use crate::mesh::Shape;
use crate::proxies::{Board, Watch};

/// What to run.
#[derive(Clone, Debug)]
pub struct Params {
    pub shape: Shape,
    pub proxies: usize,
    /// The xDS server's debounce (spar-control: [`spar_xds::DEFAULT_DEBOUNCE`]).
    pub debounce: Duration,
    /// How long to wait for the proxies before giving up.
    pub timeout: Duration,
}

/// One figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// Every figure of one run, in the order printed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, name: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    fn ms(&mut self, name: &str, d: Duration) {
        self.add(name, d.as_secs_f64() * 1e3, "ms");
    }

    /// The value of a figure.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name).map(|r| r.value)
    }
}

/// The address the changed endpoint moves to: outside the generated 10.0.0.0/8 range.
const MOVED_TO: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);

/// How often the benchmark checks the proxies and the server's sync status. 1 ms: small
/// against the figures it measures (tens of ms and more), large against one check.
const POLL: Duration = Duration::from_millis(1);

/// Runs the benchmark once.
pub fn run(params: &Params) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let shape = &params.shape;
    report.add("services", shape.services as f64, "");
    report.add(
        "endpoints",
        (shape.services * shape.endpoints_per_service) as f64,
        "",
    );
    report.add(
        "virtual services",
        shape.virtual_services.min(shape.services) as f64,
        "",
    );
    report.add("proxies", params.proxies as f64, "");

    // Load and validate, then the registry: what spar-control does for a directory.
    let files = mesh::files(shape, None);
    report.add(
        "config size",
        files.iter().map(|f| f.text.len()).sum::<usize>() as f64 / 1024.0,
        "KiB",
    );
    let t = Instant::now();
    let mut loader = control::Loader::default();
    let world = control::load(&mut loader, &files)?;
    report.ms("load + validate + registry", t.elapsed());
    report.add("resources", world.resources.len() as f64, "");

    // The proxies: workloads of the first services, spread over the namespaces.
    let nodes: Vec<_> = (0..params.proxies)
        .map(|i| {
            proxies::node(
                i,
                &shape.namespace(i),
                &format!("svc-{}", i % shape.services.max(1)),
            )
        })
        .collect();

    // Translation alone, for one proxy and for all of them (one at a time, as the server does).
    let (_, first) = nodes.first().context("no proxies")?;
    let t = Instant::now();
    let one = spar_translate::translate(&world.resources, &world.registry, first);
    report.ms("translate 1 proxy", t.elapsed());
    let t = Instant::now();
    let snapshot = control::snapshot(&one, "0");
    report.ms("encode 1 snapshot", t.elapsed());
    report.add("clusters per proxy", one.clusters.len() as f64, "");
    report.add("listeners per proxy", one.listeners.len() as f64, "");
    report.add(
        "virtual hosts per proxy",
        one.routes
            .iter()
            .map(|r| r.virtual_hosts.len())
            .sum::<usize>() as f64,
        "",
    );
    drop((one, snapshot));
    // Once per scope, as the control plane does (proxies with equal keys share one).
    let t = Instant::now();
    let mut scopes = HashSet::new();
    for (_, proxy) in &nodes {
        if scopes.insert(spar_translate::ScopeKey::new(&world.resources, proxy)) {
            let t = spar_translate::translate(&world.resources, &world.registry, proxy);
            drop(control::snapshot(&t, "0"));
        }
    }
    report.ms("translate + encode all scopes", t.elapsed());

    // The control plane, on its own thread.
    let cache = Arc::new(Cache::new(params.debounce));
    let mesh = Arc::new(Mesh::new(cache.clone()));
    mesh.set_world(world);
    cache.set_provider(mesh.provider());
    let control_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("control-plane runtime")?;
    let control = control_rt.handle().clone();
    let listener = control_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding the xDS port")?;
    let address = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let server_stop = stopped();
    let server_cache = cache.clone();
    let server = std::thread::Builder::new()
        .name("control".to_owned())
        .spawn(move || control_rt.block_on(spar_xds::serve_on(listener, server_cache, server_stop)))
        .context("control-plane thread")?;
    let server_started = Instant::now();
    rss(&mut report, "before proxies connect");

    let board = Arc::new(Board::new(params.proxies));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("proxies' runtime")?;
    let outcome = rt.block_on(async {
        for (i, (node, _)) in nodes.iter().enumerate() {
            tokio::spawn(proxies::run(
                address.clone(),
                node.clone(),
                i,
                board.clone(),
                stopped(),
            ));
        }
        measure(
            params,
            loader,
            &mut report,
            &cache,
            &mesh,
            &board,
            &control,
            server_started,
        )
        .await
    });
    let _ = stop_tx.send(true);
    drop(rt);
    match server.join() {
        Ok(r) => r.context("xDS server")?,
        Err(_) => anyhow::bail!("the control-plane thread panicked"),
    }
    outcome?;
    Ok(report)
}

/// Initial sync, then the endpoint change.
#[allow(clippy::too_many_arguments)]
async fn measure(
    params: &Params,
    mut loader: control::Loader,
    report: &mut Report,
    cache: &Cache,
    mesh: &Arc<Mesh>,
    board: &Arc<Board>,
    control: &tokio::runtime::Handle,
    server_started: Instant,
) -> anyhow::Result<()> {
    let ids = params.proxies;
    // Proxies that ACKed everything sent to them, clusters, endpoints and listeners at
    // least, and `at` at `version`, as the server sees it. (A push sends only the types that
    // changed: after the endpoint change the clusters and listeners stay at the version
    // before.)
    let acked = |cache: &Cache, at: &str, version: &str| {
        let status = cache.status();
        status
            .values()
            .filter(|s| {
                s.types.values().all(|ts| ts.synced())
                    && [type_url::CLUSTER, type_url::ENDPOINT, type_url::LISTENER]
                        .iter()
                        .all(|t| s.types.contains_key(*t))
                    && s.types.get(at).is_some_and(|ts| {
                        ts.synced() && ts.acked_version.as_deref() == Some(version)
                    })
            })
            .count()
    };
    let version = mesh.version();
    let deadline = Instant::now() + params.timeout;
    while acked(cache, type_url::CLUSTER, &version) < ids {
        anyhow::ensure!(
            Instant::now() < deadline,
            "initial sync: {} of {ids} proxies ACKed within {:?}",
            acked(cache, type_url::CLUSTER, &version),
            params.timeout
        );
        tokio::time::sleep(POLL).await;
    }
    report.ms(
        "all proxies ACKed (from server start)",
        server_started.elapsed(),
    );
    // As the control plane counts them, once every proxy has its config.
    report.add("scopes", mesh.scope_count() as f64, "");
    let seen = board.snapshot();
    let last_configured = seen
        .iter()
        .filter_map(|s| s.configured_at)
        .max()
        .context("no proxy applied a config")?;
    report.ms(
        "all proxies applied (client side)",
        last_configured.saturating_duration_since(server_started),
    );
    let median = |mut v: Vec<usize>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0) as f64
    };
    let cds = median(seen.iter().map(|s| s.cluster_bytes).collect());
    let eds = median(seen.iter().map(|s| s.endpoint_bytes).collect());
    let lds = median(seen.iter().map(|s| s.listener_bytes).collect());
    report.add("bytes per proxy: CDS", cds / 1024.0, "KiB");
    report.add("bytes per proxy: EDS", eds / 1024.0, "KiB");
    report.add("bytes per proxy: LDS (routes inline)", lds / 1024.0, "KiB");
    report.add("bytes per proxy: total", (cds + eds + lds) / 1024.0, "KiB");
    report.add(
        "bytes all proxies",
        seen.iter()
            .map(|s| s.cluster_bytes + s.endpoint_bytes + s.listener_bytes)
            .sum::<usize>() as f64
            / (1024.0 * 1024.0),
        "MiB",
    );
    rss(report, "after sync");

    // The endpoint change: endpoint 0 of service 0 moves. Reload the files and set the world,
    // on the control plane's thread, as spar-control's file source does.
    let shape = params.shape.clone();
    let cluster = format!("outbound|{}||{}", mesh::SERVICE_PORT, shape.host(0));
    *board.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watch {
        cluster,
        address: MOVED_TO.to_string(),
    });
    let before = board.snapshot();
    let first_id = cache.status().keys().next().cloned().unwrap_or_default();
    let first_before = cache.snapshot(&first_id);
    let m = mesh.clone();
    let changed = control
        .spawn(async move {
            let start = Instant::now();
            let files = mesh::files(&shape, Some((0, MOVED_TO)));
            let world = control::load(&mut loader, &files)?;
            let loaded = Instant::now();
            m.set_world(world);
            anyhow::Ok((start, loaded, Instant::now()))
        })
        .await
        .context("the change task")??;
    let (start, loaded, set) = changed;
    report.ms("change: reload + registry", loaded - start);
    report.ms(
        "change: set world (patch or translate, encode)",
        set - loaded,
    );
    let version = mesh.version();
    let deadline = Instant::now() + params.timeout;
    loop {
        let seen = board.snapshot();
        if seen.iter().all(|s| s.watched_at.is_some()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "endpoint change: {} of {ids} proxies got it within {:?}",
            seen.iter().filter(|s| s.watched_at.is_some()).count(),
            params.timeout
        );
        tokio::time::sleep(POLL).await;
    }
    while acked(cache, type_url::ENDPOINT, &version) < ids {
        anyhow::ensure!(
            Instant::now() < deadline,
            "endpoint change: {} of {ids} proxies ACKed within {:?}",
            acked(cache, type_url::ENDPOINT, &version),
            params.timeout
        );
        tokio::time::sleep(POLL).await;
    }
    let all_acked = Instant::now();
    let seen = board.snapshot();
    let mut latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|s| s.watched_at)
        .map(|t| t.saturating_duration_since(start))
        .collect();
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    report.ms("change: applied by proxies p50", pick(0.5));
    report.ms("change: applied by proxies p99", pick(0.99));
    report.ms("change: applied by proxies max", pick(1.0));
    report.ms(
        "change: all ACKed (server side)",
        all_acked.saturating_duration_since(start),
    );
    let most = |count: fn(&proxies::Seen) -> usize| {
        seen.iter()
            .zip(&before)
            .map(|(s, b)| count(s) - count(b))
            .max()
            .unwrap_or(0) as f64
    };
    report.add("change: updates applied per proxy", most(|s| s.applied), "");
    report.add(
        "change: cluster sets (CDS) applied per proxy",
        most(|s| s.cluster_updates),
        "",
    );
    // What the server pushes for the change: the resources whose entries differ (CDS and
    // LDS responses carry their whole set when anything in them changed).
    let first_after = cache.snapshot(&first_id);
    if let (Some(old), Some(new)) = (first_before, first_after) {
        for (name, t, full_state) in [
            ("CDS", type_url::CLUSTER, true),
            ("EDS", type_url::ENDPOINT, false),
            ("LDS", type_url::LISTENER, true),
        ] {
            let empty = Default::default();
            let (a, b) = (
                old.of_type(t).unwrap_or(&empty),
                new.of_type(t).unwrap_or(&empty),
            );
            let pushed: Vec<&spar_xds::Entry> = match full_state {
                true if a != b => b.values().collect(),
                true => Vec::new(),
                false => b
                    .iter()
                    .filter(|(n, e)| a.get(*n) != Some(*e))
                    .map(|(_, e)| e)
                    .collect(),
            };
            report.add(
                &format!("change: {name} resources pushed per proxy"),
                pushed.len() as f64,
                "",
            );
            report.add(
                &format!("change: {name} bytes pushed per proxy"),
                pushed.iter().map(|e| e.resource.value.len()).sum::<usize>() as f64 / 1024.0,
                "KiB",
            );
        }
    }
    report.add(
        "server pushes (metric)",
        cache.metrics().pushes() as f64,
        "",
    );
    report.add(
        "NACKs",
        [type_url::CLUSTER, type_url::ENDPOINT, type_url::LISTENER]
            .iter()
            .map(|t| cache.metrics().nacks(t))
            .sum::<u64>() as f64,
        "",
    );
    Ok(())
}

/// VmRSS and VmHWM of this process (control plane and proxies together), in MiB.
fn rss(report: &mut Report, when: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["VmRSS", "VmHWM"] {
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        report.add(&format!("{key} {when}"), kib / 1024.0, "MiB");
    }
}
