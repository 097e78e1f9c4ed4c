//! Semantic errors (all reported at once, with path and line) and Envoy's defaults.

use std::time::Duration;

use spar_cluster::ClusterId;

use crate::snapshot::*;
use crate::test_support::*;

const L0: &str = "static_resources.listeners[0]";
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const VH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";
const TCP: &str = "static_resources.listeners[1].filter_chains[0].filters[0].typed_config";
const C: &str = "static_resources.clusters[0]";

/// The first route of the first virtual host, and its forward action.
fn first_route(h: &HttpSettings) -> (&spar_route::Route, &spar_route::RouteAction) {
    let r = &h.routes.virtual_hosts()[0].routes[0];
    match &r.action {
        spar_route::Action::Forward(a) => (r, a),
        other => panic!("not a forward action: {other:?}"),
    }
}

fn http(s: &Snapshot) -> &HttpSettings {
    match s.listeners.first().map(|l| &l.chains[0].kind) {
        Some(ListenerKind::Http(h)) => h,
        other => panic!("listener 0 is not HTTP: {other:?}"),
    }
}

fn tcp(s: &Snapshot) -> &TcpSettings {
    match s.listeners.get(1).map(|l| &l.chains[0].kind) {
        Some(ListenerKind::Tcp(t)) => t,
        other => panic!("listener 1 is not TCP: {other:?}"),
    }
}

