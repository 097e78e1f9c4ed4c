//! Shared helpers for this crate's tests: a base bootstrap with insertion markers, loaders
//! that panic with the config errors, and line lookups for asserting `file:line`.

use crate::{Bootstrap, ConfigError, ConfigErrors, Format, Snapshot, compile, load_bootstrap_str};

pub(crate) const FILE: &str = "bootstrap.yaml";

/// The sample shipped in testdata/ (HTTP + TCP listeners, two clusters, runtime limit).
pub(crate) const SAMPLE_YAML: &str = include_str!("../testdata/bootstrap.yaml");
pub(crate) const SAMPLE_JSON: &str = include_str!("../testdata/bootstrap.json");

/// A small valid bootstrap. `#MARKER` comment lines are where [`with`] inserts text, at the
/// marker's indentation.
pub(crate) const BASE: &str = r#"admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 15000 }
  #ADMIN
static_resources:
  listeners:
  - name: http
    address:
      socket_address:
        address: 0.0.0.0
        port_value: 10000
        #SOCKET
    #LISTENER
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          #HCM
          route_config:
            name: local
            virtual_hosts:
            - name: vh
              domains: ["*"]
              #VHOST
              routes:
              - match:
                  prefix: /
                  #MATCH
                route:
                  cluster: backend
                  #ACTION
                #ROUTE
              #ROUTES
            #VHOSTS
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              #ROUTER
          #HTTP_FILTERS
      #FILTERS
    #CHAINS
  - name: tcp
    address: # tcp address
      socket_address: { address: 0.0.0.0, port_value: 10001 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: # tcp
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: backend
          #TCP
  #LISTENERS
  clusters:
  - name: backend
    connect_timeout: 1s
    #CLUSTER
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 8080 }
          #LB_ENDPOINT
        #LB_ENDPOINTS
      #LOCALITIES
  #CLUSTERS
#BOOTSTRAP
"#;

/// [`BASE`] with `text` inserted at each `marker` (several edits may share a marker).
pub(crate) fn with(edits: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for line in BASE.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut replaced = false;
        for (marker, text) in edits {
            if trimmed == *marker {
                replaced = true;
                for t in text.lines() {
                    out.push_str(indent);
                    out.push_str(t);
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

/// 1-based number of the first line of `text` containing `needle`.
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    match text.lines().position(|l| l.contains(needle)) {
        Some(i) => i + 1,
        None => panic!("`{needle}` is not in the config:\n{text}"),
    }
}

pub(crate) fn load(text: &str) -> Result<Bootstrap, ConfigErrors> {
    load_bootstrap_str(text, FILE, Format::Yaml)
}

pub(crate) fn loaded(text: &str) -> Bootstrap {
    match load(text) {
        Ok(b) => b,
        Err(e) => panic!("config should load:\n{e}\n---\n{text}"),
    }
}

pub(crate) fn load_errors(text: &str) -> Vec<ConfigError> {
    match load(text) {
        Ok(_) => panic!("config should not load:\n{text}"),
        Err(e) => e.0,
    }
}

pub(crate) fn compiled(text: &str) -> Snapshot {
    match compile(&loaded(text), 1) {
        Ok(s) => s,
        Err(e) => panic!("config should compile:\n{e}\n---\n{text}"),
    }
}

pub(crate) fn compile_errors(text: &str) -> Vec<ConfigError> {
    match compile(&loaded(text), 1) {
        Ok(_) => panic!("config should not compile:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts that `errors` holds exactly one error, at `path` on the line of `needle`, whose
/// message contains `message`.
pub(crate) fn assert_one(
    errors: &[ConfigError],
    text: &str,
    needle: &str,
    path: &str,
    message: &str,
) {
    let [e] = errors else {
        panic!(
            "expected one error at {path}, got {}:\n{}",
            errors.len(),
            show(errors)
        );
    };
    assert_eq!(e.path.as_str(), path, "{e}");
    assert_eq!(e.line, Some(line_of(text, needle)), "{e}");
    assert_eq!(e.file.as_deref(), Some(FILE), "{e}");
    assert!(e.message.contains(message), "`{message}` not in: {e}");
}

pub(crate) fn show(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

/// A request for routing tests: method, authority, path (with query), https or http, headers.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) scheme: &'static str,
    pub(crate) headers: Vec<(String, String)>,
}

impl Req {
    pub(crate) fn new(authority: &str, path: &str) -> Self {
        Self {
            method: "GET",
            authority: authority.to_owned(),
            path: path.to_owned(),
            scheme: "http",
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }
}

impl spar_route::RequestView for Req {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn authority(&self) -> &[u8] {
        self.authority.as_bytes()
    }
    fn path(&self) -> &[u8] {
        self.path.as_bytes()
    }
    fn scheme(&self) -> &[u8] {
        self.scheme.as_bytes()
    }
    fn header(&self, lower_name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.headers
            .iter()
            .find(|(n, _)| n == lower_name)
            .map(|(_, v)| std::borrow::Cow::Borrowed(v.as_bytes()))
    }
}

/// The cluster name and timeout of the route `req` takes (forward to one cluster only).
pub(crate) fn routed(
    table: &spar_route::RouteTable,
    req: &Req,
) -> Option<(String, Option<std::time::Duration>)> {
    let (_, r) = table.route(req)?;
    match &r.action {
        spar_route::Action::Forward(a) => match &a.target {
            spar_route::Target::Cluster(c) => Some((c.name.clone(), a.timeout)),
            spar_route::Target::Weighted(_) => None,
        },
        _ => None,
    }
}
