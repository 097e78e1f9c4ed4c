use super::*;

#[test]
fn parses_and_prints_back() {
    for s in [
        "spiffe://cluster.local/ns/default/sa/sleep",
        "spiffe://td_1.example-x/ns/a/sa/b.c-d_E",
        "spiffe://x/ns/N/sa/S",
    ] {
        let id = SpiffeId::parse(s).unwrap();
        assert_eq!(id.to_string(), s);
    }
    let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/sleep").unwrap();
    assert_eq!(id.trust_domain(), "cluster.local");
    assert_eq!(id.namespace(), "default");
    assert_eq!(id.service_account(), "sleep");
    assert_eq!(id.principal(), "cluster.local/ns/default/sa/sleep");
}

#[test]
fn rejects_everything_else() {
    let cases: &[(&str, SpiffeError)] = &[
        ("", SpiffeError::Scheme),
        ("http://cluster.local/ns/a/sa/b", SpiffeError::Scheme),
        ("SPIFFE://cluster.local/ns/a/sa/b", SpiffeError::Scheme),
        ("spiffe://cluster.local", SpiffeError::Path),
        ("spiffe://cluster.local/", SpiffeError::Path),
        ("spiffe://cluster.local/ns/a/sa/b/", SpiffeError::Path),
        ("spiffe://cluster.local/ns/a/sa/b/c", SpiffeError::Path),
        ("spiffe://cluster.local/ns/a/sa", SpiffeError::Path),
        ("spiffe://cluster.local/sa/b/ns/a", SpiffeError::Path),
        ("spiffe://cluster.local/ns/a/sb/b", SpiffeError::Path),
        ("spiffe://cluster.local//ns/a/sa/b", SpiffeError::Path),
        (
            "spiffe:///ns/a/sa/b",
            SpiffeError::TrustDomain(String::new()),
        ),
        (
            "spiffe://Cluster.local/ns/a/sa/b",
            SpiffeError::TrustDomain("Cluster.local".into()),
        ),
        (
            "spiffe://user@td/ns/a/sa/b",
            SpiffeError::TrustDomain("user@td".into()),
        ),
        (
            "spiffe://td:443/ns/a/sa/b",
            SpiffeError::TrustDomain("td:443".into()),
        ),
        ("spiffe://td/ns//sa/b", SpiffeError::Segment(String::new())),
        ("spiffe://td/ns/../sa/b", SpiffeError::Segment("..".into())),
        ("spiffe://td/ns/./sa/b", SpiffeError::Segment(".".into())),
        (
            "spiffe://td/ns/a/sa/b?x=1",
            SpiffeError::Segment("b?x=1".into()),
        ),
        (
            "spiffe://td/ns/a/sa/b#f",
            SpiffeError::Segment("b#f".into()),
        ),
        (
            "spiffe://td/ns/a%2f/sa/b",
            SpiffeError::Segment("a%2f".into()),
        ),
        (
            "spiffe://td/ns/a/sa/b c",
            SpiffeError::Segment("b c".into()),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(SpiffeId::parse(input).as_ref(), Err(want), "{input:?}");
    }
    let long = format!("spiffe://td/ns/a/sa/{}", "b".repeat(MAX_SPIFFE_ID_LEN));
    assert_eq!(SpiffeId::parse(&long), Err(SpiffeError::TooLong));
    let long_td = format!("spiffe://{}/ns/a/sa/b", "t".repeat(256));
    assert!(matches!(
        SpiffeId::parse(&long_td),
        Err(SpiffeError::TrustDomain(_))
    ));
}

#[test]
fn service_accounts_follow_kubernetes_names() {
    let sa = ServiceAccount::from_username("system:serviceaccount:default:sleep").unwrap();
    assert_eq!((sa.namespace(), sa.name()), ("default", "sleep"));
    assert_eq!(sa.username(), "system:serviceaccount:default:sleep");
    let id = SpiffeId::for_account("cluster.local", &sa).unwrap();
    assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/sleep");
    assert!(ServiceAccount::new("a-b", "x.y-z").is_ok());
    for (ns, name) in [
        ("", "a"),
        ("a", ""),
        ("-a", "a"),
        ("a-", "a"),
        ("A", "a"),
        ("a", "B"),
        ("a", "a..b"),
        ("a", ".a"),
        ("a_b", "a"),
        ("a", "a:b"),
    ] {
        assert!(ServiceAccount::new(ns, name).is_err(), "{ns:?} {name:?}");
    }
    assert!(ServiceAccount::new(&"a".repeat(64), "a").is_err());
    assert!(ServiceAccount::new(&"a".repeat(63), "a").is_ok());
    for bad in [
        "system:serviceaccount:default",
        "system:node:default:sleep",
        "system:serviceaccount:default:sleep:x",
        "serviceaccount:default:sleep",
    ] {
        assert!(ServiceAccount::from_username(bad).is_err(), "{bad:?}");
    }
}
