use spar_route::{HeaderRule, StringMatch};

use super::*;
use crate::Cidr;
use crate::model::Enforcement;
use crate::test_support::*;

fn cidr(s: &str) -> Cidr {
    let (a, l) = s.split_once('/').unwrap();
    Cidr::new(ip(a), l.parse().unwrap()).unwrap()
}

fn not(p: Permission) -> Permission {
    Permission::Not(Box::new(p))
}

#[test]
fn each_permission_kind() {
    use Permission as P;
    let get = Req::get("/api/v1/items?x=1");
    let cases: Vec<(&str, Permission, Req, bool)> = vec![
        ("any", P::Any, get.clone(), true),
        (
            "method",
            P::Header(hdr(":method", "GET")),
            get.clone(),
            true,
        ),
        (
            "method other",
            P::Header(hdr(":method", "POST")),
            get.clone(),
            false,
        ),
        (
            "header exact",
            P::Header(hdr("x-user", "alice")),
            get.clone().header("x-user", "alice"),
            true,
        ),
        (
            "header repeated: joined with ','",
            P::Header(hdr("x-user", "alice,bob")),
            get.clone()
                .header("x-user", "alice")
                .header("x-user", "bob"),
            true,
        ),
        (
            "header repeated: one value alone does not match",
            P::Header(hdr("x-user", "bob")),
            get.clone()
                .header("x-user", "alice")
                .header("x-user", "bob"),
            false,
        ),
        (
            "header absent",
            P::Header(hdr("x-user", "alice")),
            get.clone(),
            false,
        ),
        (
            "header regex",
            P::Header(hm("x-user", HeaderRule::Value(regex("a.*e")))),
            get.clone().header("x-user", "alice"),
            true,
        ),
        (
            ":path header includes the query",
            P::Header(hdr(":path", "/api/v1/items?x=1")),
            get.clone().header(":path", "/api/v1/items?x=1"),
            true,
        ),
        (
            "present",
            P::Header(hm("x-a", HeaderRule::Present(true))),
            get.clone().header("x-a", ""),
            true,
        ),
        (
            "present, absent",
            P::Header(hm("x-a", HeaderRule::Present(true))),
            get.clone(),
            false,
        ),
        (
            "present_match false, absent",
            P::Header(hm("x-a", HeaderRule::Present(false))),
            get.clone(),
            true,
        ),
        (
            "range",
            P::Header(hm("x-n", HeaderRule::Range { start: 1, end: 10 })),
            get.clone().header("x-n", " 9 "),
            true,
        ),
        (
            "range end is exclusive",
            P::Header(hm("x-n", HeaderRule::Range { start: 1, end: 10 })),
            get.clone().header("x-n", "10"),
            false,
        ),
        (
            "url_path ignores the query",
            P::UrlPath(exact("/api/v1/items")),
            get.clone(),
            true,
        ),
        (
            "url_path prefix",
            P::UrlPath(prefix("/api/")),
            get.clone(),
            true,
        ),
        (
            "url_path other",
            P::UrlPath(prefix("/admin")),
            get.clone(),
            false,
        ),
        (
            "url_path ignores a fragment",
            P::UrlPath(exact("/a")),
            Req::get("/a#frag"),
            true,
        ),
        (
            "destination_ip",
            P::DestinationIp(cidr("10.0.0.0/24")),
            get.clone(),
            true,
        ),
        (
            "destination_ip other",
            P::DestinationIp(cidr("10.0.1.0/24")),
            get.clone(),
            false,
        ),
        (
            "destination_ip v4-mapped v6 address",
            P::DestinationIp(cidr("10.0.0.1/32")),
            get.clone().destination("[::ffff:10.0.0.1]:8080"),
            true,
        ),
        (
            "destination_ip family mismatch",
            P::DestinationIp(cidr("::/0")),
            get.clone(),
            false,
        ),
        (
            "destination_port",
            P::DestinationPort(8080),
            get.clone(),
            true,
        ),
        (
            "destination_port other",
            P::DestinationPort(80),
            get.clone(),
            false,
        ),
        (
            "port range start inclusive",
            P::DestinationPortRange {
                start: 8080,
                end: 8081,
            },
            get.clone(),
            true,
        ),
        (
            "port range end exclusive",
            P::DestinationPortRange {
                start: 8000,
                end: 8080,
            },
            get.clone(),
            false,
        ),
        (
            "port range to 65536",
            P::DestinationPortRange {
                start: 65535,
                end: 65536,
            },
            get.clone().destination("10.0.0.1:65535"),
            true,
        ),
        (
            "sni",
            P::RequestedServerName(exact("api.example.com")),
            get.clone().sni("api.example.com"),
            true,
        ),
        (
            "no sni is the empty name",
            P::RequestedServerName(exact("")),
            get.clone(),
            true,
        ),
        (
            "no sni, prefix",
            P::RequestedServerName(prefix("api")),
            get.clone(),
            false,
        ),
    ];
    for (name, perm, req, want) in cases {
        assert_eq!(perm.matches(&req), want, "{name}");
    }
}

