use super::*;
use crate::RetryBudget;

fn limits(cx: u32, pending: u32, rq: u32, retries: u32) -> Thresholds {
    Thresholds {
        max_connections: cx,
        max_pending_requests: pending,
        max_requests: rq,
        max_retries: retries,
        retry_budget: None,
    }
}

#[test]
fn each_counter_stops_at_its_limit() {
    let t = limits(2, 1, 3, 0);
    let b = Breaker::new();
    let taken = |f: &dyn Fn() -> bool| (0..5).filter(|_| f()).count();
    assert_eq!(taken(&|| b.try_connection(&t)), 2);
    assert_eq!(taken(&|| b.try_pending(&t)), 1);
    assert_eq!(taken(&|| b.try_request(&t)), 3);
    assert_eq!(taken(&|| b.try_retry(&t)), 0);
    assert_eq!(
        b.active(),
        BreakerCounts {
            connections: 2,
            pending: 1,
            requests: 3,
            retries: 0
        }
    );
    b.release_connection();
    assert!(b.try_connection(&t));
    assert!(!b.try_connection(&t));
}

#[test]
fn release_never_wraps() {
    let b = Breaker::new();
    b.release_request();
    b.release_retry();
    assert_eq!(b.active(), BreakerCounts::default());
    assert!(b.try_request(&limits(1, 1, 1, 1)));
}

#[test]
fn new_limits_apply_to_counts_in_flight() {
    let b = Breaker::new();
    for _ in 0..3 {
        assert!(b.try_request(&limits(9, 9, 9, 9)));
    }
    // Lowered below what is in flight: nothing more until enough finish.
    let low = limits(9, 9, 2, 9);
    assert!(!b.try_request(&low));
    b.release_request();
    assert!(!b.try_request(&low));
    b.release_request();
    assert!(b.try_request(&low));
}

#[test]
fn retry_budget() {
    // (budget %, min concurrency, active requests, pending, retries admitted)
    let cases = [
        (20.0, 3, 0, 0, 3),    // floor of min_retry_concurrency
        (20.0, 3, 10, 0, 3),   // 2 < 3
        (20.0, 3, 50, 0, 10),  // 20% of 50
        (20.0, 3, 40, 10, 10), // pending counts too
        (20.0, 0, 4, 0, 0),    // floor(0.8) = 0
        (100.0, 1, 7, 0, 7),
        (0.0, 2, 100, 0, 2),
    ];
    for (pct, min, rq, pending, want) in cases {
        let t = Thresholds {
            max_retries: 1000, // ignored with a budget
            max_requests: u32::MAX,
            max_pending_requests: u32::MAX,
            retry_budget: Some(RetryBudget {
                budget_percent: pct,
                min_retry_concurrency: min,
            }),
            ..Thresholds::default()
        };
        let b = Breaker::new();
        for _ in 0..rq {
            assert!(b.try_request(&t));
        }
        for _ in 0..pending {
            assert!(b.try_pending(&t));
        }
        let admitted = (0..2000).filter(|_| b.try_retry(&t)).count();
        assert_eq!(admitted, want, "{pct}% min {min} rq {rq} pending {pending}");
    }
}

#[test]
fn breaker_is_shared_between_threads() {
    let b = std::sync::Arc::new(Breaker::new());
    let t = limits(1000, 0, 0, 0);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || (0..1000).filter(|_| b.try_connection(&t)).count())
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    assert_eq!(total, 1000);
}

#[test]
fn shared_health_generation_counts_changes() {
    let h = SharedHealth::new(3);
    assert_eq!((h.len(), h.generation()), (3, 0));
    h.set_failed(1, true);
    h.set_failed(1, true); // no change
    assert!(h.is_failed(1) && !h.is_failed(0));
    assert_eq!(h.generation(), 1);
    h.set_failed(1, false);
    assert_eq!(h.generation(), 2);
    h.set_failed(7, true); // out of range: ignored
    assert!(!h.is_failed(7));
    assert_eq!(h.generation(), 2);
}
