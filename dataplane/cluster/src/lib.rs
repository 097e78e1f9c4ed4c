//! Clusters as the data plane sees them, and every pure decision about them: which endpoint
//! takes a request, whether a circuit breaker admits it, when a host is an outlier, what an
//! active health check result means.
//!
//! What it does:
//! - holds the compiled, immutable [`Cluster`] (built by spar-config from Envoy's `Cluster`):
//!   endpoints with priority, locality, weight, `envoy.lb` metadata and configured health;
//! - [`Balancer`]: one per worker and cluster. ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH,
//!   MAGLEV, with Envoy's priority load (overprovisioning 1.4), panic threshold,
//!   locality-weighted balancing and subset load balancing;
//! - [`Breaker`]: the cluster's circuit-breaker counters (shared atomics) and retry budget;
//! - [`SharedHealth`]: active health-check flags written by the control thread;
//! - [`OutlierDetector`]: consecutive 5xx / gateway / local-origin ejection, one per worker;
//! - [`health`]: the active health-check state machine and response matching.
//!
//! Pick cost per policy: `README.md` (bench `benches/balance.rs`).
//!
//! What it does not do: no I/O, no clock, no global randomness, no DNS. Time comes in as
//! `Instant` arguments and randomness as `u64` arguments, so every decision is a function of
//! its inputs and is tested as one. Sockets (pools, health-check probes) live in spar-runtime
//! and spar-health.

#![forbid(unsafe_code)]

mod balance;
mod breaker;
pub mod health;
mod outlier;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use balance::{Balancer, PickRequest};
pub use breaker::{Breaker, BreakerCounts, SharedHealth};
pub use health::{HealthCheck, HealthCheckKind};
pub use outlier::{OutlierConfig, OutlierDetector, OutlierResult};

/// Index of a cluster in a snapshot's cluster list (`Snapshot::clusters[id.0]`).
/// Only meaningful together with the snapshot that issued it.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ClusterId(pub u32);

/// An endpoint's `filter_metadata["envoy.lb"]`, values stringified (strings as they are,
/// numbers in their shortest form, booleans `true`/`false`), used by subset load balancing.
pub type Metadata = BTreeMap<String, String>;

/// Envoy's default `connect_timeout`: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default idle timeout of a pooled upstream HTTP connection: 1 h.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `max_headers_count` (here: for upstream responses): 100.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default `per_connection_buffer_limit_bytes`: 1 MiB.
pub const DEFAULT_BUFFER_LIMIT_BYTES: u32 = 1024 * 1024;
/// Envoy's default `common_lb_config.healthy_panic_threshold`: 50 %.
pub const DEFAULT_PANIC_THRESHOLD_PERCENT: f64 = 50.0;
/// Envoy's default `least_request_lb_config.choice_count`: 2 (power of two choices).
pub const DEFAULT_CHOICE_COUNT: u32 = 2;
/// Envoy's default `ring_hash_lb_config.minimum_ring_size`: 1024 entries.
pub const DEFAULT_MIN_RING: u64 = 1024;
/// Envoy's default `ring_hash_lb_config.maximum_ring_size`: 8M entries.
pub const DEFAULT_MAX_RING: u64 = 8 * 1024 * 1024;
/// Envoy's default `maglev_lb_config.table_size`: 65537 (a prime).
pub const DEFAULT_MAGLEV_TABLE: u64 = 65537;
/// Envoy's largest maglev table: 5000011 (a prime). Bounds memory per worker.
pub const MAX_MAGLEV_TABLE: u64 = 5_000_011;

/// One upstream cluster, compiled from Envoy's `Cluster`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Unique name within a snapshot.
    pub name: String,
    /// Time allowed to establish a TCP connection to an endpoint (Envoy default 5 s).
    pub connect_timeout: Duration,
    /// Load-balancing policy (Envoy `lb_policy` with its `*_lb_config`).
    pub lb: LbPolicy,
    /// Endpoints of every priority, sorted by priority (stable: configuration order within
    /// one priority). Indices into this list name hosts everywhere in this crate.
    pub endpoints: Vec<Endpoint>,
    /// Localities (`load_assignment.endpoints[*]`); `Endpoint::locality` indexes this list.
    pub localities: Vec<Locality>,
    /// Circuit-breaker limits for the DEFAULT priority.
    pub thresholds: Thresholds,
    /// Circuit-breaker limits for the HIGH priority, when configured. Stored, but no request
    /// is HIGH priority (spar-route has no route priority), exactly as in an Envoy whose
    /// routes are all DEFAULT: these limits never apply.
    pub thresholds_high: Option<Thresholds>,
    /// Consecutive-failure outlier detection; `None` when not configured.
    pub outlier: Option<OutlierConfig>,
    /// Active health checks (run by spar-health); empty when none.
    pub health_checks: Vec<HealthCheck>,
    /// Below this percentage of healthy hosts a priority balances over all its hosts
    /// (Envoy default 50; 0 disables panic mode).
    pub panic_threshold_percent: f64,
    /// `common_lb_config.locality_weighted_lb_config`: pick a locality by weight and health
    /// first, then a host in it.
    pub locality_weighted: bool,
    /// Subset load balancing (`lb_subset_config`); `None` when not configured.
    pub subsets: Option<SubsetConfig>,
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
    /// A cluster with Envoy's defaults and the given endpoints (one default locality,
    /// round robin); handy for tests and tools.
    pub fn new(name: impl Into<String>, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name: name.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            lb: LbPolicy::RoundRobin,
            endpoints,
            localities: vec![Locality::default()],
            thresholds: Thresholds::default(),
            thresholds_high: None,
            outlier: None,
            health_checks: Vec::new(),
            panic_threshold_percent: DEFAULT_PANIC_THRESHOLD_PERCENT,
            locality_weighted: false,
            subsets: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: None,
            max_connection_duration: None,
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            buffer_limit_bytes: DEFAULT_BUFFER_LIMIT_BYTES,
            tcp_keepalive: None,
        }
    }

    /// Per endpoint: configured `health_status` says UNHEALTHY, DRAINING or TIMEOUT. The
    /// starting point of the `unhealthy` slice that [`Balancer::set_health`] takes.
    pub fn configured_unhealthy(&self) -> Vec<bool> {
        self.endpoints
            .iter()
            .map(|e| e.health.is_unhealthy())
            .collect()
    }
}

