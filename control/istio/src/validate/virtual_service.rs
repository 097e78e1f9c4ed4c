//! VirtualService rules (Istio's `ValidateVirtualService` and the route checks under it).

use crate::model::virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, RouteDestination, VirtualService,
};

use super::Ctx;
use super::common::{
    self, duration, header_name, hosts_overlap, ip_or_cidr, is_ip, percent, port, regex,
    string_match, wildcard_domain,
};
use super::http_policy::{fault_injection, headers, retries};

pub(super) fn validate(cx: &mut Ctx, vs: &VirtualService, ns: &str) {
    let delegate = vs.hosts.is_empty();
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        cx.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    if delegate {
        if !vs.gateways.is_empty() {
            cx.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            cx.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            cx.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let mesh_only = vs.gateways.is_empty() || vs.gateways.iter().all(|g| g == "mesh");
    for (i, host) in vs.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        if host == "*" && mesh_only {
            cx.error(
                &p,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
        } else if is_ip(host) {
            if mesh_only {
                cx.error(
                    &p,
                    "an IP address is allowed only for virtual services bound to gateways",
                );
            }
        } else if let Err(e) = wildcard_domain(host) {
            cx.error(&p, e);
        }
        for (j, other) in vs.hosts.iter().enumerate().take(i) {
            if hosts_overlap(host, other) {
                cx.error(
                    &p,
                    format!(
                        "duplicate hosts in virtual service: {host:?} and {other:?} (hosts[{j}])"
                    ),
                );
            }
        }
    }
    gateways(cx, "spec.gateways", &vs.gateways);
    common::export_to(cx, "spec.exportTo", &vs.export_to, ns, false);

    for (i, route) in vs.http.iter().enumerate() {
        http_route(cx, &format!("spec.http[{i}]"), route, delegate);
    }
    for (i, tls) in vs.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        if tls.matches.is_empty() {
            cx.error(
                &format!("{p}.match"),
                "TLS route must have at least one match condition",
            );
        }
        for (j, m) in tls.matches.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            if m.sni_hosts.is_empty() {
                cx.error(
                    &format!("{mp}.sniHosts"),
                    "TLS match must have at least one SNI host",
                );
            }
            for (k, sni) in m.sni_hosts.iter().enumerate() {
                if let Err(e) = wildcard_domain(sni) {
                    cx.error(&format!("{mp}.sniHosts[{k}]"), e);
                }
            }
            subnets(cx, &mp, &m.destination_subnets);
            if let Some(n) = m.port {
                port(cx, &format!("{mp}.port"), n);
            }
            gateways(cx, &format!("{mp}.gateways"), &m.gateways);
        }
        route_destinations(cx, &p, &tls.route);
    }
    for (i, tcp) in vs.tcp.iter().enumerate() {
        let p = format!("spec.tcp[{i}]");
        for (j, m) in tcp.matches.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            subnets(cx, &mp, &m.destination_subnets);
            if let Some(s) = &m.source_subnet
                && let Err(e) = ip_or_cidr(s)
            {
                cx.error(&format!("{mp}.sourceSubnet"), e);
            }
            if let Some(n) = m.port {
                port(cx, &format!("{mp}.port"), n);
            }
            gateways(cx, &format!("{mp}.gateways"), &m.gateways);
        }
        route_destinations(cx, &p, &tcp.route);
    }
}

/// `ns/name`, `name` or the reserved `mesh`.
fn gateways(cx: &mut Ctx, path: &str, list: &[String]) {
    for (i, g) in list.iter().enumerate() {
        if g == "mesh" {
            continue;
        }
        let (ns, name) = match g.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, g.as_str()),
        };
        let ok = ns.is_none_or(common::k8s_label) && common::k8s_name(name);
        if !ok {
            cx.error(
                &format!("{path}[{i}]"),
                format!("invalid gateway name {g:?}: expected \"name\" or \"namespace/name\""),
            );
        }
    }
}

fn subnets(cx: &mut Ctx, path: &str, list: &[String]) {
    for (k, s) in list.iter().enumerate() {
        if let Err(e) = ip_or_cidr(s) {
            cx.error(&format!("{path}.destinationSubnets[{k}]"), e);
        }
    }
}

