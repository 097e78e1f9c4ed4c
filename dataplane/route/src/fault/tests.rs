use std::time::Duration;

use crate::test_support::Req;
use crate::*;

#[test]
fn fractions() {
    // (numerator, denominator, per million)
    for (n, d, want) in [
        (50, 100, Some(500_000)),
        (1, 10_000, Some(100)),
        (7, 1_000_000, Some(7)),
        (150, 100, Some(1_000_000)),
        (u32::MAX, 100, Some(1_000_000)),
        (1, 1000, None),
    ] {
        assert_eq!(Fraction::new(n, d).map(|f| f.per_million), want, "{n}/{d}");
    }
    let half = Fraction {
        per_million: 500_000,
    };
    assert!(
        half.hit(0)
            && half.hit(499_999)
            && !half.hit(500_000)
            && !half.hit(999_999)
            && half.hit(1_000_000)
    );
    assert!(Fraction::ALL.hit(999_999) && Fraction::ALL.hit(u64::MAX));
    assert!(!Fraction::NONE.hit(0));
}

fn delay(fixed: Option<u64>, pct: u32) -> FaultDelay {
    FaultDelay {
        fixed: fixed.map(Duration::from_millis),
        percentage: Fraction { per_million: pct },
        percentage_unit: 10_000,
    }
}

fn abort(kind: AbortKind, pct: u32) -> FaultAbort {
    FaultAbort {
        kind,
        percentage: Fraction { per_million: pct },
        percentage_unit: 10_000,
    }
}

#[test]
fn decisions() {
    let all = 1_000_000;
    let half = 500_000;
    let gated = vec![HeaderMatcher {
        name: "x-fault".into(),
        rule: HeaderRule::Present(true),
        invert: false,
        treat_missing_as_empty: false,
    }];
    let ms = |n| Some(Duration::from_millis(n));
    // (policy, request, random delay, random abort, decision)
    let cases: Vec<(FaultPolicy, Req, u64, u64, FaultDecision)> = vec![
        (
            FaultPolicy::default(),
            Req::new("/"),
            0,
            0,
            FaultDecision::default(),
        ),
        (
            FaultPolicy {
                delay: Some(delay(Some(100), all)),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            0,
            0,
            FaultDecision {
                delay: ms(100),
                abort: None,
            },
        ),
        (
            FaultPolicy {
                delay: Some(delay(Some(100), half)),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            600_000,
            0,
            FaultDecision::default(),
        ),
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::Http(503), half)),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            0,
            100,
            FaultDecision {
                delay: None,
                abort: Some(Abort::Http(503)),
            },
        ),
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::Grpc(14), all)),
                delay: Some(delay(Some(5), all)),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            0,
            0,
            FaultDecision {
                delay: ms(5),
                abort: Some(Abort::Grpc(14)),
            },
        ),
        // Header matchers gate the whole fault.
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::Http(503), all)),
                headers: gated.clone(),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            0,
            0,
            FaultDecision::default(),
        ),
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::Http(503), all)),
                headers: gated.clone(),
                ..FaultPolicy::default()
            },
            Req::new("/").header("x-fault", "1"),
            0,
            0,
            FaultDecision {
                delay: None,
                abort: Some(Abort::Http(503)),
            },
        ),
        // Header-controlled delay and abort.
        (
            FaultPolicy {
                delay: Some(delay(None, all)),
                abort: Some(abort(AbortKind::HeaderControlled, all)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(DELAY_HEADER, "250")
                .header(ABORT_HEADER, "429"),
            0,
            0,
            FaultDecision {
                delay: ms(250),
                abort: Some(Abort::Http(429)),
            },
        ),
        (
            FaultPolicy {
                delay: Some(delay(None, all)),
                abort: Some(abort(AbortKind::HeaderControlled, all)),
                ..FaultPolicy::default()
            },
            Req::new("/"),
            0,
            0,
            FaultDecision::default(),
        ),
        (
            FaultPolicy {
                delay: Some(delay(None, all)),
                abort: Some(abort(AbortKind::HeaderControlled, all)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(DELAY_HEADER, "soon")
                .header(ABORT_HEADER, "700")
                .header(ABORT_GRPC_HEADER, "8"),
            0,
            0,
            FaultDecision {
                delay: None,
                abort: Some(Abort::Grpc(8)),
            },
        ),
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::HeaderControlled, all)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(ABORT_HEADER, "503")
                .header(ABORT_GRPC_HEADER, "8"),
            0,
            0,
            FaultDecision {
                delay: None,
                abort: Some(Abort::Http(503)),
            },
        ),
        // The percentage header lowers the configured share (here to 10%) ...
        (
            FaultPolicy {
                delay: Some(delay(None, all)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(DELAY_HEADER, "10")
                .header(DELAY_PERCENTAGE_HEADER, "10"),
            150_000,
            0,
            FaultDecision::default(),
        ),
        (
            FaultPolicy {
                delay: Some(delay(None, all)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(DELAY_HEADER, "10")
                .header(DELAY_PERCENTAGE_HEADER, "10"),
            50_000,
            0,
            FaultDecision {
                delay: ms(10),
                abort: None,
            },
        ),
        // ... but never raises it.
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::HeaderControlled, 100_000)),
                ..FaultPolicy::default()
            },
            Req::new("/")
                .header(ABORT_HEADER, "500")
                .header(ABORT_PERCENTAGE_HEADER, "100"),
            0,
            150_000,
            FaultDecision::default(),
        ),
        // Fixed faults ignore the percentage headers.
        (
            FaultPolicy {
                abort: Some(abort(AbortKind::Http(500), all)),
                ..FaultPolicy::default()
            },
            Req::new("/").header(ABORT_PERCENTAGE_HEADER, "0"),
            0,
            999_999,
            FaultDecision {
                delay: None,
                abort: Some(Abort::Http(500)),
            },
        ),
    ];
    for (i, (policy, req, rd, ra, want)) in cases.into_iter().enumerate() {
        assert_eq!(policy.decide(&req, rd, ra), want, "case {i}: {policy:?}");
    }
}
