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
    /// `transports[id.0]`: TLS and HTTP version for cluster `id`.
    pub transports: Vec<ClusterTransport>,
    /// Worth logging about the config (an upstream whose certificate is not verified, a
    /// certificate about to expire); not errors.
    pub warnings: Vec<String>,
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
    /// Filter chains in config order, then `default_filter_chain` when there is one. A
    /// connection runs the chain [`Listener::select`] picks for it.
    pub chains: Vec<FilterChain>,
    /// Whether `chains` ends with the `default_filter_chain`.
    pub has_default_chain: bool,
    /// What a connection's first bytes must be read for before a chain is picked: a
    /// ClientHello (server names, ALPN, transport protocol), or the plaintext protocol.
    /// Nothing to read when the listener has one chain with no match (the common case).
    pub inspect: Inspect,
    /// Envoy's `listener_filters_timeout` (default 15 s): how long a connection may take to
    /// send the bytes the chain choice needs; `None` waits forever.
    pub inspect_timeout: Option<Duration>,
    /// Envoy's `continue_on_listener_filters_timeout`: on that timeout, pick a chain with
    /// what was read instead of closing the connection.
    pub continue_on_inspect_timeout: bool,
}

/// Envoy's default `listener_filters_timeout`: 15 s.
pub const DEFAULT_LISTENER_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);

/// What a listener reads from a new connection before picking its chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inspect {
    /// Peek at a TLS ClientHello: server name, ALPN, `tls` vs `raw_buffer`.
    pub tls: bool,
    /// Tell plaintext HTTP/1.x (`http/1.1`, `http/1.0`) and HTTP/2 prior knowledge (`h2c`)
    /// apart, as Envoy's `http_inspector` does, for `application_protocols`.
    pub http: bool,
}

/// One filter chain: when it applies, how its connections are secured, what runs on them.
#[derive(Clone, Debug)]
pub struct FilterChain {
    /// `name` (may be empty), for logs and stats.
    pub name: String,
    pub matcher: ChainMatch,
    /// `transport_socket` with a `DownstreamTlsContext`: TLS is terminated here.
    pub tls: Option<DownstreamTls>,
    /// Network RBAC filters (`envoy.filters.network.rbac`), in order, before `kind`: each
    /// must allow the connection, or it is closed.
    pub rbac: Vec<Arc<spar_rbac::RbacFilter>>,
    /// HTTP connection manager or TCP proxy.
    pub kind: ListenerKind,
}

/// Envoy's `FilterChainMatch`, the parts spar-proxy supports. Empty fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChainMatch {
    /// `destination_port`: the port the connection was accepted on.
    pub destination_port: Option<u16>,
    /// `server_names`, lowercased: exact names and `*.suffix` wildcards.
    pub server_names: Vec<String>,
    /// `transport_protocol`: `tls` or `raw_buffer`.
    pub transport_protocol: Option<String>,
    /// `application_protocols`: ALPN names (TLS) or `http/1.1`, `http/1.0`, `h2c`
    /// (plaintext).
    pub application_protocols: Vec<String>,
}

/// What is known about a new connection when its chain is picked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo<'a> {
    pub destination_port: u16,
    /// SNI from the ClientHello, lowercased.
    pub server_name: Option<&'a str>,
    /// `tls` or `raw_buffer`.
    pub transport_protocol: &'a str,
    /// ALPN offered by the client, in its order; or the sniffed plaintext protocol.
    pub application_protocols: Vec<&'a [u8]>,
}

impl Listener {
    /// The chain for a connection, as Envoy picks it: the most specific match on
    /// destination port, then server name (exact, then the longest `*.` wildcard), then
    /// transport protocol, then application protocol (the client's first offered protocol
    /// that some chain names); chains that leave a criterion empty match it only when no
    /// chain names a matching value. No match: the default chain, or `None` (the
    /// connection is closed and counted).
    pub fn select(&self, info: &ConnectionInfo<'_>) -> Option<usize> {
        let matchable = if self.has_default_chain {
            &self.chains[..self.chains.len() - 1]
        } else {
            &self.chains[..]
        };
        let mut set: Vec<usize> = (0..matchable.len()).collect();
        let port_exact: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| matchable[i].matcher.destination_port == Some(info.destination_port))
            .collect();
        set = if port_exact.is_empty() {
            set.into_iter()
                .filter(|&i| matchable[i].matcher.destination_port.is_none())
                .collect()
        } else {
            port_exact
        };
        set = by_server_name(matchable, set, info.server_name);
        let transport: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| {
                matchable[i].matcher.transport_protocol.as_deref() == Some(info.transport_protocol)
            })
            .collect();
        set = if transport.is_empty() {
            set.into_iter()
                .filter(|&i| matchable[i].matcher.transport_protocol.is_none())
                .collect()
        } else {
            transport
        };
        let by_alpn = info.application_protocols.iter().find_map(|offered| {
            let hits: Vec<usize> = set
                .iter()
                .copied()
                .filter(|&i| {
                    matchable[i]
                        .matcher
                        .application_protocols
                        .iter()
                        .any(|p| p.as_bytes() == *offered)
                })
                .collect();
            (!hits.is_empty()).then_some(hits)
        });
        set = match by_alpn {
            Some(hits) => hits,
            None => set
                .into_iter()
                .filter(|&i| matchable[i].matcher.application_protocols.is_empty())
                .collect(),
        };
        match set.first() {
            Some(&i) => Some(i),
            None if self.has_default_chain => Some(self.chains.len() - 1),
            None => None,
        }
    }
}

