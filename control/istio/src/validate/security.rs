//! PeerAuthentication, RequestAuthentication and AuthorizationPolicy rules (Istio's
//! security validation and the CRDs' CEL and OpenAPI rules).

use crate::model::security::{
    Action, AuthorizationPolicy, PeerAuthentication, RequestAuthentication, Rule,
};

use super::Ctx;
use super::common::{duration, ip_or_cidr, one_target, selector_labels};

pub(super) fn validate_peer(cx: &mut Ctx, pa: &PeerAuthentication) {
    let labels = pa.selector.as_ref().and_then(|s| s.match_labels.as_ref());
    if let Some(l) = labels {
        selector_labels(cx, "spec.selector.matchLabels", l);
    }
    let Some(ports) = &pa.port_level_mtls else {
        return;
    };
    if labels.is_none_or(|l| l.is_empty()) {
        cx.error("spec.portLevelMtls", "portLevelMtls requires selector");
    }
    if ports.is_empty() {
        cx.error(
            "spec.portLevelMtls",
            "portLevelMtls must have at least one entry",
        );
    }
    for key in ports.keys() {
        if !key.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n)) {
            cx.error(
                &format!("spec.portLevelMtls.{key}"),
                format!("port must be between 1-65535 (got {key:?})"),
            );
        }
    }
}

pub(super) fn validate_request(cx: &mut Ctx, ra: &RequestAuthentication, ns: &str) {
    one_target(
        cx,
        ra.selector.is_some(),
        ra.target_ref.as_ref(),
        ra.target_refs.as_ref(),
        ns,
    );
    if let Some(l) = ra.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
        selector_labels(cx, "spec.selector.matchLabels", l);
    }
    let min_len = |cx: &mut Ctx, path: String, value: &str| {
        if value.is_empty() {
            let text =
                format!("Invalid value: \"\": {path} in body should be at least 1 chars long");
            cx.error(&path, text);
        }
    };
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        let p = format!("spec.jwtRules[{i}]");
        if rule.issuer.as_deref().unwrap_or("").is_empty()
            && rule.jwks_uri.as_deref().unwrap_or("").is_empty()
        {
            cx.error(&format!("{p}.issuer"), "issuer must be set");
        }
        if rule.jwks.is_some() && rule.jwks_uri.is_some() {
            cx.error(&p, "only one of jwks or jwksUri can be set");
        }
        if let Some(uri) = &rule.jwks_uri
            && !(has_scheme(uri, "http") || has_scheme(uri, "https"))
        {
            cx.error(
                &format!("{p}.jwksUri"),
                format!("url must have scheme http:// or https:// (got {uri:?})"),
            );
        }
        for (j, a) in rule.audiences.iter().enumerate() {
            min_len(cx, format!("{p}.audiences[{j}]"), a);
        }
        for (j, h) in rule.from_headers.iter().enumerate() {
            min_len(cx, format!("{p}.fromHeaders[{j}].name"), &h.name);
        }
        for (j, v) in rule.from_params.iter().enumerate() {
            min_len(cx, format!("{p}.fromParams[{j}]"), v);
        }
        for (j, v) in rule.from_cookies.iter().enumerate() {
            min_len(cx, format!("{p}.fromCookies[{j}]"), v);
        }
        for (j, c) in rule.output_claim_to_headers.iter().enumerate() {
            let cp = format!("{p}.outputClaimToHeaders[{j}]");
            let ok = !c.header.is_empty()
                && c.header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                cx.error(
                    &format!("{cp}.header"),
                    format!(
                        "Invalid value: {:?}: {cp}.header in body should match '^[-_A-Za-z0-9]+$'",
                        c.header
                    ),
                );
            }
            min_len(cx, format!("{cp}.claim"), &c.claim);
        }
        for (j, v) in rule.space_delimited_claims.iter().enumerate() {
            min_len(cx, format!("{p}.spaceDelimitedClaims[{j}]"), v);
        }
        duration(cx, &format!("{p}.timeout"), rule.timeout.as_ref());
    }
}

/// `scheme://rest` with a non-empty rest, scheme compared case-insensitively.
fn has_scheme(uri: &str, scheme: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(s, rest)| s.eq_ignore_ascii_case(scheme) && !rest.is_empty())
}