#[test]
fn header_invert_and_missing_as_empty() {
    let get = Req::get("/");
    // (rule, invert, treat_missing_as_empty, value, want), Envoy's HeaderUtility table.
    let cases: Vec<(HeaderRule, bool, bool, Option<&str>, bool)> = vec![
        (HeaderRule::Value(exact("a")), true, false, Some("b"), true),
        (HeaderRule::Value(exact("a")), true, false, Some("a"), false),
        // Absent: a value test fails, inverted or not.
        (HeaderRule::Value(exact("a")), true, false, None, false),
        (HeaderRule::Value(exact("a")), false, false, None, false),
        // Absent: presence tests turn around with invert.
        (HeaderRule::Present(true), true, false, None, true),
        (HeaderRule::Present(false), true, false, None, false),
        (HeaderRule::Present(true), true, false, Some("x"), false),
        // Missing as empty: the test runs on "".
        (HeaderRule::Value(exact("")), false, true, None, true),
        (HeaderRule::Value(exact("")), true, true, None, false),
        (HeaderRule::Value(prefix("a")), true, true, None, true),
    ];
    for (i, (rule, invert, empty, value, want)) in cases.into_iter().enumerate() {
        let mut m = hm("x-h", rule);
        m.invert = invert;
        m.treat_missing_as_empty = empty;
        let req = match value {
            Some(v) => get.clone().header("x-h", v),
            None => get.clone(),
        };
        assert_eq!(Permission::Header(m).matches(&req), want, "case {i}");
    }
}

#[test]
fn each_principal_kind() {
    use Principal as P;
    let spiffe = "spiffe://cluster.local/ns/x/sa/y";
    let mtls = Req::get("/p").principal(spiffe);
    let mut dns_only = Req::get("/p");
    dns_only.tls = Some(true);
    dns_only.other_names = vec!["web.example.com".into(), "CN=web".into()];
    let mut tls_no_cert = Req::get("/p");
    tls_no_cert.tls = Some(true);
    let mut proxied = Req::get("/p");
    proxied.source = Some(ip("192.0.2.1"));
    let cases: Vec<(&str, Principal, Req, bool)> = vec![
        ("any", P::Any, Req::get("/"), true),
        (
            "authenticated exact",
            P::Authenticated(Some(exact(spiffe))),
            mtls.clone(),
            true,
        ),
        (
            "authenticated prefix (Istio's namespace form)",
            P::Authenticated(Some(prefix("spiffe://cluster.local/ns/x/"))),
            mtls.clone(),
            true,
        ),
        (
            "authenticated other",
            P::Authenticated(Some(exact("spiffe://cluster.local/ns/x/sa/z"))),
            mtls.clone(),
            false,
        ),
        (
            "authenticated, plaintext",
            P::Authenticated(Some(prefix(""))),
            Req::get("/"),
            false,
        ),
        (
            "authenticated without matcher: any TLS",
            P::Authenticated(None),
            tls_no_cert.clone(),
            true,
        ),
        (
            "authenticated without matcher, plaintext",
            P::Authenticated(None),
            Req::get("/"),
            false,
        ),
        (
            "authenticated falls back to DNS SAN",
            P::Authenticated(Some(exact("web.example.com"))),
            dns_only.clone(),
            true,
        ),
        (
            "authenticated falls back to the subject",
            P::Authenticated(Some(exact("CN=web"))),
            dns_only.clone(),
            true,
        ),
        (
            "direct_remote_ip",
            P::DirectRemoteIp(cidr("10.0.0.7/32")),
            Req::get("/").remote("203.0.113.9"),
            true,
        ),
        (
            "remote_ip is the XFF address",
            P::RemoteIp(cidr("203.0.113.0/24")),
            Req::get("/").remote("203.0.113.9"),
            true,
        ),
        (
            "remote_ip is not the direct peer",
            P::RemoteIp(cidr("10.0.0.7/32")),
            Req::get("/").remote("203.0.113.9"),
            false,
        ),
        (
            "source_ip defaults to the direct peer",
            P::SourceIp(cidr("10.0.0.0/8")),
            Req::get("/").remote("203.0.113.9"),
            true,
        ),
        (
            "source_ip honours the PROXY protocol address",
            P::SourceIp(cidr("192.0.2.1/32")),
            proxied,
            true,
        ),
        (
            "direct_remote_ip v6",
            P::DirectRemoteIp(cidr("2001:db8::/32")),
            Req::get("/").direct_remote("[2001:db8::1]:5"),
            true,
        ),
        (
            "header",
            P::Header(hdr("x-user", "alice")),
            Req::get("/").header("x-user", "alice"),
            true,
        ),
        ("url_path", P::UrlPath(exact("/p")), mtls.clone(), true),
        (
            "url_path other",
            P::UrlPath(exact("/q")),
            mtls.clone(),
            false,
        ),
    ];
    for (name, id, req, want) in cases {
        assert_eq!(id.matches(&req), want, "{name}");
    }
}

