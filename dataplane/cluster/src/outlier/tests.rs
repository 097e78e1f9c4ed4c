use super::*;
use OutlierResult::{LocalOriginFailure as LF, LocalOriginSuccess as LS, Status};

const S: Duration = Duration::from_secs(1);

fn cfg() -> OutlierConfig {
    OutlierConfig {
        interval: 10 * S,
        base_ejection_time: 30 * S,
        max_ejection_time: 300 * S,
        max_ejection_percent: 100,
        consecutive_5xx: 3,
        ..OutlierConfig::default()
    }
}

/// Feeds `results` to host 0 (random 0: always enforced); the index of the result that
/// ejected, if any.
fn ejected_at(cfg: &OutlierConfig, results: &[OutlierResult]) -> Option<usize> {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg, 10);
    results.iter().position(|r| d.record(0, *r, t0, 0))
}

#[test]
fn detectors() {
    let s500 = Status(500);
    let s503 = Status(503);
    let ok = Status(200);
    let split = OutlierConfig {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 2,
        ..cfg()
    };
    let gateway = OutlierConfig {
        consecutive_5xx: 0,
        consecutive_gateway_failure: 2,
        enforcing_consecutive_gateway_failure: 100,
        ..cfg()
    };
    // (config, results, index of the result that ejects)
    let cases: Vec<(&str, OutlierConfig, Vec<OutlierResult>, Option<usize>)> = vec![
        ("three 5xx", cfg(), vec![s500, s503, Status(599)], Some(2)),
        (
            "reset by success",
            cfg(),
            vec![s500, s500, ok, s500, s500],
            None,
        ),
        (
            "4xx resets",
            cfg(),
            vec![s500, s500, Status(404), s500],
            None,
        ),
        ("local origin is 503", cfg(), vec![LF, LF, s500], Some(2)),
        (
            "local success ignored",
            cfg(),
            vec![LF, LS, LF, LS, LF],
            Some(4),
        ),
        (
            "split: statuses only",
            split.clone(),
            vec![s500, LF, s500, s500],
            Some(3),
        ),
        ("split: local counter", split.clone(), vec![LF, LF], Some(1)),
        (
            "split: local success resets",
            split.clone(),
            vec![LF, LS, LF],
            None,
        ),
        (
            "5xx disabled",
            OutlierConfig {
                consecutive_5xx: 0,
                ..cfg()
            },
            vec![s500; 10],
            None,
        ),
        ("gateway", gateway.clone(), vec![s503, Status(502)], Some(1)),
        (
            "500 is not gateway",
            gateway.clone(),
            vec![s503, s500, Status(504)],
            None,
        ),
        (
            "gateway default not enforced",
            OutlierConfig {
                consecutive_5xx: 0,
                consecutive_gateway_failure: 1,
                ..cfg()
            },
            vec![s503; 5],
            None,
        ),
    ];
    for (name, c, results, want) in cases {
        assert_eq!(ejected_at(&c, &results), want, "{name}");
    }
}

#[test]
fn enforcement_is_a_percentage_of_detections() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        enforcing_consecutive_5xx: 30,
        max_ejection_percent: 100,
        ..cfg()
    };
    let t0 = Instant::now();
    let mut ejected = 0;
    for r in 0..1000u64 {
        let mut d = OutlierDetector::new(&c, 1);
        if d.record(0, Status(500), t0, r) {
            ejected += 1;
        }
    }
    assert_eq!(ejected, 300); // random % 100 < 30 over 0..1000
}

