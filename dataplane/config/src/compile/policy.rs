//! Pieces of route config used at several levels: header mutations, string and regex
//! matchers, retry, hash, fault and CORS policies, fractions and metadata.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValueOption, Metadata as PbMetadata, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy as PbRetryPolicy, route_action::HashPolicy as PbHashPolicy,
    route_action::hash_policy,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, StringMatcher as PbStringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{Any, value};
use prost::Message;
use spar_route::{
    AbortKind, AppendAction, CorsPolicy, FaultAbort, FaultDelay, FaultPolicy, Fraction, HashPolicy,
    HashPolicyEntry, HeaderAppend, HeaderMutation, HeaderValue, Metadata, RegexRewrite, RetryOn,
    RetryPolicy, SafeRegex, StringMatch, StringMatcher, valid_header_name, valid_header_value,
};

use super::Ctx;
use super::route::{header_matcher, header_name};
use crate::allowlist::PREVIOUS_HOSTS;
use crate::error::FieldPath;

/// Name of Envoy's previous-hosts retry predicate.
const PREVIOUS_HOSTS_NAME: &str = "envoy.retry_host_predicates.previous_hosts";
/// The only `filter_metadata` key `metadata_match` may use.
const LB_METADATA_KEY: &str = "envoy.lb";

/// Decodes the message in `any` (its type was checked by the subset check).
pub(super) fn decode<T: Message + Default>(
    ctx: &mut Ctx<'_>,
    any: &Any,
    p: &FieldPath,
    type_name: &str,
) -> Option<T> {
    match T::decode(any.value.as_slice()) {
        Ok(m) => Some(m),
        Err(e) => {
            ctx.error(p, format!("does not decode as {type_name}: {e}"));
            None
        }
    }
}

/// `<dir>_headers_to_add` and `<dir>_headers_to_remove` under `p`.
pub(super) fn mutation(
    ctx: &mut Ctx<'_>,
    add: &[HeaderValueOption],
    remove: &[String],
    p: &FieldPath,
    dir: &str,
) -> HeaderMutation {
    let ap = p.field(&format!("{dir}_headers_to_add"));
    let rp = p.field(&format!("{dir}_headers_to_remove"));
    let add = add
        .iter()
        .enumerate()
        .filter_map(|(i, o)| header_append(ctx, o, &ap.index(i)))
        .collect();
    let remove = remove
        .iter()
        .enumerate()
        .filter_map(|(i, n)| mutable_name(ctx, n, &rp.index(i)))
        .collect();
    HeaderMutation { add, remove }
}

/// Fields the HTTP codec owns: changing them could desynchronise a connection.
const RESERVED: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// A header name a mutation may touch: a token, not `host` (pseudo-headers are not tokens).
fn mutable_name(ctx: &mut Ctx<'_>, name: &str, p: &FieldPath) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if !valid_header_name(&lower) {
        ctx.error(
            p,
            format!("`{name}` is not a header name that may be changed (pseudo-headers may not)"),
        );
        None
    } else if lower == "host" {
        ctx.error(p, "host may not be changed here (use a host rewrite)");
        None
    } else if RESERVED.contains(&lower.as_str()) {
        ctx.error(
            p,
            format!("`{lower}` frames the message or the connection and may not be changed"),
        );
        None
    } else {
        Some(lower)
    }
}