#[test]
fn and_or_not_nesting() {
    use Permission as P;
    let admin_get = P::And(vec![
        P::Header(hdr(":method", "GET")),
        P::Or(vec![
            P::UrlPath(prefix("/admin")),
            P::UrlPath(prefix("/debug")),
        ]),
        not(P::DestinationPort(9090)),
    ]);
    assert!(admin_get.matches(&Req::get("/admin/x")));
    assert!(admin_get.matches(&Req::get("/debug")));
    assert!(!admin_get.matches(&Req::get("/other")));
    assert!(!admin_get.matches(&Req::get("/admin").method("POST")));
    assert!(!admin_get.matches(&Req::get("/admin").destination("10.0.0.1:9090")));

    let ids = Principal::Or(vec![
        Principal::And(vec![
            Principal::Authenticated(Some(prefix("spiffe://cluster.local/ns/a/"))),
            Principal::Not(Box::new(Principal::RemoteIp(cidr("10.9.0.0/16")))),
        ]),
        Principal::DirectRemoteIp(cidr("127.0.0.1/32")),
    ]);
    let a = Req::get("/").principal("spiffe://cluster.local/ns/a/sa/s");
    assert!(ids.matches(&a));
    assert!(!ids.matches(&a.clone().remote("10.9.1.1")));
    assert!(ids.matches(&Req::get("/").direct_remote("127.0.0.1:1")));
    assert!(!ids.matches(&Req::get("/")));
}

/// A DENY filter for `/admin` from namespace `x`, an ALLOW filter for namespace `x`, a
/// LOG filter for `/audit`, as Istio emits them.
fn istio_like() -> (Rbac, Rbac, Rbac) {
    let ns_x = Principal::Authenticated(Some(regex("spiffe://.*/ns/x/sa/.*")));
    let deny = rbac(
        Action::Deny,
        vec![policy(
            "ns[foo]-policy[deny-admin]-rule[0]",
            vec![Permission::UrlPath(prefix("/admin"))],
            vec![ns_x.clone()],
        )],
    );
    let allow = rbac(
        Action::Allow,
        vec![policy(
            "ns[foo]-policy[allow-x]-rule[0]",
            vec![Permission::Any],
            vec![ns_x],
        )],
    );
    let log = rbac(
        Action::Log,
        vec![policy(
            "ns[foo]-policy[audit]-rule[0]",
            vec![Permission::UrlPath(prefix("/audit"))],
            vec![Principal::Any],
        )],
    );
    (deny, allow, log)
}

