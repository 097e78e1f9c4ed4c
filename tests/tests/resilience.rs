//! Issue 3 resilience through spar-proxy, written against standard Envoy
//! bootstrap fields: canary weights, blue-green switch under load, outlier
//! detection, retry budgets and circuit breaking. Each scenario is a
//! function of the proxy under test; where Envoy can run it (everything but
//! the file reload), an Envoy run keeps the scenario itself honest in CI,
//! and the spar-proxy run is ignored until the runtime lands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use spar_tests::assert_eventually;
use spar_tests::differential::{
    Envoy, ID_HEADER, KeepAlive, Upstreams, envoy_validate, fill_listen, stat_sum, static_cluster,
    upstream_tag,
};
use spar_tests::http;
use spar_tests::proc::SparProxy;
use spar_tests::upstream::{Scripted, header_value};

/// One listener on `{listen}`, every request to the route action `route`
/// (YAML at 16 spaces, e.g. `"                route: { cluster: x }\n"`),
/// then `clusters` (list items at 2 spaces).
fn bootstrap(route: &str, clusters: &str) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{listen}} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: resilience
          route_config:
            name: resilience
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
{route}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}"#
    )
}

/// The proxy under test: its listener, its `/stats` text, and (for spar)
/// the process, for reloads.
struct Under {
    addr: SocketAddr,
    name: &'static str,
    envoy: Option<Envoy>,
    spar: Option<SparProxy>,
}

impl Under {
    fn envoy(template: &str) -> Under {
        let (yaml, addr) = fill_listen(template);
        Under {
            addr,
            name: "envoy",
            envoy: Some(Envoy::start(&yaml)),
            spar: None,
        }
    }
    fn spar(template: &str) -> Under {
        let (yaml, addr) = fill_listen(template);
        Under {
            addr,
            name: "spar-proxy",
            envoy: None,
            spar: Some(SparProxy::start(&yaml, &["--concurrency", "2"])),
        }
    }
    fn stats(&self) -> String {
        let admin = match (&self.envoy, &self.spar) {
            (Some(e), _) => e.admin,
            (_, Some(s)) => s.admin,
            _ => unreachable!(),
        };
        http::get(admin, "/stats")
            .map(|r| r.body_text())
            .unwrap_or_default()
    }
}

fn weighted(blue: u32, green: u32) -> String {
    format!(
        "                route:\n                  weighted_clusters:\n                    clusters:\n                    - {{ name: blue, weight: {blue} }}\n                    - {{ name: green, weight: {green} }}\n"
    )
}

fn blue_green_clusters() -> String {
    Upstreams::cluster("blue", &["blue"], "") + &Upstreams::cluster("green", &["green"], "")
}

// ---------------------------------------------------------------- canary

const CANARY_REQUESTS: usize = 10_000;
const CANARY_THREADS: usize = 4;

fn canary(template: &str, start: fn(&str) -> Under) {
    let ups = Upstreams::start(&["blue", "green"]);
    let under = start(&ups.fill(template));
    let addr = under.addr;
    let handles: Vec<_> = (0..CANARY_THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = KeepAlive::new(addr);
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..CANARY_REQUESTS / CANARY_THREADS {
                    let r = c.get("canary.test", "/", "").expect("canary request");
                    let tag = upstream_tag(&r.body_text()).unwrap_or("none").to_owned();
                    *counts.entry(format!("{} {tag}", r.status)).or_default() += 1;
                }
                (counts, c.connections)
            })
        })
        .collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut connections = 0;
    for h in handles {
        let (c, n) = h.join().unwrap();
        connections += n;
        for (k, v) in c {
            *counts.entry(k).or_default() += v;
        }
    }
    let blue = counts.get("200 blue").copied().unwrap_or(0);
    let green = counts.get("200 green").copied().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let share = |n: usize| 100.0 * n as f64 / CANARY_REQUESTS as f64;
    println!(
        "canary through {}: blue {:.2}% green {:.2}% over {CANARY_REQUESTS} requests on {connections} connections; all answers {counts:?}",
        under.name,
        share(blue),
        share(green)
    );
    assert_eq!(blue + green, CANARY_REQUESTS, "failed requests: {counts:?}");
    assert!(
        (share(blue) - 90.0).abs() <= 2.0,
        "blue share {:.2}%",
        share(blue)
    );
    assert!(
        (share(green) - 10.0).abs() <= 2.0,
        "green share {:.2}%",
        share(green)
    );
}

fn canary_bootstrap() -> String {
    bootstrap(&weighted(90, 10), &blue_green_clusters())
}

