//! More cluster features through a running spar-proxy with real upstreams:
//! endpoint weights, RANDOM, cookie / source-IP / query hashing,
//! locality-weighted balancing, the panic threshold, TCP health checks,
//! outlier detection (gateway failures, local-origin failures,
//! max_ejection_percent), retriable status codes and the max_requests
//! circuit breaker.
//!
//! Distributions are checked with bounds several standard deviations wide,
//! and anything that takes time (health checks, ejections) with
//! `assert_eventually`: the machine running these is shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use spar_tests::http::{self, Response};
use spar_tests::proc::SparProxy;
use spar_tests::upstream::{Conn, Scripted, header_value};
use spar_tests::{assert_eventually, free_port};

// ------------------------------------------------------------- upstreams

/// How an upstream answers: `status` for traffic, `health` for `GET
/// /healthz`, after `delay`; it counts requests in flight and their peak.
#[derive(Clone)]
struct Knobs {
    status: Arc<AtomicU16>,
    health: Arc<AtomicU16>,
    delay: Duration,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Knobs {
    fn ok() -> Knobs {
        Knobs {
            status: Arc::new(AtomicU16::new(200)),
            health: Arc::new(AtomicU16::new(200)),
            delay: Duration::ZERO,
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn status(status: u16) -> Knobs {
        let k = Knobs::ok();
        k.status.store(status, Ordering::Relaxed);
        k
    }

    fn failing_health() -> Knobs {
        let k = Knobs::ok();
        k.health.store(503, Ordering::Relaxed);
        k
    }

    fn slow(delay: Duration) -> Knobs {
        Knobs {
            delay,
            ..Knobs::ok()
        }
    }
}

fn reply(c: &mut Conn, status: u16, tag: &str) -> bool {
    c.write(
        format!(
            "HTTP/1.1 {status} X\r\nx-upstream: {tag}\r\ncontent-length: {}\r\n\r\n{tag}",
            tag.len()
        )
        .as_bytes(),
    )
}

/// Answers every request with its tag in the body and in `x-upstream`.
fn tagged(tag: &'static str, k: Knobs) -> Scripted {
    Scripted::start(move |mut c| {
        while let Some(head) = c.read_head() {
            if let Some(n) = header_value(&head, "content-length") {
                c.read_exact_body(n.parse().unwrap());
            }
            let status = if head.starts_with("GET /healthz ") {
                k.health.load(Ordering::Relaxed)
            } else {
                let now = k.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                k.peak.fetch_max(now, Ordering::SeqCst);
                if !k.delay.is_zero() {
                    std::thread::sleep(k.delay);
                }
                k.in_flight.fetch_sub(1, Ordering::SeqCst);
                k.status.load(Ordering::Relaxed)
            };
            if !reply(&mut c, status, tag) {
                return;
            }
        }
    })
}

/// An HTTP upstream that also answers the raw TCP health-check payload
/// `ping` with `answer` (on any connection, between requests).
fn ping_answering(tag: &'static str, answer: &'static [u8], pings: Arc<AtomicUsize>) -> Scripted {
    Scripted::start(move |mut c| {
        loop {
            while c.buf.len() < 4 {
                let mut chunk = [0u8; 4096];
                match c.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                }
            }
            if c.buf.starts_with(b"ping") {
                c.buf.drain(..4);
                pings.fetch_add(1, Ordering::Relaxed);
                if !c.write(answer) {
                    return;
                }
                continue;
            }
            let Some(_head) = c.read_head() else { return };
            if !reply(&mut c, 200, tag) {
                return;
            }
        }
    })
}

// ------------------------------------------------------------- bootstrap

fn endpoint(addr: SocketAddr, extra: &str) -> String {
    format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n{extra}",
        addr.port()
    )
}

/// A bootstrap: one listener on `port`, `routes` under one catch-all virtual
/// host (YAML at 14 spaces, one `- match` item per route), and `clusters`
/// (YAML at 2 spaces, each `- name:` item).
fn bootstrap(port: u16, routes: &str, clusters: &str) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: features
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}"#
    )
}