fn header_append(ctx: &mut Ctx<'_>, o: &HeaderValueOption, p: &FieldPath) -> Option<HeaderAppend> {
    let Some(h) = &o.header else {
        ctx.error(&p.field("header"), "header is required");
        return None;
    };
    let hp = p.field("header");
    let name = mutable_name(ctx, &h.key, &hp.field("key"));
    let value = match HeaderValue::parse(&h.value) {
        Ok(v) => Some(v),
        Err(e) => {
            ctx.error(&hp.field("value"), e);
            None
        }
    };
    use header_value_option::HeaderAppendAction as A;
    #[allow(deprecated)] // `append` is deprecated in favour of `append_action`; both are read.
    let append = o.append;
    let action = match (append, A::try_from(o.append_action)) {
        (Some(_), Ok(a)) if a != A::AppendIfExistsOrAdd => {
            ctx.error(&p.field("append"), "set append or append_action, not both");
            None
        }
        (Some(b), _) if b.value => Some(AppendAction::AppendIfExistsOrAdd),
        (Some(_), _) => Some(AppendAction::OverwriteIfExistsOrAdd),
        (None, Ok(A::AppendIfExistsOrAdd)) => Some(AppendAction::AppendIfExistsOrAdd),
        (None, Ok(A::AddIfAbsent)) => Some(AppendAction::AddIfAbsent),
        (None, Ok(A::OverwriteIfExistsOrAdd)) => Some(AppendAction::OverwriteIfExistsOrAdd),
        (None, Ok(A::OverwriteIfExists)) => Some(AppendAction::OverwriteIfExists),
        (None, Err(_)) => {
            ctx.error(&p.field("append_action"), "unknown append_action");
            None
        }
    };
    Some(HeaderAppend {
        name: name?,
        value: value?,
        action: action?,
        keep_empty_value: o.keep_empty_value,
    })
}

/// Text that ends up in a header (a path, a host): no CR, LF or NUL.
pub(super) fn header_value_text(ctx: &mut Ctx<'_>, s: &str, p: &FieldPath) -> bool {
    let ok = valid_header_value(s.as_bytes());
    if !ok {
        ctx.error(p, "must not contain CR, LF or NUL");
    }
    ok
}

/// A host (and optional port) for a rewrite or redirect.
pub(super) fn host(ctx: &mut Ctx<'_>, h: &str, p: &FieldPath) -> Option<String> {
    let ok = !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_graphic() && !b"/?#@\"\\".contains(&b));
    if ok {
        Some(h.to_owned())
    } else {
        ctx.error(
            p,
            format!(
                "`{}` is not a host name (with optional port)",
                h.escape_debug()
            ),
        );
        None
    }
}

pub(super) fn non_empty(ctx: &mut Ctx<'_>, s: &str, p: &FieldPath) -> Option<String> {
    if s.is_empty() {
        ctx.error(p, "must not be empty");
        None
    } else {
        Some(s.to_owned())
    }
}

pub(super) fn regex(ctx: &mut Ctx<'_>, pattern: &str, p: &FieldPath) -> Option<SafeRegex> {
    match SafeRegex::new(pattern) {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.error(p, e.to_string());
            None
        }
    }
}

pub(super) fn regex_rewrite(
    ctx: &mut Ctx<'_>,
    r: &RegexMatchAndSubstitute,
    p: &FieldPath,
) -> Option<RegexRewrite> {
    let Some(pattern) = &r.pattern else {
        ctx.error(&p.field("pattern"), "pattern is required");
        return None;
    };
    let re = regex(ctx, &pattern.regex, &p.field("pattern").field("regex"))?;
    if !header_value_text(ctx, &r.substitution, &p.field("substitution")) {
        return None;
    }
    match RegexRewrite::new(re, r.substitution.clone()) {
        Ok(rr) => Some(rr),
        Err(e) => {
            ctx.error(&p.field("substitution"), e.to_string());
            None
        }
    }
}

pub(super) fn string_matcher(
    ctx: &mut Ctx<'_>,
    m: &PbStringMatcher,
    p: &FieldPath,
) -> Option<StringMatcher> {
    use string_matcher::MatchPattern as M;
    let kind = match &m.match_pattern {
        Some(M::Exact(s)) => Some(StringMatch::Exact(s.clone())),
        Some(M::Prefix(s)) => non_empty(ctx, s, &p.field("prefix")).map(StringMatch::Prefix),
        Some(M::Suffix(s)) => non_empty(ctx, s, &p.field("suffix")).map(StringMatch::Suffix),
        Some(M::Contains(s)) => non_empty(ctx, s, &p.field("contains")).map(StringMatch::Contains),
        Some(M::SafeRegex(r)) => {
            regex(ctx, &r.regex, &p.field("safe_regex").field("regex")).map(StringMatch::Regex)
        }
        Some(M::Custom(_)) => {
            ctx.error(
                &p.field("custom"),
                "custom matchers are not supported by spar-proxy",
            );
            None
        }
        None => {
            ctx.error(p, "needs exact, prefix, suffix, contains or safe_regex");
            None
        }
    };
    Some(StringMatcher {
        kind: kind?,
        ignore_case: m.ignore_case,
    })
}

