//! Route policies from a VirtualService HTTP route: retries, fault injection, CORS,
//! header changes, and the percentages and bodies they carry.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::route_action::HostRewriteSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, retry_policy, route,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use envoy_types::util::pack_any;
use spar_istio::Resource;
use spar_istio::model::virtual_service::{
    CorsPolicy, HeaderOperations, Headers, HttpFaultInjection, HttpRetry, HttpRoute,
    UnmatchedPreflights,
};

use super::{CORS_FILTER, FAULT_FILTER, string_matcher};
use crate::Cx;
use crate::names::duration;

/// Istio's retry policy when a route says nothing: two retries on connect failures,
/// refused streams and 503, on another host.
pub(super) const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
pub(super) const DEFAULT_ATTEMPTS: u32 = 2;
/// Istio's `host_selection_retry_max_attempts` with the previous-hosts predicate.
pub(super) const HOST_SELECTION_ATTEMPTS: i64 = 5;

/// A route with no `retries` gets Istio's default policy; `attempts: 0` gets none.
pub(super) fn retry(
    cx: &mut Cx<'_>,
    r: &Resource,
    retries: Option<&HttpRetry>,
    at: &str,
) -> Option<RetryPolicy> {
    let default = HttpRetry::default();
    let retries = retries.unwrap_or(&default);
    let attempts = match retries.attempts {
        Some(0) => return None,
        Some(n) => u32::try_from(n).unwrap_or(DEFAULT_ATTEMPTS),
        None => DEFAULT_ATTEMPTS,
    };
    let mut on = Vec::new();
    let mut codes = Vec::new();
    for item in retries
        .retry_on
        .as_deref()
        .unwrap_or(DEFAULT_RETRY_ON)
        .split(',')
    {
        let item = item.trim();
        match item.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) if !item.is_empty() => on.push(item.to_owned()),
            Err(_) => {}
        }
    }
    if retries.retry_on.is_none() {
        codes.push(503);
    }
    if !codes.is_empty() && !on.iter().any(|o| o == "retriable-status-codes") {
        on.push("retriable-status-codes".to_owned());
    }
    let mut p = RetryPolicy {
        retry_on: on.join(","),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: retries.per_try_timeout.as_deref().and_then(duration),
        retriable_status_codes: codes,
        ..Default::default()
    };
    if retries.retry_ignore_previous_hosts != Some(false) {
        p.retry_host_predicate
            .push(retry_policy::RetryHostPredicate {
                name: "envoy.retry_host_predicates.previous_hosts".to_owned(),
                config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                    pack_any(PreviousHostsPredicate::default()),
                )),
            });
        p.host_selection_retry_max_attempts = HOST_SELECTION_ATTEMPTS;
    }
    if let Some(b) = retries.backoff.as_deref().and_then(duration) {
        p.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(b),
            ..Default::default()
        });
    }
    if retries.retry_remote_localities.is_some() {
        cx.unsupported(
            r,
            &format!("{at}.retryRemoteLocalities"),
            "locality-aware retries (ignored)",
        );
    }
    Some(p)
}

/// Fault and CORS overrides, keyed by the connection manager's filter names.
pub(super) fn per_filter(
    cx: &mut Cx<'_>,
    r: &Resource,
    http: &HttpRoute,
    at: &str,
) -> HashMap<String, Any> {
    let mut out = HashMap::new();
    if let Some(f) = &http.fault
        && let Some(hf) = fault(cx, r, f, &format!("{at}.fault"))
    {
        out.insert(FAULT_FILTER.to_owned(), pack_any(hf));
    }
    if let Some(c) = &http.cors_policy
        && let Some(p) = cors(cx, r, c, &format!("{at}.corsPolicy"))
    {
        out.insert(CORS_FILTER.to_owned(), pack_any(p));
    }
    out
}

pub(super) fn fault(
    cx: &mut Cx<'_>,
    r: &Resource,
    f: &HttpFaultInjection,
    at: &str,
) -> Option<HttpFault> {
    let mut hf = HttpFault::default();
    if let Some(d) = &f.delay {
        if d.exponential_delay.is_some() {
            cx.unsupported(
                r,
                &format!("{at}.delay.exponentialDelay"),
                "exponential delays",
            );
        }
        if let Some(fixed) = d.fixed_delay.as_deref().and_then(duration) {
            hf.delay = Some(FaultDelay {
                fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(fixed)),
                percentage: Some(match (&d.percentage, d.percent) {
                    (Some(p), _) => million(p.value),
                    (None, Some(p)) => hundred(u32::try_from(p).unwrap_or(0)),
                    (None, None) => hundred(100),
                }),
            });
        }
    }
    if let Some(a) = &f.abort {
        let error = if let Some(s) = a.http_status {
            Some(fault_abort::ErrorType::HttpStatus(
                u32::try_from(s).unwrap_or(503),
            ))
        } else if let Some(g) = &a.grpc_status {
            match grpc_code(g) {
                Some(c) => Some(fault_abort::ErrorType::GrpcStatus(c)),
                None => {
                    cx.note(
                        r,
                        &format!("{at}.abort.grpcStatus"),
                        format!("unknown gRPC status {g}"),
                    );
                    None
                }
            }
        } else {
            cx.unsupported(r, &format!("{at}.abort.http2Error"), "HTTP/2 error aborts");
            None
        };
        if let Some(error) = error {
            hf.abort = Some(FaultAbort {
                error_type: Some(error),
                percentage: Some(
                    a.percentage
                        .as_ref()
                        .map_or_else(|| hundred(100), |p| million(p.value)),
                ),
                ..Default::default()
            });
        }
    }
    (hf.delay.is_some() || hf.abort.is_some()).then_some(hf)
}

