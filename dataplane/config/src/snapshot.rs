//! The immutable config a worker runs with: listeners with their HTTP or TCP settings and
//! route tables, and clusters indexed by [`ClusterId`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use spar_cluster::{Cluster, ClusterId};
use spar_route::{FaultPolicy, RouteTable};

/// Everything a worker needs, compiled from a bootstrap (and later from xDS).
/// A connection keeps the snapshot it started with.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Increases with every accepted config.
    pub version: u64,
    /// Admin listener address (`admin.address`); `None` when the bootstrap has none.
    pub admin: Option<SocketAddr>,
    /// Listeners in config order.
    pub listeners: Vec<Listener>,
    /// Clusters in config order; `clusters[id.0]` is cluster `id`.
    pub clusters: Vec<Arc<Cluster>>,
    /// Envoy-shaped `/config_dump` body: `{"configs": [BootstrapConfigDump]}`.
    pub config_dump: serde_json::Value,
    /// Where clusters and listeners come from over xDS (`dynamic_resources.ads_config`),
    /// when the bootstrap says so.
    pub ads: Option<Ads>,
}

/// The ADS server named by `dynamic_resources`: the static cluster holding its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ads {
    /// `ads_config.grpc_services[0].envoy_grpc.cluster_name`.
    pub cluster: String,
    /// The cluster's first endpoint.
    pub address: SocketAddr,
}

impl Snapshot {
    /// The cluster `id` names.
    ///
    /// # Panics
    /// If `id` did not come from this snapshot (ids are indexes into `clusters`, and every
    /// id the snapshot hands out, in routes and TCP settings, is in range).
    pub fn cluster(&self, id: ClusterId) -> &Cluster {
        &self.clusters[id.0 as usize]
    }

    /// The id of the cluster called `name`.
    pub fn cluster_by_name(&self, name: &str) -> Option<ClusterId> {
        self.clusters
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(ClusterId)
    }
}

/// A listening address and what runs on its connections.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Unique name (stats, runtime keys).
    pub name: String,
    /// IP and port to bind (one `SO_REUSEPORT` socket per worker).
    pub address: SocketAddr,
    /// Most open downstream connections, from the runtime key
    /// `envoy.resource_limits.listener.<name>.connection_limit`; `None` is unlimited.
    pub connection_limit: Option<u32>,
    /// Read/write buffer limit per connection (`per_connection_buffer_limit_bytes`,
    /// Envoy default 1 MiB).
    pub buffer_limit_bytes: u32,
    /// HTTP connection manager or TCP proxy.
    pub kind: ListenerKind,
}

/// The one network filter of a listener's filter chain.
#[derive(Clone, Debug)]
pub enum ListenerKind {
    /// `envoy.filters.network.http_connection_manager` with the router.
    Http(Arc<HttpSettings>),
    /// `envoy.filters.network.tcp_proxy`.
    Tcp(TcpSettings),
}

/// Envoy's default HCM connection idle timeout: 1 h.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Spar's default `request_headers_timeout`: 10 s. Envoy's default is none; Spar bounds the
/// time a client may take to send its headers so slow-header clients cannot hold
/// connections open forever. Set `request_headers_timeout: 0s` to disable it.
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's default `stream_idle_timeout`: 5 min.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's default `drain_timeout`: 5 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default `delayed_close_timeout`: 1 s.
pub const DEFAULT_DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Envoy's default `max_request_headers_kb`: 60 KiB.
pub const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's default `max_headers_count`: 100.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default TCP proxy `idle_timeout`: 1 h.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// HTTP connection manager settings. Timeouts are `None` when disabled (Envoy spells that
/// `0s`).
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Stats prefix.
    pub stat_prefix: String,
    /// `upgrade_configs`: (lower-case upgrade type such as `websocket`, enabled). A request
    /// asking for an upgrade not enabled here or on its route is refused with 403.
    pub upgrades: Vec<(String, bool)>,
    /// Virtual hosts and routes.
    pub routes: RouteTable,
    /// Trust the peer address as the client address and set `x-envoy-external-address`.
    pub use_remote_address: bool,
    /// Trusted hops in `x-forwarded-for` when finding the client address.
    pub xff_num_trusted_hops: u32,
    /// Do not append the peer address to `x-forwarded-for`.
    pub skip_xff_append: bool,
    /// Generate `x-request-id` when absent (Envoy default true).
    pub generate_request_id: bool,
    /// Keep an `x-request-id` that came from an external client.
    pub preserve_external_request_id: bool,
    /// `server` header value; `None` lets the runtime use its default.
    pub server_name: Option<String>,
    /// What to do with an upstream `server` header.
    pub server_header_transformation: ServerHeaderTransformation,
    /// Limit on the request header block, in KiB (default 60).
    pub max_request_headers_kb: u32,
    /// Most request headers (default 100).
    pub max_headers_count: u32,
    /// Connection idle timeout (default 1 h).
    pub idle_timeout: Option<Duration>,
    /// Time allowed to receive the complete request headers. Default 10 s in Spar (Envoy:
    /// none), see [`DEFAULT_REQUEST_HEADERS_TIMEOUT`].
    pub request_headers_timeout: Option<Duration>,
    /// Time allowed to receive the complete request (default none).
    pub request_timeout: Option<Duration>,
    /// Stream idle timeout (default 5 min).
    pub stream_idle_timeout: Option<Duration>,
    /// Grace period for clients after a drain starts (default 5 s).
    pub drain_timeout: Duration,
    /// Wait for the peer to close after our last write (default 1 s).
    pub delayed_close_timeout: Option<Duration>,
    /// Requests per downstream connection; `None` is unlimited.
    pub max_requests_per_connection: Option<u32>,
    /// Longest life of a downstream connection; `None` is unlimited.
    pub max_connection_duration: Option<Duration>,
    /// RFC 3986 path normalization before routing (Envoy default off).
    pub normalize_path: bool,
    /// Merge adjacent slashes in the path before routing.
    pub merge_slashes: bool,
    /// What to do with `%2F`, `%5C` in paths.
    pub escaped_slashes: EscapedSlashesAction,
    /// The fault filter's own policy (`envoy.filters.http.fault` in `http_filters`); a
    /// route's or virtual host's `typed_per_filter_config` overrides it. `None` without the
    /// filter.
    pub fault: Option<FaultPolicy>,
    /// Whether the CORS filter is in `http_filters`: CORS policies of routes and virtual
    /// hosts act only then, as in Envoy.
    pub cors_enabled: bool,
}

/// Envoy's `ServerHeaderTransformation`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    /// Always set our `server` (default).
    Overwrite,
    /// Set ours only when the upstream sent none.
    AppendIfAbsent,
    /// Pass the upstream's through; add none.
    PassThrough,
}

/// Envoy's `PathWithEscapedSlashesAction`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EscapedSlashesAction {
    /// Leave the path alone (Envoy's default, `IMPLEMENTATION_SPECIFIC_DEFAULT` and
    /// `KEEP_UNCHANGED`).
    KeepUnchanged,
    /// Answer 400.
    RejectRequest,
    /// Unescape and redirect the client.
    UnescapeAndRedirect,
    /// Unescape and forward.
    UnescapeAndForward,
}

/// TCP proxy settings.
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// Stats prefix.
    pub stat_prefix: String,
    /// Upstream cluster.
    pub cluster: ClusterId,
    /// Idle timeout for the connection pair (Envoy default 1 h); `None` when disabled.
    pub idle_timeout: Option<Duration>,
    /// Connection attempts to the upstream (default 1, at least 1).
    pub max_connect_attempts: u32,
}
