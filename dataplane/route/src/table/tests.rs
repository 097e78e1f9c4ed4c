use crate::test_support::{Req, cluster_of, path_match, route};
use crate::*;

/// One virtual host per entry, named after its index; each has a single catch-all route.
fn table(domains: &[&[&str]]) -> RouteTable {
    let vhosts = domains
        .iter()
        .enumerate()
        .map(|(i, ds)| VirtualHost {
            name: format!("vh{i}"),
            domains: ds
                .iter()
                .filter_map(|d| DomainMatch::parse(d).ok())
                .collect(),
            routes: vec![route(path_match(PathMatch::Prefix("/".into())), i as u32)],
            ..VirtualHost::default()
        })
        .collect();
    RouteTable::new(vhosts, ConfigHeaders::default())
}

fn vhost<'t>(t: &'t RouteTable, authority: &str) -> Option<&'t str> {
    t.find_virtual_host(authority.as_bytes())
        .map(|v| v.name.as_str())
}

#[test]
fn domain_parse() {
    let cases: &[(&str, Result<DomainMatch, DomainError>)] = &[
        ("example.com", Ok(DomainMatch::Exact("example.com".into()))),
        ("Example.COM", Ok(DomainMatch::Exact("example.com".into()))),
        (
            "example.com:8080",
            Ok(DomainMatch::Exact("example.com:8080".into())),
        ),
        (
            "*.example.com",
            Ok(DomainMatch::Suffix(".example.com".into())),
        ),
        ("*-bar.baz", Ok(DomainMatch::Suffix("-bar.baz".into()))),
        ("foo.*", Ok(DomainMatch::Prefix("foo.".into()))),
        ("*", Ok(DomainMatch::Any)),
        ("", Err(DomainError::Empty)),
        ("**", Err(DomainError::Wildcard)),
        ("*.foo.*", Err(DomainError::Wildcard)),
        ("foo.*.com", Err(DomainError::Wildcard)),
        ("a b", Err(DomainError::Character)),
        ("a\tb", Err(DomainError::Character)),
    ];
    for (input, want) in cases {
        assert_eq!(&DomainMatch::parse(input), want, "{input:?}");
    }
    assert_eq!(
        DomainMatch::parse("*.Foo.com").map(|d| d.to_string()),
        Ok("*.foo.com".into())
    );
}

#[test]
fn domain_order_and_wildcards() {
    let t = table(&[
        &["*"],                          // vh0
        &["foo.*"],                      // vh1
        &["*.example.com"],              // vh2
        &["*.api.example.com"],          // vh3
        &["www.example.com"],            // vh4
        &["*-bar.baz", "exact.bar.baz"], // vh5
        &["foo.bar.*"],                  // vh6
    ]);
    let cases: &[(&str, &str)] = &[
        ("www.example.com", "vh4"),   // exact beats suffix
        ("a.example.com", "vh2"),     // suffix
        ("x.api.example.com", "vh3"), // longest suffix wins
        ("api.example.com", "vh2"),   // ".api.example.com" needs a char before it
        ("example.com", "vh0"),       // suffix needs >= 1 char before
        (".example.com", "vh0"),
        ("foo-bar.baz", "vh5"),
        ("-bar.baz", "vh0"),
        ("exact.bar.baz", "vh5"),
        ("foo.com", "vh1"),         // prefix
        ("foo.bar.com", "vh6"),     // longest prefix wins
        ("foo.", "vh0"),            // prefix needs >= 1 char after
        ("foo.example.com", "vh2"), // suffix beats prefix
        ("other", "vh0"),
        ("", "vh0"),
    ];
    for (authority, want) in cases {
        assert_eq!(vhost(&t, authority), Some(*want), "{authority:?}");
    }
}

#[test]
fn domain_case_and_port() {
    let t = table(&[
        &["example.com"],      // vh0
        &["example.com:8080"], // vh1
        &["*.wild.io"],        // vh2
        &["[::1]"],            // vh3
    ]);
    let cases: &[(&str, Option<&str>)] = &[
        ("EXAMPLE.com", Some("vh0")),
        // Envoy matches the authority as sent, port included (no
        // strip_*_host_port by default): checked against Envoy in
        // tests/tests/envoy_differential.rs.
        ("example.com:80", None),
        ("example.com:8080", Some("vh1")),
        ("Example.Com:8080", Some("vh1")),
        ("a.WILD.io", Some("vh2")),
        ("a.WILD.io:443", None),
        ("[::1]:80", None),
        ("[::1]", Some("vh3")),
        ("::1", None),
        ("example.com:", None),
        ("other.com", None), // no "*": no virtual host
    ];
    for (authority, want) in cases {
        assert_eq!(vhost(&t, authority), *want, "{authority:?}");
    }
}

