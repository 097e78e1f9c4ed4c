use crate::test_support::Req;
use crate::*;

fn re(p: &str) -> SafeRegex {
    SafeRegex::new(p).expect("valid regex")
}

fn sm(kind: StringMatch, ignore_case: bool) -> StringMatcher {
    StringMatcher { kind, ignore_case }
}

#[test]
fn path_matching() {
    use PathMatch::{Exact, PathSeparatedPrefix as Sep, Prefix, Regex};
    // (matcher, case_sensitive, request target, matches)
    let cases: Vec<(PathMatch, bool, &str, bool)> = vec![
        (Prefix("/".into()), true, "/anything", true),
        (Prefix("".into()), true, "", true),
        (Prefix("/api".into()), true, "/api/v1", true),
        (Prefix("/api".into()), true, "/apix", true),
        (Prefix("/api".into()), true, "/ap", false),
        (Prefix("/api".into()), true, "/API/v1", false),
        (Prefix("/api".into()), false, "/API/v1", true),
        (Prefix("/api/".into()), true, "/api?x=/api/", false),
        // Envoy compares a prefix with the whole :path, query included.
        (Prefix("/api?v=1".into()), true, "/api?v=1&x", true),
        (Exact("/health".into()), true, "/health", true),
        (Exact("/health".into()), true, "/health?full=1", true),
        (Exact("/health".into()), true, "/health#top", true),
        (Exact("/health".into()), true, "/health/", false),
        (Exact("/health".into()), true, "/HEALTH", false),
        (Exact("/health".into()), false, "/HEALTH", true),
        (Exact("/".into()), true, "/?", true),
        (Sep("/api".into()), true, "/api", true),
        (Sep("/api".into()), true, "/api/", true),
        (Sep("/api".into()), true, "/api/v1?q", true),
        (Sep("/api".into()), true, "/api?q=1", true),
        (Sep("/api".into()), true, "/apix", false),
        (Sep("/api".into()), true, "/ap", false),
        (Sep("/api".into()), true, "/API/x", false),
        (Sep("/api".into()), false, "/API/x", true),
        (Regex(re("/v[0-9]+/.*")), true, "/v1/users", true),
        (Regex(re("/v[0-9]+/.*")), true, "/v1/users?x=1", true),
        (Regex(re("/v[0-9]+")), true, "/v12/users", false), // whole path must match
        (Regex(re("/v[0-9]+")), true, "/x/v12", false),
        (Regex(re("/v[0-9]+")), false, "/V12", false), // case_sensitive ignored
        (Regex(re("/a|/b")), true, "/b", true),        // anchoring wraps alternations
    ];
    for (path, cs, target, want) in cases {
        let m = RouteMatch {
            path: path.clone(),
            case_sensitive: cs,
            headers: Vec::new(),
            query: Vec::new(),
        };
        assert_eq!(
            m.matches(&Req::new(target)),
            want,
            "{path:?} cs={cs} {target:?}"
        );
    }
}

#[test]
fn string_matching() {
    use StringMatch::*;
    // (matcher, ignore_case, value, matches)
    let cases: Vec<(StringMatch, bool, &str, bool)> = vec![
        (Exact("abc".into()), false, "abc", true),
        (Exact("abc".into()), false, "ABC", false),
        (Exact("abc".into()), true, "ABC", true),
        (Exact("".into()), false, "", true),
        (Prefix("ab".into()), false, "abc", true),
        (Prefix("ab".into()), false, "a", false),
        (Prefix("AB".into()), true, "abc", true),
        (Suffix("bc".into()), false, "abc", true),
        (Suffix("bc".into()), false, "c", false),
        (Suffix("BC".into()), true, "abc", true),
        (Suffix("BC".into()), false, "abc", false),
        (Contains("b".into()), false, "abc", true),
        (Contains("x".into()), false, "abc", false),
        (Contains("B".into()), true, "abc", true),
        (Contains("".into()), false, "", true),
        (Contains("abcd".into()), false, "abc", false),
        (Regex(re("a.c")), false, "abc", true),
        (Regex(re("a.c")), false, "xabc", false),
        (Regex(re("A.C")), true, "abc", false), // ignore_case does not apply to regexes
    ];
    for (kind, ic, v, want) in cases {
        let m = sm(kind.clone(), ic);
        assert_eq!(m.matches(v.as_bytes()), want, "{kind:?} ic={ic} {v:?}");
    }
}