pub(super) fn validate_authz(cx: &mut Ctx, ap: &AuthorizationPolicy, ns: &str) {
    one_target(
        cx,
        ap.selector.is_some(),
        ap.target_ref.as_ref(),
        ap.target_refs.as_ref(),
        ns,
    );
    if let Some(l) = ap.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
        selector_labels(cx, "spec.selector.matchLabels", l);
    }
    let action = ap.action.unwrap_or_default();
    let provider = ap
        .provider
        .as_ref()
        .and_then(|p| p.name.as_deref())
        .unwrap_or("");
    match action {
        Action::Custom if provider.is_empty() => {
            cx.error(
                "spec.provider.name",
                "CUSTOM action requires a provider name",
            );
        }
        Action::Custom => {}
        _ if ap.provider.is_some() => {
            cx.error(
                "spec.provider",
                "provider may only be set with the CUSTOM action",
            );
        }
        _ => {}
    }
    let rules = ap.rules.as_deref().unwrap_or_default();
    if rules.len() > 512 {
        cx.error("spec.rules", "at most 512 rules are allowed");
    }
    for (i, rule) in rules.iter().enumerate() {
        authz_rule(cx, &format!("spec.rules[{i}]"), rule, action);
    }
}

fn authz_rule(cx: &mut Ctx, p: &str, rule: &Rule, action: Action) {
    if let Some(from) = &rule.from {
        if from.is_empty() {
            cx.error(&format!("{p}.from"), "`from` must not be empty");
        }
        for (j, f) in from.iter().enumerate() {
            let fp = format!("{p}.from[{j}].source");
            let Some(src) = &f.source else {
                cx.error(&fp, "`from.source` must not be empty");
                continue;
            };
            if src.fields().iter().all(|(_, v)| v.is_empty()) {
                cx.error(&fp, "`from.source` must not be empty");
            }
            let sa = !src.service_accounts.is_empty() || !src.not_service_accounts.is_empty();
            let others = !src.principals.is_empty()
                || !src.not_principals.is_empty()
                || !src.namespaces.is_empty()
                || !src.not_namespaces.is_empty();
            if sa && others {
                cx.error(
                    &fp,
                    "Cannot set serviceAccounts with namespaces or principals",
                );
            }
            for (field, list) in [
                ("serviceAccounts", &src.service_accounts),
                ("notServiceAccounts", &src.not_service_accounts),
            ] {
                if list.len() > 16 {
                    cx.error(
                        &format!("{fp}.{field}"),
                        "at most 16 service accounts are allowed",
                    );
                }
                for (k, v) in list.iter().enumerate() {
                    if v.contains('*')
                        || v.is_empty()
                        || v.len() > 320
                        || v.matches('/').count() > 1
                    {
                        cx.error(&format!("{fp}.{field}[{k}]"), format!("invalid service account {v:?}: expected \"sa\" or \"namespace/sa\" without wildcards"));
                    }
                }
            }
            for (field, list) in src.fields() {
                if field.ends_with("pBlocks")
                    || field.ends_with("ServiceAccounts")
                    || field == "serviceAccounts"
                {
                    continue;
                }
                wildcards(cx, &format!("{fp}.{field}"), list);
            }
            for (field, list) in [
                ("ipBlocks", &src.ip_blocks),
                ("notIpBlocks", &src.not_ip_blocks),
                ("remoteIpBlocks", &src.remote_ip_blocks),
                ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
            ] {
                for (k, v) in list.iter().enumerate() {
                    if let Err(e) = ip_or_cidr(v) {
                        cx.error(&format!("{fp}.{field}[{k}]"), e);
                    }
                }
            }
            if action == Action::Custom {
                for (field, list) in src.fields() {
                    let identity = !(field.ends_with("pBlocks") || field.ends_with("IpBlocks"));
                    if identity && !list.is_empty() {
                        cx.error(
                            &format!("{fp}.{field}"),
                            format!("{field} is not supported with the CUSTOM action"),
                        );
                    }
                }
            }
        }
    }
    if let Some(to) = &rule.to {
        if to.is_empty() {
            cx.error(&format!("{p}.to"), "`to` must not be empty");
        }
        for (j, t) in to.iter().enumerate() {
            let tp = format!("{p}.to[{j}].operation");
            let Some(op) = &t.operation else {
                cx.error(&tp, "`to.operation` must not be empty");
                continue;
            };
            if op.fields().iter().all(|(_, v)| v.is_empty()) {
                cx.error(&tp, "`to.operation` must not be empty");
            }
            for (field, list) in [("ports", &op.ports), ("notPorts", &op.not_ports)] {
                for (k, v) in list.iter().enumerate() {
                    if !v.parse::<u32>().is_ok_and(|n| n <= 65535) {
                        cx.error(
                            &format!("{tp}.{field}[{k}]"),
                            format!("invalid port {v:?}: must be a number in 0..65535"),
                        );
                    }
                }
            }
            for (field, list) in [
                ("hosts", &op.hosts),
                ("notHosts", &op.not_hosts),
                ("methods", &op.methods),
                ("notMethods", &op.not_methods),
            ] {
                wildcards(cx, &format!("{tp}.{field}"), list);
            }
            for (field, list) in [("paths", &op.paths), ("notPaths", &op.not_paths)] {
                for (k, v) in list.iter().enumerate() {
                    path_value(cx, &format!("{tp}.{field}[{k}]"), v);
                }
            }
        }
    }
    for (j, c) in rule.when.iter().flatten().enumerate() {
        let wp = format!("{p}.when[{j}]");
        if let Err(e) = condition_key(&c.key) {
            cx.error(&format!("{wp}.key"), e);
        }
        if c.values.is_empty() && c.not_values.is_empty() {
            cx.error(&wp, "at least one of values or notValues must be set");
        }
        let all = c.values.iter().chain(&c.not_values);
        match c.key.as_str() {
            "source.ip" | "remote.ip" | "destination.ip" => {
                for v in all {
                    if let Err(e) = ip_or_cidr(v) {
                        cx.error(&wp, e);
                    }
                }
            }
            "destination.port" => {
                for v in all {
                    if !v.parse::<u32>().is_ok_and(|n| n <= 65535) {
                        cx.error(
                            &wp,
                            format!("invalid port {v:?}: must be a number in 0..65535"),
                        );
                    }
                }
            }
            _ => {}
        }
        if action == Action::Custom
            && (c.key.starts_with("source.") || c.key.starts_with("request.auth."))
        {
            cx.error(
                &format!("{wp}.key"),
                format!("{} is not supported with the CUSTOM action", c.key),
            );
        }
    }
}