/// A STATIC cluster `name`; `extra` is cluster YAML at 4 spaces.
fn cluster(name: &str, extra: &str, endpoints: &str) -> String {
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n{endpoints}"
    )
}

fn one_locality(eps: &[String]) -> String {
    format!("      - lb_endpoints:\n{}", eps.concat())
}

const ALL_TO_SVC: &str =
    "              - match: { prefix: / }\n                route: { cluster: svc }";

/// spar-proxy with one route to cluster `svc` (`extra`, `eps`).
fn start(extra: &str, endpoints: &str, args: &[&str]) -> (SparProxy, SocketAddr) {
    start_routes(ALL_TO_SVC, extra, endpoints, args)
}

fn start_routes(
    routes: &str,
    extra: &str,
    endpoints: &str,
    args: &[&str],
) -> (SparProxy, SocketAddr) {
    let port = free_port();
    let yaml = bootstrap(port, routes, &cluster("svc", extra, endpoints));
    let proxy = SparProxy::start(&yaml, args);
    (proxy, format!("127.0.0.1:{port}").parse().unwrap())
}

// ---------------------------------------------------------------- client

fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: features\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    http::raw(addr, req.as_bytes()).expect("request")
}

/// Which upstream answered `n` requests to `path`, all of which must
/// succeed.
fn tally_path(
    addr: SocketAddr,
    path: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get_with(addr, path, headers);
        assert_eq!(r.status, 200, "{}", r.body_text());
        *seen.entry(r.body_text()).or_default() += 1;
    }
    seen
}

fn tally(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    tally_path(addr, "/", n, &[])
}

/// Like [`tally`], from `threads` clients at once (`n` requests in all).
fn tally_parallel(addr: SocketAddr, n: usize, threads: usize) -> HashMap<String, usize> {
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let share = n / threads + usize::from(i < n % threads);
            std::thread::spawn(move || tally(addr, share))
        })
        .collect();
    let mut all = HashMap::new();
    for h in handles {
        for (k, v) in h.join().unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    all
}

/// `status body` of `n` requests.
fn tally_any(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get_with(addr, "/", &[]);
        *seen
            .entry(format!("{} {}", r.status, r.body_text()))
            .or_default() += 1;
    }
    seen
}

#[allow(clippy::cast_precision_loss)]
fn percent(part: usize, total: usize) -> f64 {
    100.0 * part as f64 / total as f64
}

fn count(seen: &HashMap<String, usize>, key: &str) -> usize {
    seen.get(key).copied().unwrap_or(0)
}

// ----------------------------------------------------------------- tests

#[test]
fn round_robin_follows_endpoint_weights() {
    let ups = [
        tagged("w1", Knobs::ok()),
        tagged("w2", Knobs::ok()),
        tagged("w3", Knobs::ok()),
    ];
    let eps: Vec<String> = ups
        .iter()
        .zip(1..)
        .map(|(u, w)| endpoint(u.addr, &format!("          load_balancing_weight: {w}\n")))
        .collect();
    let (_proxy, addr) = start(
        "    lb_policy: ROUND_ROBIN\n",
        &one_locality(&eps),
        &["--concurrency", "1"],
    );
    let seen = tally(addr, 600);
    eprintln!("weighted round robin 1:2:3 over 600: {seen:?}");
    // Smooth weighted round robin on one worker: exactly 1:2:3 over whole
    // cycles of 6 picks.
    assert_eq!(
        seen,
        HashMap::from([
            ("w1".to_owned(), 100),
            ("w2".to_owned(), 200),
            ("w3".to_owned(), 300)
        ])
    );
}

