//! A small route table built from fuzz input, then requests routed through it and every
//! decision a route can make (rewrites, redirect Location, hash, CORS, fault): none may
//! panic, whatever the config or request.
//!
//! Input: lines. `p /x`, `e /x`, `s /x`, `r <regex>` start a route (prefix, exact,
//! separated prefix, regex path); `h<k> <name> <value>` adds a header matcher to the last
//! route (k: e p s c r n g i = exact, prefix, suffix, contains, regex, present, range,
//! inverted exact); `q <name> <value>` a query matcher. `> <method> <authority> <target>
//! [name:value]...` is a request.
#![no_main]

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spar_route::*;

struct Req<'a> {
    method: &'a [u8],
    authority: &'a [u8],
    path: &'a [u8],
    headers: Vec<(String, &'a [u8])>,
}

impl RequestView for Req<'_> {
    fn method(&self) -> &[u8] {
        self.method
    }
    fn authority(&self) -> &[u8] {
        self.authority
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn scheme(&self) -> &[u8] {
        b"http"
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, [u8]>> {
        self.headers
            .iter()
            .find(|(n, _)| n == lower_name)
            .map(|(_, v)| Cow::Borrowed(*v))
    }
}

fn string_matcher(kind: u8, v: &str) -> Option<StringMatcher> {
    let kind = match kind {
        b'e' | b'i' => StringMatch::Exact(v.into()),
        b'p' => StringMatch::Prefix(v.into()),
        b's' => StringMatch::Suffix(v.into()),
        b'c' => StringMatch::Contains(v.into()),
        b'r' => StringMatch::Regex(SafeRegex::new(v).ok()?),
        _ => return None,
    };
    Some(StringMatcher { kind, ignore_case: v.len() % 2 == 0 })
}

fn route(path: PathMatch, n: usize) -> Route {
    let action = if n % 3 == 2 {
        Action::Redirect(Redirect {
            scheme: (n % 2 == 0).then(|| "https".to_owned()),
            host: None,
            port: (n % 4 == 0).then_some(8443),
            path: RedirectPath::Prefix("/r".into()),
            status: 301,
            strip_query: n % 5 == 0,
        })
    } else {
        Action::Forward(RouteAction {
            target: Target::Cluster(ClusterRef { id: ClusterId(0), name: "c".into() }),
            timeout: None,
            idle_timeout: None,
            grpc_timeout_max: None,
            prefix_rewrite: (n % 2 == 0).then(|| "/new".to_owned()),
            regex_rewrite: None,
            host_rewrite: Some(HostRewrite::Header("x-host".into())),
            retry: None,
            hash_policy: vec![
                HashPolicyEntry { policy: HashPolicy::Cookie { name: "c".into(), ttl: Some(Duration::from_secs(1)), path: None }, terminal: false },
                HashPolicyEntry { policy: HashPolicy::Query { name: "q".into() }, terminal: false },
            ],
            mirrors: Vec::new(),
            metadata_match: None,
            upgrades: Vec::new(),
            connect_terminate: false,
        })
    };
    Route {
        name: String::new(),
        r#match: RouteMatch { path, case_sensitive: n % 2 == 1, headers: Vec::new(), query: Vec::new() },
        action,
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        fault: None,
        cors: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut routes: Vec<Route> = Vec::new();
    let mut requests: Vec<Req<'_>> = Vec::new();
    for line in data.split(|&b| b == b'\n').take(64) {
        let text = String::from_utf8_lossy(line);
        let mut parts = text.splitn(3, ' ');
        let (Some(head), rest) = (parts.next(), parts.next().unwrap_or_default()) else { continue };
        let tail = parts.next().unwrap_or_default();
        match head.as_bytes() {
            b"p" => routes.push(route(PathMatch::Prefix(rest.into()), routes.len())),
            b"e" => routes.push(route(PathMatch::Exact(rest.into()), routes.len())),
            b"s" => routes.push(route(PathMatch::PathSeparatedPrefix(rest.into()), routes.len())),
            b"r" => {
                if let Ok(re) = SafeRegex::new(rest) {
                    routes.push(route(PathMatch::Regex(re), routes.len()));
                }
            }
            [b'h', k] => {
                let rule = match k {
                    b'n' => Some(HeaderRule::Present(tail.is_empty())),
                    b'g' => Some(HeaderRule::Range { start: tail.len() as i64 - 5, end: tail.len() as i64 }),
                    k => string_matcher(*k, tail).map(HeaderRule::Value),
                };
                if let (Some(r), Some(rule)) = (routes.last_mut(), rule) {
                    r.r#match.headers.push(HeaderMatcher { name: rest.to_ascii_lowercase(), rule, invert: *k == b'i', treat_missing_as_empty: tail.len() % 2 == 1 });
                }
            }
            b"q" => {
                let rule = string_matcher(b'e', tail).map_or(QueryRule::Present, QueryRule::Value);
                if let Some(r) = routes.last_mut() {
                    r.r#match.query.push(QueryMatcher { name: rest.into(), rule });
                }
            }
            b">" => {
                // Borrow from the input so requests carry raw (non-UTF-8) bytes too.
                let mut fields = line.split(|&b| b == b' ').skip(1);
                let (Some(method), Some(authority), Some(path)) = (fields.next(), fields.next(), fields.next()) else { continue };
                let headers = fields
                    .filter_map(|f| {
                        let i = f.iter().position(|&b| b == b':')?;
                        Some((String::from_utf8_lossy(&f[..i]).to_ascii_lowercase(), &f[i + 1..]))
                    })
                    .collect();
                requests.push(Req { method, authority, path, headers });
            }
            _ => {}
        }
    }
    let table = RouteTable::new(
        vec![VirtualHost { name: "vh".into(), domains: vec![DomainMatch::Any], routes, ..VirtualHost::default() }],
        ConfigHeaders::default(),
    );
    let cors = CorsPolicy {
        allow_origins: vec![StringMatcher { kind: StringMatch::Suffix(".com".into()), ignore_case: true }],
        allow_methods: Some("GET".into()),
        allow_headers: None,
        expose_headers: None,
        max_age: None,
        allow_credentials: true,
        enabled: Fraction::ALL,
    };
    let fault = FaultPolicy {
        delay: Some(FaultDelay { fixed: None, percentage: Fraction::ALL, percentage_unit: 10_000 }),
        abort: Some(FaultAbort { kind: AbortKind::HeaderControlled, percentage: Fraction::ALL, percentage_unit: 10_000 }),
        headers: Vec::new(),
        max_active_faults: None,
    };
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for req in &requests {
        let _ = cors.decide(req, 0);
        let _ = fault.decide(req, 0, 0);
        let Some((_, r)) = table.route(req) else { continue };
        match &r.action {
            Action::Forward(a) => {
                let _ = r.rewritten_path(req);
                let _ = r.rewritten_authority(req, None);
                let _ = request_hash(&a.hash_policy, req, source, 7);
            }
            Action::Redirect(rd) => {
                let _ = rd.location(req, &r.r#match);
            }
            Action::Direct(_) => {}
        }
    }
});