/// A `FractionalPercent`, and the parts per million of one unit of its denominator.
pub(super) fn fraction_with_unit(
    ctx: &mut Ctx<'_>,
    f: &FractionalPercent,
    p: &FieldPath,
) -> Option<(Fraction, u32)> {
    use fractional_percent::DenominatorType as D;
    let denominator = match D::try_from(f.denominator) {
        Ok(D::Hundred) => 100,
        Ok(D::TenThousand) => 10_000,
        Ok(D::Million) => 1_000_000,
        Err(_) => {
            ctx.error(&p.field("denominator"), "unknown denominator");
            return None;
        }
    };
    let fraction = Fraction::new(f.numerator, denominator)?;
    Some((fraction, 1_000_000 / denominator))
}

pub(super) fn fraction(
    ctx: &mut Ctx<'_>,
    f: &FractionalPercent,
    p: &FieldPath,
) -> Option<Fraction> {
    fraction_with_unit(ctx, f, p).map(|(f, _)| f)
}

/// `metadata_match`: `filter_metadata["envoy.lb"]` with its values as text; `None` when
/// empty or invalid.
pub(super) fn metadata(ctx: &mut Ctx<'_>, m: &PbMetadata, p: &FieldPath) -> Option<Arc<Metadata>> {
    let fp = p.field("filter_metadata");
    let mut keys: Vec<&String> = m.filter_metadata.keys().collect();
    keys.sort();
    let mut out = Metadata::new();
    for key in keys {
        let kp = fp.field(key);
        if key != LB_METADATA_KEY {
            ctx.error(&kp, format!("only filter_metadata[\"{LB_METADATA_KEY}\"] is used for subset matching; `{key}` is not supported"));
            continue;
        }
        let Some(s) = m.filter_metadata.get(key) else {
            continue;
        };
        for (k, v) in &s.fields {
            let text = match &v.kind {
                Some(value::Kind::StringValue(s)) => s.clone(),
                Some(value::Kind::BoolValue(b)) => b.to_string(),
                // Whole numbers print without a fraction, as JSON writes them.
                Some(value::Kind::NumberValue(n))
                    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 =>
                {
                    format!("{n:.0}")
                }
                Some(value::Kind::NumberValue(n)) => n.to_string(),
                _ => {
                    ctx.error(
                        &kp.field(k),
                        "only string, number and bool values are supported",
                    );
                    continue;
                }
            };
            out.insert(k.clone(), text);
        }
    }
    (!out.is_empty()).then(|| Arc::new(out))
}

