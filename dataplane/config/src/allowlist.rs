//! What spar-proxy supports today, as a table: every field that may be set, by message and
//! field name, with the values it may take. The subset check (`subset.rs`) rejects anything
//! set outside this table with "field not supported by spar-proxy yet", so a config is
//! either applied whole or refused, never silently trimmed.
//!
//! To support a new field: add its row here, carry it into the snapshot in `compile/`, and
//! add a test. A row without a compile step is a silent ignore, which is exactly what this
//! table exists to prevent.

use std::collections::HashMap;
use std::sync::OnceLock;

/// What values a listed field may hold.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Any value (sub-messages are still checked field by field).
    Any,
    /// An enum whose value name is one of these.
    Enum(&'static [&'static str]),
    /// A `google.protobuf.BoolValue` that is true.
    True,
    /// A list of at most this many elements.
    AtMost(usize),
    /// A `google.protobuf.Any` (or a list of them) holding one of these message types.
    Types(&'static [&'static str]),
    /// A `map<string, Any>` whose key is one of these type names and whose value is a
    /// message of the type its key names (Envoy's `typed_extension_protocol_options`).
    KeyedTypes(&'static [&'static str]),
    /// A runtime layer's `google.protobuf.Struct`: only the keys in `runtime.rs`.
    RuntimeKeys,
    /// Accepted whatever it holds, because spar-proxy does not act on it: an SDS secret's
    /// `sds_config` (the secrets spar-proxy serves come from its own mesh identity).
    Unused,
}

pub(crate) const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(crate) const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const TCP_WEIGHTED: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster";
const TCP_CLUSTER_WEIGHT: &str =
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight";
pub(crate) const TLS_INSPECTOR: &str =
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
pub(crate) const HTTP_INSPECTOR: &str =
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";
pub(crate) const DOWNSTREAM_TLS: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(crate) const UPSTREAM_TLS: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
pub(crate) const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
pub(crate) const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
pub(crate) const UPSTREAM_HTTP: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub(crate) const HTTP_FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
pub(crate) const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
pub(crate) const RBAC_HTTP: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub(crate) const RBAC_NETWORK: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";
/// Messages whose fields are checked by their own compiler (spar-rbac refuses what it does
/// not support, with the field's path), not by this table.
pub(crate) const DELEGATED: &[&str] = &[RBAC_HTTP, RBAC_NETWORK];
pub(crate) const CORS_POLICY: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
pub(crate) const PREVIOUS_HOSTS: &str =
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";
const DYNAMIC: &str = "envoy.config.bootstrap.v3.Bootstrap.DynamicResources";
const API_CONFIG: &str = "envoy.config.core.v3.ApiConfigSource";
const GRPC_SERVICE: &str = "envoy.config.core.v3.GrpcService";
const ENVOY_GRPC: &str = "envoy.config.core.v3.GrpcService.EnvoyGrpc";
const CONFIG_SOURCE: &str = "envoy.config.core.v3.ConfigSource";
const STATIC: &str = "envoy.config.bootstrap.v3.Bootstrap.StaticResources";
const ADMIN: &str = "envoy.config.bootstrap.v3.Admin";
const LAYERED_RUNTIME: &str = "envoy.config.bootstrap.v3.LayeredRuntime";
const RUNTIME_LAYER: &str = "envoy.config.bootstrap.v3.RuntimeLayer";
const NODE: &str = "envoy.config.core.v3.Node";
const LOCALITY: &str = "envoy.config.core.v3.Locality";
const ADDRESS: &str = "envoy.config.core.v3.Address";
const SOCKET_ADDRESS: &str = "envoy.config.core.v3.SocketAddress";
const LISTENER: &str = "envoy.config.listener.v3.Listener";
const FILTER_CHAIN: &str = "envoy.config.listener.v3.FilterChain";
const FILTER_CHAIN_MATCH: &str = "envoy.config.listener.v3.FilterChainMatch";
const LISTENER_FILTER: &str = "envoy.config.listener.v3.ListenerFilter";
const TRANSPORT_SOCKET: &str = "envoy.config.core.v3.TransportSocket";
const COMMON_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext";
const TLS_CERTIFICATE: &str = "envoy.extensions.transport_sockets.tls.v3.TlsCertificate";
const TLS_PARAMS: &str = "envoy.extensions.transport_sockets.tls.v3.TlsParameters";
const VALIDATION_CONTEXT: &str =
    "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext";