#[test]
fn header_matching() {
    let hm = |name: &str, rule: HeaderRule, invert: bool, missing_empty: bool| HeaderMatcher {
        name: name.into(),
        rule,
        invert,
        treat_missing_as_empty: missing_empty,
    };
    let exact = |v: &str| HeaderRule::Value(sm(StringMatch::Exact(v.into()), false));
    let req = Req::new("/p?q=1")
        .method("POST")
        .authority("Host:8080")
        .scheme("https")
        .header("x-env", "prod")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("x-num", "42")
        .header("x-empty", "");
    // (matcher, matches)
    let cases: Vec<(HeaderMatcher, bool)> = vec![
        (hm("x-env", exact("prod"), false, false), true),
        (hm("x-env", exact("dev"), false, false), false),
        (hm("x-env", exact("dev"), true, false), true),
        // Repeated fields match value by value (Envoy), never joined.
        (hm("x-multi", exact("a,b"), false, false), false),
        (hm("x-multi", exact("b"), false, false), true),
        (hm("x-multi", exact("b"), true, false), false),
        (hm("x-none", exact("x"), false, false), false),
        (hm("x-none", exact("x"), true, false), false), // absent: no match, inverted or not (Envoy)
        (hm("x-none", exact(""), false, true), true),   // treat missing as empty
        (hm("x-none", exact(""), true, true), false),
        (hm("x-empty", exact(""), false, false), true),
        (hm("x-env", HeaderRule::Present(true), false, false), true),
        (hm("x-none", HeaderRule::Present(true), false, false), false),
        (hm("x-none", HeaderRule::Present(false), false, false), true),
        (hm("x-env", HeaderRule::Present(false), false, false), false),
        (hm("x-none", HeaderRule::Present(true), true, false), true),
        (hm("x-none", HeaderRule::Present(false), true, false), false),
        (hm("x-none", HeaderRule::Present(true), false, true), true),
        (
            hm(
                "x-num",
                HeaderRule::Range { start: 40, end: 43 },
                false,
                false,
            ),
            true,
        ),
        (
            hm(
                "x-num",
                HeaderRule::Range { start: 40, end: 42 },
                false,
                false,
            ),
            false,
        ),
        (
            hm(
                "x-num",
                HeaderRule::Range { start: 42, end: 43 },
                false,
                false,
            ),
            true,
        ),
        (
            hm(
                "x-env",
                HeaderRule::Range { start: 0, end: 100 },
                false,
                false,
            ),
            false,
        ),
        (
            hm(
                "x-env",
                HeaderRule::Range { start: 0, end: 100 },
                true,
                false,
            ),
            true,
        ),
        (hm(":method", exact("POST"), false, false), true),
        (hm(":authority", exact("Host:8080"), false, false), true),
        (hm(":path", exact("/p?q=1"), false, false), true),
        (hm(":scheme", exact("https"), false, false), true),
        (
            hm(
                ":path",
                HeaderRule::Value(sm(StringMatch::Regex(re("/p.*")), false)),
                false,
                false,
            ),
            true,
        ),
    ];
    for (m, want) in cases {
        assert_eq!(m.matches(&req), want, "{m:?}");
    }
}

#[test]
fn query_matching() {
    let q = |name: &str, rule: QueryRule| QueryMatcher {
        name: name.into(),
        rule,
    };
    let exact = |v: &str| QueryRule::Value(sm(StringMatch::Exact(v.into()), false));
    // (matcher, target, matches)
    let cases: Vec<(QueryMatcher, &str, bool)> = vec![
        (q("a", QueryRule::Present), "/?a=1", true),
        (q("a", QueryRule::Present), "/?a", true),
        (q("a", QueryRule::Present), "/?ab=1", false),
        (q("a", QueryRule::Present), "/", false),
        (q("a", QueryRule::Present), "/#?a=1", false),
        (q("a", exact("1")), "/?b=2&a=1", true),
        (q("a", exact("1")), "/?a=2&a=1", false), // first value counts
        (q("a", exact("")), "/?a", true),
        (q("a", exact("x y")), "/?a=x%20y", false), // not decoded
        (q("a", exact("x%20y")), "/?a=x%20y", true),
        (
            q(
                "a",
                QueryRule::Value(sm(StringMatch::Regex(re("[0-9]+")), false)),
            ),
            "/?a=123",
            true,
        ),
        (q("A", QueryRule::Present), "/?a=1", false), // names are case-sensitive
    ];
    for (m, target, want) in cases {
        let rm = RouteMatch {
            path: PathMatch::Prefix("/".into()),
            case_sensitive: true,
            headers: Vec::new(),
            query: vec![m.clone()],
        };
        assert_eq!(rm.matches(&Req::new(target)), want, "{m:?} {target:?}");
    }
}

#[test]
fn every_matcher_must_pass() {
    let m = RouteMatch {
        path: PathMatch::Prefix("/api".into()),
        case_sensitive: true,
        headers: vec![HeaderMatcher {
            name: "x-env".into(),
            rule: HeaderRule::Present(true),
            invert: false,
            treat_missing_as_empty: false,
        }],
        query: vec![QueryMatcher {
            name: "debug".into(),
            rule: QueryRule::Present,
        }],
    };
    let cases = [
        (Req::new("/api?debug").header("x-env", "1"), true),
        (Req::new("/api?debug"), false),
        (Req::new("/api").header("x-env", "1"), false),
        (Req::new("/x?debug").header("x-env", "1"), false),
    ];
    for (req, want) in cases {
        assert_eq!(m.matches(&req), want, "{req:?}");
    }
}