pub(super) fn retry(ctx: &mut Ctx<'_>, r: &PbRetryPolicy, p: &FieldPath) -> Option<RetryPolicy> {
    let retry_on = match RetryOn::parse(&r.retry_on) {
        Ok(on) => Some(on),
        Err(e) => {
            ctx.error(&p.field("retry_on"), e);
            None
        }
    };
    let mut policy = RetryPolicy::default();
    if let Some(n) = r.num_retries {
        policy.num_retries = n.value;
    }
    policy.per_try_timeout = ctx.timeout(
        r.per_try_timeout.as_ref(),
        &p.field("per_try_timeout"),
        None,
    );
    policy.per_try_idle_timeout = ctx.timeout(
        r.per_try_idle_timeout.as_ref(),
        &p.field("per_try_idle_timeout"),
        None,
    );
    let cp = p.field("retriable_status_codes");
    for (i, code) in r.retriable_status_codes.iter().enumerate() {
        match u16::try_from(*code) {
            Ok(c @ 100..=599) => policy.retriable_status_codes.push(c),
            _ => ctx.error(
                &cp.index(i),
                format!("status {code} is not from 100 to 599"),
            ),
        }
    }
    if let Some(b) = &r.retry_back_off {
        let bp = p.field("retry_back_off");
        match b
            .base_interval
            .as_ref()
            .and_then(|d| ctx.duration(d, &bp.field("base_interval")))
        {
            Some(base) if !base.is_zero() => {
                policy.backoff_base = base;
                policy.backoff_max = base * 10;
            }
            _ => ctx.error(
                &bp.field("base_interval"),
                "base_interval is required and must be above 0s",
            ),
        }
        if let Some(max) = b
            .max_interval
            .as_ref()
            .and_then(|d| ctx.duration(d, &bp.field("max_interval")))
        {
            if max < policy.backoff_base {
                ctx.error(
                    &bp.field("max_interval"),
                    "max_interval must not be below base_interval",
                );
            }
            policy.backoff_max = max;
        }
    }
    let hp = p.field("retry_host_predicate");
    for (i, pred) in r.retry_host_predicate.iter().enumerate() {
        use envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType;
        let typed = match &pred.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                any.type_url.rsplit('/').next() == Some(PREVIOUS_HOSTS)
            }
            None => pred.name == PREVIOUS_HOSTS_NAME,
        };
        if typed {
            policy.retry_previous_hosts = true;
        } else {
            ctx.error(
                &hp.index(i),
                format!("only {PREVIOUS_HOSTS_NAME} is supported by spar-proxy"),
            );
        }
    }
    match r.host_selection_retry_max_attempts {
        0 => {}
        n if n < 0 => ctx.error(
            &p.field("host_selection_retry_max_attempts"),
            "must not be negative",
        ),
        n => policy.host_selection_max_attempts = u32::try_from(n).unwrap_or(u32::MAX),
    }
    policy.retry_on = retry_on?;
    Some(policy)
}

pub(super) fn hash(ctx: &mut Ctx<'_>, h: &PbHashPolicy, p: &FieldPath) -> Option<HashPolicyEntry> {
    use hash_policy::PolicySpecifier as S;
    let policy = match &h.policy_specifier {
        Some(S::Header(hd)) => header_name(
            ctx,
            &hd.header_name,
            &p.field("header").field("header_name"),
        )
        .map(|name| HashPolicy::Header { name }),
        Some(S::Cookie(c)) => {
            let cp = p.field("cookie");
            let name = non_empty(ctx, &c.name, &cp.field("name"));
            let ttl = c.ttl.as_ref().map(|d| ctx.duration(d, &cp.field("ttl")));
            let path = (!c.path.is_empty()).then(|| c.path.clone());
            if let Some(path) = &path {
                header_value_text(ctx, path, &cp.field("path"));
            }
            match (name, ttl) {
                (Some(name), None) => Some(HashPolicy::Cookie {
                    name,
                    ttl: None,
                    path,
                }),
                (Some(name), Some(Some(ttl))) => Some(HashPolicy::Cookie {
                    name,
                    ttl: Some(ttl),
                    path,
                }),
                _ => None,
            }
        }
        Some(S::ConnectionProperties(c)) => {
            if c.source_ip {
                Some(HashPolicy::SourceIp)
            } else {
                ctx.error(
                    &p.field("connection_properties").field("source_ip"),
                    "source_ip must be true",
                );
                None
            }
        }
        Some(S::QueryParameter(q)) => {
            non_empty(ctx, &q.name, &p.field("query_parameter").field("name"))
                .map(|name| HashPolicy::Query { name })
        }
        Some(S::FilterState(_)) | None => {
            ctx.error(
                p,
                "needs header, cookie, connection_properties or query_parameter",
            );
            None
        }
    };
    Some(HashPolicyEntry {
        policy: policy?,
        terminal: h.terminal,
    })
}

