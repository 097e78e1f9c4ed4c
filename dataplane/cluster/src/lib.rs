//! Clusters as the data plane sees them: a name, a list of endpoints with weights, circuit
//! breaker thresholds, upstream connection settings, and the load-balancing decision.
//!
//! What it does: holds the compiled, immutable [`Cluster`] (built by spar-config from Envoy's
//! `Cluster` resource) and picks an endpoint with smooth weighted round robin ([`RoundRobin`]),
//! one state per worker so no pick touches shared memory.
//!
//! What it does not do: no I/O, no clock, no DNS. Connection pools, health checking, outlier
//! detection and the counters that enforce [`Thresholds`] live in the runtime; this crate only
//! carries the numbers and makes pure decisions.

#![forbid(unsafe_code)]

mod round_robin;

use std::net::SocketAddr;
use std::time::Duration;

pub use round_robin::RoundRobin;

/// Index of a cluster in a snapshot's cluster list (`Snapshot::clusters[id.0]`).
/// Only meaningful together with the snapshot that issued it.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ClusterId(pub u32);

/// Envoy's default `connect_timeout`: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default idle timeout of a pooled upstream HTTP connection: 1 h.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `max_headers_count` (here: for upstream responses): 100.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default `per_connection_buffer_limit_bytes`: 1 MiB.
pub const DEFAULT_BUFFER_LIMIT_BYTES: u32 = 1024 * 1024;

/// One upstream cluster, compiled from Envoy's `Cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Unique name within a snapshot.
    pub name: String,
    /// Time allowed to establish a TCP connection to an endpoint (Envoy default 5 s).
    pub connect_timeout: Duration,
    /// Endpoints in configuration order, every weight at least 1.
    pub endpoints: Vec<Endpoint>,
    /// Circuit-breaker limits for the DEFAULT priority.
    pub thresholds: Thresholds,
    /// How long a pooled upstream connection may sit idle; `None` disables it (default 1 h).
    pub idle_timeout: Option<Duration>,
    /// Requests per upstream connection before it is closed; `None` is unlimited.
    pub max_requests_per_connection: Option<u32>,
    /// Longest life of an upstream connection; `None` is unlimited.
    pub max_connection_duration: Option<Duration>,
    /// Most headers accepted in an upstream response (Envoy default 100).
    pub max_headers_count: u32,
    /// Read/write buffer limit per upstream connection (Envoy default 1 MiB).
    pub buffer_limit_bytes: u32,
    /// TCP keepalive on upstream sockets; `None` leaves the OS default (off).
    pub tcp_keepalive: Option<TcpKeepalive>,
}

impl Cluster {
    /// A cluster with Envoy's defaults and the given endpoints; handy for tests and tools.
    pub fn new(name: impl Into<String>, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name: name.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            endpoints,
            thresholds: Thresholds::default(),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: None,
            max_connection_duration: None,
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            buffer_limit_bytes: DEFAULT_BUFFER_LIMIT_BYTES,
            tcp_keepalive: None,
        }
    }
}

/// One upstream address with its load-balancing weight.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP and port (STATIC clusters take IP literals only).
    pub address: SocketAddr,
    /// Relative weight, 1 or more (Envoy default 1). A weight of 0 is never picked.
    pub weight: u32,
}

/// Circuit-breaker limits (Envoy `CircuitBreakers.Thresholds`, priority DEFAULT).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Open upstream connections across the cluster.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
    /// Retries in flight.
    pub max_retries: u32,
}

impl Default for Thresholds {
    /// Envoy's defaults: 1024 connections, pending and requests; 3 retries.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// TCP keepalive settings (Envoy `TcpKeepalive`); `None` fields keep the OS default.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub probes: Option<u32>,
    /// Idle time before the first probe (`TCP_KEEPIDLE`), whole seconds.
    pub time: Option<Duration>,
    /// Time between probes (`TCP_KEEPINTVL`), whole seconds.
    pub interval: Option<Duration>,
}
