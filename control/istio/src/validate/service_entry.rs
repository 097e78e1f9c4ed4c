//! ServiceEntry, WorkloadEntry and WorkloadGroup rules (Istio's `ValidateServiceEntry`,
//! `ValidateWorkloadEntry`, `ValidateWorkloadGroup` and the CRDs' CEL rules).

use crate::model::service_entry::{Resolution, ServiceEntry};
use crate::model::workload::{WorkloadEntry, WorkloadGroup};

use super::Ctx;
use super::common::{self, ip_or_cidr, port, port_name, protocol, wildcard_domain};

pub(super) fn validate(cx: &mut Ctx, se: &ServiceEntry, ns: &str) {
    let resolution = se.resolution.unwrap_or_default();
    if se.hosts.is_empty() {
        cx.error(
            "spec.hosts",
            "Required value: service entry must have at least one host",
        );
    }
    if se.hosts.len() > 256 {
        cx.error("spec.hosts", "at most 256 hosts are allowed");
    }
    let dns = matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    let resolves_hosts = dns && se.endpoints.as_ref().is_none_or(Vec::is_empty);
    for (i, h) in se.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        if h == "*" {
            cx.error(&p, "hostname cannot be wildcard");
        } else if let Err(e) = wildcard_domain(h) {
            cx.error(&p, e);
        } else if resolves_hosts && h.starts_with('*') {
            cx.error(&p, format!("DNS resolution without endpoints resolves the hosts themselves: host {h:?} cannot be a wildcard"));
        } else if h.starts_with('*') && !h.starts_with("*.") && resolution != Resolution::DynamicDns
        {
            cx.warn(
                &p,
                format!("partial wildcard {h:?} is only meaningful with DYNAMIC_DNS resolution"),
            );
        }
    }
    for (i, a) in se.addresses.iter().enumerate() {
        let p = format!("spec.addresses[{i}]");
        if let Err(e) = ip_or_cidr(a) {
            cx.error(&p, e);
        } else if a.contains('/') && !matches!(resolution, Resolution::None | Resolution::Static) {
            cx.error(
                &p,
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            );
        }
    }
    let mut numbers: Vec<u32> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, pt) in se.ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        match pt.number {
            None => cx.error(&format!("{p}.number"), "Required value"),
            Some(n) => {
                port(cx, &format!("{p}.number"), n);
                if numbers.contains(&n) {
                    cx.error(
                        &format!("{p}.number"),
                        format!("port number cannot be duplicated: Duplicate value: {n}"),
                    );
                }
                numbers.push(n);
            }
        }
        match pt.name.as_deref() {
            None | Some("") => cx.error(&format!("{p}.name"), "Required value"),
            Some(name) => {
                if !port_name(name) {
                    cx.error(&format!("{p}.name"), format!("invalid port name {name:?}"));
                }
                if names.contains(&name) {
                    cx.error(&format!("{p}.name"), format!("Duplicate value: {name:?}"));
                }
                names.push(name);
            }
        }
        if let Some(proto) = &pt.protocol {
            protocol(cx, &format!("{p}.protocol"), proto);
        }
        if let Some(tp) = pt.target_port {
            port(cx, &format!("{p}.targetPort"), tp);
        }
    }
    if let Some(sel) = &se.workload_selector {
        for (k, v) in sel.labels.iter().flatten() {
            let p = format!("spec.workloadSelector.labels.{k}");
            if k.contains('*') || v.contains('*') {
                cx.error(&p, "wildcard is not supported in selector");
            }
        }
        if se.endpoints.is_some() {
            cx.error(
                "spec",
                "only one of WorkloadSelector or Endpoints can be set",
            );
        }
    }
    if let Some(endpoints) = &se.endpoints {
        if resolution == Resolution::None && !endpoints.is_empty() {
            cx.error("spec.endpoints", "NONE mode cannot set endpoints");
        }
        if resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
            cx.error(
                "spec.endpoints",
                "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
            );
        }
        for (i, ep) in endpoints.iter().enumerate() {
            let p = format!("spec.endpoints[{i}]");
            validate_workload_entry(cx, &p, ep);
            for name in ep.ports.keys() {
                if !names.contains(&name.as_str()) {
                    cx.error(
                        &format!("{p}.ports.{name}"),
                        format!(
                            "endpoint port {name:?} is not declared in the service entry's ports"
                        ),
                    );
                }
            }
        }
    }
    if resolution == Resolution::Static
        && se.endpoints.as_ref().is_none_or(Vec::is_empty)
        && se.workload_selector.is_none()
    {
        cx.warn(
            "spec.endpoints",
            "STATIC resolution without endpoints or workloadSelector has no backends",
        );
    }
    if resolution == Resolution::None
        && se.addresses.is_empty()
        && se
            .ports
            .iter()
            .any(|p| p.protocol.as_deref().is_some_and(|pr| !routed_by_name(pr)))
    {
        cx.warn("spec.addresses", "addresses are required for NONE resolution with TCP ports: traffic to 0.0.0.0 on those ports is captured");
    }
    common::export_to(cx, "spec.exportTo", &se.export_to, ns, true);
}