#[test]
fn canary_90_10_under_envoy() {
    canary(&canary_bootstrap(), Under::envoy);
}

#[test]
fn canary_90_10_under_spar() {
    canary(&canary_bootstrap(), Under::spar);
}

// ------------------------------------------------------------ blue-green

/// spar-proxy only: Envoy cannot reload a static bootstrap file.
#[test]
fn blue_green_switch_under_load_fails_nothing() {
    let ups = Upstreams::start(&["blue", "green"]);
    let before = ups.fill(&bootstrap(&weighted(100, 0), &blue_green_clusters()));
    let after = ups.fill(&bootstrap(&weighted(0, 100), &blue_green_clusters()));
    let under = Under::spar(&before);
    let proxy = under.spar.as_ref().unwrap();
    let port = under.addr.port().to_string();
    let reloads_before = proxy.metric("spar_config_reloads_total", "ok");

    let stop = Arc::new(AtomicBool::new(false));
    let switched = Arc::new(AtomicBool::new(false));
    let post_switch = Arc::new(AtomicUsize::new(0));
    let addr = under.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, switched, post) = (stop.clone(), switched.clone(), post_switch.clone());
            std::thread::spawn(move || {
                let mut c = KeepAlive::new(addr);
                // (sent after the switch was confirmed, status or error, tag)
                let mut log: Vec<(bool, String, String)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let after = switched.load(Ordering::Relaxed);
                    let entry = match c.get("bg.test", "/", "") {
                        Ok(r) => (
                            r.status.to_string(),
                            upstream_tag(&r.body_text()).unwrap_or("none").to_owned(),
                        ),
                        Err(e) => (format!("error: {e}"), "none".to_owned()),
                    };
                    if after {
                        post.fetch_add(1, Ordering::Relaxed);
                    }
                    log.push((after, entry.0, entry.1));
                }
                log
            })
        })
        .collect();

    // Some blue traffic first, then the switch: file replaced atomically,
    // then SIGHUP (the file watcher may apply it too; either is fine).
    assert_eventually(Duration::from_secs(10), "traffic flowing", || {
        ups.count("blue") >= 200
    });
    let tmp = proxy.dir.join("next.yaml");
    std::fs::write(
        &tmp,
        after
            .replace("{listen}", &port)
            .replace("{admin}", &proxy.admin.port().to_string()),
    )
    .unwrap();
    std::fs::rename(&tmp, &proxy.config).unwrap();
    proxy.process.signal(libc::SIGHUP);
    assert_eventually(Duration::from_secs(10), "reload applied", || {
        proxy.metric("spar_config_reloads_total", "ok") > reloads_before
            && http::get_host(addr, "bg.test", "/")
                .is_ok_and(|r| upstream_tag(&r.body_text()) == Some("green"))
    });
    switched.store(true, Ordering::Relaxed);
    assert_eventually(Duration::from_secs(20), "traffic after the switch", || {
        post_switch.load(Ordering::Relaxed) >= 2_000
    });
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut failed = Vec::new();
    let mut blue_after = 0;
    let mut tags_before: HashMap<String, usize> = HashMap::new();
    for h in clients {
        for (after, status, tag) in h.join().unwrap() {
            total += 1;
            if status != "200" {
                failed.push(status.clone());
            }
            if after {
                if tag != "green" {
                    blue_after += 1;
                }
            } else {
                *tags_before.entry(tag).or_default() += 1;
            }
        }
    }
    println!(
        "blue-green: {total} requests, {} failed, before the switch {tags_before:?}, {} after it of which {blue_after} not green",
        failed.len(),
        post_switch.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(tags_before.get("blue").copied().unwrap_or(0) > 0);
    assert_eq!(blue_after, 0, "answers not from green after the switch");
}

// ------------------------------------------------------ outlier detection

const OUTLIER: &str = "    outlier_detection:
      consecutive_5xx: 3
      interval: 1s
      base_ejection_time: 30s
      max_ejection_percent: 50
";

fn outlier_bootstrap() -> String {
    bootstrap(
        "                route: { cluster: pool }\n",
        &Upstreams::cluster("pool", &["good1", "good2", "bad"], OUTLIER),
    )
}