#[test]
fn random_spreads_over_every_endpoint() {
    let ups = [
        tagged("a", Knobs::ok()),
        tagged("b", Knobs::ok()),
        tagged("c", Knobs::ok()),
    ];
    let eps: Vec<String> = ups.iter().map(|u| endpoint(u.addr, "")).collect();
    let (_proxy, addr) = start("    lb_policy: RANDOM\n", &one_locality(&eps), &[]);
    let seen = tally_parallel(addr, 1_500, 4);
    eprintln!("random over 1500: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 1_500);
    for tag in ["a", "b", "c"] {
        let share = percent(count(&seen, tag), 1_500);
        assert!(
            (25.0..=42.0).contains(&share),
            "{tag} got {share:.1}%: {seen:?}"
        );
    }
}

/// The value of cookie `name` in a `Set-Cookie` value, quotes removed.
fn cookie_value(set_cookie: &str, name: &str) -> String {
    let first = set_cookie.split(';').next().unwrap().trim();
    let (n, v) = first.split_once('=').unwrap();
    assert_eq!(n, name, "{set_cookie}");
    v.trim_matches('"').to_owned()
}

#[test]
fn cookie_hash_generates_a_cookie_that_keeps_the_client_on_one_host() {
    let ups = [
        tagged("a", Knobs::ok()),
        tagged("b", Knobs::ok()),
        tagged("c", Knobs::ok()),
    ];
    let eps: Vec<String> = ups.iter().map(|u| endpoint(u.addr, "")).collect();
    let routes = "              - match: { prefix: / }\n                route: { cluster: svc, hash_policy: [{ cookie: { name: spar-aff, ttl: 3600s, path: /app } }] }";
    let (_proxy, addr) = start_routes(
        routes,
        "    lb_policy: RING_HASH\n",
        &one_locality(&eps),
        &[],
    );
    // No cookie: one is generated and set.
    let first = get_with(addr, "/app/x", &[]);
    assert_eq!(first.status, 200);
    let set = first
        .header("set-cookie")
        .expect("a generated Set-Cookie")
        .to_owned();
    eprintln!("generated: {set}");
    let value = cookie_value(&set, "spar-aff");
    assert!(!value.is_empty(), "{set}");
    let attrs: Vec<&str> = set.split(';').map(str::trim).skip(1).collect();
    assert!(attrs.contains(&"Max-Age=3600"), "{set}");
    assert!(attrs.contains(&"Path=/app"), "{set}");
    // Sent back, the cookie keeps every request on the first one's host
    // (the generated cookie hashes as the value it carries), and no new
    // cookie is set.
    let cookie = format!("spar-aff={value}");
    for _ in 0..20 {
        let r = get_with(addr, "/app/x", &[("cookie", &cookie)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body_text(), first.body_text(), "cookie {value} moved");
        assert_eq!(r.header("set-cookie"), None);
    }
    // Other values: each sticky, together on more than one host.
    let mut hosts = HashMap::new();
    for i in 0..30 {
        let cookie = format!("other=1; spar-aff=client-{i}");
        let seen = tally_path(addr, "/app/x", 3, &[("cookie", &cookie)]);
        assert_eq!(seen.len(), 1, "{cookie} moved: {seen:?}");
        *hosts.entry(seen.into_keys().next().unwrap()).or_insert(0) += 1;
    }
    eprintln!("30 cookie values over hosts: {hosts:?}");
    assert!(hosts.len() >= 2, "30 cookies on one host: {hosts:?}");
}

#[test]
fn maglev_source_ip_and_query_parameter_hashes_are_sticky() {
    let ups = [
        tagged("a", Knobs::ok()),
        tagged("b", Knobs::ok()),
        tagged("c", Knobs::ok()),
    ];
    let eps: Vec<String> = ups.iter().map(|u| endpoint(u.addr, "")).collect();
    let routes = "              - match: { prefix: /q }\n                route: { cluster: svc, hash_policy: [{ query_parameter: { name: user } }] }\n              - match: { prefix: / }\n                route: { cluster: svc, hash_policy: [{ connection_properties: { source_ip: true } }] }";
    let (_proxy, addr) = start_routes(routes, "    lb_policy: MAGLEV\n", &one_locality(&eps), &[]);
    // Every connection comes from 127.0.0.1: one host.
    let seen = tally_parallel(addr, 60, 3);
    eprintln!("source ip 127.0.0.1: {seen:?}");
    assert_eq!(seen.len(), 1, "source_ip hash moved: {seen:?}");
    // The same ?user= sticks; different users spread.
    let mut hosts = HashMap::new();
    for user in 0..30 {
        let path = format!("/q?x=1&user=u{user}");
        let seen = tally_path(addr, &path, 4, &[]);
        assert_eq!(seen.len(), 1, "{path} moved: {seen:?}");
        *hosts.entry(seen.into_keys().next().unwrap()).or_insert(0) += 1;
    }
    eprintln!("30 users over hosts: {hosts:?}");
    assert!(hosts.len() >= 2, "30 users on one host: {hosts:?}");
}

#[test]
fn locality_weights_split_traffic() {
    let light = tagged("light", Knobs::ok());
    let heavy = tagged("heavy", Knobs::ok());
    let endpoints = format!(
        "      - locality: {{ zone: z1 }}\n        load_balancing_weight: 1\n        lb_endpoints:\n{}      - locality: {{ zone: z2 }}\n        load_balancing_weight: 3\n        lb_endpoints:\n{}",
        endpoint(light.addr, ""),
        endpoint(heavy.addr, "")
    );
    let (_proxy, addr) = start(
        "    common_lb_config: { locality_weighted_lb_config: {} }\n",
        &endpoints,
        &[],
    );
    let seen = tally_parallel(addr, 2_000, 4);
    let light_share = percent(count(&seen, "light"), 2_000);
    eprintln!("locality 1:3 over 2000: {seen:?}, light {light_share:.1}%");
    assert_eq!(count(&seen, "light") + count(&seen, "heavy"), 2_000);
    assert!(
        (20.0..=30.0).contains(&light_share),
        "light locality got {light_share:.1}%"
    );
}

/// Health-check requests with `host` that upstream `u` saw.
fn checks_seen(u: &Scripted, host: &str) -> usize {
    u.seen
        .heads()
        .iter()
        .filter(|h| {
            h.starts_with("GET /healthz ") && header_value(h, "host").as_deref() == Some(host)
        })
        .count()
}

#[test]
fn panic_threshold_spreads_over_unhealthy_hosts_unless_disabled() {
    let good = tagged("good", Knobs::ok());
    let bad = [
        tagged("bad1", Knobs::failing_health()),
        tagged("bad2", Knobs::failing_health()),
        tagged("bad3", Knobs::failing_health()),
    ];
    let mut eps = vec![endpoint(good.addr, "")];
    eps.extend(bad.iter().map(|u| endpoint(u.addr, "")));
    let hc = |host: &str| {
        format!(
            "    health_checks:\n    - timeout: 0.5s\n      interval: 0.1s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n      http_health_check: {{ path: /healthz, host: {host} }}\n"
        )
    };
    // Panic off: 1 of 4 healthy, everything to the healthy one.
    let (_p0, off) = start(
        &format!(
            "{}    common_lb_config: {{ healthy_panic_threshold: {{ value: 0 }} }}\n",
            hc("panic-off")
        ),
        &one_locality(&eps),
        &["--concurrency", "1"],
    );
    // Default threshold (50%): 25% healthy is panic, all four take traffic.
    let (_p50, on) = start(
        &hc("panic-default"),
        &one_locality(&eps),
        &["--concurrency", "1"],
    );
    assert_eventually(
        Duration::from_secs(15),
        "panic disabled: only the healthy host serves",
        || tally(off, 12) == HashMap::from([("good".to_owned(), 12)]),
    );
    assert_eq!(tally(off, 40), HashMap::from([("good".to_owned(), 40)]));
    // The default-threshold proxy has checked (and failed) each bad host
    // several times: they are unhealthy there too, yet take traffic.
    assert_eventually(
        Duration::from_secs(15),
        "every bad host failed 3 checks of the default-threshold proxy",
        || bad.iter().all(|u| checks_seen(u, "panic-default") >= 3),
    );
    let seen = tally(on, 40);
    eprintln!("panic (default threshold) over 40: {seen:?}");
    for tag in ["good", "bad1", "bad2", "bad3"] {
        assert!(count(&seen, tag) >= 5, "{tag} starved in panic: {seen:?}");
    }
}

#[test]
fn tcp_health_check_takes_out_a_host_that_answers_wrong() {
    let good_pings = Arc::new(AtomicUsize::new(0));
    let bad_pings = Arc::new(AtomicUsize::new(0));
    let good = ping_answering("good", b"pong", good_pings.clone());
    let bad = ping_answering("bad", b"nope", bad_pings.clone());
    // send "ping", expect "pong" (hex text payloads, as Envoy).
    let hc = "    health_checks:\n    - timeout: 0.5s\n      interval: 0.1s\n      unhealthy_threshold: 1\n      healthy_threshold: 1\n      tcp_health_check: { send: { text: \"70696e67\" }, receive: [{ text: \"706f6e67\" }] }\n";
    let eps = [endpoint(good.addr, ""), endpoint(bad.addr, "")];
    let (_proxy, addr) = start(hc, &one_locality(&eps), &["--concurrency", "1"]);
    assert_eventually(
        Duration::from_secs(15),
        "the host answering wrong is taken out",
        || tally_any(addr, 10) == HashMap::from([("200 good".to_owned(), 10)]),
    );
    assert_eq!(
        tally_any(addr, 40),
        HashMap::from([("200 good".to_owned(), 40)])
    );
    assert!(good_pings.load(Ordering::Relaxed) >= 1);
    assert!(bad_pings.load(Ordering::Relaxed) >= 1);
    // Still checked and still passing: the good host stays in.
    let before = good_pings.load(Ordering::Relaxed);
    assert_eventually(Duration::from_secs(10), "checks keep running", || {
        good_pings.load(Ordering::Relaxed) >= before + 3
    });
    assert_eq!(
        tally_any(addr, 10),
        HashMap::from([("200 good".to_owned(), 10)])
    );
}

const EJECTED: &str = "envoy_cluster_outlier_detection_ejections_enforced_total";
const ACTIVE: &str = "envoy_cluster_outlier_detection_ejections_active";

#[test]
fn outlier_detection_ejects_on_gateway_failures_and_local_origin_failures() {
    // Gateway failures: 502s eject, plain 5xx (detector not enforced) do not.
    let good = tagged("good", Knobs::ok());
    let flaky = Knobs::status(500);
    let bad = tagged("bad", flaky.clone());
    let od = "    outlier_detection:\n      consecutive_gateway_failure: 3\n      enforcing_consecutive_gateway_failure: 100\n      enforcing_consecutive_5xx: 0\n      interval: 1s\n      base_ejection_time: 60s\n";
    let eps = [endpoint(good.addr, ""), endpoint(bad.addr, "")];
    let (proxy, addr) = start(od, &one_locality(&eps), &["--concurrency", "1"]);
    let seen = tally_any(addr, 40);
    assert_eq!(
        seen,
        HashMap::from([("200 good".to_owned(), 20), ("500 bad".to_owned(), 20)]),
        "20 consecutive 500s eject nothing when consecutive_5xx is not enforced"
    );
    assert_eq!(proxy.metric(EJECTED, ""), 0);
    flaky.status.store(502, Ordering::Relaxed);
    assert_eventually(Duration::from_secs(10), "the 502 host is ejected", || {
        tally_any(addr, 10) == HashMap::from([("200 good".to_owned(), 10)])
    });
    let gateway_failures = bad.seen.heads().len() - 20;
    eprintln!("502s before the ejection: {gateway_failures}");
    assert!(
        (3..=6).contains(&gateway_failures),
        "{gateway_failures} 502s before ejection (threshold 3)"
    );
    assert_eq!(proxy.metric(EJECTED, "envoy_cluster_name=\"svc\""), 1);
    assert_eq!(proxy.metric(ACTIVE, "envoy_cluster_name=\"svc\""), 1);

    // Local-origin failures (connection refused), split from HTTP results.
    let good = tagged("good", Knobs::ok());
    let dead = free_port(); // nothing listens
    let dead_ep = format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {dead} }} }} }}\n"
    );
    let od = "    outlier_detection:\n      split_external_local_origin_errors: true\n      consecutive_local_origin_failure: 2\n      interval: 1s\n      base_ejection_time: 60s\n";
    let (proxy, addr) = start(
        od,
        &one_locality(&[endpoint(good.addr, ""), dead_ep]),
        &["--concurrency", "1"],
    );
    let mut failed = 0;
    assert_eventually(
        Duration::from_secs(10),
        "requests stop failing once the refusing host is ejected",
        || {
            let seen = tally_any(addr, 10);
            failed += seen
                .iter()
                .filter(|(k, _)| *k != "200 good")
                .map(|(_, v)| v)
                .sum::<usize>();
            seen == HashMap::from([("200 good".to_owned(), 10)])
        },
    );
    eprintln!("failed requests before the local-origin ejection: {failed}");
    assert!((1..=4).contains(&failed), "{failed} failures (threshold 2)");
    assert_eq!(proxy.metric(EJECTED, "envoy_cluster_name=\"svc\""), 1);
    assert_eq!(
        tally_any(addr, 20),
        HashMap::from([("200 good".to_owned(), 20)])
    );
}