/// Protocols routed by Host header or SNI, which need no address to be told apart.
fn routed_by_name(p: &str) -> bool {
    matches!(
        p.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTPS" | "TLS"
    )
}

/// A WorkloadEntry spec, or one endpoint of a ServiceEntry (`path` is its location).
pub(super) fn validate_workload_entry(cx: &mut Ctx, path: &str, we: &WorkloadEntry) {
    let address = we.address.as_deref().unwrap_or("");
    if address.is_empty() && we.network.as_deref().unwrap_or("").is_empty() {
        cx.error(&format!("{path}.address"), "Address is required");
    }
    if let Some(socket) = address.strip_prefix("unix://") {
        let ap = format!("{path}.address");
        if !(socket.starts_with('/') || socket.starts_with('@')) {
            cx.error(&ap, "UDS must be an absolute path or abstract socket");
        }
        if socket.ends_with('/') {
            cx.error(&ap, "UDS may not be a dir");
        }
        if !we.ports.is_empty() {
            cx.error(&format!("{path}.ports"), "UDS may not include ports");
        }
    } else if !address.is_empty()
        && ip_or_cidr(address).is_err()
        && wildcard_domain(address).is_err()
    {
        cx.error(
            &format!("{path}.address"),
            format!("invalid address {address:?}: expected an IP, a host name or unix://"),
        );
    }
    for (name, n) in &we.ports {
        let pp = format!("{path}.ports.{name}");
        if !port_name(name) {
            cx.error(
                &format!("{path}.ports"),
                format!("Invalid value: port name must be valid (got {name:?})"),
            );
        }
        port(cx, &pp, *n);
    }
    if let Some(sa) = &we.service_account
        && !sa.is_empty()
        && !common::k8s_name(sa)
    {
        cx.error(
            &format!("{path}.serviceAccount"),
            format!("invalid service account name {sa:?}"),
        );
    }
}

pub(super) fn validate_workload_group(cx: &mut Ctx, wg: &WorkloadGroup) {
    match &wg.template {
        None => cx.error("spec.template", "Required value"),
        Some(t) => {
            if t.address.is_some() {
                cx.error(
                    "spec.template.address",
                    "address is not allowed in a WorkloadGroup template",
                );
            }
            for (name, n) in &t.ports {
                if !port_name(name) {
                    cx.error(
                        "spec.template.ports",
                        format!("Invalid value: port name must be valid (got {name:?})"),
                    );
                }
                port(cx, &format!("spec.template.ports.{name}"), *n);
            }
        }
    }
    let Some(probe) = &wg.probe else { return };
    let kinds = usize::from(probe.http_get.is_some())
        + usize::from(probe.tcp_socket.is_some())
        + usize::from(probe.exec.is_some())
        + usize::from(probe.grpc.is_some());
    if kinds > 1 {
        cx.error(
            "spec.probe",
            "only one of httpGet, tcpSocket, exec or grpc may be set",
        );
    }
    if let Some(h) = &probe.http_get {
        match h.port {
            None => cx.error("spec.probe.httpGet.port", "Required value"),
            Some(n) => port(cx, "spec.probe.httpGet.port", n),
        }
        if let Some(s) = &h.scheme
            && !matches!(s.as_str(), "" | "HTTP" | "HTTPS")
        {
            cx.error(
                "spec.probe.httpGet.scheme",
                "scheme must be one of [HTTP, HTTPS]",
            );
        }
        for (i, hdr) in h.http_headers.iter().enumerate() {
            let name = hdr.name.as_deref().unwrap_or("");
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            if !ok {
                cx.error(
                    &format!("spec.probe.httpGet.httpHeaders[{i}].name"),
                    format!("Invalid value: {name:?}: spec.probe.httpGet.httpHeaders[{i}].name in body should match '^[-_A-Za-z0-9]+$'"),
                );
            }
        }
    }
    if let Some(t) = &probe.tcp_socket {
        match t.port {
            None => cx.error("spec.probe.tcpSocket.port", "Required value"),
            Some(n) => port(cx, "spec.probe.tcpSocket.port", n),
        }
    }
    if let Some(e) = &probe.exec
        && e.command.is_empty()
    {
        cx.error("spec.probe.exec.command", "Required value");
    }
    if let Some(g) = &probe.grpc
        && let Some(n) = g.port
    {
        port(cx, "spec.probe.grpc.port", n);
    }
}