#[test]
fn max_ejection_percent() {
    // (percent, hosts, hosts ejectable at once)
    let cases = [
        (10, 3, 1),
        (10, 10, 1),
        (10, 11, 2),
        (50, 4, 2),
        (0, 5, 0),
        (100, 3, 3),
        (34, 3, 2),
    ];
    for (pct, hosts, want) in cases {
        let c = OutlierConfig {
            max_ejection_percent: pct,
            consecutive_5xx: 1,
            ..cfg()
        };
        let t0 = Instant::now();
        let mut d = OutlierDetector::new(&c, hosts);
        for h in 0..hosts {
            d.record(h, Status(500), t0, 0);
        }
        assert_eq!(d.ejected_now(), want, "{pct}% of {hosts}");
        assert_eq!(d.ejections_total(), want as u64);
    }
}

#[test]
fn ejection_timeline() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        base_ejection_time: 30 * S,
        max_ejection_time: 70 * S,
        interval: 10 * S,
        ..cfg()
    };
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut d = OutlierDetector::new(&c, 2);
    assert_eq!(d.next_deadline(), None);
    assert!(d.record(0, Status(500), at(0), 0));
    assert!(d.is_ejected(0) && !d.is_ejected(1));
    assert!(
        !d.record(0, Status(500), at(1), 0),
        "ejected hosts ignore results"
    );
    // Sweeps at 10, 20, 30: back at 30 (30 s after ejection).
    assert_eq!(d.next_deadline(), Some(at(10)));
    assert!(!d.tick(at(5)), "not due");
    assert!(!d.tick(at(10)));
    assert!(!d.tick(at(20)));
    assert!(d.tick(at(30)));
    assert!(!d.is_ejected(0));
    assert_eq!(d.ejection_count(0), 1);
    // Second ejection at 31: 60 s, back at the first sweep from 91 on (100).
    assert!(d.record(0, Status(500), at(31), 0));
    assert_eq!(d.ejection_count(0), 2);
    for s in [40, 50, 60, 70, 80, 90] {
        assert!(!d.tick(at(s)), "still ejected at {s}");
    }
    assert!(d.tick(at(100)));
    // Third: capped at 70 s (not 90): ejected at 100, back at 170.
    assert!(d.record(0, Status(500), at(100), 0));
    for s in [110, 120, 130, 140, 150, 160] {
        assert!(!d.tick(at(s)));
    }
    assert!(d.tick(at(170)));
    assert_eq!(d.ejection_count(0), 3);
    // Healthy sweeps decay the count: 3 -> 0 over three sweeps, then nothing to do.
    for (s, want) in [(180, 2), (190, 1), (200, 0)] {
        d.tick(at(s));
        assert_eq!(d.ejection_count(0), want, "at {s}");
    }
    assert_eq!(d.next_deadline(), None);
    assert_eq!(d.ejections_total(), 3);
    // Decayed: base time again.
    assert!(d.record(0, Status(500), at(205), 0));
    assert_eq!(d.ejection_count(0), 1);
}

#[test]
fn jitter_is_bounded() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        base_ejection_time: 10 * S,
        max_ejection_time_jitter: 5 * S,
        interval: S,
        ..cfg()
    };
    let t0 = Instant::now();
    let mut rng = crate::test_rng::Rng::new(7);
    let mut backs = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let mut d = OutlierDetector::new(&c, 1);
        assert!(d.record(0, Status(500), t0, rng.next() / 100 * 100)); // always enforced
        let back = (1..=20u32).find(|s| d.tick(t0 + *s * S));
        backs.insert(back);
    }
    // Back at the first 1 s sweep at or after 10 s + jitter in [0, 5 s].
    let allowed: std::collections::BTreeSet<_> = (10..=15).map(Some).collect();
    assert!(backs.is_subset(&allowed), "{backs:?}");
    assert!(backs.len() >= 4, "jitter spreads: {backs:?}");
}

#[test]
fn base_larger_than_max_uses_base() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        base_ejection_time: 50 * S,
        max_ejection_time: 10 * S,
        interval: 10 * S,
        ..cfg()
    };
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(&c, 1);
    d.record(0, Status(500), t0, 0);
    assert!(!d.tick(t0 + 40 * S));
    assert!(d.tick(t0 + 50 * S));
}
