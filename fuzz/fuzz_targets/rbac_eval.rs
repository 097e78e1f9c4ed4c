//! A small RBAC config decoded from fuzz input (as Envoy protos, so the compiler is fuzzed
//! too), compiled as an HTTP and as a network filter, then requests and connections built
//! from the rest of the input evaluated against it, explained and labelled: nothing may
//! panic, and every decision must agree with its action.
//!
//! Input: a byte stream read front to back, each byte a choice (missing bytes read as 0).
//! The config comes first (action, up to 4 policies of up to 3 permissions and principals,
//! nested up to 4 levels), then up to 4 contexts.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{Int32Range, Int64Range};
use envoy_types::pb::google::protobuf::UInt32Value;
use libfuzzer_sys::fuzz_target;
use spar_rbac::{Action, Context, Decision, RbacFilter};

/// The input, consumed one choice at a time.
struct In<'a>(&'a [u8]);

impl In<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    /// Up to 7 bytes, as text (lossy), biased toward the words the matchers use.
    fn text(&mut self) -> String {
        const WORDS: [&str; 8] = ["", "/", "/admin", "GET", "spiffe://", "a", ".*", "x-a"];
        let n = usize::from(self.below(8));
        if self.below(2) == 0 {
            return WORDS[n].to_owned();
        }
        let take = n.min(self.0.len());
        let (s, rest) = self.0.split_at(take);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
}

fn string_matcher(i: &mut In<'_>) -> StringMatcher {
    use string_matcher::MatchPattern as M;
    let pattern = match i.below(6) {
        0 => Some(M::Exact(i.text())),
        1 => Some(M::Prefix(i.text())),
        2 => Some(M::Suffix(i.text())),
        3 => Some(M::Contains(i.text())),
        4 => Some(M::SafeRegex(RegexMatcher {
            regex: i.text(),
            ..Default::default()
        })),
        _ => None,
    };
    StringMatcher {
        match_pattern: pattern,
        ignore_case: i.below(2) == 0,
    }
}

#[allow(deprecated)] // the deprecated header forms are accepted, so fuzzed too
fn header(i: &mut In<'_>) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier as S;
    const NAMES: [&str; 5] = [":method", ":path", "x-a", ":authority", "bad name"];
    let name = NAMES[usize::from(i.below(5))].to_owned();
    let spec = match i.below(6) {
        0 => None,
        1 => Some(S::PresentMatch(i.below(2) == 0)),
        2 => Some(S::StringMatch(string_matcher(i))),
        3 => Some(S::RangeMatch(Int64Range {
            start: i64::from(i.byte()) - 8,
            end: i64::from(i.byte()) - 8,
        })),
        4 => Some(S::ExactMatch(i.text())),
        _ => Some(S::PrefixMatch(i.text())),
    };
    HeaderMatcher {
        name,
        header_match_specifier: spec,
        invert_match: i.below(2) == 0,
        treat_missing_header_as_empty: i.below(4) == 0,
    }
}

fn path(i: &mut In<'_>) -> PathMatcher {
    PathMatcher {
        rule: (i.below(8) != 0).then(|| path_matcher::Rule::Path(string_matcher(i))),
    }
}

fn cidr(i: &mut In<'_>) -> CidrRange {
    let address_prefix = match i.below(4) {
        0 => Ipv4Addr::new(10, 0, i.byte(), i.byte()).to_string(),
        1 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i.byte())).to_string(),
        2 => "::ffff:10.0.0.1".to_owned(),
        _ => i.text(),
    };
    CidrRange {
        address_prefix,
        prefix_len: (i.below(4) != 0).then(|| UInt32Value {
            value: u32::from(i.byte()) % 140,
        }),
    }
}

fn permission(i: &mut In<'_>, depth: u8) -> Permission {
    use permission::Rule as R;
    let set = |i: &mut In<'_>| permission::Set {
        rules: (0..i.below(3)).map(|_| permission(i, depth + 1)).collect(),
    };
    let kind = if depth >= 4 { i.below(9) } else { i.below(12) };
    let rule = match kind {
        0 => Some(R::Any(i.below(8) != 0)),
        1 => Some(R::Header(header(i))),
        2 => Some(R::UrlPath(path(i))),
        3 => Some(R::DestinationIp(cidr(i))),
        4 => Some(R::DestinationPort(u32::from(i.byte()) * 300)),
        5 => Some(R::DestinationPortRange(Int32Range {
            start: i32::from(i.byte()) * 300 - 100,
            end: i32::from(i.byte()) * 300,
        })),
        6 => Some(R::RequestedServerName(string_matcher(i))),
        7 => None,
        8 => Some(R::Any(true)),
        9 => Some(R::AndRules(set(i))),
        10 => Some(R::OrRules(set(i))),
        _ => Some(R::NotRule(Box::new(permission(i, depth + 1)))),
    };
    Permission { rule }
}

