//! The HTTP/1.1 load generator: closed loop at full speed or open loop at a
//! fixed rate with coordinated-omission correction.
//!
//! Threads share nothing while running. Each runs one monoio runtime with one
//! task per connection and records into its own [`Stats`]; the main thread
//! only reads one relaxed counter per thread for the progress line, and merges
//! the stats when the threads are done.
//!
//! Timeline of a run: `t0` (all threads start) .. `t0 + warmup` (measuring
//! starts) .. `end` (measuring stops; requests still in flight are cut and not
//! counted). With `--requests` and no duration the run ends when the budget is
//! spent and the last response is in.

mod worker;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::report::{Latency, Report, Stats};
use crate::sys::{self, Io};

/// Everything a load run needs, validated.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// As given, for the report.
    pub url: String,
    pub target: Target,
    pub method: String,
    /// Extra request headers, sent as given.
    pub headers: Vec<(String, String)>,
    /// Request body size, bytes; sent with content-length when > 0.
    pub body_size: usize,
    pub connections: usize,
    pub threads: usize,
    /// Measured time; `None` with `requests` set means "until the budget is spent".
    pub duration: Option<Duration>,
    /// Measured requests (attempts, failed ones included) over all threads.
    pub requests: Option<u64>,
    pub warmup: Duration,
    /// Open loop: requests/s over all connections.
    pub rate: Option<f64>,
    /// One connection per request, with `Connection: close`.
    pub new_conn: bool,
    pub timeout: Duration,
    pub io: Io,
    /// CPUs to pin threads to, round-robin; empty = no pinning.
    pub pin: Vec<usize>,
    /// Print a progress line on stderr once per second.
    pub progress: bool,
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host` header value.
    pub authority: String,
    /// Request target, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses an `http://host[:port][/path]` URL and resolves the host once.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            bail!("{url}: bad host");
        }
        let with_port = if authority.starts_with('[') {
            if authority.contains("]:") {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            }
        } else if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("{url}: cannot resolve {authority}"))?
            .next()
            .with_context(|| format!("{url}: {authority} has no address"))?;
        Ok(Self {
            addr,
            authority: authority.to_owned(),
            path,
        })
    }
}

