use crate::test_support::{Req, cluster, path_match, route};
use crate::*;

fn rewrite(p: &str, s: &str) -> RegexRewrite {
    RegexRewrite::new(SafeRegex::new(p).expect("valid"), s.into()).expect("valid")
}

fn wc(id: u32, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster(id),
        weight,
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        host_rewrite: None,
        metadata_match: None,
    }
}

#[test]
fn weighted_pick() {
    let w = WeightedClusters {
        clusters: vec![wc(0, 10), wc(1, 0), wc(2, 30), wc(3, 60)],
        total: 100,
    };
    // (random, cluster)
    let cases = [
        (0, 0),
        (9, 0),
        (10, 2),
        (39, 2),
        (40, 3),
        (99, 3),
        (100, 0),
        (1_000_000_039, 2),
        (u64::MAX, 2),
    ];
    for (random, want) in cases {
        assert_eq!(w.pick(random).cluster.id.0, want, "random {random}");
    }
    // Shares over a full cycle match the weights; weight 0 is never picked.
    let mut counts = [0u32; 4];
    for r in 0..10_000u64 {
        counts[w.pick(r).cluster.id.0 as usize] += 1;
    }
    assert_eq!(counts, [1000, 0, 3000, 6000]);
    // A total that disagrees with the weights still picks a weighted cluster.
    let bad = WeightedClusters {
        clusters: vec![wc(0, 1), wc(1, 0)],
        total: 5,
    };
    assert_eq!(bad.pick(4).cluster.id.0, 0);
}

fn rewriting_route(
    path: PathMatch,
    case_sensitive: bool,
    prefix: Option<&str>,
    regex: Option<RegexRewrite>,
) -> Route {
    let mut m = path_match(path);
    m.case_sensitive = case_sensitive;
    let mut r = route(m, 0);
    if let Action::Forward(a) = &mut r.action {
        a.prefix_rewrite = prefix.map(str::to_owned);
        a.regex_rewrite = regex;
    }
    r
}

#[test]
fn path_rewrites() {
    use PathMatch::{Exact, PathSeparatedPrefix as Sep, Prefix, Regex};
    let re = |p: &str| SafeRegex::new(p).expect("valid");
    // (match, case_sensitive, prefix_rewrite, regex_rewrite, target, new target)
    type Case = (
        PathMatch,
        bool,
        Option<&'static str>,
        Option<RegexRewrite>,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            Prefix("/api".into()),
            true,
            Some("/v2"),
            None,
            "/api/users?x=1",
            Some("/v2/users?x=1"),
        ),
        (
            Prefix("/api/".into()),
            true,
            Some("/"),
            None,
            "/api/users",
            Some("/users"),
        ),
        (
            Prefix("/api".into()),
            false,
            Some("/v2"),
            None,
            "/API/users",
            Some("/v2/users"),
        ),
        (Prefix("/".into()), true, Some("/"), None, "/same", None),
        (
            Sep("/api".into()),
            true,
            Some("/v2"),
            None,
            "/api/x?q",
            Some("/v2/x?q"),
        ),
        (
            Sep("/api".into()),
            true,
            Some("/v2"),
            None,
            "/api",
            Some("/v2"),
        ),
        (
            Exact("/old".into()),
            true,
            Some("/new"),
            None,
            "/old?a=b",
            Some("/new?a=b"),
        ),
        (
            Exact("/old".into()),
            true,
            Some("/new"),
            None,
            "/old",
            Some("/new"),
        ),
        (
            Regex(re("/v[0-9]/.*")),
            true,
            Some("/x"),
            None,
            "/v1/a?q=1",
            Some("/x?q=1"),
        ),
        (
            Prefix("/".into()),
            true,
            None,
            Some(rewrite("^/service/([^/]+)(/.*)$", "\\2/instance/\\1")),
            "/service/foo/v1/api?q=/service/a/b",
            Some("/v1/api/instance/foo?q=/service/a/b"),
        ),
        (
            Prefix("/".into()),
            true,
            None,
            Some(rewrite("one", "two")),
            "/one/one?one",
            Some("/two/two?one"),
        ),
        (
            Prefix("/".into()),
            true,
            None,
            Some(rewrite("nomatch", "x")),
            "/a",
            None,
        ),
        (Prefix("/".into()), true, None, None, "/a", None),
        (
            Prefix("/a".into()),
            true,
            Some("/b"),
            None,
            "/a#frag",
            Some("/b"),
        ),
    ];
    for (m, cs, prefix, regex, target, want) in cases {
        let r = rewriting_route(m.clone(), cs, prefix, regex);
        let got = r.rewritten_path(&Req::new(target));
        assert_eq!(
            got.as_deref(),
            want.map(str::as_bytes),
            "{m:?} {prefix:?} {target}"
        );
    }
    // Redirects and direct responses have no path rewrite.
    let mut r = route(path_match(Prefix("/".into())), 0);
    r.action = Action::Direct(DirectResponse {
        status: 200,
        body: None,
    });
    assert_eq!(r.rewritten_path(&Req::new("/a")), None);
}

