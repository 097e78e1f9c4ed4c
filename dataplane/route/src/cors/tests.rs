use crate::test_support::Req;
use crate::*;

fn policy() -> CorsPolicy {
    CorsPolicy {
        allow_origins: vec![
            StringMatcher {
                kind: StringMatch::Exact("https://a.com".into()),
                ignore_case: false,
            },
            StringMatcher {
                kind: StringMatch::Suffix(".b.com".into()),
                ignore_case: false,
            },
        ],
        allow_methods: Some("GET, POST".into()),
        allow_headers: Some("x-a".into()),
        expose_headers: Some("x-b".into()),
        max_age: Some("600".into()),
        allow_credentials: true,
        enabled: Fraction::ALL,
    }
}

fn h(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (*n, v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn decisions() {
    let preflight = |origin: &str| {
        Req::new("/")
            .method("OPTIONS")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let p = policy();
    let mut minimal = policy();
    minimal.allow_credentials = false;
    minimal.allow_methods = None;
    minimal.allow_headers = Some(String::new());
    minimal.expose_headers = None;
    minimal.max_age = None;
    let mut any = minimal.clone();
    any.allow_origins = vec![StringMatcher {
        kind: StringMatch::Exact("*".into()),
        ignore_case: false,
    }];
    let mut off = policy();
    off.enabled = Fraction { per_million: 0 };
    // (policy, request, decision)
    let cases: Vec<(&CorsPolicy, Req, CorsDecision)> = vec![
        (&p, Req::new("/"), CorsDecision::NotCors),
        (
            &p,
            Req::new("/").header("origin", ""),
            CorsDecision::NotCors,
        ),
        (
            &p,
            Req::new("/").header("origin", "https://evil.com"),
            CorsDecision::NotCors,
        ),
        (&p, preflight("https://evil.com"), CorsDecision::NotCors), // forwarded, as Envoy
        (&off, preflight("https://a.com"), CorsDecision::NotCors),
        (
            &p,
            preflight("https://a.com"),
            CorsDecision::Preflight(h(&[
                ("access-control-allow-origin", "https://a.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-headers", "x-a"),
                ("access-control-max-age", "600"),
            ])),
        ),
        (
            &p,
            Req::new("/")
                .method("POST")
                .header("origin", "https://x.b.com"),
            CorsDecision::Actual(h(&[
                ("access-control-allow-origin", "https://x.b.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-b"),
            ])),
        ),
        // OPTIONS without Access-Control-Request-Method is an actual request.
        (
            &minimal,
            Req::new("/")
                .method("OPTIONS")
                .header("origin", "https://a.com"),
            CorsDecision::Actual(h(&[("access-control-allow-origin", "https://a.com")])),
        ),
        (
            &minimal,
            Req::new("/")
                .method("OPTIONS")
                .header("origin", "https://a.com")
                .header("access-control-request-method", ""),
            CorsDecision::Actual(h(&[("access-control-allow-origin", "https://a.com")])),
        ),
        (
            &minimal,
            preflight("https://a.com"),
            CorsDecision::Preflight(h(&[("access-control-allow-origin", "https://a.com")])),
        ),
        // A matcher accepting "*" accepts every origin; the origin is echoed.
        (
            &any,
            preflight("https://z.org"),
            CorsDecision::Preflight(h(&[("access-control-allow-origin", "https://z.org")])),
        ),
    ];
    for (i, (policy, req, want)) in cases.into_iter().enumerate() {
        assert_eq!(policy.decide(&req, 0), want, "case {i}");
    }
}
