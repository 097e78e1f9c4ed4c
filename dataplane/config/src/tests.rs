//! Loading: formats, samples, parse and decode errors with file, line and path.

use std::net::SocketAddr;
use std::time::Duration;

use spar_cluster::ClusterId;

use super::*;
use crate::test_support::*;

fn http(s: &Snapshot, listener: usize) -> &HttpSettings {
    match s.listeners.get(listener).map(|l| &l.chains[0].kind) {
        Some(ListenerKind::Http(h)) => h,
        other => panic!("listener {listener} is not HTTP: {other:?}"),
    }
}

#[test]
fn sample_yaml_loads_and_compiles() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/bootstrap.yaml"
    ));
    let b = match load_bootstrap(path) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let s = match compile(&b, 7) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(s.version, 7);
    assert_eq!(s.admin, Some(SocketAddr::from(([127, 0, 0, 1], 15000))));
    let names: Vec<&str> = s.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["http_10000", "tcp_10001"]);

    let l = &s.listeners[0];
    assert_eq!(l.address, SocketAddr::from(([0, 0, 0, 0], 10000)));
    assert_eq!(l.connection_limit, Some(10000));
    assert_eq!(l.buffer_limit_bytes, 32768);
    let h = http(&s, 0);
    assert_eq!(h.stat_prefix, "ingress_http");
    assert_eq!(h.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(h.max_headers_count, 80);
    assert_eq!(h.request_headers_timeout, Some(Duration::from_secs(5)));
    assert_eq!(h.stream_idle_timeout, Some(Duration::from_millis(250)));
    assert!(h.use_remote_address);

    let web = s.cluster_by_name("web");
    let api = s.cluster_by_name("api");
    assert_eq!((web, api), (Some(ClusterId(0)), Some(ClusterId(1))));
    let route = |authority: &str, path: &str| {
        routed(&h.routes, &Req::new(authority, path))
            .map(|(c, t)| (if c == "web" { "web" } else { "api" }, t))
    };
    assert_eq!(
        route("api.example.com", "/healthz"),
        Some(("web", Some(Duration::from_secs(1))))
    );
    assert_eq!(
        route("API.example.com:10000", "/V1/users?x=1"),
        Some(("api", None))
    );
    assert_eq!(
        route("other", "/v1/"),
        Some(("web", Some(Duration::from_secs(15))))
    );

    let ListenerKind::Tcp(tcp) = &s.listeners[1].chains[0].kind else {
        panic!("listener 1 is not TCP")
    };
    assert_eq!(tcp.clusters, vec![(ClusterId(1), 1)]);
    assert_eq!(tcp.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(tcp.max_connect_attempts, 3);

    let web = s.cluster(ClusterId(0));
    assert_eq!(web.connect_timeout, Duration::from_millis(250));
    let eps: Vec<(u16, u32)> = web
        .endpoints
        .iter()
        .map(|e| (e.address.port(), e.weight))
        .collect();
    assert_eq!(eps, [(8080, 3), (8081, 1)]);
    assert_eq!(web.thresholds.max_connections, 100);
    assert_eq!(web.thresholds.max_pending_requests, 1024);
    assert_eq!(web.thresholds.max_retries, 5);
    assert_eq!(web.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(web.max_requests_per_connection, Some(1000));
    let api = s.cluster(ClusterId(1));
    assert_eq!(api.endpoints[0].address.to_string(), "[::1]:9090");
    let ka = api.tcp_keepalive.unwrap_or_default();
    assert_eq!(ka.probes, Some(3));
    assert_eq!(ka.time, Some(Duration::from_secs(30)));
    assert_eq!(ka.interval, Some(Duration::from_secs(5)));

    let dump = &s.config_dump["configs"][0];
    assert_eq!(
        dump["@type"],
        "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
    );
    let hcm = &dump["bootstrap"]["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["stream_idle_timeout"], "0.250s");
}

#[test]
fn sample_json_is_the_same_config() {
    let yaml = loaded(SAMPLE_YAML);
    let json = match load_bootstrap_str(SAMPLE_JSON, "bootstrap.json", Format::Json) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(yaml.envoy, json.envoy);
    assert_eq!(yaml.json, json.json);
    assert!(compile(&json, 1).is_ok());
}

#[test]
fn json_with_tab_indentation_loads() {
    let text = "{\n\t\"static_resources\": {\n\t\t\"clusters\": [{\"name\": \"c\"}]\n\t}\n}\n";
    let b = match load_bootstrap_str(text, "b.json", Format::Json) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(b.envoy.static_resources.map(|s| s.clusters.len()), Some(1));
}

#[test]
fn json_syntax_error_names_the_line() {
    let text = "{\n  \"admin\": {\n    \"address\": }\n}\n";
    let Err(e) = load_bootstrap_str(text, "b.json", Format::Json) else {
        panic!("should fail")
    };
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.to_string().starts_with("b.json:3: "), "{e}");
}

#[test]
fn json_duplicate_keys_are_refused() {
    let text = "{\"admin\": {},\n \"admin\": {}}";
    let Err(e) = load_bootstrap_str(text, "b.json", Format::Json) else {
        panic!("should fail")
    };
    assert_eq!(e.to_string(), "b.json:2: duplicate key `admin`");
}

#[test]
fn format_follows_the_extension() {
    let cases = [
        ("a.yaml", Some(Format::Yaml)),
        ("a.YML", Some(Format::Yaml)),
        ("a.json", Some(Format::Json)),
    ];
    for (name, want) in cases {
        assert_eq!(Format::from_path(Path::new(name)), want, "{name}");
    }
    assert_eq!(Format::from_path(Path::new("a.conf")), None);
    let Err(e) = load_bootstrap(Path::new("/nonexistent/envoy.conf")) else {
        panic!()
    };
    assert!(e.to_string().contains(".yaml, .yml or .json"), "{e}");
    let Err(e) = load_bootstrap(Path::new("/nonexistent/envoy.yaml")) else {
        panic!()
    };
    assert!(
        e.to_string()
            .starts_with("/nonexistent/envoy.yaml: cannot read"),
        "{e}"
    );
}

/// The configuration from Envoy's "Quick start" documentation, with the DNS cluster made
/// STATIC: flow-style `"@type"` keys, `typed_config` everywhere, the default router name.
#[test]
fn envoy_docs_style_sample() {
    let text = r#"
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address:
        address: 0.0.0.0
        port_value: 10000
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match:
                  prefix: "/"
                route:
                  cluster: service_envoyproxy_io
  clusters:
  - name: service_envoyproxy_io
    type: STATIC
    connect_timeout: 30s
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: service_envoyproxy_io
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: 127.0.0.1
                port_value: 8000
"#;
    let s = compiled(text);
    let h = http(&s, 0);
    let r = &h.routes.virtual_hosts()[0].routes[0];
    let cluster = match &r.action {
        spar_route::Action::Forward(a) => match &a.target {
            spar_route::Target::Cluster(c) => Some(c.id),
            spar_route::Target::Weighted(_) => None,
        },
        _ => None,
    };
    assert_eq!(cluster, Some(ClusterId(0)));
    assert_eq!(s.admin, None);
}

#[test]
fn camel_case_json_names_are_accepted() {
    let text = "staticResources:\n  clusters:\n  - name: c\n    connectTimeout: 2s\n";
    let s = compiled(text);
    assert_eq!(s.clusters[0].connect_timeout, Duration::from_secs(2));
}

#[test]
fn type_key_may_come_last() {
    let text = BASE.replace(
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: tcp\n",
        "          stat_prefix: tcp\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n",
    );
    assert_ne!(text, BASE);
    compiled(&text);
}

#[test]
fn unknown_field_gives_line_path_and_suggestion() {
    let text = with(&[("#VHOST", "domainz: [\"a.com\"]")]);
    let e = load_errors(&text);
    let path = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].domainz";
    assert_one(&e, &text, "domainz", path, "unknown field `domainz`");
    assert!(
        e[0].message
            .contains("envoy.config.route.v3.VirtualHost; did you mean `domains`?"),
        "{}",
        e[0]
    );
    let line = line_of(&text, "domainz");
    assert_eq!(
        e[0].to_string(),
        format!("bootstrap.yaml:{line}: {path}: {}", e[0].message)
    );
}

#[test]
fn decode_errors_give_line_and_path() {
    let listener = "static_resources.listeners[0]";
    let hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    // (text, needle on the error line, path, message part)
    let cases: Vec<(String, &str, String, &str)> = vec![
        (
            BASE.replace("port_value: 10000", "port_value: ten"),
            "port_value: ten",
            format!("{listener}.address.socket_address.port_value"),
            "",
        ),
        (
            with(&[("#HCM", "stream_idle_timeout: 5 minutes")]),
            "5 minutes",
            format!("{hcm}.stream_idle_timeout"),
            "",
        ),
        (
            with(&[("#HCM", "codec_type: HTTP7")]),
            "HTTP7",
            format!("{hcm}.codec_type"),
            "HTTP7",
        ),
        (
            with(&[("#LISTENER", "nme: x")]),
            "nme: x",
            format!("{listener}.nme"),
            "did you mean `name`?",
        ),
        (
            BASE.replace("v3.HttpConnectionManager", "v3.HttpConnectionManagr"),
            "HttpConnectionManagr",
            format!("{hcm}.@type"),
            "unknown type `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr`",
        ),
        (
            with(&[("#BOOTSTRAP", "static_resources: {}")]),
            "static_resources: {}",
            String::new(),
            "duplicate key",
        ),
        (
            with(&[("#ROUTE", "typo_field: 1")]),
            "typo_field",
            format!("{hcm}.route_config.virtual_hosts[0].routes[0].typo_field"),
            "unknown field",
        ),
    ];
    for (text, needle, path, message) in cases {
        let e = load_errors(&text);
        assert_one(&e, &text, needle, &path, message);
    }
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let text = BASE.replace("stat_prefix: tcp", "stat_prefix: [tcp");
    let e = load_errors(&text);
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("YAML: "), "{}", e[0]);
    assert!(
        e[0].line.is_some_and(|l| l >= line_of(&text, "[tcp")),
        "{}",
        e[0]
    );
}