#[test]
fn authority_rewrites() {
    let req = Req::new("/tenant/acme/x?y=1")
        .authority("in.example.com")
        .header("x-host", "from-header.io")
        .header("x-empty", "");
    let with = |h: Option<HostRewrite>| {
        let mut r = route(path_match(PathMatch::Prefix("/".into())), 0);
        if let Action::Forward(a) = &mut r.action {
            a.host_rewrite = h;
        }
        r
    };
    let mut picked = wc(1, 1);
    // (route rewrite, weighted cluster literal, new authority)
    let cases: Vec<(Option<HostRewrite>, Option<&str>, Option<&str>)> = vec![
        (None, None, None),
        (
            Some(HostRewrite::Literal("lit.io".into())),
            None,
            Some("lit.io"),
        ),
        (
            Some(HostRewrite::Literal("lit.io".into())),
            Some("wc.io"),
            Some("wc.io"),
        ),
        (None, Some("wc.io"), Some("wc.io")),
        (
            Some(HostRewrite::Header("x-host".into())),
            None,
            Some("from-header.io"),
        ),
        (Some(HostRewrite::Header("x-missing".into())), None, None),
        (Some(HostRewrite::Header("x-empty".into())), None, None),
        (
            Some(HostRewrite::PathRegex(rewrite(
                "^/tenant/([^/]+)/.*$",
                "\\1.svc",
            ))),
            None,
            Some("acme.svc"),
        ),
        (
            Some(HostRewrite::PathRegex(rewrite("^/nomatch/.*$", "x"))),
            None,
            None,
        ),
    ];
    for (h, lit, want) in cases {
        picked.host_rewrite = lit.map(str::to_owned);
        let r = with(h.clone());
        let got = r.rewritten_authority(&req, Some(&picked));
        assert_eq!(got.as_deref(), want.map(str::as_bytes), "{h:?} {lit:?}");
    }
    assert_eq!(with(None).rewritten_authority(&req, None), None);
}

fn redirect(
    scheme: Option<&str>,
    host: Option<&str>,
    port: Option<u16>,
    path: RedirectPath,
    strip_query: bool,
) -> Redirect {
    Redirect {
        scheme: scheme.map(str::to_owned),
        host: host.map(str::to_owned),
        port,
        path,
        status: 301,
        strip_query,
    }
}

