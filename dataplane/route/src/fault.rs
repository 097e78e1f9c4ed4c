//! Envoy's fault injection filter (`envoy.filters.http.fault`) as a decision: delay and/or
//! abort a request, for a fraction of the requests that pass the filter's header matchers.
//! The caller enforces `max_active_faults` (it owns the counters) and sleeps or answers.

use std::time::Duration;

use crate::matcher::header;
use crate::{HeaderMatcher, RequestView};

/// Header naming the delay in milliseconds, for header-controlled delays.
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
/// Header lowering the delay percentage (numerator in the configured denominator).
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
/// Header naming the HTTP abort status, for header-controlled aborts.
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
/// Header naming the gRPC abort status, for header-controlled aborts.
pub const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
/// Header lowering the abort percentage (numerator in the configured denominator).
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";

/// Parts per million in a whole.
const MILLION: u32 = 1_000_000;

/// Envoy's `FractionalPercent`, normalised to parts per million (every Envoy denominator,
/// 100, 10,000 and 1,000,000, divides a million exactly). A numerator above its
/// denominator means all.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fraction {
    /// Share, 0 to 1,000,000.
    pub per_million: u32,
}

impl Fraction {
    /// Every request.
    pub const ALL: Fraction = Fraction {
        per_million: MILLION,
    };
    /// No request.
    pub const NONE: Fraction = Fraction { per_million: 0 };

    /// `numerator / denominator` where `denominator` is 100, 10,000 or 1,000,000; `None`
    /// for any other denominator.
    pub fn new(numerator: u32, denominator: u32) -> Option<Self> {
        let unit = unit_of(denominator)?;
        Some(Self {
            per_million: numerator.saturating_mul(unit).min(MILLION),
        })
    }

    /// Whether the request drawn as `random` falls in the fraction.
    pub fn hit(&self, random: u64) -> bool {
        random % u64::from(MILLION) < u64::from(self.per_million)
    }
}

/// Parts per million in one unit of `denominator`.
fn unit_of(denominator: u32) -> Option<u32> {
    match denominator {
        100 => Some(10_000),
        10_000 => Some(100),
        1_000_000 => Some(1),
        _ => None,
    }
}

/// Envoy `HTTPFault`: the filter's config, or a route's or virtual host's override.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPolicy {
    /// Delay injection.
    pub delay: Option<FaultDelay>,
    /// Abort injection.
    pub abort: Option<FaultAbort>,
    /// Faults apply only to requests matching every one.
    pub headers: Vec<HeaderMatcher>,
    /// Most faults active at once across the proxy; `None` is unlimited.
    pub max_active_faults: Option<u32>,
}

/// Envoy `FaultDelay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultDelay {
    /// The delay; `None`: header-controlled (`x-envoy-fault-delay-request`, in ms).
    pub fixed: Option<Duration>,
    /// Share of requests delayed.
    pub percentage: Fraction,
    /// Parts per million in one unit of the configured denominator (10,000 for HUNDRED,
    /// 100 for TEN_THOUSAND, 1 for MILLION): the unit of the percentage header.
    pub percentage_unit: u32,
}

/// What an abort answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AbortKind {
    /// This HTTP status (200 to 599).
    Http(u16),
    /// This gRPC status.
    Grpc(u32),
    /// From `x-envoy-fault-abort-request` (HTTP, preferred) or
    /// `x-envoy-fault-abort-grpc-request`.
    HeaderControlled,
}

/// Envoy `FaultAbort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultAbort {
    /// What to answer.
    pub kind: AbortKind,
    /// Share of requests aborted.
    pub percentage: Fraction,
    /// See [`FaultDelay::percentage_unit`].
    pub percentage_unit: u32,
}

/// What to do to one request.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Then answer this instead of forwarding.
    pub abort: Option<Abort>,
}

/// An injected answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    /// HTTP status.
    Http(u16),
    /// gRPC status (HTTP 200 with `grpc-status`).
    Grpc(u32),
}

impl FaultPolicy {
    /// The faults for `req`, drawing the delay with `random_delay` and the abort with
    /// `random_abort`. Header-controlled faults read their value (and optionally a lower
    /// percentage, in the configured denominator) from the request, as Envoy's filter.
    pub fn decide(
        &self,
        req: &impl RequestView,
        random_delay: u64,
        random_abort: u64,
    ) -> FaultDecision {
        if !self.headers.iter().all(|h| h.matches(req)) {
            return FaultDecision::default();
        }
        let delay = self.delay.as_ref().and_then(|d| {
            let pct = percentage(
                req,
                d.fixed.is_none(),
                DELAY_PERCENTAGE_HEADER,
                d.percentage,
                d.percentage_unit,
            );
            if !pct.hit(random_delay) {
                return None;
            }
            match d.fixed {
                Some(fixed) => Some(fixed),
                None => number(req, DELAY_HEADER).map(Duration::from_millis),
            }
        });
        let abort = self.abort.as_ref().and_then(|a| {
            let header_controlled = a.kind == AbortKind::HeaderControlled;
            let pct = percentage(
                req,
                header_controlled,
                ABORT_PERCENTAGE_HEADER,
                a.percentage,
                a.percentage_unit,
            );
            if !pct.hit(random_abort) {
                return None;
            }
            match a.kind {
                AbortKind::Http(s) => Some(Abort::Http(s)),
                AbortKind::Grpc(g) => Some(Abort::Grpc(g)),
                AbortKind::HeaderControlled => number(req, ABORT_HEADER)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (200..600).contains(s))
                    .map(Abort::Http)
                    .or_else(|| {
                        number(req, ABORT_GRPC_HEADER)
                            .and_then(|g| u32::try_from(g).ok())
                            .map(Abort::Grpc)
                    }),
            }
        });
        FaultDecision { delay, abort }
    }
}

/// The configured share, lowered by the percentage header for header-controlled faults:
/// `min(header, configured numerator)` in the configured denominator, as Envoy.
fn percentage(
    req: &impl RequestView,
    header_controlled: bool,
    name: &str,
    configured: Fraction,
    unit: u32,
) -> Fraction {
    if !header_controlled {
        return configured;
    }
    match number(req, name).and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Fraction {
            per_million: n.saturating_mul(unit).min(configured.per_million),
        },
        None => configured,
    }
}

/// A header holding a whole number.
fn number(req: &impl RequestView, name: &str) -> Option<u64> {
    let v = header(req, name)?;
    std::str::from_utf8(&v).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests;
