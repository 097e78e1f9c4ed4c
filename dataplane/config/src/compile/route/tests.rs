//! Route configuration compile tests: every supported field, and refusals with their path
//! and line.

use std::time::Duration;

use spar_route::*;

use crate::snapshot::{HttpSettings, ListenerKind, Snapshot};
use crate::test_support::*;

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const VH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";
const R0: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]";

/// The action of the base route, as it is in [`BASE`] (to replace it).
const BASE_ACTION: &str =
    "                route:\n                  cluster: backend\n                  #ACTION\n";

/// A second cluster, `other`, for the `#CLUSTERS` marker.
const OTHER: &str = "- name: other\n  connect_timeout: 1s\n  load_assignment: {cluster_name: other, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}}]}]}";

/// [`BASE`] with a second cluster `other`, the fault and CORS filters before the router,
/// and `edits` applied.
fn full(edits: &[(&str, &str)]) -> String {
    with(&[("#CLUSTERS", OTHER)])
        .replace(
            "          http_filters:\n",
            "          http_filters:\n          - name: envoy.filters.http.fault\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n              abort: {http_status: 503, percentage: {numerator: 1, denominator: HUNDRED}}\n          - name: envoy.filters.http.cors\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n",
        )
        .lines()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .pipe(|base| apply(&base, edits))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for String {}

/// `text` with `edits` inserted at their markers (as [`with`] does for [`BASE`]).
fn apply(text: &str, edits: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut replaced = false;
        for (marker, t) in edits {
            if trimmed == *marker {
                replaced = true;
                for l in t.lines() {
                    out.push_str(indent);
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn http(s: &Snapshot) -> &HttpSettings {
    match s.listeners.first().map(|l| &l.chains[0].kind) {
        Some(ListenerKind::Http(h)) => h,
        other => panic!("listener 0 is not HTTP: {other:?}"),
    }
}

fn forward(r: &Route) -> &RouteAction {
    match &r.action {
        Action::Forward(a) => a,
        other => panic!("not a forward action: {other:?}"),
    }
}

fn route_of<'h>(h: &'h HttpSettings, req: &Req) -> &'h Route {
    match h.routes.route(req) {
        Some((_, r)) => r,
        None => panic!("no route for {req:?}"),
    }
}

#[test]
fn matchers() {
    let routes = r#"- match:
    safe_regex: {regex: "/v[0-9]+/users"}
    headers:
    - {name: x-env, string_match: {exact: prod}}
    - {name: X-Canary, present_match: true, invert_match: true}
    - {name: x-num, range_match: {start: 1, end: 10}}
    - {name: ":method", exact_match: GET}
    - {name: x-opt, treat_missing_header_as_empty: true, string_match: {exact: ""}}
  route: {cluster: other}
- match:
    path_separated_prefix: /api
    case_sensitive: false
    query_parameters:
    - {name: debug, present_match: true}
    - {name: v, string_match: {safe_regex: {regex: "[0-9]+"}}}
    - {name: flag}
  route: {cluster: other}
- match: {path: /exact, headers: [{name: x-p, prefix_match: ab}, {name: x-s, suffix_match: yz}, {name: x-c, contains_match: mm}, {name: x-r, safe_regex_match: {regex: "a+"}}, {name: x-i, string_match: {prefix: AB, ignore_case: true}}]}
  route: {cluster: other}"#;
    let text = with(&[("#CLUSTERS", OTHER)]).replace(
        "              - match:\n",
        &format!("{}\n              - match:\n", indent(routes, 14)),
    );
    let s = compiled(&text);
    let h = http(&s);
    let to = |req: Req| forward(route_of(h, &req)).target.clone();
    let other = |req: Req| matches!(to(req), Target::Cluster(c) if c.name == "other");
    let r0 = Req::new("x", "/v12/users?q")
        .header("x-env", "prod")
        .header("x-num", "5");
    assert!(other(r0.clone()));
    assert!(!other(r0.clone().header("x-canary", "1")));
    assert!(!other(
        Req::new("x", "/v12/users")
            .header("x-env", "prod")
            .header("x-num", "10")
    ));
    assert!(!other(
        Req::new("x", "/v12/users/x")
            .header("x-env", "prod")
            .header("x-num", "5")
    ));
    assert!(other(Req::new("x", "/API/x?debug&v=12&flag=")));
    assert!(!other(Req::new("x", "/apix?debug&v=12&flag")));
    assert!(!other(Req::new("x", "/api?debug&v=a&flag")));
    let r2 = Req::new("x", "/exact")
        .header("x-p", "abc")
        .header("x-s", "xyz")
        .header("x-c", "1mm2")
        .header("x-r", "aaa")
        .header("x-i", "abc");
    assert!(other(r2.clone()));
    assert!(!other(r2.header("x-r", "b").pipe_first()));
    let rm = &route_of(h, &Req::new("x", "/API/a?debug&v=1&flag")).r#match;
    assert_eq!(rm.path, PathMatch::PathSeparatedPrefix("/api".into()));
    assert!(!rm.case_sensitive);
}

trait First {
    fn pipe_first(self) -> Self;
}
impl First for Req {
    /// Keeps only the first value of each header (our Req finds the first).
    fn pipe_first(mut self) -> Self {
        // Move the last-added header to the front so it wins the lookup.
        if let Some(last) = self.headers.pop() {
            self.headers.insert(0, last);
        }
        self
    }
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn forward_actions() {
    let action = r#"route:
  weighted_clusters:
    clusters:
    - name: backend
      weight: 30
      host_rewrite_literal: b.internal
      metadata_match: {filter_metadata: {envoy.lb: {version: v1, canary: true, shard: 3}}}
      request_headers_to_add: [{header: {key: x-wc, value: "1"}}]
      response_headers_to_remove: [x-secret]
    - {name: other, weight: 70}
    total_weight: 100
  timeout: 2s
  idle_timeout: 0s
  prefix_rewrite: /v2
  retry_policy:
    retry_on: "5xx,connect-failure,retriable-status-codes"
    num_retries: 3
    per_try_timeout: 0.5s
    per_try_idle_timeout: 1s
    retriable_status_codes: [503, 409]
    retry_back_off: {base_interval: 0.1s, max_interval: 2s}
    retry_host_predicate:
    - name: envoy.retry_host_predicates.previous_hosts
      typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}
    host_selection_retry_max_attempts: 5
  hash_policy:
  - {header: {header_name: X-User}}
  - {cookie: {name: lb, ttl: 60s, path: /}, terminal: true}
  - {connection_properties: {source_ip: true}}
  - {query_parameter: {name: u}}
  request_mirror_policies:
  - {cluster: other, runtime_fraction: {default_value: {numerator: 5, denominator: TEN_THOUSAND}}}
  - {cluster: backend}
  metadata_match: {filter_metadata: {envoy.lb: {stage: prod, weight: 1.5}}}
  cluster_not_found_response_code: SERVICE_UNAVAILABLE"#;
    let text = BASE.replace(BASE_ACTION, &format!("{}\n", indent(action, 16)))
        .replace("#CLUSTERS", "- {name: other, connect_timeout: 1s, load_assignment: {cluster_name: other, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}}]}]}}");
    let s = compiled(&text);
    let a = forward(route_of(http(&s), &Req::new("x", "/")));
    let Target::Weighted(w) = &a.target else {
        panic!("not weighted: {:?}", a.target)
    };
    assert_eq!(w.total, 100);
    assert_eq!(
        (w.clusters[0].cluster.name.as_str(), w.clusters[0].weight),
        ("backend", 30)
    );
    assert_eq!(
        (w.clusters[1].cluster.name.as_str(), w.clusters[1].weight),
        ("other", 70)
    );
    assert_eq!(w.clusters[0].host_rewrite.as_deref(), Some("b.internal"));
    let md = w.clusters[0].metadata_match.as_deref().expect("metadata");
    assert_eq!(
        md.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
        ["canary=true", "shard=3", "version=v1"]
    );
    assert_eq!(w.clusters[0].request_headers.add[0].name, "x-wc");
    assert_eq!(w.clusters[0].response_headers.remove, ["x-secret"]);
    assert_eq!(w.pick(29).cluster.name, "backend");
    assert_eq!(w.pick(30).cluster.name, "other");
    assert_eq!(
        (a.timeout, a.idle_timeout),
        (Some(Duration::from_secs(2)), Some(Duration::ZERO))
    );
    assert_eq!(a.prefix_rewrite.as_deref(), Some("/v2"));
    let r = a.retry.as_ref().expect("retry");
    assert_eq!(
        r.retry_on,
        RetryOn::FIVE_XX | RetryOn::CONNECT_FAILURE | RetryOn::RETRIABLE_STATUS_CODES
    );
    assert_eq!(
        (r.num_retries, r.per_try_timeout, r.per_try_idle_timeout),
        (
            3,
            Some(Duration::from_millis(500)),
            Some(Duration::from_secs(1))
        )
    );
    assert_eq!(r.retriable_status_codes, [503, 409]);
    assert_eq!(
        (r.backoff_base, r.backoff_max),
        (Duration::from_millis(100), Duration::from_secs(2))
    );
    assert!(r.retry_previous_hosts);
    assert_eq!(r.host_selection_max_attempts, 5);
    let hp: Vec<_> = a
        .hash_policy
        .iter()
        .map(|e| (e.policy.clone(), e.terminal))
        .collect();
    assert_eq!(
        hp,
        vec![
            (
                HashPolicy::Header {
                    name: "x-user".into()
                },
                false
            ),
            (
                HashPolicy::Cookie {
                    name: "lb".into(),
                    ttl: Some(Duration::from_secs(60)),
                    path: Some("/".into())
                },
                true
            ),
            (HashPolicy::SourceIp, false),
            (HashPolicy::Query { name: "u".into() }, false),
        ]
    );
    assert_eq!(a.mirrors.len(), 2);
    assert_eq!(
        (
            a.mirrors[0].cluster.name.as_str(),
            a.mirrors[0].fraction.per_million
        ),
        ("other", 500)
    );
    assert_eq!(a.mirrors[1].fraction, Fraction::ALL);
    let md = a.metadata_match.as_deref().expect("metadata");
    assert_eq!(
        (md["stage"].as_str(), md["weight"].as_str()),
        ("prod", "1.5")
    );

    // Defaults.
    let s = compiled(&with(&[("#ACTION", "retry_policy: {retry_on: reset}")]));
    let a = forward(route_of(http(&s), &Req::new("x", "/")));
    let r = a.retry.as_ref().expect("retry");
    assert_eq!(
        (
            r.num_retries,
            r.backoff_base,
            r.backoff_max,
            r.host_selection_max_attempts,
            r.retry_previous_hosts
        ),
        (
            1,
            Duration::from_millis(25),
            Duration::from_millis(250),
            1,
            false
        )
    );
    assert_eq!(
        (
            a.idle_timeout,
            a.prefix_rewrite.as_deref(),
            a.mirrors.len(),
            a.metadata_match.is_none()
        ),
        (None, None, 0, true)
    );
}

#[test]
fn rewrites_redirects_and_direct_responses() {
    let routes = r#"- match: {prefix: /re}
  route: {cluster: backend, regex_rewrite: {pattern: {regex: "^/re/(.*)$"}, substitution: "/\\1"}, host_rewrite_header: X-Host}
- match: {prefix: /hp}
  route: {cluster: backend, host_rewrite_path_regex: {pattern: {regex: "^/hp/([a-z]+).*$"}, substitution: "\\1.svc"}}
- match: {prefix: /lit}
  route: {cluster: backend, host_rewrite_literal: "lit.io:8080"}
- match: {prefix: /old}
  redirect: {https_redirect: true, prefix_rewrite: /new, response_code: PERMANENT_REDIRECT}
- match: {prefix: /moved}
  redirect: {scheme_redirect: HTTP, host_redirect: b.com, port_redirect: 8080, path_redirect: "/p?x=1", strip_query: true, response_code: FOUND}
- match: {prefix: /rx}
  redirect: {regex_rewrite: {pattern: {regex: "rx"}, substitution: "ry"}, response_code: SEE_OTHER}
- match: {prefix: /tmp}
  redirect: {response_code: TEMPORARY_REDIRECT}
- match: {path: /health}
  direct_response: {status: 200, body: {inline_string: ok}}
- match: {path: /bytes}
  direct_response: {status: 503, body: {inline_bytes: AAE=}}
- match: {path: /empty}
  direct_response: {status: 204}"#;
    let text = BASE.replace(
        "              - match:\n",
        &format!("{}\n              - match:\n", indent(routes, 14)),
    );
    let s = compiled(&text);
    let h = http(&s);
    let req = Req::new("a.com:80", "/re/x?q=1").header("x-host", "h.io");
    let r = route_of(h, &req);
    assert_eq!(r.rewritten_path(&req).as_deref(), Some(&b"/x?q=1"[..]));
    assert_eq!(
        r.rewritten_authority(&req, None).as_deref(),
        Some(&b"h.io"[..])
    );
    let req = Req::new("a.com", "/hp/tenant/x");
    assert_eq!(
        route_of(h, &req).rewritten_authority(&req, None).as_deref(),
        Some(&b"tenant.svc"[..])
    );
    let req = Req::new("a.com", "/lit");
    assert_eq!(
        route_of(h, &req).rewritten_authority(&req, None).as_deref(),
        Some(&b"lit.io:8080"[..])
    );
    let location = |path: &str| {
        let req = Req::new("a.com:80", path);
        let r = route_of(h, &req);
        match &r.action {
            Action::Redirect(rd) => (
                rd.status,
                String::from_utf8_lossy(&rd.location(&req, &r.r#match)).into_owned(),
            ),
            other => panic!("not a redirect: {other:?}"),
        }
    };
    assert_eq!(
        location("/old/a?b=1"),
        (308, "https://a.com/new/a?b=1".into())
    );
    assert_eq!(
        location("/moved?q=2"),
        (302, "http://b.com:8080/p?x=1".into())
    );
    assert_eq!(location("/rx/rx"), (303, "http://a.com:80/ry/ry".into()));
    assert_eq!(location("/tmp"), (307, "http://a.com:80/tmp".into()));
    let direct = |path: &str| match &route_of(h, &Req::new("x", path)).action {
        Action::Direct(d) => d.clone(),
        other => panic!("not direct: {other:?}"),
    };
    assert_eq!(
        direct("/health"),
        DirectResponse {
            status: 200,
            body: Some(bytes::Bytes::from_static(b"ok"))
        }
    );
    assert_eq!(
        direct("/bytes"),
        DirectResponse {
            status: 503,
            body: Some(bytes::Bytes::from_static(&[0, 1]))
        }
    );
    assert_eq!(
        direct("/empty"),
        DirectResponse {
            status: 204,
            body: None
        }
    );
}

#[test]
fn header_mutations_at_every_level() {
    let text = with(&[
        (
            "#VHOSTS",
            "request_headers_to_add: [{header: {key: x-cfg, value: \"%HOSTNAME%\"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]\nrequest_headers_to_remove: [X-Drop]\nresponse_headers_to_add: [{header: {key: x-served-by, value: spar}, append: false}]\nresponse_headers_to_remove: [server-timing]",
        ),
        (
            "#VHOST",
            "request_headers_to_add: [{header: {key: x-vh, value: \"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\"}, append_action: ADD_IF_ABSENT}]\nresponse_headers_to_remove: [x-vh-drop]",
        ),
        (
            "#ROUTE",
            "request_headers_to_add:\n- {header: {key: x-route, value: \"%REQ(x-user)%\"}, append_action: OVERWRITE_IF_EXISTS, keep_empty_value: true}\n- {header: {key: x-append, value: a}, append: true}\nresponse_headers_to_add: [{header: {key: x-r, value: \"100%%\"}}]",
        ),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    let cfg = h.routes.headers();
    assert_eq!(cfg.request.add.len(), 1);
    assert_eq!(
        (cfg.request.add[0].name.as_str(), cfg.request.add[0].action),
        ("x-cfg", AppendAction::OverwriteIfExistsOrAdd)
    );
    assert_eq!(cfg.request.remove, ["x-drop"]);
    assert_eq!(
        cfg.response.add[0].action,
        AppendAction::OverwriteIfExistsOrAdd
    );
    assert_eq!(cfg.response.remove, ["server-timing"]);
    let vh = &h.routes.virtual_hosts()[0];
    assert_eq!(vh.request_headers.add[0].action, AppendAction::AddIfAbsent);
    assert_eq!(vh.response_headers.remove, ["x-vh-drop"]);
    let r = &vh.routes[0];
    let adds: Vec<_> = r
        .request_headers
        .add
        .iter()
        .map(|a| (a.name.as_str(), a.action, a.keep_empty_value))
        .collect();
    assert_eq!(
        adds,
        [
            ("x-route", AppendAction::OverwriteIfExists, true),
            ("x-append", AppendAction::AppendIfExistsOrAdd, false)
        ]
    );
    assert_eq!(
        r.response_headers.add[0].value,
        HeaderValue::literal("100%")
    );
}

#[test]
fn fault_and_cors_filters_and_overrides() {
    let text = full(&[
        (
            "#VHOST",
            "retry_policy: {retry_on: gateway-error, num_retries: 2}\ntyped_per_filter_config:\n  envoy.filters.http.cors:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n    allow_origin_string_match: [{exact: \"https://a.com\"}, {suffix: .b.com}]\n    allow_methods: GET,POST\n    allow_headers: x-a\n    expose_headers: x-b\n    max_age: \"600\"\n    allow_credentials: true\n    filter_enabled: {default_value: {numerator: 50, denominator: HUNDRED}}\n    forward_not_matching_preflights: true",
        ),
        (
            "#ROUTE",
            "typed_per_filter_config:\n  envoy.filters.http.fault:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    delay: {header_delay: {}, percentage: {numerator: 20, denominator: TEN_THOUSAND}}\n    abort: {grpc_status: 14, percentage: {numerator: 100, denominator: HUNDRED}}\n    headers: [{name: x-fault, present_match: true}]\n    max_active_faults: 10",
        ),
    ]);
    let s = compiled(&text);
    let h = http(&s);
    assert!(h.cors_enabled);
    let f = h.fault.as_ref().expect("filter fault");
    assert_eq!(
        f.abort,
        Some(FaultAbort {
            kind: AbortKind::Http(503),
            percentage: Fraction {
                per_million: 10_000
            },
            percentage_unit: 10_000
        })
    );
    assert_eq!(
        (f.delay.as_ref(), f.headers.len(), f.max_active_faults),
        (None, 0, None)
    );
    let vh = &h.routes.virtual_hosts()[0];
    let cors = vh.cors.as_ref().expect("cors");
    assert_eq!(cors.allow_origins.len(), 2);
    assert_eq!(
        (
            cors.allow_methods.as_deref(),
            cors.allow_headers.as_deref(),
            cors.expose_headers.as_deref(),
            cors.max_age.as_deref()
        ),
        (Some("GET,POST"), Some("x-a"), Some("x-b"), Some("600"))
    );
    assert!(cors.allow_credentials);
    assert_eq!(cors.enabled.per_million, 500_000);
    assert_eq!(
        vh.retry_policy
            .as_ref()
            .map(|r| (r.retry_on, r.num_retries)),
        Some((RetryOn::GATEWAY_ERROR, 2))
    );
    let rf = vh.routes[0].fault.as_ref().expect("route fault");
    assert_eq!(
        rf.delay,
        Some(FaultDelay {
            fixed: None,
            percentage: Fraction { per_million: 2_000 },
            percentage_unit: 100
        })
    );
    assert_eq!(rf.abort.as_ref().map(|a| a.kind), Some(AbortKind::Grpc(14)));
    assert_eq!((rf.headers.len(), rf.max_active_faults), (1, Some(10)));
    assert!(vh.routes[0].cors.is_none() && vh.fault.is_none());
    // Without the filters, no per-route config may name them.
    let s = compiled(BASE);
    assert!(!http(&s).cors_enabled && http(&s).fault.is_none());
}

#[test]
fn refusals_have_path_and_line() {
    let vh = VH.to_string();
    let r0 = R0.to_owned();
    let act = format!("{R0}.route");
    let tpf = "typed_per_filter_config:\n  envoy.filters.http.fault:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    abort: {http_status: 503}";
    let tpf_wrong_key = "typed_per_filter_config:\n  my.fault:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    abort: {http_status: 503}";
    // (text, needle on the error line, path, message part)
    let cases: Vec<(String, &str, String, &str)> = vec![
        (with(&[("#MATCH", "headers: [{name: \"bad name\", present_match: true}]")]), "bad name", format!("{r0}.match.headers[0].name"), "is not a header name"),
        (with(&[("#MATCH", "headers: [{name: x, range_match: {start: 5, end: 5}}]")]), "range_match", format!("{r0}.match.headers[0].range_match"), "start must be below end"),
        (with(&[("#MATCH", "headers: [{name: x, string_match: {prefix: \"\"}}]")]), "string_match", format!("{r0}.match.headers[0].string_match.prefix"), "must not be empty"),
        (with(&[("#MATCH", "headers: [{name: x, safe_regex_match: {regex: \"(\"}}]")]), "safe_regex_match", format!("{r0}.match.headers[0].safe_regex_match.regex"), "invalid regex"),
        (with(&[("#MATCH", "query_parameters: [{name: q, present_match: false}]")]), "query_parameters", format!("{r0}.match.query_parameters[0].present_match"), "present_match: false"),
        (with(&[("#MATCH", "query_parameters: [{present_match: true}]")]), "query_parameters", format!("{r0}.match.query_parameters[0].name"), "name is required"),
        (BASE.replace("prefix: /\n", "safe_regex: {regex: \"a{1000}{1000}\"}\n"), "safe_regex", format!("{r0}.match.safe_regex.regex"), "too complex"),
        (BASE.replace("prefix: /\n", "path_separated_prefix: /api/\n"), "path_separated_prefix", format!("{r0}.match.path_separated_prefix"), "must not end with `/`"),
        (with(&[("#ACTION", "prefix_rewrite: /a\nregex_rewrite: {pattern: {regex: a}, substitution: b}")]), "regex_rewrite", format!("{act}.regex_rewrite"), "not both"),
        (with(&[("#ACTION", "regex_rewrite: {pattern: {regex: a}, substitution: \"\\\\1\"}")]), "regex_rewrite", format!("{act}.regex_rewrite.substitution"), "has 0 capture"),
        (with(&[("#ACTION", "host_rewrite_literal: \"a b\"")]), "host_rewrite_literal", format!("{act}.host_rewrite_literal"), "is not a host name"),
        (with(&[("#ACTION", "idle_timeout: -1s")]), "idle_timeout", format!("{act}.idle_timeout"), "between 0s and"),
        (BASE.replace(BASE_ACTION, "                route: {weighted_clusters: {clusters: [{name: backend, weight: 1}, {name: nowhere, weight: 1}]}}\n"), "nowhere", format!("{act}.weighted_clusters.clusters[1].name"), "cluster `nowhere` is not defined"),
        (BASE.replace(BASE_ACTION, "                route: {weighted_clusters: {clusters: [{name: backend, weight: 0}]}}\n"), "weighted_clusters", format!("{act}.weighted_clusters.clusters"), "add up to 0"),
        (BASE.replace(BASE_ACTION, "                route: {weighted_clusters: {clusters: [{name: backend}]}}\n"), "weighted_clusters", format!("{act}.weighted_clusters.clusters[0].weight"), "weight is required"),
        (BASE.replace(BASE_ACTION, "                route: {weighted_clusters: {clusters: [{name: backend, weight: 3}], total_weight: 100}}\n"), "total_weight", format!("{act}.weighted_clusters.total_weight"), "is not the sum of the weights (3)"),
        (BASE.replace(BASE_ACTION, "                route: {weighted_clusters: {clusters: []}}\n"), "weighted_clusters", format!("{act}.weighted_clusters.clusters"), "at least one cluster"),
        (with(&[("#ACTION", "retry_policy: {retry_on: \"5xx,envoy-ratelimited\"}")]), "retry_policy", format!("{act}.retry_policy.retry_on"), "`envoy-ratelimited` is not supported"),
        (with(&[("#ACTION", "retry_policy: {retry_on: 5xx, retry_back_off: {base_interval: 1s, max_interval: 0.5s}}")]), "retry_policy", format!("{act}.retry_policy.retry_back_off.max_interval"), "must not be below"),
        (with(&[("#ACTION", "retry_policy: {retry_on: 5xx, retry_back_off: {max_interval: 1s}}")]), "retry_policy", format!("{act}.retry_policy.retry_back_off.base_interval"), "base_interval is required"),
        (with(&[("#ACTION", "retry_policy: {retry_on: 5xx, retry_host_predicate: [{name: envoy.retry_host_predicates.other}]}")]), "retry_policy", format!("{act}.retry_policy.retry_host_predicate[0]"), "only envoy.retry_host_predicates.previous_hosts"),
        (with(&[("#ACTION", "retry_policy: {retry_on: 5xx, retriable_status_codes: [700]}")]), "retry_policy", format!("{act}.retry_policy.retriable_status_codes[0]"), "status 700"),
        (with(&[("#ACTION", "hash_policy: [{connection_properties: {source_ip: false}}]")]), "hash_policy", format!("{act}.hash_policy[0].connection_properties.source_ip"), "must be true"),
        (with(&[("#ACTION", "hash_policy: [{terminal: true}]")]), "hash_policy", format!("{act}.hash_policy[0]"), "needs header, cookie"),
        (with(&[("#ACTION", "request_mirror_policies: [{cluster: ghost}]")]), "request_mirror_policies", format!("{act}.request_mirror_policies[0].cluster"), "cluster `ghost` is not defined"),
        (with(&[("#ACTION", "metadata_match: {filter_metadata: {other: {a: b}}}")]), "metadata_match", format!("{act}.metadata_match.filter_metadata.other"), "only filter_metadata[\"envoy.lb\"]"),
        (with(&[("#ACTION", "metadata_match: {filter_metadata: {envoy.lb: {a: [1]}}}")]), "metadata_match", format!("{act}.metadata_match.filter_metadata.envoy.lb.a"), "only string, number and bool"),
        (BASE.replace(BASE_ACTION, "                redirect: {port_redirect: 70000}\n"), "redirect", format!("{r0}.redirect.port_redirect"), "out of range"),
        (BASE.replace(BASE_ACTION, "                redirect: {scheme_redirect: \"1http\"}\n"), "redirect", format!("{r0}.redirect.scheme_redirect"), "not a URI scheme"),
        (BASE.replace(BASE_ACTION, "                direct_response: {status: 100}\n"), "direct_response", format!("{r0}.direct_response.status"), "not from 200 to 599"),
        (BASE.replace(BASE_ACTION, &format!("                direct_response: {{status: 200, body: {{inline_string: {}}}}}\n", "x".repeat(4097))), "direct_response", format!("{r0}.direct_response.body"), "at most 4096"),
        (with(&[("#ROUTE", "request_headers_to_add: [{header: {key: \":path\", value: x}}]")]), "request_headers_to_add", format!("{r0}.request_headers_to_add[0].header.key"), "pseudo-headers may not"),
        (with(&[("#ROUTE", "request_headers_to_remove: [Host]")]), "request_headers_to_remove", format!("{r0}.request_headers_to_remove[0]"), "host may not be changed"),
        (with(&[("#ROUTE", "response_headers_to_add: [{ header: { key: Content-Length, value: \"0\" } }]")]), "response_headers_to_add", format!("{r0}.response_headers_to_add[0].header.key"), "frames the message"),
        (with(&[("#ROUTE", "request_headers_to_add: [{ header: { key: transfer-encoding, value: chunked } }]")]), "request_headers_to_add", format!("{r0}.request_headers_to_add[0].header.key"), "frames the message"),
        (with(&[("#ROUTE", "response_headers_to_add: [{header: {key: x, value: \"%BOGUS%\"}}]")]), "response_headers_to_add", format!("{r0}.response_headers_to_add[0].header.value"), "%BOGUS% is not supported"),
        (with(&[("#ROUTE", "response_headers_to_add: [{header: {key: x, value: y}, append: true, append_action: ADD_IF_ABSENT}]")]), "response_headers_to_add", format!("{r0}.response_headers_to_add[0].append"), "not both"),
        (with(&[("#VHOSTS", "request_headers_to_add: [{append_action: ADD_IF_ABSENT}]")]), "request_headers_to_add", format!("{HCM}.route_config.request_headers_to_add[0].header"), "header is required"),
        (with(&[("#ROUTE", tpf)]), "envoy.filters.http.fault:", format!("{r0}.typed_per_filter_config.envoy.filters.http.fault"), "this connection manager has no fault filter"),
        (full(&[("#ROUTE", tpf_wrong_key)]), "my.fault:", format!("{r0}.typed_per_filter_config.my.fault"), "the fault filter of this connection manager is named `envoy.filters.http.fault`"),
        (full(&[("#VHOST", "typed_per_filter_config:\n  envoy.filters.http.fault:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    abort: {http_status: 600}")]), "http_status: 600", format!("{vh}.typed_per_filter_config.envoy.filters.http.fault.abort.http_status"), "status 600"),
        (full(&[("#VHOST", "typed_per_filter_config:\n  envoy.filters.http.fault:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n    delay: {fixed_delay: 0s}")]), "fixed_delay: 0s", format!("{vh}.typed_per_filter_config.envoy.filters.http.fault.delay.fixed_delay"), "above 0s"),
        (full(&[("#VHOST", "typed_per_filter_config:\n  envoy.filters.http.cors:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n    allow_origin_string_match: [{safe_regex: {regex: \"[\"}}]")]), "allow_origin_string_match", format!("{vh}.typed_per_filter_config.envoy.filters.http.cors.allow_origin_string_match[0].safe_regex.regex"), "invalid regex"),
        (full(&[]).replace("          - name: envoy.filters.http.cors\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n", "").replace("          http_filters:\n", "          http_filters:\n          - name: envoy.filters.http.cors # first\n"), "- name: envoy.filters.http.fault", format!("{HCM}.http_filters[1]"), "the fault filter must come before the CORS filter"),
    ];
    for (text, needle, path, message) in cases {
        let errors = compile_errors(&text);
        assert_one(&errors, &text, needle, &path, message);
    }
}

#[test]
fn unsupported_route_fields_are_refused_at_load() {
    // (text, path, needle)
    let cases: Vec<(String, String, &str)> = vec![
        (
            with(&[("#ACTION", "cluster_not_found_response_code: NOT_FOUND")]),
            format!("{R0}.route.cluster_not_found_response_code"),
            "NOT_FOUND not supported",
        ),
        (
            with(&[(
                "#ACTION",
                "hash_policy: [{cookie: {name: a, attributes: [{name: x, value: y}]}}]",
            )]),
            format!("{R0}.route.hash_policy[0].cookie.attributes"),
            "not supported",
        ),
        (
            with(&[(
                "#ROUTE",
                "typed_per_filter_config:\n  envoy.filters.http.router:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            )]),
            format!("{R0}.typed_per_filter_config.envoy.filters.http.router.@type"),
            "not supported",
        ),
        (
            with(&[("#VHOST", "cors: {allow_methods: GET}")]),
            format!("{VH}.cors"),
            "not supported",
        ),
    ];
    for (text, path, message) in cases {
        let errors = load_errors(&text);
        assert!(
            errors
                .iter()
                .any(|e| e.path.as_str() == path && e.message.contains(message)),
            "{path}: {}",
            show(&errors)
        );
    }
}