fn outlier_detection(start: fn(&str) -> Under) {
    let ups = Upstreams::start_with(&["good1", "good2"], &[("bad", 503)]);
    let under = start(&ups.fill(&outlier_bootstrap()));
    let mut c = KeepAlive::new(under.addr);
    // Until the bad endpoint is out: 30 successes in a row.
    let mut streak = 0;
    assert_eventually(Duration::from_secs(10), "bad endpoint ejected", || {
        let ok = c.get("od.test", "/", "").is_ok_and(|r| r.status == 200);
        streak = if ok { streak + 1 } else { 0 };
        streak >= 30
    });
    let bad_before = ups.count("bad");
    let mut errors = 0;
    for _ in 0..2_000 {
        if !c.get("od.test", "/", "").is_ok_and(|r| r.status == 200) {
            errors += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = 100.0 * f64::from(errors) / 2_000.0;
    println!(
        "outlier detection through {}: {errors} errors in 2000 requests ({rate:.2}%); the bad endpoint got {} of them; ejections: {}",
        under.name,
        ups.count("bad") - bad_before,
        stat_sum(
            &under.stats(),
            "outlier_detection.ejections_enforced_total",
            "pool"
        ) + stat_sum(
            &under.stats(),
            "outlier_detection_ejections_enforced_total",
            "pool"
        )
    );
    assert!(rate < 1.0, "error rate {rate:.2}% after ejection");
}

#[test]
fn outlier_detection_ejects_a_failing_endpoint_under_envoy() {
    outlier_detection(Under::envoy);
}

#[test]
fn outlier_detection_ejects_a_failing_endpoint_under_spar() {
    outlier_detection(Under::spar);
}

// ----------------------------------------------------------- retry budget

const BUDGET_CLIENTS: usize = 20;
const BUDGET_REQUESTS_EACH: usize = 10;
const BUDGET_PERCENT: usize = 20;

fn retry_budget_bootstrap(port: u16) -> String {
    bootstrap(
        "                route: { cluster: failing, retry_policy: { retry_on: 5xx, num_retries: 3 } }\n",
        &static_cluster(
            "failing",
            &[port.to_string()],
            &format!(
                "    circuit_breakers:\n      thresholds:\n      - retry_budget: {{ budget_percent: {{ value: {BUDGET_PERCENT} }}, min_retry_concurrency: 1 }}\n"
            ),
        ),
    )
}

#[derive(Default)]
struct RetryProbe {
    ids: Mutex<HashSet<String>>,
    retries_now: AtomicUsize,
    retries_max: AtomicUsize,
    total: AtomicUsize,
}

/// Always 503 after 20 ms; counts requests and the most retries (a second
/// request with an id already seen) in flight at once.
fn always_503(probe: Arc<RetryProbe>) -> Scripted {
    Scripted::start(move |mut c| {
        while let Some(head) = c.read_head() {
            probe.total.fetch_add(1, Ordering::SeqCst);
            let id = header_value(&head, ID_HEADER).unwrap_or_default();
            let retry = !probe.ids.lock().unwrap().insert(id);
            if retry {
                let now = probe.retries_now.fetch_add(1, Ordering::SeqCst) + 1;
                probe.retries_max.fetch_max(now, Ordering::SeqCst);
            }
            // Holds the attempt so attempts overlap; no assertion depends
            // on how long.
            std::thread::sleep(Duration::from_millis(20));
            // Counted out before answering: the proxy cannot start another
            // retry on this answer while it is still counted.
            if retry {
                probe.retries_now.fetch_sub(1, Ordering::SeqCst);
            }
            if !c.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nfail") {
                return;
            }
        }
    })
}

fn retry_budget(start: fn(&str) -> Under) {
    let probe = Arc::new(RetryProbe::default());
    let up = always_503(probe.clone());
    let under = start(&retry_budget_bootstrap(up.addr.port()));
    let addr = under.addr;
    let handles: Vec<_> = (0..BUDGET_CLIENTS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = KeepAlive::new(addr);
                (0..BUDGET_REQUESTS_EACH)
                    .map(|i| {
                        c.get("rb.test", "/", &format!("{ID_HEADER}: {t}-{i}\r\n"))
                            .map_or(0, |r| r.status)
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let requests = BUDGET_CLIENTS * BUDGET_REQUESTS_EACH;
    let total = probe.total.load(Ordering::SeqCst);
    let max_retries = probe.retries_max.load(Ordering::SeqCst);
    // Active plus pending requests never exceed the client count, so the
    // budget never allows more concurrent retries than this.
    let bound = (BUDGET_CLIENTS * BUDGET_PERCENT / 100).max(1);
    let stats = under.stats();
    let overflow = stat_sum(&stats, "upstream_rq_retry_overflow", "failing");
    let retried = stat_sum(&stats, "upstream_rq_retry", "failing");
    println!(
        "retry budget through {}: {requests} requests, {total} reached the upstream (unbounded would be {}), at most {max_retries} retries at once (budget {bound}), upstream_rq_retry {retried}, upstream_rq_retry_overflow {overflow}",
        under.name,
        requests * 4
    );
    assert!(statuses.iter().all(|s| *s == 503), "statuses: {statuses:?}");
    assert!(total >= requests);
    assert!(total < requests * 4, "every request was retried 3 times");
    assert!(
        max_retries <= bound,
        "{max_retries} retries in flight at once, budget {bound}"
    );
    assert!(
        overflow > 0,
        "no upstream_rq_retry_overflow in /stats:\n{stats}"
    );
}

#[test]
fn retry_budget_caps_retries_under_envoy() {
    retry_budget(Under::envoy);
}

#[test]
fn retry_budget_caps_retries_under_spar() {
    retry_budget(Under::spar);
}

// ------------------------------------------------------- circuit breaking

const CB_CLIENTS: usize = 8;

fn circuit_breaking_bootstrap(port: u16) -> String {
    bootstrap(
        "                route: { cluster: slow }\n",
        &static_cluster(
            "slow",
            &[port.to_string()],
            "    circuit_breakers:\n      thresholds:\n      - { max_connections: 1, max_pending_requests: 1, max_requests: 1 }\n",
        ),
    )
}

type Gate = Arc<(Mutex<bool>, Condvar)>;
/// (status, `x-envoy-overloaded`) per finished client.
type Answers = Arc<Mutex<Vec<(u16, Option<String>)>>>;

/// Holds every request until the gate opens, then answers 200.
fn gated(gate: Gate) -> Scripted {
    Scripted::start(move |mut c| {
        while c.read_head().is_some() {
            let (open, cv) = &*gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            drop(g);
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok") {
                return;
            }
        }
    })
}

fn circuit_breaking(start: fn(&str) -> Under) {
    let gate: Gate = Arc::default();
    let up = gated(gate.clone());
    let under = start(&circuit_breaking_bootstrap(up.addr.port()));
    let addr = under.addr;
    let done: Answers = Arc::default();
    let handles: Vec<_> = (0..CB_CLIENTS)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let r = http::get_host(addr, "cb.test", "/");
                let entry = r.map_or((0, None), |r| {
                    (r.status, r.header("x-envoy-overloaded").map(str::to_owned))
                });
                done.lock().unwrap().push(entry);
            })
        })
        .collect();
    // One request holds the only connection, one may wait for it; the rest
    // overflow. Wait (bounded) for them, then let the held ones finish.
    let until = Instant::now() + Duration::from_secs(10);
    while done.lock().unwrap().len() < CB_CLIENTS - 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    for h in handles {
        h.join().unwrap();
    }
    let done = done.lock().unwrap().clone();
    let stats = under.stats();
    let pending_overflow = stat_sum(&stats, "upstream_rq_pending_overflow", "slow");
    println!(
        "circuit breaking through {}: answers {done:?}; upstream_rq_pending_overflow {pending_overflow}; upstream saw {} requests",
        under.name,
        up.seen.heads().len()
    );
    let overloaded = done
        .iter()
        .filter(|(s, h)| *s == 503 && h.as_deref() == Some("true"))
        .count();
    assert!(overloaded > 0, "no 503 with x-envoy-overloaded: true");
    assert!(done.iter().any(|(s, _)| *s == 200), "nothing got through");
    assert!(
        done.iter().all(|(s, _)| *s == 200 || *s == 503),
        "unexpected answers: {done:?}"
    );
    assert!(
        pending_overflow > 0,
        "no upstream_rq_pending_overflow in /stats:\n{stats}"
    );
}

#[test]
fn circuit_breaking_overflows_with_503_under_envoy() {
    circuit_breaking(Under::envoy);
}

#[test]
fn circuit_breaking_overflows_with_503_under_spar() {
    circuit_breaking(Under::spar);
}

// ------------------------------------------------------------- validity

#[test]
fn resilience_bootstraps_are_valid_envoy_config() {
    for (what, yaml) in [
        ("canary", canary_bootstrap()),
        ("blue", bootstrap(&weighted(100, 0), &blue_green_clusters())),
        (
            "green",
            bootstrap(&weighted(0, 100), &blue_green_clusters()),
        ),
        ("outlier", outlier_bootstrap()),
        ("retry budget", retry_budget_bootstrap(9)),
        ("circuit breaking", circuit_breaking_bootstrap(9)),
    ] {
        let yaml = yaml
            .replace("{listen}", "0")
            .replace("{up:blue}", "9")
            .replace("{up:green}", "9")
            .replace("{up:good1}", "9")
            .replace("{up:good2}", "9")
            .replace("{up:bad}", "9");
        envoy_validate(&yaml).unwrap_or_else(|e| panic!("{what}: envoy --mode validate: {e}"));
    }
}