/// Envoy runs the consecutive-5xx and consecutive-gateway-failure detectors
/// side by side (`DetectorHostMonitorImpl::putHttpResponseCode` checks both
/// on every 5xx): a 5xx detection that is not enforced does not stop a
/// gateway detection on the same response.
#[test]
fn unenforced_5xx_detection_does_not_hide_gateway_failures() {
    let good = tagged("good", Knobs::ok());
    let bad = tagged("bad", Knobs::status(502));
    let od = "    outlier_detection:\n      consecutive_5xx: 1\n      enforcing_consecutive_5xx: 0\n      consecutive_gateway_failure: 2\n      enforcing_consecutive_gateway_failure: 100\n      interval: 1s\n      base_ejection_time: 60s\n";
    let eps = [endpoint(good.addr, ""), endpoint(bad.addr, "")];
    let (proxy, addr) = start(od, &one_locality(&eps), &["--concurrency", "1"]);
    assert_eventually(Duration::from_secs(5), "the 502 host is ejected", || {
        tally_any(addr, 10) == HashMap::from([("200 good".to_owned(), 10)])
    });
    assert_eq!(proxy.metric(EJECTED, "envoy_cluster_name=\"svc\""), 1);
}

#[test]
fn max_ejection_percent_keeps_one_of_two_failing_hosts() {
    let a = tagged("a", Knobs::status(503));
    let b = tagged("b", Knobs::status(503));
    // Short ejections, so that hosts come back and get ejected again while
    // the cap is watched.
    let od = "    outlier_detection:\n      consecutive_5xx: 3\n      max_ejection_percent: 50\n      interval: 0.2s\n      base_ejection_time: 0.3s\n      max_ejection_time: 0.6s\n";
    let eps = [endpoint(a.addr, ""), endpoint(b.addr, "")];
    let (proxy, addr) = start(od, &one_locality(&eps), &["--concurrency", "1"]);
    let mut max_active = 0;
    let mut seen_active = false;
    let until = Instant::now() + Duration::from_secs(3);
    let mut requests = 0;
    while Instant::now() < until || !seen_active {
        assert!(
            Instant::now() < until + Duration::from_secs(10),
            "no ejection after {requests} requests"
        );
        for _ in 0..5 {
            let r = get_with(addr, "/", &[]);
            assert_eq!(r.status, 503);
            requests += 1;
        }
        let active = proxy.metric(ACTIVE, "envoy_cluster_name=\"svc\"");
        max_active = max_active.max(active);
        seen_active |= active == 1;
        assert!(active <= 1, "{active} of 2 hosts ejected (max 50%)");
    }
    let ejections = proxy.metric(EJECTED, "envoy_cluster_name=\"svc\"");
    eprintln!(
        "max_ejection_percent 50: {requests} requests, {ejections} ejections, at most {max_active} at once"
    );
    assert!(ejections >= 2, "hosts were ejected {ejections} times");
}

