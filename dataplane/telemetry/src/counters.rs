use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A monotonically increasing count with a single writer thread.
///
/// `add` is a relaxed load followed by a relaxed store: correct because only
/// the owning worker writes, and cheaper than `fetch_add` (no `lock` prefix).
/// Readers on other threads may see a value a few increments old.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, single writer like [`Counter`].
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v + 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v - 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Envoy/Istio response flags: why a request did not get an upstream answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Flag {
    /// No route matched (404).
    NoRoute,
    /// Upstream connection failure (503).
    UpstreamConnectionFailure,
    /// Upstream retry limit exceeded: the one keep-alive-race retry failed too (503).
    UpstreamRetryLimitExceeded,
    /// Upstream request timeout (504).
    UpstreamRequestTimeout,
    /// Upstream connection terminated before a full response (503 before headers).
    UpstreamConnectionTermination,
    /// Upstream sent an invalid HTTP response (502).
    UpstreamProtocolError,
    /// Cluster has no endpoint to send to (503).
    NoHealthyUpstream,
    /// Downstream sent an invalid request (4xx, connection closed).
    DownstreamProtocolError,
    /// Downstream closed before the response completed.
    DownstreamConnectionTermination,
    /// A circuit breaker refused the request (503, `x-envoy-overloaded`).
    UpstreamOverflow,
    /// The fault filter aborted the request.
    FaultInjected,
    /// The fault filter delayed the request.
    DelayInjected,
}

impl Flag {
    pub const ALL: [Flag; 12] = [
        Flag::NoRoute,
        Flag::UpstreamConnectionFailure,
        Flag::UpstreamRetryLimitExceeded,
        Flag::UpstreamRequestTimeout,
        Flag::UpstreamConnectionTermination,
        Flag::UpstreamProtocolError,
        Flag::NoHealthyUpstream,
        Flag::DownstreamProtocolError,
        Flag::DownstreamConnectionTermination,
        Flag::UpstreamOverflow,
        Flag::FaultInjected,
        Flag::DelayInjected,
    ];

    /// The short form Envoy's access log and Istio's `response_flags` label use.
    pub fn code(self) -> &'static str {
        match self {
            Flag::NoRoute => "NR",
            Flag::UpstreamConnectionFailure => "UF",
            Flag::UpstreamRetryLimitExceeded => "URX",
            Flag::UpstreamRequestTimeout => "UT",
            Flag::UpstreamConnectionTermination => "UC",
            Flag::UpstreamProtocolError => "UPE",
            Flag::NoHealthyUpstream => "UH",
            Flag::DownstreamProtocolError => "DPE",
            Flag::DownstreamConnectionTermination => "DC",
            Flag::UpstreamOverflow => "UO",
            Flag::FaultInjected => "FI",
            Flag::DelayInjected => "DI",
        }
    }
}

/// Counters of one `http_connection_manager` (by stat prefix) on one worker.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub downstream_cx_total: Counter,
    /// Downstream connections that spoke HTTP/2.
    pub downstream_cx_http2_total: Counter,
    pub downstream_cx_active: Gauge,
    pub downstream_rq_total: Counter,
    pub downstream_rq_active: Gauge,
    /// Responses sent downstream by status class: index 0 is 1xx ... 4 is 5xx.
    pub downstream_rq_xx: [Counter; 5],
    pub downstream_rq_timeout: Counter,
    pub downstream_cx_idle_timeout: Counter,
    pub downstream_rq_header_timeout: Counter,
    /// Requests answered by a route's redirect or direct response.
    pub downstream_rq_redirect: Counter,
    pub downstream_rq_direct_response: Counter,
    /// Fault filter decisions (Envoy `fault.aborts_injected`, `fault.delays_injected`).
    pub fault_aborts_injected: Counter,
    pub fault_delays_injected: Counter,
    /// CORS preflights answered by the proxy.
    pub cors_preflight: Counter,
    /// Connections upgraded (WebSocket and other `Upgrade` protocols).
    pub downstream_cx_upgrades_total: Counter,
    pub downstream_cx_upgrades_active: Gauge,
    pub response_flags: [Counter; Flag::ALL.len()],
    /// Requests refused before routing, by reason (`spar-http` error reasons).
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// The HTTP RBAC filters' decisions.
    pub rbac: RbacStats,
}