/// Match values: exact, `prefix*`, `*suffix` or `*`; a `*` elsewhere is refused.
fn wildcards(cx: &mut Ctx, path: &str, list: &[String]) {
    for (k, v) in list.iter().enumerate() {
        wildcard_value(cx, &format!("{path}[{k}]"), v);
    }
}

fn wildcard_value(cx: &mut Ctx, path: &str, v: &str) {
    let inner = v.strip_prefix('*').unwrap_or(v);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    if inner.contains('*') {
        cx.error(
            path,
            format!("invalid value {v:?}: '*' is allowed only as a prefix or suffix"),
        );
    }
    if v.is_empty() {
        cx.error(path, "empty value is not allowed");
    }
}

/// Paths: a plain match value, or a template with `{*}` and a final `{**}`.
fn path_value(cx: &mut Ctx, path: &str, v: &str) {
    if !v.contains('{') {
        wildcard_value(cx, path, v);
        return;
    }
    if v.contains('*') && !v.contains("{*}") && !v.contains("{**}") {
        cx.error(path, format!("invalid path template {v:?}"));
    }
    let segments: Vec<&str> = v.split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        if s.contains('{') && !matches!(*s, "{*}" | "{**}") {
            cx.error(
                path,
                format!(
                    "invalid path template {v:?}: operators must be a whole segment {{*}} or {{**}}"
                ),
            );
        }
        if *s == "{**}" && i + 1 != segments.len() {
            cx.error(
                path,
                format!("invalid path template {v:?}: {{**}} must be the last operator"),
            );
        }
    }
}

fn condition_key(key: &str) -> Result<(), String> {
    let bracketed = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 2 && rest.ends_with(']'))
    };
    match key {
        "source.ip"
        | "remote.ip"
        | "source.namespace"
        | "source.principal"
        | "source.serviceAccount"
        | "source.trustDomain"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "destination.ip"
        | "destination.port"
        | "connection.sni" => Ok(()),
        "destination.namespace" => {
            Err("destination.namespace is not supported; use the policy's namespace".into())
        }
        "destination.name" | "destination.user" => {
            Err(format!("{key} is not supported (v1alpha1 only)"))
        }
        _ if key.starts_with("destination.labels[") => {
            Err("destination.labels is not supported; use the policy's selector".into())
        }
        _ if bracketed("request.headers[") || bracketed("request.auth.claims[") => Ok(()),
        _ if key.starts_with("experimental.envoy.filters.") && key.ends_with(']') => Ok(()),
        "" => Err("Required value".into()),
        _ => Err(format!("unknown attribute {key:?}")),
    }
}