#[test]
fn empty_file_is_an_empty_snapshot() {
    let s = compiled("");
    assert!(s.listeners.is_empty() && s.clusters.is_empty() && s.admin.is_none());
}

#[test]
fn aliases_work_in_bootstraps() {
    let text = BASE
        .replace(
            "socket_address: { address: 127.0.0.1, port_value: 8080 }",
            "socket_address: &ep { address: 127.0.0.1, port_value: 8080 }",
        )
        .replace(
            "#LB_ENDPOINTS",
            "- endpoint: { address: { socket_address: *ep } }",
        );
    let s = compiled(&text);
    assert_eq!(s.clusters[0].endpoints.len(), 2);
}

#[test]
fn from_envoy_checks_the_subset_without_a_file() {
    let mut envoy = loaded(BASE).envoy;
    envoy.stats_flush_interval = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 5,
        nanos: 0,
    });
    let Err(e) = Bootstrap::from_envoy(envoy.clone()) else {
        panic!("should be refused")
    };
    assert_eq!(
        e.to_string(),
        "stats_flush_interval: field not supported by spar-proxy yet"
    );
    envoy.stats_flush_interval = None;
    let b = match Bootstrap::from_envoy(envoy) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert!(b.source().is_none());
    assert!(compile(&b, 2).is_ok());
}

#[test]
fn errors_display_one_per_line() {
    let e = ConfigErrors(vec![
        ConfigError {
            file: Some("f.yaml".into()),
            line: Some(3),
            path: FieldPath::root().field("a").index(1),
            message: "m1".into(),
        },
        ConfigError {
            file: None,
            line: None,
            path: FieldPath::root(),
            message: "m2".into(),
        },
        ConfigError {
            file: Some("f.yaml".into()),
            line: None,
            path: FieldPath::root().field("b"),
            message: "m3".into(),
        },
    ]);
    assert_eq!(e.to_string(), "f.yaml:3: a[1]: m1\nm2\nf.yaml: b: m3");
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let text = format!(
        "node:\n  metadata:\n    {}x: 1{}\n",
        "a: {".repeat(80),
        "}".repeat(80)
    );
    let e = load_errors(&text);
    assert!(e[0].message.contains("nesting deeper"), "{}", e[0]);
}