#[test]
fn allow_deny_log_decisions() {
    let (deny, allow, log) = istio_like();
    let x = "spiffe://cluster.local/ns/x/sa/y";
    let z = "spiffe://cluster.local/ns/z/sa/y";
    // (request, deny allowed?, allow allowed?, log matched?)
    let cases = [
        (Req::get("/admin").principal(x), false, true, false),
        (Req::get("/data").principal(x), true, true, false),
        (Req::get("/data").principal(z), true, false, false),
        (Req::get("/admin").principal(z), true, false, false),
        (Req::get("/audit/1"), true, false, true),
    ];
    for (i, (req, d, a, l)) in cases.iter().enumerate() {
        let dd = deny.evaluate(req);
        assert_eq!(dd.allowed, *d, "deny, case {i}");
        assert_eq!(dd.matched_policy.is_some(), !*d, "deny, case {i}");
        assert_eq!(dd.action, Action::Deny);
        let ad = allow.evaluate(req);
        assert_eq!(ad.allowed, *a, "allow, case {i}");
        assert_eq!(ad.matched_policy.is_some(), *a, "allow, case {i}");
        let ld = log.evaluate(req);
        assert!(ld.allowed, "log always allows, case {i}");
        assert_eq!(ld.should_log(), *l, "log, case {i}");
        assert_eq!(
            ld.matched_policy,
            l.then_some("ns[foo]-policy[audit]-rule[0]")
        );
    }
}

#[test]
fn empty_policy_maps() {
    // Envoy's docs: ALLOW is "allows the request if and only if there is a policy that
    // matches" and the HTTP filter's rules "if set but empty, all requests are denied";
    // DENY "allows the request if and only if there are no policies that match".
    let req = Req::get("/");
    let (allow, deny, log) = (
        rbac(Action::Allow, vec![]),
        rbac(Action::Deny, vec![]),
        rbac(Action::Log, vec![]),
    );
    let d = allow.evaluate(&req);
    assert!(!d.allowed);
    assert_eq!(d.reason(), Reason::DeniedNoPolicyMatched);
    let d = deny.evaluate(&req);
    assert!(d.allowed);
    assert_eq!(d.reason(), Reason::AllowedNoPolicyMatched);
    let d = log.evaluate(&req);
    assert!(d.allowed && !d.should_log());
}

#[test]
fn first_match_in_name_order_is_reported() {
    let any = || policy("", vec![Permission::Any], vec![Principal::Any]);
    let named = |n: &str| Policy {
        name: n.to_owned(),
        ..any()
    };
    // Given out of order; `Rbac::new` sorts by name (byte order: upper case first).
    let r = rbac(
        Action::Deny,
        vec![named("b"), named("a-2"), named("a-10"), named("Z")],
    );
    let names: Vec<&str> = r.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Z", "a-10", "a-2", "b"]);
    assert_eq!(r.evaluate(&Req::get("/")).matched_policy, Some("Z"));

    let mut only_b = any();
    only_b.name = "b".into();
    let mut a_miss = any();
    a_miss.name = "a".into();
    a_miss.permissions = vec![Permission::DestinationPort(1)];
    let r = rbac(Action::Allow, vec![only_b, a_miss]);
    assert_eq!(r.evaluate(&Req::get("/")).matched_policy, Some("b"));
}

#[test]
fn policy_needs_a_permission_and_a_principal() {
    let p = policy(
        "p",
        vec![Permission::DestinationPort(1), Permission::Any],
        vec![Principal::RemoteIp(cidr("1.2.3.4/32"))],
    );
    assert!(!p.matches(&Req::get("/")));
    assert!(p.matches(&Req::get("/").remote("1.2.3.4")));
    let p = policy(
        "p",
        vec![Permission::DestinationPort(1)],
        vec![Principal::Any],
    );
    assert!(!p.matches(&Req::get("/")));
}

