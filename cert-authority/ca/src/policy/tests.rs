use super::*;
use crate::spiffe::SpiffeId;

fn csr_for(id: &str) -> CheckedCsr {
    CheckedCsr {
        identity: SpiffeId::parse(id).unwrap(),
        public_key: Vec::new(),
    }
}

#[test]
fn validity_defaults_honours_and_caps() {
    let p = Policy::default();
    assert_eq!(p.validity(0), DEFAULT_TTL);
    assert_eq!(p.validity(-5), DEFAULT_TTL);
    assert_eq!(p.validity(3600), Duration::from_secs(3600));
    assert_eq!(p.validity(1), Duration::from_secs(1));
    assert_eq!(p.validity(MAX_TTL.as_secs() as i64), MAX_TTL);
    assert_eq!(p.validity(MAX_TTL.as_secs() as i64 + 1), MAX_TTL);
    assert_eq!(p.validity(i64::MAX), MAX_TTL);
    let short = Policy {
        max_ttl: Duration::from_secs(60),
        ..Policy::default()
    };
    assert_eq!(short.validity(0), Duration::from_secs(60));
}

#[test]
fn only_the_proven_identity_is_granted() {
    let p = Policy::default();
    let sleep = ServiceAccount::new("default", "sleep").unwrap();
    let grant = p
        .decide(
            &csr_for("spiffe://cluster.local/ns/default/sa/sleep"),
            &sleep,
            600,
        )
        .unwrap();
    assert_eq!(
        grant.identity.to_string(),
        "spiffe://cluster.local/ns/default/sa/sleep"
    );
    assert_eq!(grant.ttl, Duration::from_secs(600));
    for other in [
        "spiffe://cluster.local/ns/default/sa/productpage",
        "spiffe://cluster.local/ns/prod/sa/sleep",
        "spiffe://other.domain/ns/default/sa/sleep",
    ] {
        let refusal = p.decide(&csr_for(other), &sleep, 600).unwrap_err();
        assert_eq!(refusal.reason, Reason::IdentityMismatch, "{other}");
    }
}

#[test]
fn reasons_have_distinct_labels_and_indexes() {
    let labels: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), Reason::ALL.len());
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    for bad in ["", "h", "1w", "1.5h", "-1h", "99999999999999999999d"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}