fn http_route(cx: &mut Ctx, p: &str, r: &HttpRoute, delegate_vs: bool) {
    let actions = usize::from(!r.route.is_empty())
        + usize::from(r.redirect.is_some())
        + usize::from(r.direct_response.is_some())
        + usize::from(r.delegate.is_some());
    if actions == 0 {
        cx.error(
            p,
            "HTTP route must have one of route, redirect, directResponse or delegate",
        );
    }
    if !r.route.is_empty() && r.redirect.is_some() {
        cx.error(p, "HTTP route cannot contain both route and redirect");
    }
    if !r.route.is_empty() && r.direct_response.is_some() {
        cx.error(p, "HTTP route cannot contain both route and directResponse");
    }
    if r.redirect.is_some() && r.direct_response.is_some() {
        cx.error(
            p,
            "HTTP route cannot contain both redirect and directResponse",
        );
    }
    if r.redirect.is_some() || r.direct_response.is_some() {
        if r.rewrite.is_some() {
            cx.error(
                p,
                "HTTP route rule cannot contain both rewrite and redirect or directResponse",
            );
        }
        if r.fault.is_some() {
            cx.error(
                p,
                "HTTP route cannot contain both fault and redirect or directResponse",
            );
        }
    }
    if let Some(d) = &r.delegate {
        if delegate_vs {
            cx.error(
                &format!("{p}.delegate"),
                "delegate virtual service cannot delegate again",
            );
        }
        if d.name.as_deref().unwrap_or("").is_empty() {
            cx.error(&format!("{p}.delegate.name"), "delegate name is required");
        }
    }
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        cx.error(p, "HTTP route cannot contain both mirror and mirrors");
    }

    for (j, m) in r.matches.iter().enumerate() {
        http_match(cx, &format!("{p}.match[{j}]"), m);
    }
    http_route_destinations(cx, p, r);
    if let Some(redirect) = &r.redirect {
        let rp = format!("{p}.redirect");
        if redirect.uri.is_some() && redirect.prefix_rewrite.is_some() {
            cx.error(&rp, "redirect uri and prefixRewrite are mutually exclusive");
        }
        if redirect.port.is_some() && redirect.derive_port.is_some() {
            cx.error(&rp, "redirect port and derivePort are mutually exclusive");
        }
        if let Some(n) = redirect.port {
            port(cx, &format!("{rp}.port"), n);
        }
        if let Some(code) = redirect.redirect_code
            && !(300..=399).contains(&code)
        {
            cx.error(
                &format!("{rp}.redirectCode"),
                format!("redirect code must be 3xx (got {code})"),
            );
        }
        if redirect.uri.is_none()
            && redirect.authority.is_none()
            && redirect.port.is_none()
            && redirect.derive_port.is_none()
            && redirect.scheme.is_none()
            && redirect.prefix_rewrite.is_none()
        {
            cx.error(
                &rp,
                "redirect must specify uri, authority, port, scheme or prefixRewrite",
            );
        }
    }
    if let Some(dr) = &r.direct_response {
        let dp = format!("{p}.directResponse");
        match dr.status {
            None => cx.error(&format!("{dp}.status"), "Required value"),
            Some(s) if !(200..=599).contains(&s) => {
                cx.error(
                    &format!("{dp}.status"),
                    format!("status must be in the range 200-599 (got {s})"),
                );
            }
            Some(_) => {}
        }
        if let Some(body) = &dr.body
            && body.string.is_some()
            && body.bytes.is_some()
        {
            cx.error(
                &format!("{dp}.body"),
                "only one of string or bytes may be set",
            );
        }
    }
    if let Some(rw) = &r.rewrite {
        let wp = format!("{p}.rewrite");
        if rw.uri.is_some() && rw.uri_regex_rewrite.is_some() {
            cx.error(
                &wp,
                "rewrite may only contain one of uri or uriRegexRewrite",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            match &rr.pattern {
                Some(m) => regex(cx, &format!("{wp}.uriRegexRewrite.match"), m),
                None => cx.error(&format!("{wp}.uriRegexRewrite.match"), "Required value"),
            }
            if rr.rewrite.is_none() {
                cx.error(&format!("{wp}.uriRegexRewrite.rewrite"), "Required value");
            }
        }
        if rw.uri.is_none() && rw.authority.is_none() && rw.uri_regex_rewrite.is_none() {
            cx.error(
                &wp,
                "rewrite must specify uri, authority or uriRegexRewrite",
            );
        }
    }
    duration(cx, &format!("{p}.timeout"), r.timeout.as_ref());
    if let Some(retry) = &r.retries {
        retries(cx, &format!("{p}.retries"), retry);
    }
    if let Some(fault) = &r.fault {
        fault_injection(cx, &format!("{p}.fault"), fault);
    }
    if let Some(m) = &r.mirror {
        destination(cx, &format!("{p}.mirror"), m);
    }
    for (j, m) in r.mirrors.iter().enumerate() {
        let mp = format!("{p}.mirrors[{j}]");
        match &m.destination {
            Some(d) => destination(cx, &format!("{mp}.destination"), d),
            None => cx.error(&format!("{mp}.destination"), "Required value"),
        }
        if let Some(pc) = &m.percentage {
            percent(cx, &format!("{mp}.percentage.value"), pc.value);
        }
    }
    if let Some(pc) = &r.mirror_percentage {
        percent(cx, &format!("{p}.mirrorPercentage.value"), pc.value);
    }
    if let Some(pc) = r.mirror_percent
        && pc > 100
    {
        cx.error(
            &format!("{p}.mirrorPercent"),
            "mirror percent must have a max value of 100",
        );
    }
    if let Some(cors) = &r.cors_policy {
        let cp = format!("{p}.corsPolicy");
        for (j, o) in cors.allow_origins.iter().enumerate() {
            string_match(cx, &format!("{cp}.allowOrigins[{j}]"), o, false);
        }
        for (j, m) in cors.allow_methods.iter().enumerate() {
            if !m.bytes().all(|c| c.is_ascii_uppercase()) || m.is_empty() {
                cx.error(
                    &format!("{cp}.allowMethods[{j}]"),
                    format!("{m:?} is not a valid HTTP method"),
                );
            }
        }
        for (field, list) in [
            ("allowHeaders", &cors.allow_headers),
            ("exposeHeaders", &cors.expose_headers),
        ] {
            for (j, h) in list.iter().enumerate() {
                if !header_name(h) && h != "*" {
                    cx.error(
                        &format!("{cp}.{field}[{j}]"),
                        format!("invalid header name {h:?}"),
                    );
                }
            }
        }
        duration(cx, &format!("{cp}.maxAge"), cors.max_age.as_ref());
    }
    let mut authority_rewrites =
        usize::from(r.rewrite.as_ref().is_some_and(|rw| rw.authority.is_some()));
    if let Some(h) = &r.headers {
        authority_rewrites += headers(cx, &format!("{p}.headers"), h);
    }
    if authority_rewrites > 1 {
        cx.error(p, "authority (host header) may be rewritten in only one place: rewrite.authority or headers.request");
    }
}