#[test]
fn redirect_location() {
    use RedirectPath::{Keep, Path, Prefix, Regex};
    let m = path_match(PathMatch::Prefix("/old".into()));
    // (redirect, request scheme, authority, target, Location)
    let cases: Vec<(Redirect, &str, &str, &str, &str)> = vec![
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "a.com",
            "/x?q=1",
            "https://a.com/x?q=1",
        ),
        // Default port of the old scheme is dropped when the scheme changes ...
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "a.com:80",
            "/x",
            "https://a.com/x",
        ),
        (
            redirect(Some("http"), None, None, Keep, false),
            "https",
            "a.com:443",
            "/x",
            "http://a.com/x",
        ),
        // ... but not when it does not, and a non-default port is kept.
        (
            redirect(None, None, None, Keep, false),
            "http",
            "a.com:80",
            "/x",
            "http://a.com:80/x",
        ),
        (
            redirect(Some("http"), None, None, Keep, false),
            "http",
            "a.com:80",
            "/x",
            "http://a.com:80/x",
        ),
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "a.com:8080",
            "/x",
            "https://a.com:8080/x",
        ),
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "a.com:443",
            "/x",
            "https://a.com:443/x",
        ),
        // A new port replaces the request's, even the scheme's default.
        (
            redirect(None, None, Some(8443), Keep, false),
            "http",
            "a.com:8080",
            "/x",
            "http://a.com:8443/x",
        ),
        (
            redirect(Some("https"), None, Some(443), Keep, false),
            "http",
            "a.com",
            "/x",
            "https://a.com:443/x",
        ),
        (
            redirect(None, None, Some(81), Keep, false),
            "http",
            "[::1]:80",
            "/",
            "http://[::1]:81/",
        ),
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "[::1]:80",
            "/",
            "https://[::1]/",
        ),
        (
            redirect(Some("https"), None, None, Keep, false),
            "http",
            "[::1]",
            "/",
            "https://[::1]/",
        ),
        // host_redirect is used as given; with port_redirect its own port goes.
        (
            redirect(None, Some("b.com"), None, Keep, false),
            "http",
            "a.com:8080",
            "/x",
            "http://b.com/x",
        ),
        (
            redirect(None, Some("b.com:9"), None, Keep, false),
            "http",
            "a.com",
            "/x",
            "http://b.com:9/x",
        ),
        (
            redirect(None, Some("b.com:9"), Some(10), Keep, false),
            "http",
            "a.com",
            "/x",
            "http://b.com:10/x",
        ),
        // Paths and queries.
        (
            redirect(None, None, None, Keep, true),
            "http",
            "a.com",
            "/x?q=1",
            "http://a.com/x",
        ),
        (
            redirect(None, None, None, Path("/new".into()), false),
            "http",
            "a.com",
            "/old/x?q=1",
            "http://a.com/new?q=1",
        ),
        (
            redirect(None, None, None, Path("/new".into()), true),
            "http",
            "a.com",
            "/old/x?q=1",
            "http://a.com/new",
        ),
        (
            redirect(None, None, None, Path("/new?z=2".into()), false),
            "http",
            "a.com",
            "/old?q=1",
            "http://a.com/new?z=2",
        ),
        (
            redirect(None, None, None, Path("/new?z=2".into()), true),
            "http",
            "a.com",
            "/old?q=1",
            "http://a.com/new?z=2",
        ),
        (
            redirect(None, None, None, Path("/new".into()), false),
            "http",
            "a.com",
            "/old?",
            "http://a.com/new?",
        ),
        (
            redirect(None, None, None, Prefix("/new".into()), false),
            "http",
            "a.com",
            "/old/x?q=1",
            "http://a.com/new/x?q=1",
        ),
        (
            redirect(None, None, None, Prefix("/new".into()), true),
            "http",
            "a.com",
            "/old/x?q=1",
            "http://a.com/new/x",
        ),
        (
            redirect(
                None,
                None,
                None,
                Regex(rewrite("^/old/(.*)$", "/v2/\\1")),
                false,
            ),
            "http",
            "a.com",
            "/old/x?q=/old/y",
            "http://a.com/v2/x?q=/old/y",
        ),
        (
            redirect(None, None, None, Regex(rewrite("nomatch", "y")), true),
            "http",
            "a.com",
            "/old/x?q",
            "http://a.com/old/x",
        ),
        (
            redirect(
                Some("https"),
                Some("b.com"),
                Some(8443),
                Path("/p".into()),
                true,
            ),
            "http",
            "a.com:80",
            "/old?q",
            "https://b.com:8443/p",
        ),
    ];
    for (r, scheme, authority, target, want) in cases {
        let req = Req::new(target).scheme(scheme).authority(authority);
        let got = r.location(&req, &m);
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "{r:?} {scheme}://{authority}{target}"
        );
    }
}

#[test]
fn redirect_prefix_follows_the_match_kind() {
    let req = Req::new("/old/x?q=1");
    let r = redirect(None, None, None, RedirectPath::Prefix("/new".into()), false);
    let exact = path_match(PathMatch::Exact("/old/x".into()));
    assert_eq!(r.location(&req, &exact), b"http://example.com/new?q=1");
    let sep = path_match(PathMatch::PathSeparatedPrefix("/old".into()));
    assert_eq!(r.location(&req, &sep), b"http://example.com/new/x?q=1");
}