#[test]
fn tcp_sees_no_http_fields() {
    use Permission as P;
    let tcp = Req::tcp();
    // Value tests on headers and url_path never match; `Req::header` panics if asked.
    for p in [
        P::Header(hdr(":method", "")),
        P::Header(hdr("x-a", "")),
        P::Header(hm("x-a", HeaderRule::Value(prefix("a")))),
        P::UrlPath(prefix("/")),
        P::UrlPath(exact("")),
        P::Header(hm("x-a", HeaderRule::Present(true))),
    ] {
        assert!(!p.matches(&tcp), "{p:?}");
        assert!(not(p.clone()).matches(&tcp), "not {p:?}");
    }
    // Envoy matches against an empty header map: absence tests do match.
    assert!(P::Header(hm("x-a", HeaderRule::Present(false))).matches(&tcp));
    let mut inv = hm("x-a", HeaderRule::Present(true));
    inv.invert = true;
    assert!(P::Header(inv).matches(&tcp));
    // Connection fields still work.
    assert!(P::DestinationPort(8080).matches(&tcp));
    assert!(Principal::Authenticated(Some(exact("s"))).matches(&Req::tcp().principal("s")));
    assert!(!Principal::UrlPath(prefix("/")).matches(&tcp));
}

#[test]
fn network_filter_hides_http_fields_from_its_rules() {
    let rules = rbac(
        Action::Allow,
        vec![policy(
            "get",
            vec![Permission::Header(hdr(":method", "GET"))],
            vec![Principal::Any],
        )],
    );
    let filter = |kind| RbacFilter {
        kind,
        rules: Some(rules.clone()),
        shadow_rules: Some(rbac(Action::Deny, vec![])),
        stat_prefix: "s".into(),
        shadow_stat_prefix: String::new(),
        track_per_rule_stats: false,
        enforcement: Enforcement::OneTimeOnFirstByte,
        delay_deny: None,
    };
    let req = Req::get("/");
    let http = filter(FilterKind::Http);
    let net = filter(FilterKind::Network);
    let hd = http.evaluate(&req);
    assert!(hd.allowed());
    assert_eq!(hd.enforced.unwrap().matched_policy, Some("get"));
    assert!(hd.shadow.unwrap().allowed);
    let nd = net.evaluate(&req);
    assert!(!nd.allowed());
    // Shadow rules never deny; no rules enforce nothing.
    let mut shadow_deny = filter(FilterKind::Http);
    shadow_deny.rules = None;
    shadow_deny.shadow_rules = Some(rbac(Action::Allow, vec![]));
    let sd = shadow_deny.evaluate(&req);
    assert!(sd.allowed());
    assert_eq!(sd.enforced, None);
    assert!(!sd.shadow.unwrap().allowed);
}

#[test]
fn explanations_and_reasons() {
    let (deny, allow, log) = istio_like();
    let x = Req::get("/admin").principal("spiffe://cluster.local/ns/x/sa/y");
    let d = deny.evaluate(&x);
    assert_eq!(
        d.explain(&x),
        "denied by DENY policy ns[foo]-policy[deny-admin]-rule[0]: principal \
         spiffe://cluster.local/ns/x/sa/y, remote 10.0.0.7, GET /admin"
    );
    assert_eq!(d.reason().as_str(), "denied_policy_matched");
    assert_eq!(
        d.response_code_details().as_deref(),
        Some("rbac_access_denied_matched_policy[ns[foo]-policy[deny-admin]-rule[0]]")
    );

    let anon = Req::get("/data\r\nforged: 1");
    let a = allow.evaluate(&anon);
    assert_eq!(
        a.explain(&anon),
        "denied, no ALLOW policy matched: principal none, remote 10.0.0.7, \
         GET /data\\x0d\\x0aforged:\\x201"
    );
    assert_eq!(a.reason().to_string(), "denied_no_policy_matched");
    assert_eq!(
        a.response_code_details().as_deref(),
        Some("rbac_access_denied_matched_policy[none]")
    );

    let ok = allow.evaluate(&x);
    assert_eq!(ok.reason().as_str(), "allowed_policy_matched");
    assert_eq!(ok.response_code_details(), None);
    assert!(
        ok.explain(&x)
            .starts_with("allowed by ALLOW policy ns[foo]-policy[allow-x]")
    );
    assert_eq!(
        deny.evaluate(&anon).reason().as_str(),
        "allowed_no_policy_matched"
    );
    assert!(
        deny.evaluate(&anon)
            .explain(&anon)
            .starts_with("allowed, no DENY policy matched: ")
    );

    let audit = Req::get("/audit");
    let l = log.evaluate(&audit);
    assert_eq!(l.reason().as_str(), "logged_policy_matched");
    assert!(
        l.explain(&audit)
            .starts_with("allowed, logged by LOG policy ns[foo]-policy[audit]-rule[0]: ")
    );
    let l = log.evaluate(&anon);
    assert_eq!(l.reason().as_str(), "not_logged_no_policy_matched");
    assert!(
        l.explain(&anon)
            .starts_with("allowed, no LOG policy matched: ")
    );

    let tcp = Req::tcp().sni("db.internal");
    assert_eq!(
        allow.evaluate(&tcp).explain(&tcp),
        "denied, no ALLOW policy matched: principal none, remote 10.0.0.7, \
         destination 10.0.0.1:8080, sni db.internal"
    );
    let long = Req::get(&format!("/{}", "a".repeat(300)));
    let e = allow.evaluate(&long).explain(&long);
    assert!(e.ends_with(&format!("GET /{}...", "a".repeat(127))), "{e}");
}

