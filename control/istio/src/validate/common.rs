//! Rules shared by several kinds: host names, ports, durations, selectors, exportTo,
//! regexes, header names, addresses, target references.

use std::net::IpAddr;

use crate::model::{Labels, PolicyTargetReference, StringMatch};

use super::Ctx;

/// Compiled-regex size cap: Envoy's default program size limit is 100 "instructions";
/// the regex crate counts bytes, and 1 MiB keeps a hostile pattern cheap while accepting
/// every realistic route regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A DNS-1123 label: `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 characters.
/// Istio accepts upper case in host names (they are compared case-insensitively).
pub(crate) fn dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A lower-case DNS-1123 label (Kubernetes object names, subset names).
pub(crate) fn k8s_label(s: &str) -> bool {
    dns_label(s) && !s.bytes().any(|c| c.is_ascii_uppercase())
}

/// A DNS-1123 subdomain: lower-case labels joined by dots, at most 253 characters.
pub(crate) fn k8s_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(k8s_label)
}

/// A host name with an optional wildcard in the left-most label: `*`, `*.foo.com`,
/// `*foo.com`, `foo.com`, `reviews`.
pub(crate) fn wildcard_domain(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("domain name is empty".into());
    }
    if host.len() > 255 {
        return Err(format!(
            "domain name {host:?} is longer than 255 characters"
        ));
    }
    let rest = match host.strip_prefix('*') {
        Some("") => return Ok(()),
        Some(rest) => rest,
        None => host,
    };
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    // A trailing dot (fully qualified form) is allowed.
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    let mut labels = rest.split('.');
    if host.starts_with('*') && !host.starts_with("*.") {
        // `*foo.com`, `*-foo.com`: the partial first label may start with '-'.
        let first = labels.next().unwrap_or_default();
        let ok = !first.is_empty()
            && first.len() <= 62
            && first
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !first.ends_with('-');
        if !ok {
            return Err(format!("invalid wildcard domain {host:?}"));
        }
    }
    for label in labels {
        if label.contains('*') {
            return Err(format!(
                "invalid domain {host:?}: a wildcard is allowed only as the left-most label"
            ));
        }
        if !dns_label(label) {
            return Err(format!("invalid domain {host:?}: bad label {label:?}"));
        }
    }
    Ok(())
}

/// Suffix matching of Istio hosts: `*.foo.com` matches `a.foo.com` and `*.foo.com`; `*`
/// matches everything; otherwise exact (case-insensitive).
pub(crate) fn wildcard_match(pattern: &str, host: &str) -> bool {
    // Compared in place, without lower-cased copies: analysis calls this per pair of hosts.
    if pattern.eq_ignore_ascii_case(host) || pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            let (h, s) = (host.as_bytes(), suffix.as_bytes());
            h.len() > s.len() && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
        }
        None => false,
    }
}

/// True when two host patterns can match a common host.
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    wildcard_match(a, b) || wildcard_match(b, a)
}

pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`.
pub(crate) fn ip_or_cidr(s: &str) -> Result<(), String> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{s:?} is not a valid IP address or CIDR block"))?;
    if let Some(prefix) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(n) if n <= max => {}
            _ => return Err(format!("{s:?} has an invalid prefix length")),
        }
    }
    Ok(())
}

/// Ports are 1..=65535.
pub(crate) fn port(cx: &mut Ctx, path: &str, port: u32) {
    if !(1..=65535).contains(&port) {
        cx.error(path, format!("port must be between 1-65535 (got {port})"));
    }
}

/// A Go-style duration (`1h`, `1.5s`, `300ms`, `1m30s`) in seconds.
pub(crate) fn parse_duration(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .bytes()
            .take_while(|c| !(c.is_ascii_digit() || *c == b'.'))
            .count();
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A duration that must be at least 1ms (the CRDs' CEL rule on every Duration field).
pub(crate) fn duration(cx: &mut Ctx, path: &str, value: Option<&String>) {
    let Some(s) = value else { return };
    match parse_duration(s) {
        Some(secs) if secs >= 0.001 - 1e-12 => {}
        Some(_) => cx.error(
            path,
            format!("must be a valid duration greater than 1ms (got {s:?})"),
        ),
        None => cx.error(
            path,
            format!("must be a valid duration greater than 1ms: {s:?} is not a duration"),
        ),
    }
}

/// A percentage in 0..=100.
pub(crate) fn percent(cx: &mut Ctx, path: &str, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        cx.error(
            path,
            format!("percentage must be in the range [0, 100] (got {value})"),
        );
    }
}

/// `matchLabels`/`labels` of a workload selector (CRD CEL rules).
pub(crate) fn selector_labels(cx: &mut Ctx, path: &str, labels: &Labels) {
    for (k, v) in labels {
        let p = format!("{path}.{k}");
        if k.is_empty() {
            cx.error(path, "key must not be empty");
        }
        if k.contains('*') {
            cx.error(&p, "wildcard not allowed in label key match");
        }
        if v.contains('*') {
            cx.error(&p, "wildcard not allowed in label value match");
        }
        if v.len() > 63 {
            cx.error(&p, "label value must be at most 63 characters");
        }
    }
}

/// `exportTo`: `.`, `*`, `~` (ServiceEntry only) or namespace names, without duplicates;
/// `*` and `~` stand alone.
pub(crate) fn export_to(cx: &mut Ctx, path: &str, list: &[String], own_ns: &str, allow_none: bool) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let canonical = if e == "." { own_ns } else { e.as_str() };
        match e.as_str() {
            "*" | "." => {}
            "~" if allow_none => {}
            "~" => cx.error(&p, "exportTo \"~\" is only allowed on ServiceEntry"),
            ns if !k8s_label(ns) => cx.error(&p, format!("invalid namespace {ns:?} in exportTo")),
            _ => {}
        }
        if seen.contains(&canonical) {
            cx.error(&p, format!("duplicate entry {e:?} in exportTo"));
        }
        seen.push(canonical);
    }
    if list.len() > 1 && list.iter().any(|e| e == "*" || e == "~") {
        cx.error(
            path,
            "exportTo \"*\" or \"~\" cannot be combined with other entries",
        );
    }
}

/// An RE2 regex (Envoy's engine): compiled here with the regex crate, whose syntax is the
/// same for everything but a few Perl classes.
pub(crate) fn regex(cx: &mut Ctx, path: &str, pattern: &str) {
    if let Err(e) = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        let first = e.to_string().lines().last().unwrap_or_default().to_owned();
        cx.error(path, format!("invalid regex {pattern:?}: {first}"));
    }
}

/// `{exact | prefix | regex}`: at most one; `{}` only where presence matching is meant.
pub(crate) fn string_match(cx: &mut Ctx, path: &str, m: &StringMatch, allow_empty: bool) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        cx.error(path, "only one of exact, prefix or regex may be set");
    }
    if set == 0 && !allow_empty {
        cx.error(path, "one of exact, prefix or regex must be set");
    }
    if let Some(r) = &m.regex {
        regex(cx, &format!("{path}.regex"), r);
    }
}

/// An HTTP header name: an RFC 7230 token, or an HTTP/2 pseudo-header `:name`.
pub(crate) fn header_name(name: &str) -> bool {
    let token = name.strip_prefix(':').unwrap_or(name);
    !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// `targetRef` / `targetRefs`: kind and name required, group and kind well formed, same
/// namespace only (CRD OpenAPI and CEL rules).
pub(crate) fn target_ref(cx: &mut Ctx, path: &str, r: &PolicyTargetReference, own_ns: &str) {
    if let Some(g) = &r.group
        && !(g.is_empty() || k8s_name(g))
    {
        cx.error(
            &format!("{path}.group"),
            format!("Invalid value: {g:?}: spec.targetRef.group in body should match the DNS subdomain pattern"),
        );
    }
    match r.kind.as_deref() {
        None | Some("") => cx.error(&format!("{path}.kind"), "Required value"),
        Some(k)
            if !(k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && !k.ends_with('-')) =>
        {
            cx.error(
                &format!("{path}.kind"),
                format!("Invalid value: {k:?}: should match a kind name"),
            );
        }
        Some(_) => {}
    }
    match r.name.as_deref() {
        None | Some("") => cx.error(&format!("{path}.name"), "Required value"),
        Some(n) if n.len() > 253 => cx.error(
            &format!("{path}.name"),
            "name is longer than 253 characters",
        ),
        Some(_) => {}
    }
    if let Some(ns) = r.namespace.as_deref()
        && !ns.is_empty()
        && ns != own_ns
    {
        cx.error(
            &format!("{path}.namespace"),
            "cross namespace referencing is not currently supported",
        );
    }
}

/// `selector`, `targetRef` and `targetRefs` are mutually exclusive (CEL).
pub(crate) fn one_target(
    cx: &mut Ctx,
    has_selector: bool,
    single: Option<&PolicyTargetReference>,
    list: Option<&Vec<PolicyTargetReference>>,
    own_ns: &str,
) {
    let set =
        usize::from(has_selector) + usize::from(single.is_some()) + usize::from(list.is_some());
    if set > 1 {
        cx.error(
            "spec",
            "only one of targetRefs or selector can be set (selector, targetRef, targetRefs)",
        );
    }
    if let Some(r) = single {
        target_ref(cx, "spec.targetRef", r, own_ns);
    }
    if let Some(refs) = list {
        if refs.len() > 16 {
            cx.error("spec.targetRefs", "at most 16 targetRefs are allowed");
        }
        for (i, r) in refs.iter().enumerate() {
            target_ref(cx, &format!("spec.targetRefs[{i}]"), r, own_ns);
        }
    }
}

/// Protocol names of Gateway and ServiceEntry ports (case-insensitive in Istio).
pub(crate) fn protocol(cx: &mut Ctx, path: &str, protocol: &str) {
    const KNOWN: &[&str] = &[
        "HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS",
        "UDP", "HBONE",
    ];
    if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(protocol)) {
        cx.error(path, format!("unrecognized protocol {protocol:?}"));
    }
}

/// A port name: `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, shorter than 63 characters.
pub(crate) fn port_name(name: &str) -> bool {
    name.len() < 63 && dns_label(name)
}