/// Envoy's `lb_policy` with the settings of its `*_lb_config`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Least active requests among `choice_count` random choices (see [`Balancer`] for
    /// unequal weights).
    LeastRequest {
        /// Hosts sampled per pick (Envoy default 2).
        choice_count: u32,
    },
    /// Weighted random.
    Random,
    /// Ketama-style consistent hash ring.
    RingHash {
        /// Fewest ring entries (Envoy default 1024).
        min_ring: u64,
        /// Most ring entries (Envoy default 8M).
        max_ring: u64,
    },
    /// Maglev consistent hashing.
    Maglev {
        /// Lookup table size, a prime (Envoy default 65537).
        table_size: u64,
    },
}

/// One upstream address with its load-balancing attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP and port (STATIC clusters take IP literals only).
    pub address: SocketAddr,
    /// Relative weight, 1 or more (Envoy default 1). A weight of 0 is never picked.
    pub weight: u32,
    /// Priority (0 is the highest); lower priorities take load as higher ones lose health.
    pub priority: u32,
    /// Index into [`Cluster::localities`].
    pub locality: u32,
    /// `metadata.filter_metadata["envoy.lb"]`, for subset load balancing.
    pub metadata: Arc<Metadata>,
    /// `health_status` as configured (EDS or static).
    pub health: ConfiguredHealth,
}

impl Endpoint {
    /// An endpoint of priority 0 in locality 0, no metadata, health unknown.
    pub fn new(address: SocketAddr, weight: u32) -> Self {
        Self {
            address,
            weight,
            priority: 0,
            locality: 0,
            metadata: Arc::default(),
            health: ConfiguredHealth::Unknown,
        }
    }
}

/// Envoy's `HealthStatus` of an endpoint as configured. TIMEOUT is taken as `Unhealthy`
/// (Envoy treats it so).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ConfiguredHealth {
    /// Not said; healthy unless a check or the outlier detector says otherwise.
    #[default]
    Unknown,
    /// Healthy.
    Healthy,
    /// Unhealthy: never picked (except in panic mode).
    Unhealthy,
    /// Draining: never picked for new requests (except in panic mode).
    Draining,
    /// Degraded: spar-proxy balances over degraded hosts as over healthy ones (Envoy keeps
    /// them for when healthy hosts are short; not modelled yet).
    Degraded,
}

impl ConfiguredHealth {
    /// UNHEALTHY or DRAINING (TIMEOUT compiles to `Unhealthy`).
    pub fn is_unhealthy(self) -> bool {
        matches!(self, Self::Unhealthy | Self::Draining)
    }
}

/// One locality (`LocalityLbEndpoints`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locality {
    /// `locality.region`.
    pub region: String,
    /// `locality.zone`.
    pub zone: String,
    /// `locality.sub_zone`.
    pub sub_zone: String,
    /// `load_balancing_weight` (0 when not set: with locality-weighted balancing such a
    /// locality takes no traffic, as in Envoy).
    pub weight: u32,
    /// `priority`.
    pub priority: u32,
}

impl Default for Locality {
    /// No names, weight 1, priority 0.
    fn default() -> Self {
        Self {
            region: String::new(),
            zone: String::new(),
            sub_zone: String::new(),
            weight: 1,
            priority: 0,
        }
    }
}

/// Circuit-breaker limits (Envoy `CircuitBreakers.Thresholds`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Open upstream connections across the cluster.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
    /// Retries in flight (ignored when `retry_budget` is set, as in Envoy).
    pub max_retries: u32,
    /// Retries in flight as a share of active requests.
    pub retry_budget: Option<RetryBudget>,
}

impl Default for Thresholds {
    /// Envoy's defaults: 1024 connections, pending and requests; 3 retries; no budget.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
        }
    }
}

/// Envoy `Thresholds.RetryBudget`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of active plus pending requests (Envoy default 20).
    pub budget_percent: f64,
    /// Retries always allowed, whatever the budget says (Envoy default 3).
    pub min_retry_concurrency: u32,
}

impl Default for RetryBudget {
    /// Envoy's defaults: 20 %, at least 3.
    fn default() -> Self {
        Self {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

/// Subset load balancing (`lb_subset_config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetConfig {
    /// What a request gets when no subset matches its `metadata_match` (or it has none).
    pub fallback: SubsetFallback,
    /// The subset used by [`SubsetFallback::DefaultSubset`]: endpoints whose metadata has all
    /// these pairs (empty: every endpoint).
    pub default_subset: Metadata,
    /// Each selector is a set of metadata keys; every combination of values present among
    /// endpoints that have all the keys forms a subset. Keys sorted, no duplicates.
    pub selectors: Vec<Vec<String>>,
}

/// `lb_subset_config.fallback_policy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SubsetFallback {
    /// No endpoint: the request fails (503 no healthy upstream). Envoy's default.
    NoFallback,
    /// Balance over the whole cluster.
    AnyEndpoint,
    /// Balance over [`SubsetConfig::default_subset`].
    DefaultSubset,
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

/// splitmix64's finalizer: spreads one random or hash value into an unrelated one, so a
/// single `u64` argument can feed several independent choices.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod test_rng;