const SAN_MATCHER: &str = "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher";
const SDS_SECRET: &str = "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig";
const COMBINED_VALIDATION: &str = "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext";
const HTTP2_OPTIONS: &str = "envoy.config.core.v3.Http2ProtocolOptions";
const FILTER: &str = "envoy.config.listener.v3.Filter";
const HTTP_FILTER: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";
const HTTP_OPTIONS: &str = "envoy.config.core.v3.HttpProtocolOptions";
const ROUTE_CONFIG: &str = "envoy.config.route.v3.RouteConfiguration";
const VIRTUAL_HOST: &str = "envoy.config.route.v3.VirtualHost";
const ROUTE: &str = "envoy.config.route.v3.Route";
const ROUTE_MATCH: &str = "envoy.config.route.v3.RouteMatch";
const ROUTE_ACTION: &str = "envoy.config.route.v3.RouteAction";
const MAX_STREAM_DURATION: &str = "envoy.config.route.v3.RouteAction.MaxStreamDuration";
const ROUTE_UPGRADE: &str = "envoy.config.route.v3.RouteAction.UpgradeConfig";
const HCM_UPGRADE: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig";
const HEADER_MATCHER: &str = "envoy.config.route.v3.HeaderMatcher";
const QUERY_MATCHER: &str = "envoy.config.route.v3.QueryParameterMatcher";
const STRING_MATCHER: &str = "envoy.type.matcher.v3.StringMatcher";
const REGEX_MATCHER: &str = "envoy.type.matcher.v3.RegexMatcher";
const REGEX_SUBSTITUTE: &str = "envoy.type.matcher.v3.RegexMatchAndSubstitute";
const INT64_RANGE: &str = "envoy.type.v3.Int64Range";
const FRACTIONAL_PERCENT: &str = "envoy.type.v3.FractionalPercent";
const RUNTIME_FRACTION: &str = "envoy.config.core.v3.RuntimeFractionalPercent";
const METADATA: &str = "envoy.config.core.v3.Metadata";
const HEADER_VALUE_OPTION: &str = "envoy.config.core.v3.HeaderValueOption";
const HEADER_VALUE: &str = "envoy.config.core.v3.HeaderValue";
const DATA_SOURCE: &str = "envoy.config.core.v3.DataSource";
const WEIGHTED_CLUSTER: &str = "envoy.config.route.v3.WeightedCluster";
const CLUSTER_WEIGHT: &str = "envoy.config.route.v3.WeightedCluster.ClusterWeight";
const RETRY_POLICY: &str = "envoy.config.route.v3.RetryPolicy";
const RETRY_BACK_OFF: &str = "envoy.config.route.v3.RetryPolicy.RetryBackOff";
const RETRY_HOST_PREDICATE: &str = "envoy.config.route.v3.RetryPolicy.RetryHostPredicate";
const HASH_POLICY: &str = "envoy.config.route.v3.RouteAction.HashPolicy";
const HASH_HEADER: &str = "envoy.config.route.v3.RouteAction.HashPolicy.Header";
const HASH_COOKIE: &str = "envoy.config.route.v3.RouteAction.HashPolicy.Cookie";
const HASH_CONNECTION: &str = "envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties";
const HASH_QUERY: &str = "envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter";
const MIRROR_POLICY: &str = "envoy.config.route.v3.RouteAction.RequestMirrorPolicy";
const REDIRECT: &str = "envoy.config.route.v3.RedirectAction";
const DIRECT_RESPONSE: &str = "envoy.config.route.v3.DirectResponseAction";
const FAULT_DELAY: &str = "envoy.extensions.filters.common.fault.v3.FaultDelay";
const FAULT_ABORT: &str = "envoy.extensions.filters.http.fault.v3.FaultAbort";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const LOAD_ASSIGNMENT: &str = "envoy.config.endpoint.v3.ClusterLoadAssignment";
const EDS_CLUSTER: &str = "envoy.config.cluster.v3.Cluster.EdsClusterConfig";
const LOCALITY_ENDPOINTS: &str = "envoy.config.endpoint.v3.LocalityLbEndpoints";
const LB_ENDPOINT: &str = "envoy.config.endpoint.v3.LbEndpoint";
const ENDPOINT: &str = "envoy.config.endpoint.v3.Endpoint";
const CIRCUIT_BREAKERS: &str = "envoy.config.cluster.v3.CircuitBreakers";
const THRESHOLDS: &str = "envoy.config.cluster.v3.CircuitBreakers.Thresholds";
const EXPLICIT_HTTP: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig";
const CONNECTION_OPTIONS: &str = "envoy.config.cluster.v3.UpstreamConnectionOptions";
const TCP_KEEPALIVE: &str = "envoy.config.core.v3.TcpKeepalive";
const LEAST_REQUEST: &str = "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig";
const RING_HASH: &str = "envoy.config.cluster.v3.Cluster.RingHashLbConfig";
const MAGLEV: &str = "envoy.config.cluster.v3.Cluster.MaglevLbConfig";
const COMMON_LB: &str = "envoy.config.cluster.v3.Cluster.CommonLbConfig";
const PERCENT: &str = "envoy.type.v3.Percent";
const LB_SUBSET: &str = "envoy.config.cluster.v3.Cluster.LbSubsetConfig";
const LB_SUBSET_SELECTOR: &str = "envoy.config.cluster.v3.Cluster.LbSubsetConfig.LbSubsetSelector";
const RETRY_BUDGET: &str = "envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget";
const OUTLIER: &str = "envoy.config.cluster.v3.OutlierDetection";
const HEALTH_CHECK: &str = "envoy.config.core.v3.HealthCheck";
const HTTP_HEALTH_CHECK: &str = "envoy.config.core.v3.HealthCheck.HttpHealthCheck";
const TCP_HEALTH_CHECK: &str = "envoy.config.core.v3.HealthCheck.TcpHealthCheck";
const PAYLOAD: &str = "envoy.config.core.v3.HealthCheck.Payload";