/// Answers 409 to the first attempt of each `x-test-id` (every attempt when
/// the id starts with `always`), 200 after.
fn conflict_once() -> Scripted {
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    Scripted::start(move |mut c| {
        while let Some(head) = c.read_head() {
            let id = header_value(&head, "x-test-id").unwrap_or_default();
            let n = {
                let mut a = attempts.lock().unwrap();
                let n = a.entry(id.clone()).or_default();
                *n += 1;
                *n
            };
            let status = if n == 1 || id.starts_with("always") {
                409
            } else {
                200
            };
            if !reply(&mut c, status, "up") {
                return;
            }
        }
    })
}

fn attempts_of(u: &Scripted, id: &str) -> usize {
    u.seen
        .heads()
        .iter()
        .filter(|h| header_value(h, "x-test-id").as_deref() == Some(id))
        .count()
}

#[test]
fn retriable_status_codes_retry_a_409_and_5xx_does_not() {
    let up = conflict_once();
    let routes = "              - match: { prefix: /rsc }\n                route: { cluster: svc, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [409], num_retries: 2, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } } }\n              - match: { prefix: / }\n                route: { cluster: svc, retry_policy: { retry_on: 5xx, num_retries: 2, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } } }";
    let (proxy, addr) = start_routes(routes, "", &one_locality(&[endpoint(up.addr, "")]), &[]);
    // 409 then 200: the client sees 200, the upstream two attempts.
    let r = get_with(addr, "/rsc", &[("x-test-id", "once-1")]);
    assert_eq!(r.status, 200);
    assert_eq!(attempts_of(&up, "once-1"), 2);
    // Always 409: one try and two retries, then the 409 goes through.
    let r = get_with(addr, "/rsc", &[("x-test-id", "always-1")]);
    assert_eq!(r.status, 409);
    assert_eq!(attempts_of(&up, "always-1"), 3);
    // retry_on 5xx does not cover a 409.
    let r = get_with(addr, "/other", &[("x-test-id", "once-2")]);
    assert_eq!(r.status, 409);
    assert_eq!(attempts_of(&up, "once-2"), 1);
    assert_eq!(proxy.metric("envoy_cluster_upstream_rq_retry", ""), 3);
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry_limit_exceeded", ""),
        1
    );
    assert_eq!(
        proxy.metric("spar_http_response_flags_total", "response_flags=\"URX\""),
        1
    );
}

