//! HTTP route policies of a VirtualService: header operations, retries, fault injection.

use crate::model::virtual_service::{Headers, HttpFaultInjection, HttpRetry};

use super::Ctx;
use super::common::{duration, header_name, percent};

/// Envoy's retry policies, as `retryOn` accepts them (besides status codes).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Checks header operations; returns how many of them rewrite the authority.
pub(super) fn headers(cx: &mut Ctx, p: &str, h: &Headers) -> usize {
    let mut authority = 0;
    for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for name in map.keys() {
                let hp = format!("{p}.{dir}.{op}.{name}");
                let lower = name.to_ascii_lowercase();
                if !header_name(name) {
                    cx.error(&hp, format!("invalid header name {name:?}"));
                } else if lower.starts_with(':') && lower != ":authority" {
                    cx.error(&hp, format!("pseudo-header {name:?} cannot be modified"));
                }
                if dir == "request" && (lower == ":authority" || lower == "host") {
                    authority += 1;
                }
            }
        }
        for (j, name) in ops.remove.iter().enumerate() {
            let hp = format!("{p}.{dir}.remove[{j}]");
            if !header_name(name) {
                cx.error(&hp, format!("invalid header name {name:?}"));
            } else if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                cx.error(&hp, format!("header {name:?} cannot be removed"));
            }
        }
    }
    authority
}

pub(super) fn retries(cx: &mut Ctx, p: &str, r: &HttpRetry) {
    if let Some(a) = r.attempts
        && a < 0
    {
        cx.error(&format!("{p}.attempts"), "attempts cannot be negative");
    }
    duration(
        cx,
        &format!("{p}.perTryTimeout"),
        r.per_try_timeout.as_ref(),
    );
    duration(cx, &format!("{p}.backoff"), r.backoff.as_ref());
    if let Some(on) = &r.retry_on {
        for policy in on.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let status = policy
                .parse::<u32>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !status && !RETRY_ON.contains(&policy) {
                cx.error(
                    &format!("{p}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
}

pub(super) fn fault_injection(cx: &mut Ctx, p: &str, f: &HttpFaultInjection) {
    if f.delay.is_none() && f.abort.is_none() {
        cx.error(p, "fault must have at least delay or abort");
    }
    if let Some(d) = &f.delay {
        let dp = format!("{p}.delay");
        match (&d.fixed_delay, &d.exponential_delay) {
            (Some(_), Some(_)) => {
                cx.error(&dp, "only one of fixedDelay or exponentialDelay may be set")
            }
            (None, None) => cx.error(&dp, "delay must have fixedDelay or exponentialDelay"),
            _ => {}
        }
        duration(cx, &format!("{dp}.fixedDelay"), d.fixed_delay.as_ref());
        duration(
            cx,
            &format!("{dp}.exponentialDelay"),
            d.exponential_delay.as_ref(),
        );
        if let Some(pc) = &d.percentage {
            percent(cx, &format!("{dp}.percentage.value"), pc.value);
        }
        if let Some(pc) = d.percent {
            percent(cx, &format!("{dp}.percent"), f64::from(pc));
        }
    }
    if let Some(a) = &f.abort {
        let ap = format!("{p}.abort");
        let kinds = usize::from(a.http_status.is_some())
            + usize::from(a.grpc_status.is_some())
            + usize::from(a.http2_error.is_some());
        if kinds != 1 {
            cx.error(
                &ap,
                "abort must have exactly one of httpStatus, grpcStatus or http2Error",
            );
        }
        if let Some(s) = a.http_status
            && !(200..=599).contains(&s)
        {
            cx.error(
                &format!("{ap}.httpStatus"),
                format!("abort httpStatus must be in the range 200-599 (got {s})"),
            );
        }
        if let Some(pc) = &a.percentage {
            percent(cx, &format!("{ap}.percentage.value"), pc.value);
        }
    }
}