/// Server-name step of [`Listener::select`].
fn by_server_name(chains: &[FilterChain], set: Vec<usize>, sni: Option<&str>) -> Vec<usize> {
    if let Some(sni) = sni {
        let exact: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| chains[i].matcher.server_names.iter().any(|n| n == sni))
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        // The longest wildcard suffix wins: `*.a.example.com` before `*.example.com`.
        let mut best = 0;
        let mut hits = Vec::new();
        for &i in &set {
            for n in &chains[i].matcher.server_names {
                if let Some(suffix) = n.strip_prefix('*')
                    && suffix.starts_with('.')
                    && sni.len() > suffix.len()
                    && sni.ends_with(suffix)
                {
                    if suffix.len() > best {
                        best = suffix.len();
                        hits.clear();
                    }
                    if suffix.len() == best && !hits.contains(&i) {
                        hits.push(i);
                    }
                }
            }
        }
        if !hits.is_empty() {
            return hits;
        }
    }
    set.into_iter()
        .filter(|&i| chains[i].matcher.server_names.is_empty())
        .collect()
}

/// TLS terminated by a filter chain: what the config said, and the rustls config built
/// from it once per config load (shared by every worker).
#[derive(Clone, Debug)]
pub struct DownstreamTls {
    pub spec: spar_tls::ServerTls,
    pub config: Arc<rustls::ServerConfig>,
}

impl PartialEq for DownstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// How spar-proxy talks to a cluster's endpoints: TLS or not, HTTP/1.1 or HTTP/2.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterTransport {
    /// `transport_socket` with an `UpstreamTlsContext`.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 (`http2_protocol_options`, or `explicit_http_config.http2_protocol_options`)
    /// instead of HTTP/1.1.
    pub http2: Option<Http2Settings>,
}

/// TLS originated to a cluster's endpoints.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    pub spec: spar_tls::ClientTls,
    pub built: spar_tls::UpstreamTls,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// Envoy's `Http2ProtocolOptions`, the parts spar-proxy uses, with its bounded defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2Settings {
    /// `max_concurrent_streams` (what this side allows its peer to open).
    pub max_concurrent_streams: u32,
    /// `initial_stream_window_size`.
    pub initial_stream_window_size: u32,
    /// `initial_connection_window_size`.
    pub initial_connection_window_size: u32,
}

/// Spar's HTTP/2 defaults. Envoy's windows are 256 MiB, which lets one peer make the proxy
/// buffer 256 MiB per stream; 1 MiB per stream and 4 MiB per connection keep a
/// loopback or datacenter link full while bounding memory per connection.
pub const DEFAULT_HTTP2: Http2Settings = Http2Settings {
    max_concurrent_streams: 1024,
    initial_stream_window_size: 1024 * 1024,
    initial_connection_window_size: 4 * 1024 * 1024,
};

impl Default for Http2Settings {
    fn default() -> Self {
        DEFAULT_HTTP2
    }
}

/// The one network filter of a listener's filter chain.
#[derive(Clone, Debug)]
pub enum ListenerKind {
    /// `envoy.filters.network.http_connection_manager` with the router.
    Http(Arc<HttpSettings>),
    /// `envoy.filters.network.tcp_proxy`.
    Tcp(TcpSettings),
}

/// The HTTP connection manager's `codec_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// HTTP/2 by ALPN `h2` over TLS or by the prior-knowledge preface in plaintext, else
    /// HTTP/1.1.
    #[default]
    Auto,
    Http1,
    Http2,
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
    /// `codec_type`: which HTTP versions downstream connections may speak.
    pub codec: Codec,
    /// `http2_protocol_options`, for HTTP/2 downstream connections.
    pub http2: Http2Settings,
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
    /// RBAC filters (`envoy.filters.http.rbac`), in filter order: each must allow a request
    /// before it is routed; the first denial answers 403.
    pub rbac: Vec<Arc<spar_rbac::RbacFilter>>,
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
    /// Upstream clusters with their weights: `cluster` alone (weight 1), or
    /// `weighted_clusters` (each weight at least 1). Never empty.
    pub clusters: Vec<(ClusterId, u32)>,
    /// Idle timeout for the connection pair (Envoy default 1 h); `None` when disabled.
    pub idle_timeout: Option<Duration>,
    /// Connection attempts to the upstream (default 1, at least 1).
    pub max_connect_attempts: u32,
}

impl TcpSettings {
    /// The cluster a new connection goes to: by weight, with `random` drawn uniformly, as
    /// Envoy picks one of `weighted_clusters` per connection.
    pub fn pick(&self, random: u64) -> ClusterId {
        let total: u64 = self.clusters.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut at = random % total.max(1);
        for (id, w) in &self.clusters {
            if at < u64::from(*w) {
                return *id;
            }
            at -= u64::from(*w);
        }
        // Unreachable while `clusters` is non-empty (compile guarantees it): `at` is below
        // the sum of the weights.
        self.clusters.first().map_or(ClusterId(0), |(id, _)| *id)
    }
}
