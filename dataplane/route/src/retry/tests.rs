use std::time::Duration;

use crate::*;

#[test]
fn retry_on_parse() {
    let cases: &[(&str, Result<RetryOn, &str>)] = &[
        ("5xx", Ok(RetryOn::FIVE_XX)),
        (
            "5xx,connect-failure",
            Ok(RetryOn::FIVE_XX | RetryOn::CONNECT_FAILURE),
        ),
        (
            " gateway-error , reset ,",
            Ok(RetryOn::GATEWAY_ERROR | RetryOn::RESET),
        ),
        ("", Ok(RetryOn(0))),
        (
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            Ok(RetryOn::CONNECT_FAILURE
                | RetryOn::REFUSED_STREAM
                | RetryOn::GRPC_UNAVAILABLE
                | RetryOn::GRPC_CANCELLED
                | RetryOn::RETRIABLE_STATUS_CODES),
        ),
        (
            "retriable-4xx,deadline-exceeded,internal,resource-exhausted",
            Ok(RetryOn::RETRIABLE_4XX
                | RetryOn::GRPC_DEADLINE_EXCEEDED
                | RetryOn::GRPC_INTERNAL
                | RetryOn::GRPC_RESOURCE_EXHAUSTED),
        ),
        ("5XX", Err("`5XX` is not supported")),
        (
            "envoy-ratelimited",
            Err("`envoy-ratelimited` is not supported"),
        ),
        ("5xx,bogus", Err("`bogus`")),
    ];
    for (s, want) in cases {
        match (RetryOn::parse(s), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, *want, "{s}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{s}: {e}"),
            (got, want) => panic!("{s}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn should_retry() {
    use AttemptOutcome::*;
    let resp = |status| Response {
        status,
        grpc_status: None,
    };
    let grpc = |g| Response {
        status: 200,
        grpc_status: Some(g),
    };
    // (retry_on, outcome, retried)
    let cases: Vec<(&str, AttemptOutcome, bool)> = vec![
        ("5xx", resp(500), true),
        ("5xx", resp(503), true),
        ("5xx", resp(599), true),
        ("5xx", resp(404), false),
        ("5xx", ConnectFailure, true),
        ("5xx", Reset, true),
        ("5xx", RefusedStream, true),
        ("5xx", PerTryTimeout, true),
        ("gateway-error", resp(500), false),
        ("gateway-error", resp(502), true),
        ("gateway-error", resp(503), true),
        ("gateway-error", resp(504), true),
        ("gateway-error", Reset, true),
        ("gateway-error", PerTryTimeout, true),
        ("reset", Reset, true),
        ("reset", ConnectFailure, true),
        ("reset", PerTryTimeout, true),
        ("reset", resp(503), false),
        ("connect-failure", ConnectFailure, true),
        ("connect-failure", Reset, false),
        ("connect-failure", PerTryTimeout, false),
        ("connect-failure", resp(503), false),
        ("refused-stream", RefusedStream, true),
        ("refused-stream", Reset, false),
        ("retriable-4xx", resp(409), true),
        ("retriable-4xx", resp(400), false),
        ("retriable-status-codes", resp(503), true),
        ("retriable-status-codes", resp(418), true),
        ("retriable-status-codes", resp(500), false),
        ("cancelled", grpc(1), true),
        ("deadline-exceeded", grpc(4), true),
        ("resource-exhausted", grpc(8), true),
        ("internal", grpc(13), true),
        ("unavailable", grpc(14), true),
        ("unavailable", grpc(13), false),
        ("unavailable", resp(503), false),
        ("", resp(503), false),
        ("", Reset, false),
    ];
    for (on, o, want) in cases {
        let p = RetryPolicy {
            retry_on: RetryOn::parse(on).expect("valid"),
            retriable_status_codes: vec![503, 418],
            ..RetryPolicy::default()
        };
        assert_eq!(p.should_retry(&o), want, "{on} {o:?}");
    }
}

#[test]
fn backoff_is_fully_jittered_and_capped() {
    let p = RetryPolicy::default(); // 25 ms base, 250 ms cap
    let ms = |d: Duration| d.as_millis();
    // The upper bound doubles per retry up to the cap: random = bound in nanos gives it.
    // (retry, upper bound in ms)
    for (retry, upper) in [
        (1, 25),
        (2, 50),
        (3, 100),
        (4, 200),
        (5, 250),
        (6, 250),
        (100, 250),
        (u32::MAX, 250),
    ] {
        let bound_nanos = upper * 1_000_000;
        assert_eq!(
            ms(p.backoff(retry, bound_nanos)),
            u128::from(upper),
            "retry {retry}"
        );
        assert_eq!(
            p.backoff(retry, bound_nanos + 1),
            Duration::ZERO,
            "retry {retry}"
        );
        assert_eq!(p.backoff(retry, 0), Duration::ZERO);
        for r in [1u64, 12_345_678, u64::MAX] {
            assert!(ms(p.backoff(retry, r)) <= u128::from(upper));
        }
    }
    assert_eq!(p.backoff(0, 25_000_000), Duration::from_millis(25));
    let huge = RetryPolicy {
        backoff_base: Duration::from_secs(u64::MAX / 4),
        backoff_max: Duration::MAX,
        ..RetryPolicy::default()
    };
    let _ = huge.backoff(200, u64::MAX); // no overflow
}