#[test]
fn semantic_errors_have_path_and_line() {
    let second_vhost = "- name: vh2\n  domains: [\"A.example.com\", \"a.example.com\"]\n  routes: [{match: {prefix: /}, route: {cluster: backend}}]";
    // (edit, needle on the error line, path, message part)
    let cases: Vec<(String, &str, String, &str)> = vec![
        (BASE.replace("cluster: backend\n                  #ACTION", "cluster: nowhere"), "cluster: nowhere", format!("{VH}.routes[0].route.cluster"), "cluster `nowhere` is not defined in static_resources.clusters"),
        (BASE.replace("cluster: backend\n          #TCP", "cluster: gone"), "cluster: gone", format!("{TCP}.cluster"), "cluster `gone` is not defined"),
        (with(&[("#LISTENERS", "- name: http # dup\n  address: {socket_address: {address: 0.0.0.0, port_value: 1}}\n  filter_chains: [{filters: [{name: t, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: backend}}]}]")]), "- name: http # dup", "static_resources.listeners[2].name".into(), "duplicate listener name `http` (first defined at static_resources.listeners[0])"),
        (with(&[("#CLUSTERS", "- name: backend # dup")]), "- name: backend # dup", "static_resources.clusters[1].name".into(), "duplicate cluster name `backend`"),
        (BASE.replace("port_value: 10001", "port_value: 10000"), "# tcp address", "static_resources.listeners[1].address".into(), "address 0.0.0.0:10000 is already used by static_resources.listeners[0]"),
        (BASE.replace("address: 127.0.0.1, port_value: 8080", "address: backend.local, port_value: 8080"), "backend.local", format!("{C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"), "`backend.local` is not an IP address"),
        (BASE.replace("address: 0.0.0.0\n", "address: localhost\n"), "localhost", format!("{L0}.address.socket_address.address"), "not an IP address"),
        (BASE.replace("port_value: 8080", "port_value: 0"), "port_value: 0", format!("{C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"), "port 0 is not allowed"),
        (BASE.replace("port_value: 8080", "port_value: 70000"), "70000", format!("{C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"), "port 70000 is out of range (1-65535)"),
        (BASE.replace("port_value: 15000", "port_value: 65536"), "65536", "admin.address.socket_address.port_value".into(), "out of range"),
        (BASE.replace("domains: [\"*\"]", "domains: [\"foo.*.com\"]"), "foo.*.com", format!("{VH}.domains[0]"), "one wildcard, only at its start"),
        (BASE.replace("domains: [\"*\"]", "domains: [\"*\", \"**\"]"), "\"**\"", format!("{VH}.domains[1]"), "one wildcard"),
        (BASE.replace("domains: [\"*\"]", "domains: [\"\"]"), "domains: [\"\"]", format!("{VH}.domains[0]"), "must not be empty"),
        (BASE.replace("domains: [\"*\"]", "domains: []"), "domains: []", format!("{VH}.domains"), "at least one domain"),
        (with(&[("#VHOSTS", second_vhost)]), "A.example.com", format!("{HCM}.route_config.virtual_hosts[1].domains[1]"), "duplicate domain `a.example.com` (also at"),
        (BASE.replace("domains: [\"*\"]", "domains: [\"x.com\"]").replace("#VHOSTS", "- {name: other, domains: [\"X.COM\"]}"), "X.COM", format!("{HCM}.route_config.virtual_hosts[1].domains[0]"), "duplicate domain `X.COM`"),
        (BASE.replace("                route:\n                  cluster: backend\n", ""), "- match:", format!("{VH}.routes[0]"), "route has no action"),
        (BASE.replace("                  prefix: /\n", ""), "- match:", format!("{VH}.routes[0].match"), "match is required"),
        (BASE.replace("                  prefix: /\n", "                  case_sensitive: true\n"), "- match:", format!("{VH}.routes[0].match"), "match needs prefix, path, safe_regex, path_separated_prefix or connect_matcher"),
        (BASE.replace("    filter_chains:\n    - filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config: # tcp\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: tcp\n          cluster: backend\n          #TCP\n", ""), "- name: tcp", "static_resources.listeners[1].filter_chains".into(), "listener has no filter chain"),
        (with(&[("#FILTERS", "- name: second\n  typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: backend}")]), "typed_config:", HCM.to_owned(), "only RBAC filters (envoy.extensions.filters.network.rbac.v3.RBAC) may come before the last network filter"),
        (BASE.replace("          stat_prefix: http\n", ""), "typed_config:", format!("{HCM}.stat_prefix"), "stat_prefix is required"),
        (BASE.replace("          stat_prefix: tcp\n", ""), "typed_config: # tcp", format!("{TCP}.stat_prefix"), "stat_prefix is required"),
        (with(&[("#HTTP_FILTERS", "- name: envoy.filters.http.router # again")]), "# again", format!("{HCM}.http_filters[1]"), "the router filter is given twice"),
        (with(&[("#HTTP_FILTERS", "- name: envoy.filters.http.cors")]), "http.cors", format!("{HCM}.http_filters[1]"), "the router filter must be the last"),
        (with(&[("#HTTP_FILTERS", "- name: lua")]), "name: lua", format!("{HCM}.http_filters[1]"), "only the RBAC, fault (typed_config HTTPFault), CORS and router filters"),
        (with(&[("#TCP", "max_connect_attempts: 0")]), "max_connect_attempts", format!("{TCP}.max_connect_attempts"), "at least 1"),
        (BASE.replace("cluster: backend\n          #TCP", "weighted_clusters: {clusters: [{name: backend, weight: 0}]}"), "weighted_clusters", format!("{TCP}.weighted_clusters.clusters[0].weight"), "at least 1"),
        (BASE.replace("cluster: backend\n          #TCP", "weighted_clusters: {clusters: [{name: backend, weight: 1}, {name: gone, weight: 1}]}"), "weighted_clusters", format!("{TCP}.weighted_clusters.clusters[1].name"), "cluster `gone` is not defined"),
        (BASE.replace("cluster: backend\n          #TCP", "weighted_clusters: {clusters: []}"), "weighted_clusters", format!("{TCP}.weighted_clusters.clusters"), "at least one cluster"),
        (with(&[("#LB_ENDPOINT", "load_balancing_weight: 0")]), "load_balancing_weight", format!("{C}.load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight"), "at least 1"),
        (BASE.replace("connect_timeout: 1s", "connect_timeout: 0s"), "connect_timeout", format!("{C}.connect_timeout"), "greater than 0s"),
        (with(&[("#HCM", "request_timeout: -1s")]), "request_timeout", format!("{HCM}.request_timeout"), "between 0s and"),
        (with(&[("#HCM", "max_request_headers_kb: 9000")]), "max_request_headers_kb", format!("{HCM}.max_request_headers_kb"), "from 1 to 8192"),
        (with(&[("#HCM", "common_http_protocol_options: {max_headers_count: 0}")]), "max_headers_count", format!("{HCM}.common_http_protocol_options.max_headers_count"), "at least 1"),
        (with(&[("#CLUSTER", "circuit_breakers: {thresholds: [{max_connections: 1}, {max_connections: 2}]}")]), "circuit_breakers", format!("{C}.circuit_breakers.thresholds[1]"), "given twice"),
        (with(&[("#CLUSTER", "common_http_protocol_options: {idle_timeout: 1s}\ntyped_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n    explicit_http_config: {http_protocol_options: {}}\n    common_http_protocol_options: {idle_timeout: 2s}")]), "common_http_protocol_options: {idle_timeout: 2s}", format!("{C}.typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.common_http_protocol_options"), "set both"),
        (with(&[("#ROUTES", "- match: {prefix: /old}\n  direct_response: {status: 200, body: {filename: /etc/passwd}}")]), "direct_response", format!("{VH}.routes[1].direct_response.body"), "only inline_string and inline_bytes"),
        (with(&[("#CLUSTER", "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n    common_http_protocol_options: {idle_timeout: 2s}")]), "envoy.extensions.upstreams.http.v3.HttpProtocolOptions:", format!("{C}.typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions"), "only explicit_http_config is supported"),
        (with(&[("#BOOTSTRAP", "layered_runtime:\n  layers:\n  - name: s\n    static_layer: {envoy.resource_limits.listener.nope.connection_limit: 5}")]), "listener.nope", "layered_runtime.layers[0].static_layer.envoy.resource_limits.listener.nope.connection_limit".into(), "no listener is named `nope`"),
        (with(&[("#BOOTSTRAP", "layered_runtime:\n  layers:\n  - name: s\n    static_layer: {envoy.resource_limits.listener.http.connection_limit: 1.5}")]), "listener.http", "layered_runtime.layers[0].static_layer.envoy.resource_limits.listener.http.connection_limit".into(), "whole number"),
        (with(&[("#BOOTSTRAP", "layered_runtime:\n  layers:\n  - name: s\n    static_layer: {envoy.resource_limits.listener.http.connection_limit: \"10\"}")]), "listener.http", "layered_runtime.layers[0].static_layer.envoy.resource_limits.listener.http.connection_limit".into(), "whole number"),
    ];
    for (text, needle, path, message) in cases {
        assert_ne!(text, BASE, "edit did not apply for {path}");
        let needle_line = needle.trim_end_matches('\n');
        let errors = compile_errors(&text);
        assert_one(&errors, &text, needle_line, &path, message);
    }
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = BASE
        .replacen("address: 0.0.0.0\n", "address: localhost\n", 1)
        .replace("cluster: backend\n                  #ACTION", "cluster: a")
        .replace("cluster: backend\n          #TCP", "cluster: b")
        .replace("port_value: 8080", "port_value: 99999");
    let errors = compile_errors(&text);
    let got: Vec<(String, Option<usize>)> = errors
        .iter()
        .map(|e| (e.path.to_string(), e.line))
        .collect();
    let want = vec![
        (
            format!("{L0}.address.socket_address.address"),
            Some(line_of(&text, "localhost")),
        ),
        (
            format!("{VH}.routes[0].route.cluster"),
            Some(line_of(&text, "cluster: a")),
        ),
        (format!("{TCP}.cluster"), Some(line_of(&text, "cluster: b"))),
        (
            format!(
                "{C}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"
            ),
            Some(line_of(&text, "99999")),
        ),
    ];
    assert_eq!(got, want, "{}", show(&errors));
    let shown = crate::ConfigErrors(errors).to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(
        shown.lines().all(|l| l.starts_with("bootstrap.yaml:")),
        "{shown}"
    );
}