pub(super) fn fault(ctx: &mut Ctx<'_>, f: &HttpFault, p: &FieldPath) -> Option<FaultPolicy> {
    let mut ok = true;
    let delay = f.delay.as_ref().and_then(|d| {
        let dp = p.field("delay");
        let (percentage, unit) = match &d.percentage {
            Some(pct) => fraction_with_unit(ctx, pct, &dp.field("percentage"))?,
            None => (Fraction::NONE, 10_000),
        };
        let fixed = match &d.fault_delay_secifier {
            Some(fault_delay::FaultDelaySecifier::FixedDelay(fd)) => {
                match ctx.duration(fd, &dp.field("fixed_delay")) {
                    Some(v) if !v.is_zero() => Some(v),
                    Some(_) => {
                        ctx.error(&dp.field("fixed_delay"), "fixed_delay must be above 0s");
                        return None;
                    }
                    None => return None,
                }
            }
            Some(fault_delay::FaultDelaySecifier::HeaderDelay(_)) => None,
            None => {
                ctx.error(&dp, "needs fixed_delay or header_delay");
                return None;
            }
        };
        Some(FaultDelay {
            fixed,
            percentage,
            percentage_unit: unit,
        })
    });
    ok &= f.delay.is_none() || delay.is_some();
    let abort = f.abort.as_ref().and_then(|a| {
        let ap = p.field("abort");
        let (percentage, unit) = match &a.percentage {
            Some(pct) => fraction_with_unit(ctx, pct, &ap.field("percentage"))?,
            None => (Fraction::NONE, 10_000),
        };
        let kind = match &a.error_type {
            Some(fault_abort::ErrorType::HttpStatus(s)) => match u16::try_from(*s) {
                Ok(s @ 200..=599) => AbortKind::Http(s),
                _ => {
                    ctx.error(
                        &ap.field("http_status"),
                        format!("status {s} is not from 200 to 599"),
                    );
                    return None;
                }
            },
            Some(fault_abort::ErrorType::GrpcStatus(g)) => AbortKind::Grpc(*g),
            Some(fault_abort::ErrorType::HeaderAbort(_)) => AbortKind::HeaderControlled,
            None => {
                ctx.error(&ap, "needs http_status, grpc_status or header_abort");
                return None;
            }
        };
        Some(FaultAbort {
            kind,
            percentage,
            percentage_unit: unit,
        })
    });
    ok &= f.abort.is_none() || abort.is_some();
    let headers: Vec<_> = f
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(ctx, h, &p.field("headers").index(i)))
        .collect();
    let headers: Option<Vec<_>> = headers.into_iter().collect();
    Some(FaultPolicy {
        delay,
        abort,
        headers: headers?,
        max_active_faults: f.max_active_faults.map(|v| v.value),
    })
    .filter(|_| ok)
}

pub(super) fn cors(ctx: &mut Ctx<'_>, c: &PbCors, p: &FieldPath) -> Option<CorsPolicy> {
    let op = p.field("allow_origin_string_match");
    let origins: Vec<Option<StringMatcher>> = c
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| string_matcher(ctx, m, &op.index(i)))
        .collect();
    let mut text = |v: &str, field: &str| {
        if v.is_empty() {
            Some(None)
        } else {
            header_value_text(ctx, v, &p.field(field)).then(|| Some(v.to_owned()))
        }
    };
    let allow_methods = text(&c.allow_methods, "allow_methods");
    let allow_headers = text(&c.allow_headers, "allow_headers");
    let expose_headers = text(&c.expose_headers, "expose_headers");
    let max_age = text(&c.max_age, "max_age");
    let enabled = match c
        .filter_enabled
        .as_ref()
        .and_then(|f| f.default_value.as_ref())
    {
        None => Some(Fraction::ALL),
        Some(f) => fraction(ctx, f, &p.field("filter_enabled").field("default_value")),
    };
    Some(CorsPolicy {
        allow_origins: origins.into_iter().collect::<Option<_>>()?,
        allow_methods: allow_methods?,
        allow_headers: allow_headers?,
        expose_headers: expose_headers?,
        max_age: max_age?,
        allow_credentials: c.allow_credentials.is_some_and(|b| b.value),
        enabled: enabled?,
    })
}