pub(super) fn grpc_code(name: &str) -> Option<u32> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    name.parse().ok().or_else(|| {
        CODES
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| u32::try_from(i).ok())
    })
}

pub(super) fn cors(cx: &mut Cx<'_>, r: &Resource, c: &CorsPolicy, at: &str) -> Option<PbCors> {
    let mut origins: Vec<StringMatcher> =
        c.allow_origins.iter().filter_map(string_matcher).collect();
    origins.extend(c.allow_origin.iter().map(|o| StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(o.clone())),
        ignore_case: false,
    }));
    let mut p = PbCors {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .as_deref()
            .and_then(duration)
            .map(|d| d.seconds.to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    };
    match c.unmatched_preflights {
        Some(UnmatchedPreflights::Forward) => {
            p.forward_not_matching_preflights = Some(BoolValue { value: true })
        }
        Some(UnmatchedPreflights::Ignore) => cx.unsupported(
            r,
            &format!("{at}.unmatchedPreflights"),
            "IGNORE for unmatched preflights (they are forwarded)",
        ),
        _ => {}
    }
    Some(p)
}

/// `headers.request` / `headers.response` onto a route (a `host` set becomes a host rewrite).
pub(super) fn headers(cx: &mut Cx<'_>, r: &Resource, h: &Headers, at: &str, route: &mut Route) {
    if let Some(req) = &h.request {
        let (add, remove, host) = operations(cx, r, req, &format!("{at}.request"), true);
        route.request_headers_to_add.extend(add);
        route.request_headers_to_remove.extend(remove);
        if let Some(host) = host {
            match &mut route.action {
                Some(route::Action::Route(ra)) => {
                    ra.host_rewrite_specifier =
                        Some(HostRewriteSpecifier::HostRewriteLiteral(host));
                }
                None => {
                    route.action = Some(route::Action::Route(RouteAction {
                        host_rewrite_specifier: Some(HostRewriteSpecifier::HostRewriteLiteral(
                            host,
                        )),
                        ..Default::default()
                    }));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(resp) = &h.response {
        let (add, remove, _) = operations(cx, r, resp, &format!("{at}.response"), false);
        route.response_headers_to_add.extend(add);
        route.response_headers_to_remove.extend(remove);
    }
}

type Ops = (Vec<HeaderValueOption>, Vec<String>, Option<String>);

pub(super) fn operations(
    cx: &mut Cx<'_>,
    r: &Resource,
    ops: &HeaderOperations,
    at: &str,
    request: bool,
) -> Ops {
    let mut add = Vec::new();
    let mut host = None;
    let is_host = |k: &str| request && (k.eq_ignore_ascii_case("host") || k == ":authority");
    let ordered: BTreeMap<&String, &String> = ops.set.iter().collect();
    for (k, v) in ordered {
        if is_host(k) {
            host = Some(v.clone());
        } else if k.starts_with(':') {
            cx.unsupported(r, &format!("{at}.set[{k}]"), "changing pseudo-headers");
        } else {
            add.push(option(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd));
        }
    }
    for (k, v) in &ops.add {
        if k.starts_with(':') || is_host(k) {
            cx.unsupported(
                r,
                &format!("{at}.add[{k}]"),
                "adding pseudo-headers or host",
            );
        } else {
            add.push(option(k, v, HeaderAppendAction::AppendIfExistsOrAdd));
        }
    }
    let remove = ops
        .remove
        .iter()
        .filter(|k| !k.starts_with(':') && !is_host(k))
        .cloned()
        .collect();
    (add, remove, host)
}

pub(super) fn option(k: &str, v: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: k.to_ascii_lowercase(),
            value: v.to_owned(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

/// A percentage with fractions (Istio `Percent`) in millionths.
pub(super) fn million(value: f64) -> FractionalPercent {
    let clamped = value.clamp(0.0, 100.0) * 10_000.0;
    FractionalPercent {
        // In 0..=1_000_000 after the clamp, so the conversion is exact enough and in range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        numerator: clamped.round() as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

pub(super) fn hundred(value: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: value.min(100),
        denominator: fractional_percent::DenominatorType::Hundred as i32,
    }
}

/// Standard base64 (with or without padding), as Istio's `directResponse.body.bytes`.
pub(super) fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

pub(super) fn default_retry() -> Option<RetryPolicy> {
    Some(RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_owned(),
        num_retries: Some(UInt32Value {
            value: DEFAULT_ATTEMPTS,
        }),
        retriable_status_codes: vec![503],
        retry_host_predicate: vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_owned(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                pack_any(PreviousHostsPredicate::default()),
            )),
        }],
        host_selection_retry_max_attempts: HOST_SELECTION_ATTEMPTS,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_bodies() {
        assert_eq!(base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64("!!"), None);
    }

    #[test]
    fn percentages() {
        assert_eq!(million(0.1).numerator, 1000);
        assert_eq!(million(150.0).numerator, 1_000_000);
        assert_eq!(hundred(100).numerator, 100);
    }

    #[test]
    fn grpc_codes() {
        assert_eq!(grpc_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_code("14"), Some(14));
        assert_eq!(grpc_code("NOPE"), None);
    }
}