/// RBAC decision counts: policy name, then (reason label, shadow rules) to count.
pub(crate) type RbacByPolicy = BTreeMap<String, BTreeMap<(&'static str, bool), u64>>;

/// Decisions of RBAC filters (HTTP, or network on a listener).
#[derive(Debug, Default)]
pub struct RbacStats {
    /// Enforced rules' decisions (Envoy `rbac.allowed`, `rbac.denied`).
    pub allowed: Counter,
    pub denied: Counter,
    /// Shadow rules' decisions (Envoy `rbac.shadow_allowed`, `rbac.shadow_denied`).
    pub shadow_allowed: Counter,
    pub shadow_denied: Counter,
    /// By policy name (`none` when no policy matched), then by (reason, shadow). One
    /// writer; the lock is uncontended but for scrapes.
    pub policies: Mutex<RbacByPolicy>,
}

impl RbacStats {
    /// Counts one RBAC decision: `policy` is the policy that matched (None: none did),
    /// `reason` the decision's stable label, `shadow` whether shadow rules decided.
    pub fn decision(
        &self,
        policy: Option<&str>,
        reason: &'static str,
        allowed: bool,
        shadow: bool,
    ) {
        match (shadow, allowed) {
            (false, true) => self.allowed.inc(),
            (false, false) => self.denied.inc(),
            (true, true) => self.shadow_allowed.inc(),
            (true, false) => self.shadow_denied.inc(),
        }
        let policy = policy.unwrap_or("none");
        let mut map = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        let by_reason = match map.get_mut(policy) {
            Some(m) => m,
            None => map.entry(policy.to_owned()).or_default(),
        };
        *by_reason.entry((reason, shadow)).or_default() += 1;
    }
}

impl HttpStats {
    #[inline]
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.downstream_rq_xx[class].inc();
    }

    #[inline]
    pub fn flag(&self, flag: Flag) {
        self.response_flags[flag as usize].inc();
    }

    /// Counts a refused request. Rare (bad input), so a lock is acceptable here.
    pub fn reject(&self, reason: &'static str) {
        let mut map = self.rejected.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }
}

/// Counters of one listener on one worker.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_active: Gauge,
    /// Connections refused because the listener's connection limit was reached.
    pub downstream_cx_overflow: Counter,
    /// Connections closed because no filter chain matched them.
    pub no_filter_chain_match: Counter,
    /// Connections closed because their first bytes (ClientHello, HTTP preface) did not
    /// arrive within `listener_filters_timeout`.
    pub downstream_pre_cx_timeout: Counter,
    /// TLS handshakes completed.
    pub ssl_handshake: Counter,
    /// TLS handshakes failed (bad ClientHello, no common version or suite, bad client
    /// certificate) or timed out.
    pub ssl_connection_error: Counter,
    /// The network RBAC filters' decisions (connections denied are closed).
    pub rbac: RbacStats,
}

/// Counters of one `tcp_proxy` (by stat prefix) on one worker.
#[derive(Debug, Default)]
pub struct TcpStats {
    pub downstream_cx_total: Counter,
    pub downstream_cx_rx_bytes_total: Counter,
    pub downstream_cx_tx_bytes_total: Counter,
    pub downstream_cx_no_route: Counter,
    pub idle_timeout: Counter,
}