fn http_match(cx: &mut Ctx, mp: &str, m: &HttpMatchRequest) {
    if m.is_empty() {
        cx.error(mp, "HTTP match must not be empty");
    }
    for (field, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            string_match(cx, &format!("{mp}.{field}"), sm, false);
            if field == "uri"
                && let Some(prefix) = &sm.prefix
                && !prefix.starts_with('/')
            {
                cx.warn(
                    &format!("{mp}.uri.prefix"),
                    format!("URI prefix {prefix:?} does not start with '/' and may never match"),
                );
            }
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let hp = format!("{mp}.{field}.{name}");
            let claim = name.starts_with("@request.auth.claims.");
            if name.is_empty() {
                cx.error(&hp, "header name must not be empty");
            } else if !claim && !header_name(name) {
                cx.error(&hp, format!("invalid header name {name:?}"));
            }
            string_match(cx, &hp, sm, true);
        }
    }
    for (name, sm) in &m.query_params {
        string_match(cx, &format!("{mp}.queryParams.{name}"), sm, true);
    }
    if let Some(n) = m.port {
        port(cx, &format!("{mp}.port"), n);
    }
    super::common::selector_labels(cx, &format!("{mp}.sourceLabels"), &m.source_labels);
    gateways(cx, &format!("{mp}.gateways"), &m.gateways);
}

fn destination(cx: &mut Ctx, p: &str, d: &Destination) {
    if d.host.is_empty() {
        cx.error(&format!("{p}.host"), "destination host is required");
    } else if d.host == "*" {
        cx.error(
            &format!("{p}.host"),
            "destination host cannot be a wildcard",
        );
    } else if let Err(e) = wildcard_domain(&d.host) {
        cx.error(&format!("{p}.host"), e);
    }
    if let Some(s) = &d.subset
        && !s.is_empty()
        && !common::k8s_label(s)
    {
        cx.error(
            &format!("{p}.subset"),
            format!("subset name {s:?} is not a valid DNS-1123 label"),
        );
    }
    if let Some(ps) = &d.port {
        match ps.number {
            Some(n) => port(cx, &format!("{p}.port.number"), n),
            None => cx.error(&format!("{p}.port.number"), "Required value"),
        }
    }
}

fn weights(cx: &mut Ctx, p: &str, list: &[(Option<&Destination>, Option<i32>)], field: &str) {
    let mut sum: i64 = 0;
    for (j, (dest, weight)) in list.iter().enumerate() {
        let rp = format!("{p}.{field}[{j}]");
        match dest {
            Some(d) => destination(cx, &format!("{rp}.destination"), d),
            None => cx.error(&format!("{rp}.destination"), "Required value"),
        }
        let w = weight.unwrap_or(0);
        if w < 0 {
            cx.error(
                &format!("{rp}.weight"),
                format!("weight must not be negative (got {w})"),
            );
        }
        sum += i64::from(w.max(0));
    }
    if list.len() > 1 && sum == 0 {
        cx.error(
            &format!("{p}.{field}"),
            "total destination weight must be greater than 0",
        );
    }
}

fn http_route_destinations(cx: &mut Ctx, p: &str, r: &HttpRoute) {
    let list: Vec<_> = r
        .route
        .iter()
        .map(|d| (d.destination.as_ref(), d.weight))
        .collect();
    weights(cx, p, &list, "route");
    for (j, d) in r.route.iter().enumerate() {
        if let Some(h) = &d.headers {
            headers(cx, &format!("{p}.route[{j}].headers"), h);
        }
    }
}

fn route_destinations(cx: &mut Ctx, p: &str, route: &[RouteDestination]) {
    if route.is_empty() {
        cx.error(&format!("{p}.route"), "route is required");
    }
    let list: Vec<_> = route
        .iter()
        .map(|d| (d.destination.as_ref(), d.weight))
        .collect();
    weights(cx, p, &list, "route");
}