#[test]
fn policy_names_are_escaped_in_explanations_and_details() {
    let r = rbac(
        Action::Deny,
        vec![policy(
            "a b\t\r\nc\x0bd\x0ce",
            vec![Permission::Any],
            vec![Principal::Any],
        )],
    );
    let req = Req::get("/");
    let d = r.evaluate(&req);
    // Envoy's responseDetail: whitespace becomes '_'.
    assert_eq!(
        d.response_code_details().as_deref(),
        Some("rbac_access_denied_matched_policy[a_b___c_d_e]")
    );
    assert!(
        d.explain(&req)
            .starts_with("denied by DENY policy a\\x20b\\x09\\x0d\\x0ac\\x0bd\\x0ce: "),
        "{}",
        d.explain(&req)
    );
}

#[test]
fn cidr_ranges() {
    let c = Cidr::new(ip("192.168.1.77"), 24).unwrap();
    assert_eq!(c.to_string(), "192.168.1.0/24");
    assert!(c.contains(ip("192.168.1.1")) && !c.contains(ip("192.168.2.1")));
    assert!(
        Cidr::new(ip("1.2.3.4"), 0)
            .unwrap()
            .contains(ip("255.1.1.1"))
    );
    assert!(!Cidr::new(ip("1.2.3.4"), 0).unwrap().contains(ip("::1")));
    assert!(
        Cidr::new(ip("1.2.3.4"), 32)
            .unwrap()
            .contains(ip("1.2.3.4"))
    );
    assert!(
        !Cidr::new(ip("1.2.3.4"), 32)
            .unwrap()
            .contains(ip("1.2.3.5"))
    );
    assert!(Cidr::new(ip("1.2.3.4"), 33).is_none());
    assert!(Cidr::new(ip("::1"), 129).is_none());
    let v6 = Cidr::new(ip("2001:db8::ff"), 120).unwrap();
    assert_eq!(v6.to_string(), "2001:db8::/120");
    assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db8::1:1")));
    assert!(Cidr::new(ip("::"), 128).unwrap().contains(ip("::")));
}

/// A fixed-seed xorshift generator: the property tests below are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const PATHS: [&str; 4] = ["/", "/admin", "/admin/x", "/api"];
const USERS: [&str; 3] = ["alice", "bob", "alice,bob"];

fn random_permission(rng: &mut Rng, depth: u32) -> Permission {
    use Permission as P;
    let leaves = 8;
    let kind = if depth == 0 {
        rng.below(leaves)
    } else {
        rng.below(leaves + 3)
    };
    match kind {
        0 => P::Any,
        1 => P::Header(hdr(":method", rng.pick(&["GET", "POST"]))),
        2 => P::Header(hdr("x-user", rng.pick(&USERS))),
        3 => P::Header(hm("x-user", HeaderRule::Present(rng.below(2) == 0))),
        4 => P::UrlPath(prefix(rng.pick(&PATHS))),
        5 => P::DestinationPort(rng.pick(&[80, 8080])),
        6 => P::DestinationIp(cidr(rng.pick(&["10.0.0.0/8", "10.0.0.2/32"]))),
        7 => P::RequestedServerName(sm(StringMatch::Suffix(".internal".into()))),
        8 => P::And(
            (0..1 + rng.below(3))
                .map(|_| random_permission(rng, depth - 1))
                .collect(),
        ),
        9 => P::Or(
            (0..1 + rng.below(3))
                .map(|_| random_permission(rng, depth - 1))
                .collect(),
        ),
        _ => not(random_permission(rng, depth - 1)),
    }
}