/// Counters of one upstream cluster on one worker.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub upstream_cx_total: Counter,
    pub upstream_cx_active: Gauge,
    pub upstream_cx_connect_fail: Counter,
    pub upstream_cx_connect_timeout: Counter,
    pub upstream_cx_destroy: Counter,
    pub upstream_cx_idle_timeout: Counter,
    pub upstream_rq_total: Counter,
    pub upstream_rq_xx: [Counter; 5],
    pub upstream_rq_timeout: Counter,
    /// Requests re-sent: by a route's retry policy, or once on a fresh
    /// connection after a pooled one failed before any response byte.
    pub upstream_rq_retry: Counter,
    /// Retries whose final attempt succeeded.
    pub upstream_rq_retry_success: Counter,
    /// Retries refused by the retry circuit breaker or budget.
    pub upstream_rq_retry_overflow: Counter,
    /// Requests that ran out of retries (`num_retries`).
    pub upstream_rq_retry_limit_exceeded: Counter,
    /// Attempts cut by the per-try timeout.
    pub upstream_rq_per_try_timeout: Counter,
    /// Requests refused by the pending-requests circuit breaker.
    pub upstream_rq_pending_overflow: Counter,
    /// Requests refused by the requests circuit breaker (Envoy counts these as
    /// pending overflow for HTTP/1; kept apart here).
    pub upstream_rq_overflow: Counter,
    /// Connections not opened because of the connections circuit breaker.
    pub upstream_cx_overflow: Counter,
    /// Copies of requests sent to a mirror cluster.
    pub upstream_rq_mirrored: Counter,
    /// Hosts ejected by outlier detection on this worker.
    pub outlier_detection_ejections_enforced_total: Counter,
    /// Hosts ejected right now on this worker.
    pub outlier_detection_ejections_active: Gauge,
    /// TLS handshakes to endpoints completed.
    pub ssl_handshake: Counter,
    /// TLS handshakes to endpoints failed (certificate not trusted, name mismatch, no
    /// common version or suite).
    pub ssl_connection_error: Counter,
}

impl ClusterStats {
    #[inline]
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.upstream_rq_xx[class].inc();
    }
}

/// One worker's counters. Families are found by name when a connection
/// starts (a short lock, never per request) and then held by `Arc`.
#[derive(Debug, Default)]
pub struct WorkerStats {
    http: Mutex<BTreeMap<String, Arc<HttpStats>>>,
    tcp: Mutex<BTreeMap<String, Arc<TcpStats>>>,
    listeners: Mutex<BTreeMap<String, Arc<ListenerStats>>>,
    clusters: Mutex<BTreeMap<String, Arc<ClusterStats>>>,
}

fn entry<T: Default>(map: &Mutex<BTreeMap<String, Arc<T>>>, name: &str) -> Arc<T> {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = map.get(name) {
        return found.clone();
    }
    let made = Arc::new(T::default());
    map.insert(name.to_owned(), made.clone());
    made
}

fn snapshot<T>(map: &Mutex<BTreeMap<String, Arc<T>>>) -> Vec<(String, Arc<T>)> {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl WorkerStats {
    pub fn http(&self, stat_prefix: &str) -> Arc<HttpStats> {
        entry(&self.http, stat_prefix)
    }

    pub fn tcp(&self, stat_prefix: &str) -> Arc<TcpStats> {
        entry(&self.tcp, stat_prefix)
    }

    /// Listener stats are keyed by address, as Envoy labels them (`0.0.0.0_10000`).
    pub fn listener(&self, address: &str) -> Arc<ListenerStats> {
        entry(&self.listeners, address)
    }

    pub fn cluster(&self, name: &str) -> Arc<ClusterStats> {
        entry(&self.clusters, name)
    }

    pub(crate) fn http_all(&self) -> Vec<(String, Arc<HttpStats>)> {
        snapshot(&self.http)
    }

    pub(crate) fn tcp_all(&self) -> Vec<(String, Arc<TcpStats>)> {
        snapshot(&self.tcp)
    }

    pub(crate) fn listeners_all(&self) -> Vec<(String, Arc<ListenerStats>)> {
        snapshot(&self.listeners)
    }

    pub(crate) fn clusters_all(&self) -> Vec<(String, Arc<ClusterStats>)> {
        snapshot(&self.clusters)
    }
}
