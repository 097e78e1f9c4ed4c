//! Circuit breakers, outlier detection and active health checks of a `Cluster`.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::core::v3::health_check::{self, Payload, payload};
use envoy_types::pb::envoy::config::core::v3::{HealthCheck as PbHealthCheck, RoutingPriority};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use spar_cluster::health::DEFAULT_EXPECTED;
use spar_cluster::{HealthCheck, HealthCheckKind, OutlierConfig, RetryBudget, Thresholds};

use super::Ctx;
use crate::error::FieldPath;

/// Thresholds for priority DEFAULT and, when given, HIGH (kept but never applied: no route
/// is HIGH priority in spar-proxy, as in an Envoy whose routes are all DEFAULT).
pub(super) fn thresholds(
    ctx: &mut Ctx<'_>,
    c: &PbCluster,
    p: &FieldPath,
) -> (Thresholds, Option<Thresholds>) {
    let mut default = None;
    let mut high = None;
    let Some(cb) = &c.circuit_breakers else {
        return (Thresholds::default(), None);
    };
    let tp = p.field("circuit_breakers").field("thresholds");
    for (i, t) in cb.thresholds.iter().enumerate() {
        let ip = tp.index(i);
        let (slot, name) = match RoutingPriority::try_from(t.priority) {
            Ok(RoutingPriority::Default) => (&mut default, "DEFAULT"),
            Ok(RoutingPriority::High) => (&mut high, "HIGH"),
            Err(_) => {
                ctx.error(&ip.field("priority"), "unknown priority");
                continue;
            }
        };
        if slot.is_some() {
            ctx.error(
                &ip,
                format!("thresholds for priority {name} are given twice"),
            );
            continue;
        }
        let d = Thresholds::default();
        let retry_budget = t.retry_budget.map(|b| {
            let bp = ip.field("retry_budget");
            let dflt = RetryBudget::default();
            let budget_percent = match b.budget_percent {
                None => dflt.budget_percent,
                Some(v) if (0.0..=100.0).contains(&v.value) => v.value,
                Some(_) => {
                    ctx.error(
                        &bp.field("budget_percent").field("value"),
                        "budget_percent must be from 0 to 100",
                    );
                    dflt.budget_percent
                }
            };
            RetryBudget {
                budget_percent,
                min_retry_concurrency: b
                    .min_retry_concurrency
                    .map_or(dflt.min_retry_concurrency, |v| v.value),
            }
        });
        *slot = Some(Thresholds {
            max_connections: t.max_connections.map_or(d.max_connections, |v| v.value),
            max_pending_requests: t
                .max_pending_requests
                .map_or(d.max_pending_requests, |v| v.value),
            max_requests: t.max_requests.map_or(d.max_requests, |v| v.value),
            max_retries: t.max_retries.map_or(d.max_retries, |v| v.value),
            retry_budget,
        });
    }
    (default.unwrap_or_default(), high)
}

/// A percentage field (0-100), or `default`.
fn percent(ctx: &mut Ctx<'_>, v: Option<UInt32Value>, p: &FieldPath, default: u32) -> u32 {
    match v {
        None => default,
        Some(v) if v.value <= 100 => v.value,
        Some(_) => {
            ctx.error(p, "must be a percentage from 0 to 100");
            default
        }
    }
}

/// A duration that must be greater than zero, or `default`.
fn positive(
    ctx: &mut Ctx<'_>,
    d: Option<&PbDuration>,
    p: &FieldPath,
    default: Duration,
) -> Duration {
    match d.map(|d| ctx.duration(d, p)) {
        None | Some(None) => default,
        Some(Some(d)) if d.is_zero() => {
            ctx.error(p, "must be greater than 0s");
            default
        }
        Some(Some(d)) => d,
    }
}

pub(super) fn outlier(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Option<OutlierConfig> {
    let o = c.outlier_detection.as_ref()?;
    let op = p.field("outlier_detection");
    let d = OutlierConfig::default();
    // Detectors spar-proxy does not run: accepted only switched off.
    for (value, field) in [
        (o.enforcing_success_rate, "enforcing_success_rate"),
        (
            o.enforcing_local_origin_success_rate,
            "enforcing_local_origin_success_rate",
        ),
        (
            o.enforcing_failure_percentage,
            "enforcing_failure_percentage",
        ),
        (
            o.enforcing_failure_percentage_local_origin,
            "enforcing_failure_percentage_local_origin",
        ),
    ] {
        if value.is_some_and(|v| v.value != 0) {
            ctx.error(
                &op.field(field),
                "success-rate and failure-percentage outlier detection are not supported by spar-proxy yet (set it to 0)",
            );
        }
    }
    let count = |v: Option<UInt32Value>, default: u32| v.map_or(default, |v| v.value);
    Some(OutlierConfig {
        interval: positive(ctx, o.interval.as_ref(), &op.field("interval"), d.interval),
        base_ejection_time: positive(
            ctx,
            o.base_ejection_time.as_ref(),
            &op.field("base_ejection_time"),
            d.base_ejection_time,
        ),
        max_ejection_time: positive(
            ctx,
            o.max_ejection_time.as_ref(),
            &op.field("max_ejection_time"),
            d.max_ejection_time,
        ),
        max_ejection_time_jitter: match &o.max_ejection_time_jitter {
            None => d.max_ejection_time_jitter,
            Some(j) => ctx
                .duration(j, &op.field("max_ejection_time_jitter"))
                .unwrap_or_default(),
        },
        max_ejection_percent: percent(
            ctx,
            o.max_ejection_percent,
            &op.field("max_ejection_percent"),
            d.max_ejection_percent,
        ),
        consecutive_5xx: count(o.consecutive_5xx, d.consecutive_5xx),
        enforcing_consecutive_5xx: percent(
            ctx,
            o.enforcing_consecutive_5xx,
            &op.field("enforcing_consecutive_5xx"),
            d.enforcing_consecutive_5xx,
        ),
        consecutive_gateway_failure: count(
            o.consecutive_gateway_failure,
            d.consecutive_gateway_failure,
        ),
        enforcing_consecutive_gateway_failure: percent(
            ctx,
            o.enforcing_consecutive_gateway_failure,
            &op.field("enforcing_consecutive_gateway_failure"),
            d.enforcing_consecutive_gateway_failure,
        ),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin_failure: count(
            o.consecutive_local_origin_failure,
            d.consecutive_local_origin_failure,
        ),
        enforcing_consecutive_local_origin_failure: percent(
            ctx,
            o.enforcing_consecutive_local_origin_failure,
            &op.field("enforcing_consecutive_local_origin_failure"),
            d.enforcing_consecutive_local_origin_failure,
        ),
    })
}

pub(super) fn health_checks(ctx: &mut Ctx<'_>, c: &PbCluster, p: &FieldPath) -> Vec<HealthCheck> {
    let hp = p.field("health_checks");
    c.health_checks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| health_check(ctx, h, &hp.index(i)))
        .collect()
}

