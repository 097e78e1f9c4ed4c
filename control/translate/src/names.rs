//! Istio's naming rules: short host names, wildcard hosts, cluster names, durations.

use envoy_types::pb::google::protobuf::Duration;

/// Kubernetes' cluster domain; every Service host is `NAME.NAMESPACE.svc.DOMAIN`.
pub(crate) const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Expands a short host (no dot, not `*`, not an IP) in the namespace of the config object
/// that names it; a host containing a dot is taken as written.
pub(crate) fn fqdn(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" || host.contains(':') || host.starts_with('*') {
        return host.to_owned();
    }
    format!("{host}.{namespace}.{CLUSTER_DOMAIN}")
}

/// Whether host pattern `pattern` (exact, `*` or `*suffix`) covers host `host`, which may
/// itself be a wildcard (then `pattern` must cover all it covers).
pub(crate) fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        None => pattern.eq_ignore_ascii_case(host),
        Some(suffix) => {
            let host = host.strip_prefix('*').unwrap_or(host);
            host.len() >= suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    }
}

/// Whether two host patterns share at least one host.
pub(crate) fn overlap(a: &str, b: &str) -> bool {
    covers(a, b) || covers(b, a)
}

/// `outbound|PORT|SUBSET|HOST`, Istio's name for a client-side cluster.
pub(crate) fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|PORT||`, Istio's name for the cluster of a Sidecar ingress listener.
pub(crate) fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// A Go-style duration (`1h`, `1m30s`, `0.5s`, `250ms`, `10us`) as a protobuf Duration.
/// Validation has already refused malformed ones; `None` here means "ignore".
pub(crate) fn duration(text: &str) -> Option<Duration> {
    let mut nanos: u128 = 0;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::default());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        nanos = nanos.checked_add(whole.checked_mul(per_unit)?)?;
        let mut scale = per_unit;
        for digit in frac.bytes() {
            scale /= 10;
            nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
        }
        rest = tail;
    }
    Some(Duration {
        seconds: i64::try_from(nanos / 1_000_000_000).ok()?,
        nanos: i32::try_from(nanos % 1_000_000_000).ok()?,
    })
}

/// Whole seconds of a duration text, for fields Envoy keeps in seconds (TCP keepalive).
pub(crate) fn seconds(text: &str) -> Option<u32> {
    duration(text).and_then(|d| u32::try_from(d.seconds).ok())
}

/// Protocol family of an Istio port protocol name (case-insensitive), `None` when unknown:
/// Istio then sniffs, and Spar treats the port as HTTP.
pub(crate) fn is_http_protocol(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | ""
    )
}

/// Protocol from a Kubernetes port name or appProtocol (`http-web` -> HTTP, `tcp` -> TCP,
/// unnamed -> "" meaning sniffed), as Istio's protocol selection reads them.
pub(crate) fn protocol_of_port_name(app_protocol: Option<&str>, name: &str) -> String {
    if let Some(p) = app_protocol.filter(|p| !p.is_empty()) {
        return p.to_ascii_uppercase();
    }
    let prefix = name.split('-').next().unwrap_or_default();
    match prefix.to_ascii_lowercase().as_str() {
        p @ ("http" | "http2" | "grpc" | "grpc-web" | "tcp" | "tls" | "https" | "mongo"
        | "redis" | "mysql" | "udp") => p.to_ascii_uppercase(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_in_the_object_namespace() {
        assert_eq!(fqdn("reviews", "foo"), "reviews.foo.svc.cluster.local");
        assert_eq!(fqdn("reviews.default", "foo"), "reviews.default");
        assert_eq!(fqdn("*", "foo"), "*");
        assert_eq!(fqdn("*.example.com", "foo"), "*.example.com");
    }

    #[test]
    fn wildcards_are_suffix_matches() {
        assert!(covers("*", "a.b"));
        assert!(covers("*.foo.com", "a.b.foo.com"));
        assert!(!covers("*.foo.com", "foo.com"));
        assert!(covers("*.foo.com", "*.bar.foo.com"));
        assert!(!covers("a.foo.com", "*.foo.com"));
        assert!(overlap("a.foo.com", "*.foo.com"));
        assert!(covers("Reviews.x", "reviews.X"));
    }

    #[test]
    fn durations() {
        let d = |s, n| {
            Some(Duration {
                seconds: s,
                nanos: n,
            })
        };
        assert_eq!(duration("1s"), d(1, 0));
        assert_eq!(duration("1h30m"), d(5400, 0));
        assert_eq!(duration("250ms"), d(0, 250_000_000));
        assert_eq!(duration("0.5s"), d(0, 500_000_000));
        assert_eq!(duration("1.5m"), d(90, 0));
        assert_eq!(duration("10x"), None);
        assert_eq!(seconds("2m"), Some(120));
    }

    #[test]
    fn protocols_from_port_names() {
        assert_eq!(protocol_of_port_name(None, "http-web"), "HTTP");
        assert_eq!(protocol_of_port_name(None, "grpc"), "GRPC");
        assert_eq!(protocol_of_port_name(None, "web"), "");
        assert_eq!(protocol_of_port_name(Some("http2"), "tcp"), "HTTP2");
        assert!(is_http_protocol(""));
        assert!(!is_http_protocol("TCP"));
    }
}
