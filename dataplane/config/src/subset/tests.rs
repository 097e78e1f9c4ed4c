//! Every kind of rejection the subset check makes, with path and line asserted, plus a
//! check that the allowlist names only fields that exist.

use prost_reflect::Kind;

use crate::allowlist::{FIELDS, Rule};
use crate::descriptor;
use crate::test_support::*;

const NS: &str = "field not supported by spar-proxy yet";
const L0: &str = "static_resources.listeners[0]";
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const VH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";
const TCP: &str = "static_resources.listeners[1].filter_chains[0].filters[0].typed_config";
const C: &str = "static_resources.clusters[0]";
const UP: &str = "static_resources.clusters[0].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn upstream(body: &str) -> String {
    format!(
        "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n    {body}"
    )
}

#[test]
fn unsupported_fields_are_refused_with_path_and_line() {
    let up_h3 = upstream("explicit_http_config: {http3_protocol_options: {}}");
    let up_tcp_type = "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy # wrong type\n    stat_prefix: x";
    let up_bad_key = "typed_extension_protocol_options:\n  envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let foreign_filter = "- name: envoy.filters.http.cors\n  typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy}";
    // (marker, inserted text, needle on the error line, path, message part)
    let cases: Vec<(&str, &str, &str, String, &str)> = vec![
        (
            "#ADMIN",
            "access_log_path: /dev/null",
            "access_log_path",
            "admin.access_log_path".into(),
            NS,
        ),
        (
            "#ADMIN",
            "profile_path: /tmp/p",
            "profile_path",
            "admin.profile_path".into(),
            NS,
        ),
        (
            "#ADMIN",
            "access_log: [{name: a}]",
            "access_log:",
            "admin.access_log".into(),
            NS,
        ),
        (
            "#BOOTSTRAP",
            "stats_flush_interval: 5s",
            "stats_flush",
            "stats_flush_interval".into(),
            NS,
        ),
        (
            "#BOOTSTRAP",
            "dynamic_resources: {lds_resources_locator: x}",
            "dynamic_resources",
            "dynamic_resources.lds_resources_locator".into(),
            NS,
        ),
        (
            "#BOOTSTRAP",
            "node: {id: a, user_agent_version: v1}",
            "node:",
            "node.user_agent_version".into(),
            NS,
        ),
        (
            "#CLUSTERS",
            "secrets: [{name: s}]",
            "secrets",
            "static_resources.secrets".into(),
            NS,
        ),
        (
            "#LISTENER",
            "use_original_dst: true",
            "use_original_dst",
            format!("{L0}.use_original_dst"),
            NS,
        ),
        (
            "#LISTENER",
            "traffic_direction: INBOUND",
            "traffic_direction",
            format!("{L0}.traffic_direction"),
            NS,
        ),
        (
            "#LISTENER",
            "enable_reuse_port: false",
            "enable_reuse_port",
            format!("{L0}.enable_reuse_port"),
            "only true",
        ),
        (
            "#SOCKET",
            "protocol: UDP",
            "protocol: UDP",
            format!("{L0}.address.socket_address.protocol"),
            "UDP not supported",
        ),
        (
            "#FILTERS",
            "filter_chain_match: {source_prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}",
            "filter_chain_match",
            format!("{L0}.filter_chains[0].filter_chain_match.source_prefix_ranges"),
            NS,
        ),
        (
            "#FILTERS",
            "transport_socket_connect_timeout: 5s",
            "transport_socket_connect_timeout",
            format!("{L0}.filter_chains[0].transport_socket_connect_timeout"),
            NS,
        ),
        (
            "#HCM",
            "codec_type: HTTP3",
            "HTTP3",
            format!("{HCM}.codec_type"),
            "HTTP3 not supported by spar-proxy yet (supported: AUTO, HTTP1, HTTP2)",
        ),
        (
            "#HCM",
            "tracing: {}",
            "tracing",
            format!("{HCM}.tracing"),
            NS,
        ),
        (
            "#HCM",
            "access_log: [{name: a}]",
            "access_log",
            format!("{HCM}.access_log"),
            NS,
        ),
        (
            "#HCM",
            "add_user_agent: true",
            "add_user_agent",
            format!("{HCM}.add_user_agent"),
            NS,
        ),
        (
            "#HCM",
            "upgrade_configs: [{upgrade_type: websocket, filters: [{name: x}]}]",
            "upgrade_configs",
            format!("{HCM}.upgrade_configs[0].filters"),
            NS,
        ),
        (
            "#HCM",
            "http_protocol_options: {accept_http_10: true}",
            "accept_http_10",
            format!("{HCM}.http_protocol_options.accept_http_10"),
            NS,
        ),
        (
            "#HCM",
            "common_http_protocol_options: {headers_with_underscores_action: REJECT_REQUEST}",
            "headers_with",
            format!("{HCM}.common_http_protocol_options.headers_with_underscores_action"),
            NS,
        ),
        (
            "#VHOSTS",
            "validate_clusters: true",
            "validate_clusters",
            format!("{HCM}.route_config.validate_clusters"),
            NS,
        ),
        (
            "#VHOST",
            "require_tls: ALL",
            "require_tls",
            format!("{VH}.require_tls"),
            NS,
        ),
        (
            "#MATCH",
            "grpc: {}",
            "grpc",
            format!("{VH}.routes[0].match.grpc"),
            NS,
        ),
        (
            "#ROUTE",
            "decorator: {operation: op}",
            "decorator",
            format!("{VH}.routes[0].decorator"),
            NS,
        ),
        (
            "#ACTION",
            "auto_host_rewrite: true",
            "auto_host_rewrite",
            format!("{VH}.routes[0].route.auto_host_rewrite"),
            NS,
        ),
        (
            "#ACTION",
            "retry_policy: {retry_on: 5xx, retriable_headers: [{name: x}]}",
            "retry_policy",
            format!("{VH}.routes[0].route.retry_policy.retriable_headers"),
            NS,
        ),
        (
            "#HTTP_FILTERS",
            foreign_filter,
            "TcpProxy}",
            format!("{HCM}.http_filters[1].typed_config.@type"),
            "type envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy not supported by spar-proxy yet here (supported: envoy.extensions.filters.http.rbac.v3.RBAC, envoy.extensions.filters.http.fault.v3.HTTPFault, envoy.extensions.filters.http.cors.v3.Cors, envoy.extensions.filters.http.router.v3.Router)",
        ),
        (
            "#ROUTER",
            "suppress_envoy_headers: true",
            "suppress_envoy_headers",
            format!("{HCM}.http_filters[0].typed_config.suppress_envoy_headers"),
            NS,
        ),
        (
            "#TCP",
            "access_log: [{name: a}]",
            "access_log",
            format!("{TCP}.access_log"),
            NS,
        ),
        (
            "#TCP",
            "hash_policy: [{source_ip: {}}]",
            "hash_policy",
            format!("{TCP}.hash_policy"),
            NS,
        ),
        (
            "#CLUSTER",
            "type: STRICT_DNS",
            "STRICT_DNS",
            format!("{C}.type"),
            "STRICT_DNS not supported",
        ),
        (
            "#CLUSTER",
            "lb_policy: CLUSTER_PROVIDED",
            "CLUSTER_PROVIDED",
            format!("{C}.lb_policy"),
            "CLUSTER_PROVIDED not supported",
        ),
        (
            "#CLUSTER",
            "health_checks: [{timeout: 1s, interval: 1s, reuse_connection: false}]",
            "health_checks",
            format!("{C}.health_checks[0].reuse_connection"),
            NS,
        ),
        (
            "#CLUSTER",
            "outlier_detection: {success_rate_stdev_factor: 1900}",
            "outlier_detection",
            format!("{C}.outlier_detection.success_rate_stdev_factor"),
            NS,
        ),
        (
            "#CLUSTER",
            "transport_socket_matches: [{name: m}]",
            "transport_socket_matches",
            format!("{C}.transport_socket_matches"),
            NS,
        ),
        (
            "#CLUSTER",
            "circuit_breakers: {thresholds: [{max_connection_pools: 1}]}",
            "max_connection_pools",
            format!("{C}.circuit_breakers.thresholds[0].max_connection_pools"),
            NS,
        ),
        (
            "#CLUSTER",
            "circuit_breakers: {thresholds: [{track_remaining: true}]}",
            "track_remaining",
            format!("{C}.circuit_breakers.thresholds[0].track_remaining"),
            NS,
        ),
        (
            "#CLUSTER",
            "upstream_connection_options: {set_local_interface_name_on_upstream_connections: true}",
            "set_local",
            format!(
                "{C}.upstream_connection_options.set_local_interface_name_on_upstream_connections"
            ),
            NS,
        ),
        (
            "#CLUSTER",
            &up_h3,
            "http3_protocol_options",
            format!("{UP}.explicit_http_config.http3_protocol_options"),
            NS,
        ),
        (
            "#CLUSTER",
            up_tcp_type,
            "# wrong type",
            format!("{UP}.@type"),
            "type envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy not supported",
        ),
        (
            "#CLUSTER",
            up_bad_key,
            "TcpProtocolOptions:",
            format!(
                "{C}.typed_extension_protocol_options.envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"
            ),
            "extension envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions not supported",
        ),
        (
            "#LB_ENDPOINTS",
            "proximity: 1",
            "proximity",
            format!("{C}.load_assignment.endpoints[0].proximity"),
            NS,
        ),
        (
            "#BOOTSTRAP",
            "layered_runtime:\n  layers:\n  - name: d\n    disk_layer: {symlink_root: /srv}",
            "disk_layer",
            "layered_runtime.layers[0].disk_layer".into(),
            NS,
        ),
        (
            "#BOOTSTRAP",
            "layered_runtime:\n  layers:\n  - name: s\n    static_layer:\n      overload.global_downstream_max_connections: 100",
            "overload.global",
            "layered_runtime.layers[0].static_layer.overload.global_downstream_max_connections"
                .into(),
            "runtime key overload.global_downstream_max_connections not supported by spar-proxy yet",
        ),
    ];
    for (marker, insert, needle, path, message) in cases {
        let text = with(&[(marker, insert)]);
        let errors = load_errors(&text);
        assert_one(&errors, &text, needle, &path, message);
    }
}