/// Envoy counts `upstream_rq_retry_success` when a retried attempt's answer
/// is not retriable itself (`RetryStateImpl::shouldRetry`); a request that
/// ran out of retries on a retriable answer counts under
/// `retry_limit_exceeded` only.
#[test]
fn retry_success_is_not_counted_when_retries_run_out() {
    let up = conflict_once();
    let routes = "              - match: { prefix: / }\n                route: { cluster: svc, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [409], num_retries: 2, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } } }";
    let (proxy, addr) = start_routes(routes, "", &one_locality(&[endpoint(up.addr, "")]), &[]);
    let r = get_with(addr, "/", &[("x-test-id", "always-1")]);
    assert_eq!(r.status, 409);
    assert_eq!(attempts_of(&up, "always-1"), 3);
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry_limit_exceeded", ""),
        1
    );
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry_success", ""),
        0
    );
    let r = get_with(addr, "/", &[("x-test-id", "once-1")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        proxy.metric("envoy_cluster_upstream_rq_retry_success", ""),
        1
    );
}

#[test]
fn max_requests_breaker_answers_503_overloaded_with_uo() {
    let knobs = Knobs::slow(Duration::from_millis(1_500));
    let up = tagged("slow", knobs.clone());
    let (proxy, addr) = start(
        "    circuit_breakers: { thresholds: [{ max_requests: 2 }] }\n",
        &one_locality(&[endpoint(up.addr, "")]),
        &["--concurrency", "1"],
    );
    let clients = 8;
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                get_with(addr, "/", &[])
            })
        })
        .collect();
    let responses: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let overloaded = responses
        .iter()
        .filter(|r| r.status == 503 && r.header("x-envoy-overloaded") == Some("true"))
        .count();
    eprintln!(
        "max_requests 2, {clients} at once: {ok} ok, {overloaded} overloaded, upstream peak {}",
        knobs.peak.load(Ordering::SeqCst)
    );
    assert_eq!(ok + overloaded, clients, "other answers: {responses:?}");
    assert!(ok >= 1, "nothing was admitted");
    assert!(overloaded >= 1, "the breaker refused nothing");
    assert!(knobs.peak.load(Ordering::SeqCst) <= 2);
    let uo = proxy.metric("spar_http_response_flags_total", "response_flags=\"UO\"");
    assert_eq!(uo, i64::try_from(overloaded).unwrap());
}
