use super::*;

fn hc(unhealthy: u32, healthy: u32) -> HealthCheck {
    HealthCheck {
        timeout: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        interval_jitter: Duration::ZERO,
        unhealthy_threshold: unhealthy,
        healthy_threshold: healthy,
        kind: HealthCheckKind::Http {
            path: "/".into(),
            host: None,
            expected: vec![DEFAULT_EXPECTED],
        },
    }
}

#[test]
fn thresholds() {
    use CheckResult::{Failed as F, FailedNow as N, Healthy as H};
    // (unhealthy_threshold, healthy_threshold, results, failed after each)
    let cases: &[(u32, u32, &[CheckResult], &[bool])] = &[
        // First result decides at once.
        (3, 2, &[F], &[true]),
        (3, 2, &[H], &[false]),
        (3, 2, &[F, H, H], &[true, true, false]),
        // Then thresholds.
        (3, 2, &[H, F, F, F], &[false, false, false, true]),
        (3, 2, &[H, F, F, H, F, F], &[false; 6]),
        (
            2,
            3,
            &[H, F, F, H, H, F, H, H, H],
            &[false, false, true, true, true, true, true, true, false],
        ),
        // Unexpected HTTP status: at once.
        (5, 1, &[H, N, H], &[false, true, false]),
        // Threshold 1.
        (1, 1, &[H, F, H], &[false, true, false]),
    ];
    for (u, h, results, want) in cases {
        let cfg = hc(*u, *h);
        let mut s = HealthState::new();
        assert!(!s.is_failed());
        let mut before = false;
        for (i, (r, w)) in results.iter().zip(want.iter()).enumerate() {
            let changed = s.record(*r, &cfg);
            assert_eq!(s.is_failed(), *w, "case {u}/{h} {results:?} step {i}");
            assert_eq!(changed, before != *w, "change flag at step {i}");
            before = *w;
        }
    }
}

#[test]
fn status_lines() {
    let cases: &[(&[u8], StatusLine)] = &[
        (b"HTTP/1.1 200 OK\r\n", StatusLine::Status(200)),
        (
            b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n",
            StatusLine::Status(503),
        ),
        (b"HTTP/1.1 204\r\n", StatusLine::Status(204)),
        (b"HTTP/1.1 200 OK", StatusLine::Incomplete),
        (b"", StatusLine::Incomplete),
        (b"HTTP/2 200\r\n", StatusLine::Invalid),
        (b"HTTP/1.1 20x OK\r\n", StatusLine::Invalid),
        (b"HTTP/1.1 099 x\r\n", StatusLine::Invalid),
        (b"SSH-2.0-OpenSSH\r\n", StatusLine::Invalid),
    ];
    for (buf, want) in cases {
        assert_eq!(
            http_status(buf),
            *want,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
    assert_eq!(http_status(&[b'x'; 2000]), StatusLine::Invalid);
}

#[test]
fn expected_statuses_are_half_open() {
    let k = HealthCheckKind::Http {
        path: "/".into(),
        host: None,
        expected: vec![200..201, 300..400],
    };
    let ok: Vec<u16> = [199, 200, 201, 299, 300, 399, 400]
        .into_iter()
        .filter(|s| k.status_ok(*s))
        .collect();
    assert_eq!(ok, [200, 300, 399]);
}

#[test]
fn tcp_fuzzy_match() {
    let r = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let cases: &[(&[&str], &str, bool)] = &[
        (&[], "", true),
        (&["pong"], "pong", true),
        (&["pong"], "xxpongyy", true),
        (&["pong"], "pon", false),
        (&["a", "b"], "a--b", true),
        (&["a", "b"], "b--a", false),
        (&["ab", "ab"], "abab", true),
        (&["ab", "ab"], "aba", false),
    ];
    for (blocks, buf, want) in cases {
        assert_eq!(
            tcp_receive_matches(&r(blocks), buf.as_bytes()),
            *want,
            "{blocks:?} in {buf:?}"
        );
    }
}