fn health_check(ctx: &mut Ctx<'_>, h: &PbHealthCheck, p: &FieldPath) -> Option<HealthCheck> {
    let required = |d: Option<&PbDuration>, field: &str, ctx: &mut Ctx<'_>| match d {
        None => {
            ctx.error(&p.field(field), format!("{field} is required"));
            None
        }
        Some(_) => Some(positive(ctx, d, &p.field(field), Duration::from_secs(1))),
    };
    let timeout = required(h.timeout.as_ref(), "timeout", ctx);
    let interval = required(h.interval.as_ref(), "interval", ctx);
    let interval_jitter = match &h.interval_jitter {
        None => Duration::ZERO,
        Some(j) => ctx
            .duration(j, &p.field("interval_jitter"))
            .unwrap_or_default(),
    };
    let mut threshold = |v: Option<UInt32Value>, field: &str| match v {
        None => {
            ctx.error(&p.field(field), format!("{field} is required"));
            None
        }
        Some(v) if v.value == 0 => {
            ctx.error(&p.field(field), format!("{field} must be at least 1"));
            None
        }
        Some(v) => Some(v.value),
    };
    let unhealthy_threshold = threshold(h.unhealthy_threshold, "unhealthy_threshold");
    let healthy_threshold = threshold(h.healthy_threshold, "healthy_threshold");
    let kind = match &h.health_checker {
        Some(health_check::HealthChecker::HttpHealthCheck(http)) => {
            let hp = p.field("http_health_check");
            if http.path.is_empty() {
                ctx.error(&hp.field("path"), "path is required");
            }
            let mut expected = Vec::new();
            for (i, r) in http.expected_statuses.iter().enumerate() {
                match (u16::try_from(r.start), u16::try_from(r.end)) {
                    (Ok(start), Ok(end))
                        if (100..=600).contains(&start) && start < end && end <= 600 =>
                    {
                        expected.push(start..end);
                    }
                    _ => ctx.error(
                        &hp.field("expected_statuses").index(i),
                        "a status range needs 100 <= start < end <= 600 (end is exclusive)",
                    ),
                }
            }
            if expected.is_empty() {
                expected.push(DEFAULT_EXPECTED);
            }
            Some(HealthCheckKind::Http {
                path: http.path.clone(),
                host: (!http.host.is_empty()).then(|| http.host.clone()),
                expected,
            })
        }
        Some(health_check::HealthChecker::TcpHealthCheck(tcp)) => {
            let tp = p.field("tcp_health_check");
            let send = tcp
                .send
                .as_ref()
                .and_then(|s| payload_bytes(ctx, s, &tp.field("send")));
            let receive = tcp
                .receive
                .iter()
                .enumerate()
                .filter_map(|(i, r)| payload_bytes(ctx, r, &tp.field("receive").index(i)))
                .collect();
            Some(HealthCheckKind::Tcp { send, receive })
        }
        Some(_) => {
            ctx.error(
                p,
                "only http_health_check and tcp_health_check are supported by spar-proxy yet",
            );
            None
        }
        None => {
            ctx.error(p, "http_health_check or tcp_health_check is required");
            None
        }
    };
    Some(HealthCheck {
        timeout: timeout?,
        interval: interval?,
        interval_jitter,
        unhealthy_threshold: unhealthy_threshold?,
        healthy_threshold: healthy_threshold?,
        kind: kind?,
    })
}

/// A payload's bytes: `text` is hex (Envoy), `binary` raw.
fn payload_bytes(ctx: &mut Ctx<'_>, pl: &Payload, p: &FieldPath) -> Option<Vec<u8>> {
    match &pl.payload {
        Some(payload::Payload::Text(hex)) => match decode_hex(hex) {
            Some(b) if !b.is_empty() => Some(b),
            _ => {
                ctx.error(
                    &p.field("text"),
                    "text must be a non-empty hex string (two digits per byte)",
                );
                None
            }
        },
        Some(payload::Payload::Binary(b)) => Some(b.clone()),
        None => {
            ctx.error(p, "text or binary is required");
            None
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}
