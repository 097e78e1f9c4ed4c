//! Gateway and Sidecar rules (Istio's `ValidateGateway`, `ValidateSidecar`): both describe
//! listeners with ports, hosts in `namespace/dnsName` form and server TLS.

use crate::model::gateway::{Gateway, Port, ServerTlsMode, ServerTlsSettings};
use crate::model::sidecar::{CaptureMode, OutboundMode, Sidecar};

use super::Ctx;
use super::common::{self, is_ip, port, protocol, selector_labels, wildcard_domain};

pub(super) fn validate(cx: &mut Ctx, gw: &Gateway) {
    if gw.servers.is_empty() {
        cx.error("spec.servers", "gateway must have at least one server");
    }
    if let Some(sel) = &gw.selector {
        selector_labels(cx, "spec.selector", sel);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let p = format!("spec.servers[{i}]");
        let unix_bind = s.bind.as_deref().is_some_and(|b| b.starts_with("unix://"));
        let proto = match &s.port {
            None => {
                cx.error(&format!("{p}.port"), "Required value");
                None
            }
            Some(pt) => {
                listener_port(cx, &format!("{p}.port"), pt, unix_bind, true);
                if let Some(name) = pt.name.as_deref().filter(|n| !n.is_empty()) {
                    if names.contains(&name) {
                        cx.error(
                            &format!("{p}.port.name"),
                            format!(
                                "port names in servers must be unique: duplicate name {name:?}"
                            ),
                        );
                    }
                    names.push(name);
                }
                pt.protocol.as_deref().map(str::to_ascii_uppercase)
            }
        };
        if s.hosts.is_empty() {
            cx.error(
                &format!("{p}.hosts"),
                "server config must contain at least one host",
            );
        }
        for (j, h) in s.hosts.iter().enumerate() {
            namespaced_host(cx, &format!("{p}.hosts[{j}]"), h, false);
        }
        if let Some(b) = &s.bind
            && !unix_bind
            && !is_ip(b)
        {
            cx.error(
                &format!("{p}.bind"),
                format!("bind {b:?} must be an IP address or a unix:// socket"),
            );
        }
        let secure = matches!(proto.as_deref(), Some("HTTPS" | "TLS"));
        match (&s.tls, secure) {
            (None, true) => cx.error(
                &format!("{p}.tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            // Plain-text servers may carry `tls` only for `httpsRedirect`.
            (Some(tls), false)
                if tls.mode.is_some()
                    || tls.credential_name.is_some()
                    || tls.server_certificate.is_some() =>
            {
                cx.error(
                    &format!("{p}.tls"),
                    "server cannot have TLS settings for plain text protocols",
                );
            }
            _ => {}
        }
        if let Some(tls) = &s.tls {
            server_tls(cx, &format!("{p}.tls"), tls, true);
        }
    }
}

/// `port`: number 1..65535 (0 only with a unix bind), protocol known, name valid.
fn listener_port(cx: &mut Ctx, p: &str, pt: &Port, unix_bind: bool, gateway: bool) {
    match pt.number {
        None => cx.error(&format!("{p}.number"), "Required value"),
        Some(0) if unix_bind => {}
        Some(n) => port(cx, &format!("{p}.number"), n),
    }
    match pt.protocol.as_deref() {
        None | Some("") if gateway => cx.error(&format!("{p}.protocol"), "Required value"),
        None | Some("") => {}
        Some(proto) => protocol(cx, &format!("{p}.protocol"), proto),
    }
    if let Some(name) = pt.name.as_deref()
        && !name.is_empty()
        && !common::port_name(name)
    {
        cx.error(&format!("{p}.name"), format!("invalid port name {name:?}"));
    }
    if gateway && pt.target_port.is_some() {
        cx.error(
            &format!("{p}.targetPort"),
            "targetPort is not supported on a Gateway",
        );
    }
}

/// `[namespace/]dnsName`; the namespace may be `*`, `.`, a name, or (Sidecar) `~`.
fn namespaced_host(cx: &mut Ctx, p: &str, h: &str, sidecar: bool) {
    let (ns, host) = match h.split_once('/') {
        Some((ns, host)) => (Some(ns), host),
        None if sidecar => {
            cx.error(
                p,
                format!("sidecar egress host {h:?} must be of the form namespace/dnsName"),
            );
            return;
        }
        None => (None, h),
    };
    if let Some(ns) = ns {
        // Sidecar egress: `~/*` imports nothing, `~ns/host` excludes hosts of `ns`.
        let ns = match ns.strip_prefix('~') {
            Some(rest) if sidecar && !rest.is_empty() => rest,
            _ => ns,
        };
        let ok = matches!(ns, "*" | ".") || (sidecar && ns == "~") || common::k8s_label(ns);
        if !ok {
            cx.error(p, format!("invalid namespace {ns:?} in host {h:?}"));
        }
    }
    if host.contains('/') {
        cx.error(p, format!("host {h:?} has more than one '/'"));
    } else if let Err(e) = wildcard_domain(host) {
        cx.error(p, e);
    }
}

fn server_tls(cx: &mut Ctx, p: &str, tls: &ServerTlsSettings, gateway: bool) {
    let credential = tls.credential_name.is_some();
    let names = !tls.credential_names.is_empty();
    let certs = !tls.tls_certificates.is_empty();
    if credential && names {
        cx.error(
            p,
            "only one of credentialName or credentialNames can be set",
        );
    }
    if credential && certs {
        cx.error(
            p,
            "only one of credentialName or tlsCertificates can be set",
        );
    }
    if names && certs {
        cx.error(
            p,
            "only one of credentialNames or tlsCertificates can be set",
        );
    }
    let files = tls.server_certificate.is_some() || tls.private_key.is_some();
    match tls.mode {
        Some(ServerTlsMode::IstioMutual)
            if files || tls.ca_certificates.is_some() || credential || names || certs =>
        {
            cx.error(
                p,
                "ISTIO_MUTUAL TLS cannot have associated certificates or credentials",
            );
        }
        Some(ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual)
            if !(credential || names || certs) =>
        {
            if tls.server_certificate.is_none() {
                cx.error(
                    &format!("{p}.serverCertificate"),
                    "SIMPLE/MUTUAL TLS requires a server certificate or a credentialName",
                );
            }
            if tls.private_key.is_none() {
                cx.error(
                    &format!("{p}.privateKey"),
                    "SIMPLE/MUTUAL TLS requires a private key or a credentialName",
                );
            }
            if tls.mode != Some(ServerTlsMode::Simple) && tls.ca_certificates.is_none() && gateway {
                cx.error(
                    &format!("{p}.caCertificates"),
                    "MUTUAL TLS requires caCertificates or a credentialName",
                );
            }
        }
        _ => {}
    }
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version)
        && (min as u8) > (max as u8)
        && max != crate::model::gateway::TlsProtocol::TlsAuto
    {
        cx.error(
            p,
            "minProtocolVersion must not be greater than maxProtocolVersion",
        );
    }
}

pub(super) fn validate_sidecar(cx: &mut Ctx, sc: &Sidecar) {
    if let Some(sel) = &sc.workload_selector
        && let Some(labels) = &sel.labels
    {
        selector_labels(cx, "spec.workloadSelector.labels", labels);
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        cx.error("spec", "sidecar: empty configuration provided");
    }
    let mut ingress_ports: Vec<u32> = Vec::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        let p = format!("spec.ingress[{i}]");
        let unix = l.bind.as_deref().is_some_and(|b| b.starts_with("unix://"));
        match &l.port {
            None => cx.error(&format!("{p}.port"), "Required value"),
            Some(pt) => {
                listener_port(cx, &format!("{p}.port"), pt, unix, false);
                if let Some(n) = pt.number {
                    if ingress_ports.contains(&n) {
                        cx.error(&format!("{p}.port.number"), format!("sidecar: ports on IP bound listeners must be unique (duplicate {n})"));
                    }
                    ingress_ports.push(n);
                }
            }
        }
        bind(cx, &format!("{p}.bind"), l.bind.as_deref());
        if let Some(ep) = &l.default_endpoint {
            default_endpoint(cx, &format!("{p}.defaultEndpoint"), ep);
        }
        if let Some(tls) = &l.tls {
            server_tls(cx, &format!("{p}.tls"), tls, false);
        }
    }
    for (i, l) in sc.egress.iter().enumerate() {
        let p = format!("spec.egress[{i}]");
        let unix = l.bind.as_deref().is_some_and(|b| b.starts_with("unix://"));
        match &l.port {
            Some(pt) => listener_port(cx, &format!("{p}.port"), pt, unix, false),
            None if i + 1 != sc.egress.len() => {
                cx.error(&p, "sidecar: the egress listener with empty port should be the last listener in the list");
            }
            None => {
                if l.bind.is_some() {
                    cx.error(
                        &format!("{p}.bind"),
                        "sidecar: egress listener with a bind address must have a port",
                    );
                }
                if l.capture_mode.is_some_and(|m| m != CaptureMode::Default) {
                    cx.warn(
                        &format!("{p}.captureMode"),
                        "captureMode is ignored on a listener without a port",
                    );
                }
            }
        }
        bind(cx, &format!("{p}.bind"), l.bind.as_deref());
        if l.hosts.is_empty() {
            cx.error(
                &format!("{p}.hosts"),
                "sidecar: egress listener must contain at least one host",
            );
        }
        for (j, h) in l.hosts.iter().enumerate() {
            namespaced_host(cx, &format!("{p}.hosts[{j}]"), h, true);
        }
    }
    if let Some(otp) = &sc.outbound_traffic_policy
        && otp.egress_proxy.is_some()
        && otp.mode != Some(OutboundMode::AllowAny)
    {
        cx.error(
            "spec.outboundTrafficPolicy.egressProxy",
            "egress proxy is allowed only in ALLOW_ANY mode",
        );
    }
}

fn bind(cx: &mut Ctx, p: &str, bind: Option<&str>) {
    if let Some(b) = bind
        && !b.starts_with("unix://")
        && !is_ip(b)
    {
        cx.error(
            p,
            format!("bind {b:?} must be an IP address or a unix:// socket"),
        );
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix:///path`.
fn default_endpoint(cx: &mut Ctx, p: &str, ep: &str) {
    if ep.starts_with("unix://") {
        return;
    }
    let ok = ep.rsplit_once(':').is_some_and(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        matches!(host, "127.0.0.1" | "0.0.0.0" | "::1" | "::")
            && port.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    if !ok {
        cx.error(p, format!("invalid defaultEndpoint {ep:?}: expected 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path"));
    }
}