#[test]
fn wrong_network_filter_type_is_refused() {
    let text = BASE.replace(
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: tcp\n          cluster: backend",
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    );
    let errors = load_errors(&text);
    assert_one(
        &errors,
        &text,
        "upstreams.http.v3.HttpProtocolOptions",
        "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.@type",
        "type envoy.extensions.upstreams.http.v3.HttpProtocolOptions not supported by spar-proxy yet here",
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = with(&[
        ("#CLUSTER", "outlier_detection: {monitors: [{name: m}]}"),
        ("#ADMIN", "profile_path: /p"),
        ("#HCM", "tracing: {}"),
    ]);
    let errors = load_errors(&text);
    let got: Vec<(String, Option<usize>)> = errors
        .iter()
        .map(|e| (e.path.to_string(), e.line))
        .collect();
    let want = vec![
        (
            "admin.profile_path".to_owned(),
            Some(line_of(&text, "profile_path")),
        ),
        (format!("{HCM}.tracing"), Some(line_of(&text, "tracing"))),
        (
            format!("{C}.outlier_detection.monitors"),
            Some(line_of(&text, "outlier_detection")),
        ),
    ];
    assert_eq!(got, want, "{}", show(&errors));
}

#[test]
fn everything_in_the_allowlist_loads() {
    let text = with(&[
        (
            "#BOOTSTRAP",
            "node:\n  id: n\n  cluster: c\n  metadata: {a: b, n: {x: 1}}\n  locality: {region: r, zone: z, sub_zone: s}\n  user_agent_name: spar\nlayered_runtime:\n  layers:\n  - name: flat\n    static_layer: {envoy.resource_limits.listener.http.connection_limit: 5}\n  - name: nested\n    static_layer: {envoy: {resource_limits: {listener: {tcp: {connection_limit: 6}}}}}",
        ),
        ("#SOCKET", "protocol: TCP"),
        (
            "#LISTENER",
            "per_connection_buffer_limit_bytes: 65536\nenable_reuse_port: true",
        ),
        ("#FILTERS", "name: chain0"),
        (
            "#HCM",
            "codec_type: HTTP1\ncommon_http_protocol_options: {idle_timeout: 1s, max_headers_count: 50, max_connection_duration: 60s, max_requests_per_connection: 10}\nhttp_protocol_options: {}\nuse_remote_address: true\nxff_num_trusted_hops: 0\nskip_xff_append: true\ngenerate_request_id: false\npreserve_external_request_id: true\nserver_name: \"\"\nserver_header_transformation: OVERWRITE\nmax_request_headers_kb: 96\nrequest_timeout: 0s\nrequest_headers_timeout: 2s\nstream_idle_timeout: 10s\ndrain_timeout: 1s\ndelayed_close_timeout: 0s\nnormalize_path: false\nmerge_slashes: false\npath_with_escaped_slashes_action: KEEP_UNCHANGED",
        ),
        ("#MATCH", "case_sensitive: false"),
        ("#ROUTE", "name: r0"),
        ("#ACTION", "timeout: 3s"),
        ("#TCP", "idle_timeout: 0s\nmax_connect_attempts: 2"),
        (
            "#CLUSTER",
            "type: STATIC\nlb_policy: ROUND_ROBIN\ndns_lookup_family: V4_ONLY\nper_connection_buffer_limit_bytes: 4096\ncircuit_breakers: {thresholds: [{priority: DEFAULT, max_connections: 1, max_pending_requests: 2, max_requests: 3, max_retries: 4}]}\nupstream_connection_options: {tcp_keepalive: {keepalive_probes: 1, keepalive_time: 2, keepalive_interval: 3}}",
        ),
        (
            "#CLUSTER",
            &upstream(
                "explicit_http_config: {http_protocol_options: {}}\n    common_http_protocol_options: {idle_timeout: 5s, max_requests_per_connection: 7, max_connection_duration: 9s, max_headers_count: 20}",
            ),
        ),
        ("#LB_ENDPOINT", "load_balancing_weight: 4"),
        (
            "#CLUSTERS",
            "- name: second\n  common_http_protocol_options: {idle_timeout: 0s}\n  load_assignment: {cluster_name: second}",
        ),
    ]);
    let s = compiled(&text);
    let limits: Vec<Option<u32>> = s.listeners.iter().map(|l| l.connection_limit).collect();
    assert_eq!(limits, [Some(5), Some(6)]);
    let c = s.cluster(spar_cluster::ClusterId(0));
    assert_eq!(c.max_headers_count, 20);
    assert_eq!(c.max_requests_per_connection, Some(7));
    assert_eq!(c.buffer_limit_bytes, 4096);
    assert_eq!(s.cluster(spar_cluster::ClusterId(1)).idle_timeout, None);
}

/// A typo in the allowlist would silently refuse a field; every row must name a real field
/// of a real message, and enum rules real enum values.
#[test]
fn allowlist_rows_name_real_fields() {
    for (message, field, rule) in FIELDS {
        let desc = match descriptor::message(message) {
            Ok(d) => d,
            Err(e) => panic!("{message}: {e}"),
        };
        let Some(f) = desc.get_field_by_name(field) else {
            panic!("{message} has no field {field}")
        };
        match (rule, f.kind()) {
            (Rule::Enum(names), Kind::Enum(e)) => {
                for n in *names {
                    assert!(
                        e.get_value_by_name(n).is_some(),
                        "{message}.{field}: no enum value {n}"
                    );
                }
            }
            (Rule::Enum(_), _) => panic!("{message}.{field} is not an enum"),
            (Rule::Types(types) | Rule::KeyedTypes(types), _) => {
                for t in *types {
                    assert!(
                        descriptor::message(t).is_ok(),
                        "{message}.{field}: unknown type {t}"
                    );
                }
            }
            _ => {}
        }
    }
}