impl LoadConfig {
    /// The one request every connection sends, as bytes on the wire.
    pub fn request_bytes(&self) -> Vec<u8> {
        let mut r = Vec::with_capacity(256 + self.body_size);
        r.extend_from_slice(self.method.as_bytes());
        r.push(b' ');
        r.extend_from_slice(self.target.path.as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\n");
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            r.extend_from_slice(b"host: ");
            r.extend_from_slice(self.target.authority.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            r.extend_from_slice(n.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(v.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        if self.body_size > 0 {
            r.extend_from_slice(format!("content-length: {}\r\n", self.body_size).as_bytes());
        }
        if self.new_conn {
            r.extend_from_slice(b"connection: close\r\n");
        }
        r.extend_from_slice(b"\r\n");
        r.resize(r.len() + self.body_size, b'x');
        r
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            bail!("--rate must be a positive number");
        }
        if self.requests == Some(0) {
            bail!("--requests must be at least 1");
        }
        if self.timeout.is_zero() {
            bail!("--timeout must be positive");
        }
        for (n, _) in &self.headers {
            if n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("transfer-encoding")
            {
                bail!("-H {n}: the body is framed by --body-size");
            }
            if n.is_empty() || n.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
                bail!("-H {n:?}: not a header name");
            }
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            bail!("-m {:?}: not a method", self.method);
        }
        Ok(())
    }
}

/// What one worker thread does: its connections and its share of the work.
#[derive(Debug, Clone)]
struct Plan {
    /// Index of this thread's first connection among all connections; open
    /// loop staggers connections by it.
    first_conn: usize,
    conns: usize,
    budget: Option<u64>,
    pin: Option<usize>,
}

fn plans(cfg: &LoadConfig) -> Vec<Plan> {
    let threads = cfg.threads.min(cfg.connections);
    let mut out = Vec::with_capacity(threads);
    let mut first = 0;
    let mut given = 0;
    for i in 0..threads {
        let conns = cfg.connections / threads + usize::from(i < cfg.connections % threads);
        let budget = cfg.requests.map(|n| {
            if i + 1 == threads {
                n - given
            } else {
                let share = n * conns as u64 / cfg.connections as u64;
                given += share;
                share
            }
        });
        out.push(Plan {
            first_conn: first,
            conns,
            budget,
            pin: (!cfg.pin.is_empty()).then(|| cfg.pin[i % cfg.pin.len()]),
        });
        first += conns;
    }
    out
}

/// Counters one worker publishes for the progress line, a few times a second
/// (not per request).
#[derive(Debug, Default)]
struct Progress {
    responses: AtomicU64,
    errors: AtomicU64,
}

/// What a worker hands back.
#[derive(Debug)]
struct Outcome {
    stats: Stats,
    /// Completion time of the last measured request.
    last_done: Option<Instant>,
    /// All connections finished (request budget spent) before the end time.
    drained: bool,
}

/// Runs a load test and returns what it measured.
pub fn run(cfg: &LoadConfig) -> anyhow::Result<Report> {
    cfg.validate()?;
    let io = sys::resolve_io(cfg.io);
    // One request for the whole run, leaked so that every send hands the
    // kernel a `&'static [u8]`: no refcount, no copy. A few hundred bytes (plus
    // the body) per run.
    let request: &'static [u8] = Vec::leak(cfg.request_bytes());
    let plans = plans(cfg);
    let progress: Arc<[Progress]> = plans.iter().map(|_| Progress::default()).collect();
    // Threads first build their runtimes, then all start at the same `t0`.
    let ready = Arc::new(Barrier::new(plans.len() + 1));
    let go = Arc::new(Barrier::new(plans.len() + 1));
    let t0_cell = Arc::new(OnceLock::<Instant>::new());

    let mut handles = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().cloned().enumerate() {
        let spec = worker::Spec {
            request,
            head_request: cfg.method.eq_ignore_ascii_case("HEAD"),
            addr: cfg.target.addr,
            new_conn: cfg.new_conn,
            timeout: cfg.timeout,
            warmup: cfg.warmup,
            duration: cfg.duration,
            rate: cfg.rate,
            total_conns: cfg.connections,
            first_conn: plan.first_conn,
            conns: plan.conns,
            budget: plan.budget,
        };
        let (ready, go, t0_cell, progress) =
            (ready.clone(), go.clone(), t0_cell.clone(), progress.clone());
        let h = std::thread::Builder::new()
            .name(format!("spar-bench-{i}"))
            .spawn(move || -> anyhow::Result<Outcome> {
                let pinned = plan.pin.map(sys::pin_to_cpu).transpose();
                ready.wait();
                go.wait();
                pinned.with_context(|| format!("pinning thread {i}"))?;
                // Set by the main thread between the two barriers.
                let t0 = t0_cell.get().copied().unwrap_or_else(Instant::now);
                sys::block_on(io, worker::run(spec, t0, &progress[i]))
                    .with_context(|| format!("starting the {} runtime", io.name()))
            })
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    ready.wait();
    let t0 = Instant::now();
    let _ = t0_cell.set(t0);
    go.wait();

    if cfg.progress {
        show_progress(cfg, t0, &progress, &handles);
    }
    let mut stats = Stats::new();
    let mut last_done: Option<Instant> = None;
    let mut drained = true;
    for h in handles {
        let out = h
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        stats.merge(&out.stats);
        last_done = last_done.max(out.last_done);
        drained &= out.drained;
    }

    let measure_start = t0 + cfg.warmup;
    let window = match (cfg.duration, drained) {
        (Some(d), false) => d,
        _ => last_done.map_or(Duration::ZERO, |l| {
            l.saturating_duration_since(measure_start)
        }),
    };
    let secs = window.as_secs_f64();
    let requests = stats.responses();
    Ok(Report {
        url: cfg.url.clone(),
        mode: if cfg.rate.is_some() { "open" } else { "closed" },
        rate: cfg.rate,
        io: io.name(),
        threads: plans.len(),
        connections: cfg.connections,
        new_conn: cfg.new_conn,
        duration_s: secs,
        requests,
        ok: stats.ok,
        throughput_rps: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        bytes_read: stats.bytes_read,
        bytes_written: stats.bytes_written,
        latency_us: Latency::of(&stats.hist),
        errors_total: stats.errors.total(),
        errors: stats.errors,
    })
}

/// Prints one line per second on stderr until every worker has finished.
fn show_progress(
    cfg: &LoadConfig,
    t0: Instant,
    progress: &[Progress],
    handles: &[std::thread::JoinHandle<anyhow::Result<Outcome>>],
) {
    let mut last = 0u64;
    let mut tick = t0;
    loop {
        tick += Duration::from_secs(1);
        // Poll for the workers every 50 ms so the run ends promptly.
        while Instant::now() < tick {
            if handles.iter().all(|h| h.is_finished()) {
                eprint!("\r\x1b[2K");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let done: u64 = progress
            .iter()
            .map(|p| p.responses.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        let elapsed = tick.duration_since(t0);
        let phase = if elapsed <= cfg.warmup {
            "warmup"
        } else {
            "measuring"
        };
        eprint!(
            "\r\x1b[2K[{:>4}s {phase}] {} req/s, {done} responses, {errors} errors",
            elapsed.as_secs(),
            done.saturating_sub(last),
        );
        last = done;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