use Rule::{Any, AtMost, Enum, KeyedTypes, RuntimeKeys, True, Types, Unused};

/// (message full name, field name, rule). Messages with no row accept no field at all:
/// `envoy.config.core.v3.Http1ProtocolOptions` (HCM `http_protocol_options`, upstream
/// `explicit_http_config.http_protocol_options`) and the router's `Router` are accepted only
/// empty, that is with Envoy's defaults.
#[rustfmt::skip]
pub(crate) const FIELDS: &[(&str, &str, Rule)] = &[
    // Bootstrap. `admin.access_log*` and `profile_path` are refused: Spar writes no admin log.
    (BOOTSTRAP, "node", Any),
    (BOOTSTRAP, "admin", Any),
    (BOOTSTRAP, "static_resources", Any),
    (BOOTSTRAP, "layered_runtime", Any),
    // xDS: one ADS stream over gRPC to a static cluster, clusters and listeners over it.
    (BOOTSTRAP, "dynamic_resources", Any),
    (DYNAMIC, "ads_config", Any),
    (DYNAMIC, "cds_config", Any),
    (DYNAMIC, "lds_config", Any),
    (API_CONFIG, "api_type", Enum(&["GRPC"])),
    (API_CONFIG, "transport_api_version", Enum(&["V3"])),
    (API_CONFIG, "grpc_services", AtMost(1)),
    (GRPC_SERVICE, "envoy_grpc", Any),
    (ENVOY_GRPC, "cluster_name", Any),
    // A ConfigSource (cds_config, lds_config, a cluster's eds_config) is ADS, v3; `path`,
    // `path_config_source` and `api_config_source` are refused. initial_fetch_timeout acts
    // on eds_config (how long a new EDS cluster warms); on cds_config and lds_config only
    // 0s (no timeout, what spar-proxy does) is accepted, by compile.
    (CONFIG_SOURCE, "ads", Any),
    (CONFIG_SOURCE, "resource_api_version", Enum(&["V3"])),
    (CONFIG_SOURCE, "initial_fetch_timeout", Any),
    (NODE, "id", Any),
    (NODE, "cluster", Any),
    (NODE, "metadata", Any),
    (NODE, "locality", Any),
    (NODE, "user_agent_name", Any),
    (LOCALITY, "region", Any),
    (LOCALITY, "zone", Any),
    (LOCALITY, "sub_zone", Any),
    (ADMIN, "address", Any),
    (STATIC, "listeners", Any),
    (STATIC, "clusters", Any),
    (LAYERED_RUNTIME, "layers", Any),
    (RUNTIME_LAYER, "name", Any),
    (RUNTIME_LAYER, "static_layer", RuntimeKeys),
    // Addresses: TCP socket addresses only (no pipes, no named ports, no UDP).
    (ADDRESS, "socket_address", Any),
    (SOCKET_ADDRESS, "protocol", Enum(&["TCP"])),
    (SOCKET_ADDRESS, "address", Any),
    (SOCKET_ADDRESS, "port_value", Any),
    // Listener: filter chains matched on port, server name, transport and application
    // protocol (compile/listener.rs), TLS termination, the TLS and HTTP inspectors.
    (LISTENER, "name", Any),
    (LISTENER, "address", Any),
    (LISTENER, "filter_chains", Any),
    (LISTENER, "default_filter_chain", Any),
    (LISTENER, "listener_filters", Any),
    (LISTENER, "listener_filters_timeout", Any),
    (LISTENER, "continue_on_listener_filters_timeout", Any),
    (LISTENER, "per_connection_buffer_limit_bytes", Any),
    (LISTENER, "enable_reuse_port", True),
    (LISTENER_FILTER, "name", Any),
    (LISTENER_FILTER, "typed_config", Types(&[TLS_INSPECTOR, HTTP_INSPECTOR])),
    (FILTER_CHAIN, "name", Any),
    (FILTER_CHAIN, "filters", Any),
    (FILTER_CHAIN, "filter_chain_match", Any),
    (FILTER_CHAIN, "transport_socket", Any),
    (FILTER_CHAIN_MATCH, "destination_port", Any),
    (FILTER_CHAIN_MATCH, "server_names", Any),
    (FILTER_CHAIN_MATCH, "transport_protocol", Any),
    (FILTER_CHAIN_MATCH, "application_protocols", Any),
    (FILTER, "name", Any),
    (FILTER, "typed_config", Types(&[RBAC_NETWORK, HCM, TCP_PROXY])),
    // TLS (compile/tls.rs): certificates from files or inline PEM, trusted CA, SAN
    // matchers, versions and suites, ALPN, session tickets, SNI.
    (TRANSPORT_SOCKET, "name", Any),
    (TRANSPORT_SOCKET, "typed_config", Types(&[DOWNSTREAM_TLS, UPSTREAM_TLS, RAW_BUFFER])),
    (DOWNSTREAM_TLS, "common_tls_context", Any),
    (DOWNSTREAM_TLS, "require_client_certificate", Any),
    (DOWNSTREAM_TLS, "disable_stateless_session_resumption", Any),
    (UPSTREAM_TLS, "common_tls_context", Any),
    (UPSTREAM_TLS, "sni", Any),
    (UPSTREAM_TLS, "auto_sni_san_validation", Any),
    (UPSTREAM_TLS, "max_session_keys", Any),
    (COMMON_TLS, "tls_params", Any),
    (COMMON_TLS, "tls_certificates", Any),
    (COMMON_TLS, "validation_context", Any),
    (COMMON_TLS, "alpn_protocols", Any),
    (COMMON_TLS, "tls_certificate_sds_secret_configs", AtMost(1)),
    (COMMON_TLS, "validation_context_sds_secret_config", Any),
    (COMMON_TLS, "combined_validation_context", Any),
    (COMBINED_VALIDATION, "default_validation_context", Any),
    (COMBINED_VALIDATION, "validation_context_sds_secret_config", Any),
    (SDS_SECRET, "name", Any),
    (SDS_SECRET, "sds_config", Unused),
    (TLS_CERTIFICATE, "certificate_chain", Any),
    (TLS_CERTIFICATE, "private_key", Any),
    (TLS_PARAMS, "tls_minimum_protocol_version", Any),
    (TLS_PARAMS, "tls_maximum_protocol_version", Any),
    (TLS_PARAMS, "cipher_suites", Any),
    (VALIDATION_CONTEXT, "trusted_ca", Any),
    (VALIDATION_CONTEXT, "match_typed_subject_alt_names", Any),
    (SAN_MATCHER, "san_type", Any),
    (SAN_MATCHER, "matcher", Any),
    // HTTP/2 (downstream `http2_protocol_options`, cluster HTTP/2 upstreams).
    (HTTP2_OPTIONS, "max_concurrent_streams", Any),
    (HTTP2_OPTIONS, "initial_stream_window_size", Any),
    (HTTP2_OPTIONS, "initial_connection_window_size", Any),
    // HTTP connection manager.
    (HCM, "stat_prefix", Any),
    (HCM, "codec_type", Enum(&["AUTO", "HTTP1", "HTTP2"])),
    (HCM, "http2_protocol_options", Any),
    (HCM, "route_config", Any),
    (HCM, "http_filters", Any),
    (HCM, "common_http_protocol_options", Any),
    (HCM, "http_protocol_options", Any),
    (HCM, "use_remote_address", Any),
    (HCM, "xff_num_trusted_hops", Any),
    (HCM, "skip_xff_append", Any),
    (HCM, "generate_request_id", Any),
    (HCM, "preserve_external_request_id", Any),
    (HCM, "server_name", Any),
    (HCM, "server_header_transformation", Any),
    (HCM, "max_request_headers_kb", Any),
    (HCM, "request_timeout", Any),
    (HCM, "request_headers_timeout", Any),
    (HCM, "stream_idle_timeout", Any),
    (HCM, "drain_timeout", Any),
    (HCM, "delayed_close_timeout", Any),
    (HCM, "normalize_path", Any),
    (HCM, "merge_slashes", Any),
    (HCM, "path_with_escaped_slashes_action", Any),
    (HCM, "upgrade_configs", Any),
    (HCM_UPGRADE, "upgrade_type", Any),
    (HCM_UPGRADE, "enabled", Any),
    (HTTP_FILTER, "name", Any),
    (HTTP_FILTER, "typed_config", Types(&[RBAC_HTTP, HTTP_FAULT, CORS, ROUTER])),
    // Shared by HCM and Cluster `common_http_protocol_options` and upstream HttpProtocolOptions.
    (HTTP_OPTIONS, "idle_timeout", Any),
    (HTTP_OPTIONS, "max_headers_count", Any),
    (HTTP_OPTIONS, "max_connection_duration", Any),
    (HTTP_OPTIONS, "max_requests_per_connection", Any),
    // Routes (compile/route.rs, compile/policy.rs).
    (ROUTE_CONFIG, "name", Any),
    (ROUTE_CONFIG, "virtual_hosts", Any),
    (ROUTE_CONFIG, "request_headers_to_add", Any),
    (ROUTE_CONFIG, "request_headers_to_remove", Any),
    (ROUTE_CONFIG, "response_headers_to_add", Any),
    (ROUTE_CONFIG, "response_headers_to_remove", Any),
    (VIRTUAL_HOST, "name", Any),
    (VIRTUAL_HOST, "domains", Any),
    (VIRTUAL_HOST, "routes", Any),
    (VIRTUAL_HOST, "request_headers_to_add", Any),
    (VIRTUAL_HOST, "request_headers_to_remove", Any),
    (VIRTUAL_HOST, "response_headers_to_add", Any),
    (VIRTUAL_HOST, "response_headers_to_remove", Any),
    (VIRTUAL_HOST, "retry_policy", Any),
    (VIRTUAL_HOST, "typed_per_filter_config", Types(&[HTTP_FAULT, CORS_POLICY])),
    (ROUTE, "name", Any),
    (ROUTE, "match", Any),
    (ROUTE, "route", Any),
    (ROUTE, "redirect", Any),
    (ROUTE, "direct_response", Any),
    (ROUTE, "request_headers_to_add", Any),
    (ROUTE, "request_headers_to_remove", Any),
    (ROUTE, "response_headers_to_add", Any),
    (ROUTE, "response_headers_to_remove", Any),
    (ROUTE, "typed_per_filter_config", Types(&[HTTP_FAULT, CORS_POLICY])),
    (ROUTE_MATCH, "prefix", Any),
    (ROUTE_MATCH, "path", Any),
    (ROUTE_MATCH, "safe_regex", Any),
    (ROUTE_MATCH, "path_separated_prefix", Any),
    (ROUTE_MATCH, "connect_matcher", Any),
    (ROUTE_MATCH, "case_sensitive", Any),
    (ROUTE_MATCH, "headers", Any),
    (ROUTE_MATCH, "query_parameters", Any),
    (HEADER_MATCHER, "name", Any),
    (HEADER_MATCHER, "exact_match", Any),
    (HEADER_MATCHER, "safe_regex_match", Any),
    (HEADER_MATCHER, "range_match", Any),
    (HEADER_MATCHER, "present_match", Any),
    (HEADER_MATCHER, "prefix_match", Any),
    (HEADER_MATCHER, "suffix_match", Any),
    (HEADER_MATCHER, "contains_match", Any),
    (HEADER_MATCHER, "string_match", Any),
    (HEADER_MATCHER, "invert_match", Any),
    (HEADER_MATCHER, "treat_missing_header_as_empty", Any),
    (QUERY_MATCHER, "name", Any),
    (QUERY_MATCHER, "string_match", Any),
    (QUERY_MATCHER, "present_match", Any),
    (STRING_MATCHER, "exact", Any),
    (STRING_MATCHER, "prefix", Any),
    (STRING_MATCHER, "suffix", Any),
    (STRING_MATCHER, "contains", Any),
    (STRING_MATCHER, "safe_regex", Any),
    (STRING_MATCHER, "ignore_case", Any),
    (REGEX_MATCHER, "regex", Any),
    (REGEX_SUBSTITUTE, "pattern", Any),
    (REGEX_SUBSTITUTE, "substitution", Any),
    (INT64_RANGE, "start", Any),
    (INT64_RANGE, "end", Any),
    (FRACTIONAL_PERCENT, "numerator", Any),
    (FRACTIONAL_PERCENT, "denominator", Any),
    (RUNTIME_FRACTION, "default_value", Any),
    (METADATA, "filter_metadata", Any),
    (HEADER_VALUE_OPTION, "header", Any),
    (HEADER_VALUE_OPTION, "append", Any),
    (HEADER_VALUE_OPTION, "append_action", Any),
    (HEADER_VALUE_OPTION, "keep_empty_value", Any),
    (HEADER_VALUE, "key", Any),
    (HEADER_VALUE, "value", Any),
    (ROUTE_ACTION, "cluster", Any),
    (ROUTE_ACTION, "weighted_clusters", Any),
    (ROUTE_ACTION, "cluster_not_found_response_code", Enum(&["SERVICE_UNAVAILABLE"])),
    (ROUTE_ACTION, "timeout", Any),
    (ROUTE_ACTION, "idle_timeout", Any),
    (ROUTE_ACTION, "max_stream_duration", Any),
    (MAX_STREAM_DURATION, "max_stream_duration", Any),
    (MAX_STREAM_DURATION, "grpc_timeout_header_max", Any),
    (ROUTE_ACTION, "prefix_rewrite", Any),
    (ROUTE_ACTION, "regex_rewrite", Any),
    (ROUTE_ACTION, "host_rewrite_literal", Any),
    (ROUTE_ACTION, "host_rewrite_header", Any),
    (ROUTE_ACTION, "host_rewrite_path_regex", Any),
    (ROUTE_ACTION, "retry_policy", Any),
    (ROUTE_ACTION, "hash_policy", Any),
    (ROUTE_ACTION, "request_mirror_policies", Any),
    (ROUTE_ACTION, "metadata_match", Any),
    (ROUTE_ACTION, "upgrade_configs", Any),
    (ROUTE_UPGRADE, "upgrade_type", Any),
    (ROUTE_UPGRADE, "enabled", Any),
    (ROUTE_UPGRADE, "connect_config", Any),
    (WEIGHTED_CLUSTER, "clusters", Any),
    (WEIGHTED_CLUSTER, "total_weight", Any),
    (CLUSTER_WEIGHT, "name", Any),
    (CLUSTER_WEIGHT, "weight", Any),
    (CLUSTER_WEIGHT, "metadata_match", Any),
    (CLUSTER_WEIGHT, "request_headers_to_add", Any),
    (CLUSTER_WEIGHT, "request_headers_to_remove", Any),
    (CLUSTER_WEIGHT, "response_headers_to_add", Any),
    (CLUSTER_WEIGHT, "response_headers_to_remove", Any),
    (CLUSTER_WEIGHT, "host_rewrite_literal", Any),
    (RETRY_POLICY, "retry_on", Any),
    (RETRY_POLICY, "num_retries", Any),
    (RETRY_POLICY, "per_try_timeout", Any),
    (RETRY_POLICY, "per_try_idle_timeout", Any),
    (RETRY_POLICY, "retriable_status_codes", Any),
    (RETRY_POLICY, "retry_back_off", Any),
    (RETRY_POLICY, "retry_host_predicate", Any),
    (RETRY_POLICY, "host_selection_retry_max_attempts", Any),
    (RETRY_BACK_OFF, "base_interval", Any),
    (RETRY_BACK_OFF, "max_interval", Any),
    (RETRY_HOST_PREDICATE, "name", Any),
    (RETRY_HOST_PREDICATE, "typed_config", Types(&[PREVIOUS_HOSTS])),
    (HASH_POLICY, "header", Any),
    (HASH_POLICY, "cookie", Any),
    (HASH_POLICY, "connection_properties", Any),
    (HASH_POLICY, "query_parameter", Any),
    (HASH_POLICY, "terminal", Any),
    (HASH_HEADER, "header_name", Any),
    (HASH_COOKIE, "name", Any),
    (HASH_COOKIE, "ttl", Any),
    (HASH_COOKIE, "path", Any),
    (HASH_CONNECTION, "source_ip", Any),
    (HASH_QUERY, "name", Any),
    (MIRROR_POLICY, "cluster", Any),
    (MIRROR_POLICY, "runtime_fraction", Any),
    (REDIRECT, "scheme_redirect", Any),
    (REDIRECT, "https_redirect", Any),
    (REDIRECT, "host_redirect", Any),
    (REDIRECT, "port_redirect", Any),
    (REDIRECT, "path_redirect", Any),
    (REDIRECT, "prefix_rewrite", Any),
    (REDIRECT, "regex_rewrite", Any),
    (REDIRECT, "response_code", Any),
    (REDIRECT, "strip_query", Any),
    (DIRECT_RESPONSE, "status", Any),
    (DIRECT_RESPONSE, "body", Any),
    (DATA_SOURCE, "inline_string", Any),
    (DATA_SOURCE, "inline_bytes", Any),
    (DATA_SOURCE, "filename", Any),
    // Fault filter (filter config and per-route overrides): fixed or header-controlled
    // delay and abort. Runtime keys, rate limits and upstream_cluster are refused.
    (HTTP_FAULT, "delay", Any),
    (HTTP_FAULT, "abort", Any),
    (HTTP_FAULT, "headers", Any),
    (HTTP_FAULT, "max_active_faults", Any),
    (FAULT_DELAY, "fixed_delay", Any),
    (FAULT_DELAY, "header_delay", Any),
    (FAULT_DELAY, "percentage", Any),
    (FAULT_ABORT, "http_status", Any),
    (FAULT_ABORT, "grpc_status", Any),
    (FAULT_ABORT, "header_abort", Any),
    (FAULT_ABORT, "percentage", Any),
    // CORS filter (empty `Cors`) and its per-route policy.
    (CORS_POLICY, "allow_origin_string_match", Any),
    (CORS_POLICY, "allow_methods", Any),
    (CORS_POLICY, "allow_headers", Any),
    (CORS_POLICY, "expose_headers", Any),
    (CORS_POLICY, "max_age", Any),
    (CORS_POLICY, "allow_credentials", Any),
    (CORS_POLICY, "filter_enabled", Any),
    (CORS_POLICY, "forward_not_matching_preflights", True),
    // TCP proxy to one cluster, or to weighted clusters (one picked per connection).
    (TCP_PROXY, "stat_prefix", Any),
    (TCP_PROXY, "cluster", Any),
    (TCP_PROXY, "weighted_clusters", Any),
    (TCP_WEIGHTED, "clusters", Any),
    (TCP_CLUSTER_WEIGHT, "name", Any),
    (TCP_CLUSTER_WEIGHT, "weight", Any),
    (TCP_PROXY, "idle_timeout", Any),
    (TCP_PROXY, "max_connect_attempts", Any),
    // Clusters: STATIC, and EDS over ADS (endpoints from the ClusterLoadAssignment named
    // service_name, or else the cluster's name; compile/eds.rs). dns_lookup_family means
    // nothing for either: harmless.
    (CLUSTER, "name", Any),
    (CLUSTER, "type", Enum(&["STATIC", "EDS"])),
    (CLUSTER, "eds_cluster_config", Any),
    (EDS_CLUSTER, "eds_config", Any),
    (EDS_CLUSTER, "service_name", Any),
    (CLUSTER, "connect_timeout", Any),
    (CLUSTER, "lb_policy", Enum(&["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"])),
    (CLUSTER, "least_request_lb_config", Any),
    (CLUSTER, "ring_hash_lb_config", Any),
    (CLUSTER, "maglev_lb_config", Any),
    (CLUSTER, "common_lb_config", Any),
    (CLUSTER, "lb_subset_config", Any),
    (CLUSTER, "load_assignment", Any),
    (CLUSTER, "circuit_breakers", Any),
    (CLUSTER, "outlier_detection", Any),
    (CLUSTER, "health_checks", Any),
    (CLUSTER, "per_connection_buffer_limit_bytes", Any),
    (CLUSTER, "common_http_protocol_options", Any),
    (CLUSTER, "typed_extension_protocol_options", KeyedTypes(&[UPSTREAM_HTTP])),
    (CLUSTER, "upstream_connection_options", Any),
    (CLUSTER, "transport_socket", Any),
    (CLUSTER, "http2_protocol_options", Any),
    (CLUSTER, "dns_lookup_family", Any),
    // Load balancing. Ring hash's hash_function is refused: Spar's ring hashes hosts its own
    // way (spar-cluster `balance.rs`), so neither XX_HASH nor MURMUR_HASH_2 would be true.
    (LEAST_REQUEST, "choice_count", Any),
    (RING_HASH, "minimum_ring_size", Any),
    (RING_HASH, "maximum_ring_size", Any),
    (MAGLEV, "table_size", Any),
    (COMMON_LB, "healthy_panic_threshold", Any),
    (COMMON_LB, "locality_weighted_lb_config", Any),
    (PERCENT, "value", Any),
    (LB_SUBSET, "fallback_policy", Enum(&["NO_FALLBACK", "ANY_ENDPOINT", "DEFAULT_SUBSET"])),
    (LB_SUBSET, "default_subset", Any),
    (LB_SUBSET, "subset_selectors", Any),
    (LB_SUBSET_SELECTOR, "keys", Any),
    // Endpoints, inline (load_assignment) or over EDS: priorities, localities, weights,
    // configured health, envoy.lb metadata (other filter_metadata namespaces are refused by
    // compile). A ClusterLoadAssignment's `policy` (drop_overloads, overprovisioning) and
    // `named_endpoints` are refused.
    (LOAD_ASSIGNMENT, "cluster_name", Any),
    (LOAD_ASSIGNMENT, "endpoints", Any),
    (LOCALITY_ENDPOINTS, "lb_endpoints", Any),
    (LOCALITY_ENDPOINTS, "locality", Any),
    (LOCALITY_ENDPOINTS, "load_balancing_weight", Any),
    (LOCALITY_ENDPOINTS, "priority", Any),
    (LB_ENDPOINT, "endpoint", Any),
    (LB_ENDPOINT, "load_balancing_weight", Any),
    (LB_ENDPOINT, "health_status", Any),
    (LB_ENDPOINT, "metadata", Any),
    (ENDPOINT, "address", Any),
    // Circuit breakers. HIGH is kept but never applies: no route is HIGH priority.
    (CIRCUIT_BREAKERS, "thresholds", Any),
    (THRESHOLDS, "priority", Enum(&["DEFAULT", "HIGH"])),
    (THRESHOLDS, "max_connections", Any),
    (THRESHOLDS, "max_pending_requests", Any),
    (THRESHOLDS, "max_requests", Any),
    (THRESHOLDS, "max_retries", Any),
    (THRESHOLDS, "retry_budget", Any),
    (RETRY_BUDGET, "budget_percent", Any),
    (RETRY_BUDGET, "min_retry_concurrency", Any),
    // Outlier detection: consecutive detectors. The success-rate / failure-percentage
    // enforcing fields are listed so that compile can accept 0 and refuse anything else.
    (OUTLIER, "consecutive_5xx", Any),
    (OUTLIER, "interval", Any),
    (OUTLIER, "base_ejection_time", Any),
    (OUTLIER, "max_ejection_time", Any),
    (OUTLIER, "max_ejection_time_jitter", Any),
    (OUTLIER, "max_ejection_percent", Any),
    (OUTLIER, "enforcing_consecutive_5xx", Any),
    (OUTLIER, "consecutive_gateway_failure", Any),
    (OUTLIER, "enforcing_consecutive_gateway_failure", Any),
    (OUTLIER, "split_external_local_origin_errors", Any),
    (OUTLIER, "consecutive_local_origin_failure", Any),
    (OUTLIER, "enforcing_consecutive_local_origin_failure", Any),
    (OUTLIER, "enforcing_success_rate", Any),
    (OUTLIER, "enforcing_local_origin_success_rate", Any),
    (OUTLIER, "enforcing_failure_percentage", Any),
    (OUTLIER, "enforcing_failure_percentage_local_origin", Any),
    // Active health checks: HTTP/1.1 GET and TCP.
    (HEALTH_CHECK, "timeout", Any),
    (HEALTH_CHECK, "interval", Any),
    (HEALTH_CHECK, "interval_jitter", Any),
    (HEALTH_CHECK, "unhealthy_threshold", Any),
    (HEALTH_CHECK, "healthy_threshold", Any),
    (HEALTH_CHECK, "http_health_check", Any),
    (HEALTH_CHECK, "tcp_health_check", Any),
    (HTTP_HEALTH_CHECK, "path", Any),
    (HTTP_HEALTH_CHECK, "host", Any),
    (HTTP_HEALTH_CHECK, "expected_statuses", Any),
    (TCP_HEALTH_CHECK, "send", Any),
    (TCP_HEALTH_CHECK, "receive", Any),
    (PAYLOAD, "text", Any),
    (PAYLOAD, "binary", Any),
    // Upstream HTTP/1.1 with default options.
    (UPSTREAM_HTTP, "explicit_http_config", Any),
    (UPSTREAM_HTTP, "common_http_protocol_options", Any),
    (EXPLICIT_HTTP, "http_protocol_options", Any),
    (EXPLICIT_HTTP, "http2_protocol_options", Any),
    (CONNECTION_OPTIONS, "tcp_keepalive", Any),
    (TCP_KEEPALIVE, "keepalive_probes", Any),
    (TCP_KEEPALIVE, "keepalive_time", Any),
    (TCP_KEEPALIVE, "keepalive_interval", Any),
];

/// The rule for `field` of `message`, `None` when the field is not supported.
pub(crate) fn rule(message: &str, field: &str) -> Option<Rule> {
    static INDEX: OnceLock<HashMap<(&'static str, &'static str), Rule>> = OnceLock::new();
    INDEX
        .get_or_init(|| FIELDS.iter().map(|&(m, f, r)| ((m, f), r)).collect())
        .get(&(message, field))
        .copied()
}