fn principal(i: &mut In<'_>, depth: u8) -> Principal {
    use principal::Identifier as I;
    let set = |i: &mut In<'_>| principal::Set {
        ids: (0..i.below(3)).map(|_| principal(i, depth + 1)).collect(),
    };
    let kind = if depth >= 4 { i.below(9) } else { i.below(12) };
    #[allow(deprecated)] // source_ip
    let identifier = match kind {
        0 => Some(I::Any(i.below(8) != 0)),
        1 => Some(I::Authenticated(principal::Authenticated {
            principal_name: (i.below(4) != 0).then(|| string_matcher(i)),
        })),
        2 => Some(I::DirectRemoteIp(cidr(i))),
        3 => Some(I::RemoteIp(cidr(i))),
        4 => Some(I::SourceIp(cidr(i))),
        5 => Some(I::Header(header(i))),
        6 => Some(I::UrlPath(path(i))),
        7 => None,
        8 => Some(I::Any(true)),
        9 => Some(I::AndIds(set(i))),
        10 => Some(I::OrIds(set(i))),
        _ => Some(I::NotId(Box::new(principal(i, depth + 1)))),
    };
    Principal { identifier }
}

fn rbac(i: &mut In<'_>) -> Rbac {
    let action = i32::from(i.below(4)); // 3 is not an action
    let policies = (0..i.below(5))
        .map(|_| {
            let policy = Policy {
                permissions: (0..i.below(4)).map(|_| permission(i, 0)).collect(),
                principals: (0..i.below(4)).map(|_| principal(i, 0)).collect(),
                ..Default::default()
            };
            (i.text(), policy)
        })
        .collect();
    Rbac {
        action,
        policies,
        audit_logging_options: None,
    }
}

/// A request or connection.
struct Req {
    http: bool,
    method: Vec<u8>,
    path: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    destination: SocketAddr,
    direct_remote: SocketAddr,
    remote: IpAddr,
    principal: Option<String>,
    sni: Option<String>,
    tls: bool,
    other_names: Vec<String>,
}

impl Context for Req {
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn header(&self, lower_name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.headers
            .iter()
            .find(|(n, _)| n == lower_name)
            .map(|(_, v)| std::borrow::Cow::Borrowed(v.as_slice()))
    }
    fn destination(&self) -> SocketAddr {
        self.destination
    }
    fn direct_remote(&self) -> SocketAddr {
        self.direct_remote
    }
    fn remote(&self) -> IpAddr {
        self.remote
    }
    fn peer_principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }
    fn requested_server_name(&self) -> Option<&str> {
        self.sni.as_deref()
    }
    fn is_http(&self) -> bool {
        self.http
    }
    fn is_tls(&self) -> bool {
        self.tls
    }
    fn peer_other_names(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.other_names.iter().any(|n| test(n))
    }
}

fn addr(i: &mut In<'_>) -> SocketAddr {
    let ip: IpAddr = match i.below(3) {
        0 => Ipv4Addr::new(10, 0, i.byte(), i.byte()).into(),
        1 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i.byte())).into(),
        _ => Ipv4Addr::new(10, 0, 0, i.byte()).to_ipv6_mapped().into(),
    };
    SocketAddr::new(ip, u16::from(i.byte()) * 257) // 0 to 65535
}

fn request(i: &mut In<'_>) -> Req {
    let headers = (0..i.below(4))
        .map(|_| {
            let name = [":path", "x-a", ":authority", "x-b"][usize::from(i.below(4))];
            (name.to_owned(), i.text().into_bytes())
        })
        .collect();
    Req {
        http: i.below(4) != 0,
        method: i.text().into_bytes(),
        path: i.text().into_bytes(),
        headers,
        destination: addr(i),
        direct_remote: addr(i),
        remote: addr(i).ip(),
        principal: (i.below(2) == 0).then(|| i.text()),
        sni: (i.below(2) == 0).then(|| i.text()),
        tls: i.below(2) == 0,
        other_names: (0..i.below(3)).map(|_| i.text()).collect(),
    }
}

/// The decision's fields agree with each other and its explanation is one line.
fn check(d: &Decision<'_>, req: &Req) {
    let allowed = match d.action {
        Action::Allow => d.matched_policy.is_some(),
        Action::Deny => d.matched_policy.is_none(),
        Action::Log => true,
    };
    assert_eq!(d.allowed, allowed);
    assert_eq!(d.response_code_details().is_some(), !d.allowed);
    let _ = d.reason().as_str();
    let e = d.explain(req);
    assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
}

fn evaluate(f: &RbacFilter, req: &Req) {
    let fd = f.evaluate(req);
    for d in fd.enforced.iter().chain(fd.shadow.iter()) {
        check(d, req);
    }
    assert_eq!(fd.allowed(), fd.enforced.is_none_or(|d| d.allowed));
    if let Some(rules) = &f.rules {
        check(&rules.evaluate(req), req);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut i = In(data);
    let rules = rbac(&mut i);
    let shadow = (i.below(2) == 0).then(|| rbac(&mut i));
    let http = spar_rbac::compile_http_filter(&HttpRbac {
        rules: Some(rules.clone()),
        shadow_rules: shadow.clone(),
        ..Default::default()
    });
    let network = spar_rbac::compile_network_filter(&NetworkRbac {
        rules: Some(rules),
        shadow_rules: shadow,
        stat_prefix: "fuzz".to_owned(),
        ..Default::default()
    });
    let requests: Vec<Req> = (0..1 + i.below(4)).map(|_| request(&mut i)).collect();
    match (http, network) {
        (Ok(h), Ok(n)) => {
            for req in &requests {
                evaluate(&h, req);
                evaluate(&n, req);
            }
        }
        (Err(a), Err(b)) => {
            // The same rules fail the same way whichever filter holds them.
            assert_eq!(a, b);
            assert!(!a.0.is_empty());
        }
        (h, n) => panic!("the filters disagree: {h:?} / {n:?}"),
    }
});