#[test]
fn tcp_weighted_clusters_pick_by_weight() {
    let text = BASE
        .replace(
            "cluster: backend\n          #TCP",
            "weighted_clusters: {clusters: [{name: backend, weight: 1}, {name: second, weight: 3}]}",
        )
        .replace(
            "  #CLUSTERS",
            "  - name: second\n    connect_timeout: 1s\n    load_assignment: {cluster_name: second}",
        );
    let s = compiled(&text);
    let t = tcp(&s);
    let (backend, second) = (ClusterId(0), ClusterId(1));
    assert_eq!(t.clusters, vec![(backend, 1), (second, 3)]);
    // One draw in four goes to the first cluster.
    let picks: Vec<ClusterId> = (0..8).map(|r| t.pick(r)).collect();
    assert_eq!(picks.iter().filter(|c| **c == backend).count(), 2);
    assert_eq!(
        (t.pick(0), t.pick(1), t.pick(3), t.pick(4)),
        (backend, second, second, backend)
    );
}

#[test]
fn envoy_defaults() {
    let s = compiled(BASE);
    let h = http(&s);
    assert_eq!(h.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(h.request_headers_timeout, Some(Duration::from_secs(10))); // Spar's default
    assert_eq!(h.request_timeout, None);
    assert_eq!(h.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(h.drain_timeout, Duration::from_secs(5));
    assert_eq!(h.delayed_close_timeout, Some(Duration::from_secs(1)));
    assert_eq!(h.max_request_headers_kb, 60);
    assert_eq!(h.max_headers_count, 100);
    assert_eq!(h.max_requests_per_connection, None);
    assert_eq!(h.max_connection_duration, None);
    assert!(h.generate_request_id);
    assert!(!h.use_remote_address && !h.skip_xff_append && !h.preserve_external_request_id);
    assert_eq!(h.server_name, None);
    assert_eq!(
        h.server_header_transformation,
        ServerHeaderTransformation::Overwrite
    );
    assert_eq!(h.escaped_slashes, EscapedSlashesAction::KeepUnchanged);
    let (r, a) = first_route(h);
    assert_eq!(
        (a.timeout, r.r#match.case_sensitive),
        (Some(Duration::from_secs(15)), true)
    );
    assert!(h.fault.is_none() && !h.cors_enabled);

    let t = tcp(&s);
    assert_eq!(
        (t.idle_timeout, t.max_connect_attempts),
        (Some(Duration::from_secs(3600)), 1)
    );

    let l = &s.listeners[0];
    assert_eq!((l.connection_limit, l.buffer_limit_bytes), (None, 1 << 20));

    let c = s.cluster(ClusterId(0));
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
    assert_eq!(c.thresholds, spar_cluster::Thresholds::default());
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(
        (c.max_requests_per_connection, c.max_connection_duration),
        (None, None)
    );
    assert_eq!((c.max_headers_count, c.buffer_limit_bytes), (100, 1 << 20));
    assert_eq!(c.tcp_keepalive, None);
    assert_eq!(
        c.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(),
        [1]
    );

    let s = compiled(&BASE.replace("connect_timeout: 1s\n", ""));
    assert_eq!(
        s.cluster(ClusterId(0)).connect_timeout,
        Duration::from_secs(5)
    );
}

#[test]
fn zero_timeouts_disable() {
    let text = with(&[
        (
            "#HCM",
            "common_http_protocol_options: {idle_timeout: 0s, max_connection_duration: 0s, max_requests_per_connection: 0}\nrequest_headers_timeout: 0s\nrequest_timeout: 0s\nstream_idle_timeout: 0s\ndrain_timeout: 0s\ndelayed_close_timeout: 0s",
        ),
        ("#ACTION", "timeout: 0s"),
        ("#TCP", "idle_timeout: 0s"),
        (
            "#CLUSTER",
            "common_http_protocol_options: {idle_timeout: 0s}",
        ),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    let timeouts = [
        h.idle_timeout,
        h.request_headers_timeout,
        h.request_timeout,
        h.stream_idle_timeout,
        h.delayed_close_timeout,
        h.max_connection_duration,
    ];
    assert_eq!(timeouts, [None; 6]);
    assert_eq!(h.drain_timeout, Duration::ZERO);
    assert_eq!(h.max_requests_per_connection, None);
    assert_eq!(first_route(h).1.timeout, None);
    assert_eq!(tcp(&s).idle_timeout, None);
    assert_eq!(s.cluster(ClusterId(0)).idle_timeout, None);
}

#[test]
fn settings_are_carried_over() {
    let text = with(&[
        (
            "#HCM",
            "generate_request_id: false\nmax_request_headers_kb: 8192",
        ),
        ("#MATCH", "case_sensitive: false"),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    assert!(!h.generate_request_id);
    assert_eq!(h.max_request_headers_kb, 8192);
    assert!(!first_route(h).0.r#match.case_sensitive);
}

#[test]
fn later_runtime_layers_override() {
    let text = with(&[(
        "#BOOTSTRAP",
        "layered_runtime:\n  layers:\n  - name: a\n    static_layer: {envoy.resource_limits.listener.tcp.connection_limit: 1}\n  - name: b\n    static_layer: {envoy.resource_limits.listener.tcp.connection_limit: 2}",
    )]);
    let s = compiled(&text);
    assert_eq!(s.listeners[1].connection_limit, Some(2));
    assert_eq!(s.listeners[0].connection_limit, None);
}

#[test]
fn snapshot_lookups() {
    let s = compiled(&with(&[("#CLUSTERS", "- name: second")]));
    assert_eq!(s.cluster_by_name("second"), Some(ClusterId(1)));
    assert_eq!(s.cluster_by_name("missing"), None);
    assert_eq!(s.cluster(ClusterId(1)).name, "second");
    assert!(s.cluster(ClusterId(1)).endpoints.is_empty());
    assert_eq!(
        s.config_dump["configs"][0]["bootstrap"]["static_resources"]["clusters"][1]["name"],
        "second"
    );
}

#[test]
fn errors_without_a_file_have_no_line() {
    let mut envoy = loaded(BASE).envoy;
    if let Some(sr) = envoy.static_resources.as_mut() {
        sr.clusters.clear();
    }
    let b = match crate::Bootstrap::from_envoy(envoy) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let Err(e) = crate::compile(&b, 1) else {
        panic!("should not compile")
    };
    let lines: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{VH}.routes[0].route.cluster: cluster `backend` is not defined in static_resources.clusters"
            ),
            format!("{TCP}.cluster: cluster `backend` is not defined in static_resources.clusters"),
        ]
    );
}

#[test]
fn fields_not_enforced_yet_are_refused_when_set() {
    for (field, yaml) in [
        ("server_name", "server_name: spar"),
        (
            "server_header_transformation",
            "server_header_transformation: PASS_THROUGH",
        ),
        ("normalize_path", "normalize_path: true"),
        ("merge_slashes", "merge_slashes: true"),
        (
            "path_with_escaped_slashes_action",
            "path_with_escaped_slashes_action: REJECT_REQUEST",
        ),
        ("request_timeout", "request_timeout: 30s"),
    ] {
        let text = with(&[("#HCM", yaml)]);
        let errors = compile_errors(&text);
        assert_eq!(errors.len(), 1, "{field}: {}", show(&errors));
        assert_eq!(errors[0].path.to_string(), format!("{HCM}.{field}"));
        assert!(
            errors[0].message.contains("not enforced by spar-proxy yet"),
            "{}",
            errors[0].message
        );
    }
}

#[test]
fn trusted_hops_reach_the_settings() {
    let text = with(&[("#HCM", "use_remote_address: true\nxff_num_trusted_hops: 2")]);
    let s = compiled(&text);
    assert!(http(&s).use_remote_address);
    assert_eq!(http(&s).xff_num_trusted_hops, 2);
}

#[test]
fn upgrade_configs_on_the_manager_and_the_route() {
    let text = with(&[
        (
            "#HCM",
            "upgrade_configs: [{ upgrade_type: WebSocket }, { upgrade_type: h2c, enabled: false }]",
        ),
        (
            "#ACTION",
            "upgrade_configs: [{ upgrade_type: websocket, enabled: false }]",
        ),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    assert_eq!(
        h.upgrades,
        [("websocket".to_owned(), true), ("h2c".to_owned(), false)]
    );
    assert_eq!(first_route(h).1.upgrades, [("websocket".to_owned(), false)]);
    // CONNECT: enabled on the manager, answered by the route with connect_config.
    let text = with(&[
        ("#HCM", "upgrade_configs: [{ upgrade_type: CONNECT }]"),
        (
            "#ACTION",
            "upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }]",
        ),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    assert_eq!(h.upgrades, [("connect".to_owned(), true)]);
    assert!(first_route(h).1.connect_terminate);
    // connect_config on another upgrade type is an error.
    let errors = compile_errors(&with(&[(
        "#ACTION",
        "upgrade_configs: [{ upgrade_type: websocket, connect_config: {} }]",
    )]));
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert!(errors[0].message.contains("only for upgrade_type CONNECT"));
}

#[test]
fn ads_source_comes_from_a_static_cluster() {
    let ads = "dynamic_resources:\n  ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: backend } }] }\n  cds_config: { ads: {}, resource_api_version: V3 }\n  lds_config: { ads: {} }";
    let s = compiled(&with(&[("#BOOTSTRAP", ads)]));
    let a = s.ads.expect("ads");
    assert_eq!(a.cluster, "backend");
    assert_eq!(a.address.ip().to_string(), "127.0.0.1");
    // Clusters over ADS but listeners from nowhere: refused.
    let half = ads.replace("  lds_config: { ads: {} }", "");
    let errors = compile_errors(&with(&[("#BOOTSTRAP", &half)]));
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert_eq!(errors[0].path.to_string(), "dynamic_resources.lds_config");
    // A server cluster that does not exist: refused.
    let nowhere = ads.replace("cluster_name: backend", "cluster_name: xds");
    let errors = compile_errors(&with(&[("#BOOTSTRAP", &nowhere)]));
    assert!(
        errors[0].message.contains("`xds` is not defined"),
        "{}",
        show(&errors)
    );
}

#[test]
fn dynamic_resources_are_named_in_errors() {
    let base = loaded(&with(&[]));
    let mut extra = loaded(&with(&[]))
        .envoy
        .static_resources
        .unwrap_or_default()
        .clusters;
    extra[0].name = "dyn".into();
    extra[0].connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 0,
        nanos: 0,
    });
    let Err(e) = base.compile_dynamic(&extra, &[], 2) else {
        panic!("should not compile")
    };
    assert_eq!(
        e.0[0].path.to_string(),
        "cluster `dyn`.connect_timeout",
        "{e}"
    );
    // A dynamic resource may not take a static one's name.
    extra[0].name = "backend".into();
    let Err(e) = base.compile_dynamic(&extra, &[], 2) else {
        panic!("should not compile")
    };
    assert!(e.0[0].message.contains("static cluster"), "{e}");
}

/// `http_filters` with `before` ahead of the router.
fn with_filters(before: &str) -> String {
    BASE.replace(
        "          http_filters:\n",
        &format!("          http_filters:\n{before}"),
    )
}

const RBAC_DENY_ADMIN: &str = "          - name: envoy.filters.http.rbac
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  admin: {permissions: [{url_path: {path: {prefix: /admin}}}], principals: [{any: true}]}
";

#[test]
fn rbac_filters_compile_in_order_and_refuse_what_they_cannot_enforce() {
    let allow_get = "          - name: envoy.filters.http.rbac
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                policies:
                  get: {permissions: [{header: {name: \":method\", string_match: {exact: GET}}}], principals: [{any: true}]}
";
    let s = compiled(&with_filters(&format!("{RBAC_DENY_ADMIN}{allow_get}")));
    let rbac = &http(&s).rbac;
    assert_eq!(rbac.len(), 2, "several RBAC filters, in order");
    let action = |i: usize| rbac[i].rules.as_ref().map(|r| r.action());
    assert_eq!(action(0), Some(spar_rbac::Action::Deny));
    assert_eq!(action(1), Some(spar_rbac::Action::Allow));
    assert!(http(&compiled(BASE)).rbac.is_empty());

    // What spar-rbac cannot enforce is refused with the path under the filter.
    let text = with_filters(&RBAC_DENY_ADMIN.replace(
        "{url_path: {path: {prefix: /admin}}}",
        "{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}",
    ));
    let errors = compile_errors(&text);
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert!(
        errors[0].path.as_str().starts_with(&format!(
            "{HCM}.http_filters[0].typed_config.rules.policies"
        )),
        "{}",
        show(&errors)
    );
    assert!(
        errors[0].message.contains("metadata matchers"),
        "{}",
        show(&errors)
    );

    // Authorization runs first in spar-proxy: an RBAC filter after CORS is refused.
    let cors = "          - name: envoy.filters.http.cors\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n";
    let errors = compile_errors(&with_filters(&format!("{cors}{RBAC_DENY_ADMIN}")));
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert!(
        errors[0].message.contains("RBAC filters first"),
        "{}",
        show(&errors)
    );
}

#[test]
fn sds_secrets_need_the_mesh_identity() {
    let tls = |common: &str| {
        format!(
            "transport_socket: {{name: tls, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, require_client_certificate: true, common_tls_context: {common}}}}}"
        )
    };
    // Without a mesh identity, a context naming SDS secrets is refused, and says why.
    let text = with(&[(
        "#FILTERS",
        &tls(
            "{tls_certificate_sds_secret_configs: [{name: default, sds_config: {ads: {}}}], validation_context_sds_secret_config: {name: ROOTCA}}",
        ),
    )]);
    let errors = compile_errors(&text);
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert!(
        errors[0].message.contains("SDS secret `default`"),
        "{}",
        show(&errors)
    );
    assert!(
        errors[0].message.contains("--ca-address"),
        "{}",
        show(&errors)
    );
    // Two certificate secrets: the subset check refuses the second.
    let text = with(&[(
        "#FILTERS",
        &tls("{tls_certificate_sds_secret_configs: [{name: default}, {name: other}]}"),
    )]);
    let errors = load_errors(&text);
    assert!(
        errors.iter().any(|e| e
            .path
            .as_str()
            .ends_with("tls_certificate_sds_secret_configs")),
        "{}",
        show(&errors)
    );
}

#[test]
fn network_rbac_filters_come_before_the_last_filter() {
    let rbac = "      - name: envoy.filters.network.rbac\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC, stat_prefix: tcp, rules: {action: DENY, policies: {p: {permissions: [{any: true}], principals: [{any: true}]}}}}\n";
    let tcp_filters = "    - filters:\n      - name: envoy.filters.network.tcp_proxy\n";
    // Before tcp_proxy: compiled onto the chain.
    let s = compiled(&BASE.replace(
        tcp_filters,
        &format!("    - filters:\n{rbac}      - name: envoy.filters.network.tcp_proxy\n"),
    ));
    let chain = &s.listeners[1].chains[0];
    assert_eq!(chain.rbac.len(), 1);
    assert!(matches!(chain.kind, ListenerKind::Tcp(_)));
    // Last: refused (nothing would carry the connection).
    let errors = compile_errors(&with(&[(
        "#LISTENERS",
        &format!(
            "- name: only-rbac\n  address: {{socket_address: {{address: 0.0.0.0, port_value: 10002}}}}\n  filter_chains:\n  - filters:\n{}",
            rbac.replace("      - ", "    - ")
                .replace("        typed", "      typed")
        ),
    )]));
    assert_eq!(errors.len(), 1, "{}", show(&errors));
    assert!(
        errors[0].message.contains("cannot be the last"),
        "{}",
        show(&errors)
    );
    // What spar-rbac cannot enforce is refused with its path under the filter.
    let errors = compile_errors(&BASE.replace(
        tcp_filters,
        &format!(
            "    - filters:\n{}      - name: envoy.filters.network.tcp_proxy\n",
            rbac.replace("stat_prefix: tcp,", "stat_prefix: tcp, delay_deny: 1s,")
                .replace("[{any: true}], principals", "[{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}], principals")
        ),
    ));
    assert!(
        errors.iter().any(|e| e
            .path
            .as_str()
            .contains("filters[0].typed_config.rules.policies")),
        "{}",
        show(&errors)
    );
}