#[test]
fn long_authority_is_lowercased_too() {
    let long = format!("{}.example.com", "A".repeat(400));
    let t = table(&[&[long.as_str()], &["*.example.com"]]);
    assert_eq!(vhost(&t, &long), Some("vh0"));
    assert_eq!(
        vhost(&t, &format!("{}.example.com", "b".repeat(400))),
        Some("vh1")
    );
}

#[test]
fn first_domain_registration_wins() {
    let t = table(&[&["a.com", "*.b.com"], &["a.com", "*.b.com", "*"]]);
    assert_eq!(vhost(&t, "a.com"), Some("vh0"));
    assert_eq!(vhost(&t, "x.b.com"), Some("vh0"));
    assert_eq!(vhost(&t, "z"), Some("vh1"));
}

#[test]
fn first_matching_route_wins() {
    let vh = VirtualHost {
        name: "vh".into(),
        domains: vec![DomainMatch::Any],
        routes: vec![
            route(path_match(PathMatch::Exact("/api/special".into())), 1),
            route(path_match(PathMatch::Prefix("/api".into())), 2),
            route(path_match(PathMatch::Prefix("/api/special".into())), 3), // shadowed
            route(path_match(PathMatch::Prefix("/".into())), 4),
        ],
        ..VirtualHost::default()
    };
    let t = RouteTable::new(vec![vh], ConfigHeaders::default());
    let cases: &[(&str, Option<u32>)] = &[
        ("/api/special", Some(1)),
        ("/api/special/x", Some(2)),
        ("/api", Some(2)),
        ("/", Some(4)),
        ("/x", Some(4)),
        ("", None),
    ];
    for (path, want) in cases {
        let got = t
            .route(&Req::new(path).authority("host"))
            .and_then(|(_, r)| cluster_of(r));
        assert_eq!(got, *want, "{path:?}");
    }
}

#[test]
fn no_virtual_host_no_route() {
    let t = RouteTable::new(Vec::new(), ConfigHeaders::default());
    assert!(t.route(&Req::new("/")).is_none());
    assert!(t.virtual_hosts().is_empty());
}

#[test]
fn ten_thousand_virtual_hosts() {
    let vhosts = (0..10_000)
        .map(|i| VirtualHost {
            name: format!("vh{i}"),
            domains: vec![
                DomainMatch::Exact(format!("svc{i}.ns.svc.cluster.local")),
                DomainMatch::Suffix(format!(".tenant{i}.example.com")),
                DomainMatch::Prefix(format!("svc{i}.")),
            ],
            routes: vec![route(path_match(PathMatch::Prefix("/".into())), i)],
            ..VirtualHost::default()
        })
        .collect();
    let t = RouteTable::new(vhosts, ConfigHeaders::default());
    let cases: &[(&str, Option<u32>)] = &[
        ("svc9999.ns.svc.cluster.local:80", Some(9999)),
        ("www.tenant4242.example.com", Some(4242)),
        ("svc17.other", Some(17)),
        ("nothing.here", None),
    ];
    for (authority, want) in cases {
        let got = t
            .route(&Req::new("/").authority(authority))
            .and_then(|(_, r)| cluster_of(r));
        assert_eq!(got, *want, "{authority}");
    }
}

#[test]
fn route_returns_the_virtual_host_and_config_headers_are_kept() {
    let headers = ConfigHeaders {
        request: HeaderMutation {
            add: Vec::new(),
            remove: vec!["x-internal".into()],
        },
        response: HeaderMutation::default(),
    };
    let vh = VirtualHost {
        name: "vh".into(),
        domains: vec![DomainMatch::Exact("a.com".into())],
        routes: vec![route(path_match(PathMatch::Prefix("/".into())), 7)],
        ..VirtualHost::default()
    };
    let t = RouteTable::new(vec![vh], headers.clone());
    assert_eq!(t.headers(), &headers);
    let (vh, r) = t.route(&Req::new("/x").authority("A.com")).expect("route");
    assert_eq!((vh.name.as_str(), cluster_of(r)), ("vh", Some(7)));
    assert!(t.route(&Req::new("/x").authority("b.com")).is_none());
}