fn random_principal(rng: &mut Rng, depth: u32) -> Principal {
    use Principal as P;
    let kind = if depth == 0 {
        rng.below(5)
    } else {
        rng.below(8)
    };
    match kind {
        0 => P::Any,
        1 => P::Authenticated(Some(prefix(rng.pick(&[
            "spiffe://cluster.local/ns/a/",
            "spiffe://cluster.local/ns/b/",
        ])))),
        2 => P::RemoteIp(cidr(rng.pick(&["10.0.0.0/8", "203.0.113.0/24"]))),
        3 => P::DirectRemoteIp(cidr(rng.pick(&["10.0.0.7/32", "10.1.0.0/16"]))),
        4 => P::Header(hdr("x-user", rng.pick(&USERS))),
        5 => P::And(
            (0..1 + rng.below(3))
                .map(|_| random_principal(rng, depth - 1))
                .collect(),
        ),
        6 => P::Or(
            (0..1 + rng.below(3))
                .map(|_| random_principal(rng, depth - 1))
                .collect(),
        ),
        _ => P::Not(Box::new(random_principal(rng, depth - 1))),
    }
}

fn random_request(rng: &mut Rng) -> Req {
    let mut r = if rng.below(5) == 0 {
        Req::tcp()
    } else {
        Req::get(rng.pick(&PATHS)).method(rng.pick(&["GET", "POST"]))
    };
    if rng.below(2) == 0 {
        r = r.header("x-user", rng.pick(&USERS));
    }
    if rng.below(2) == 0 {
        r = r.principal(rng.pick(&[
            "spiffe://cluster.local/ns/a/sa/s",
            "spiffe://cluster.local/ns/b/sa/s",
        ]));
    }
    if rng.below(2) == 0 {
        r = r.sni("db.internal");
    }
    r.destination(rng.pick(&["10.0.0.1:80", "10.0.0.2:8080"]))
        .remote(rng.pick(&["10.0.0.7", "203.0.113.5"]))
}

#[test]
fn property_not_not_and_or_are_boolean_logic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut seen_true, mut seen_false) = (0, 0);
    for _ in 0..2000 {
        let (a, b) = (
            random_permission(&mut rng, 3),
            random_permission(&mut rng, 3),
        );
        let (x, y) = (random_principal(&mut rng, 3), random_principal(&mut rng, 3));
        for _ in 0..8 {
            let req = random_request(&mut rng);
            let (ma, mb) = (a.matches(&req), b.matches(&req));
            if ma {
                seen_true += 1;
            } else {
                seen_false += 1;
            }
            assert_eq!(not(not(a.clone())).matches(&req), ma, "not(not({a:?}))");
            assert_eq!(
                Permission::And(vec![a.clone(), b.clone()]).matches(&req),
                ma && mb
            );
            assert_eq!(
                Permission::Or(vec![a.clone(), b.clone()]).matches(&req),
                ma || mb
            );
            // De Morgan: not(a and b) == (not a) or (not b).
            assert_eq!(
                not(Permission::And(vec![a.clone(), b.clone()])).matches(&req),
                Permission::Or(vec![not(a.clone()), not(b.clone())]).matches(&req)
            );
            let (mx, my) = (x.matches(&req), y.matches(&req));
            let nn = Principal::Not(Box::new(Principal::Not(Box::new(x.clone()))));
            assert_eq!(nn.matches(&req), mx, "not_id(not_id({x:?}))");
            assert_eq!(
                Principal::And(vec![x.clone(), y.clone()]).matches(&req),
                mx && my
            );
            assert_eq!(
                Principal::Or(vec![x.clone(), y.clone()]).matches(&req),
                mx || my
            );
            // A policy is (any permission) and (any principal).
            let pol = policy("p", vec![a.clone(), b.clone()], vec![x.clone(), y.clone()]);
            assert_eq!(pol.matches(&req), (ma || mb) && (mx || my));
        }
    }
    // The generator exercises both outcomes, so the checks above are not vacuous.
    assert!(
        seen_true > 1000 && seen_false > 1000,
        "{seen_true} {seen_false}"
    );
}
