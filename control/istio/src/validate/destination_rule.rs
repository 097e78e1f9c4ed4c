//! DestinationRule rules (Istio's `ValidateDestinationRule` and the CRD's CEL rules).

use crate::model::destination_rule::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule,
    LoadBalancerSettings, OutlierDetection, TrafficPolicy,
};

use super::Ctx;
use super::common::{self, duration, percent, port, selector_labels, wildcard_domain};

pub(super) fn validate(cx: &mut Ctx, dr: &DestinationRule, ns: &str) {
    if dr.host.is_empty() {
        cx.error("spec.host", "Required value");
    } else if let Err(e) = wildcard_domain(&dr.host) {
        cx.error("spec.host", e);
    }
    common::export_to(cx, "spec.exportTo", &dr.export_to, ns, false);
    if let Some(sel) = &dr.workload_selector {
        if let Some(labels) = &sel.match_labels {
            selector_labels(cx, "spec.workloadSelector.matchLabels", labels);
        }
        if dr.export_to.iter().any(|e| e != "." && e != ns) {
            cx.error("spec.exportTo", "a DestinationRule with a workloadSelector may only be exported to its own namespace");
        }
    }
    if let Some(tp) = &dr.traffic_policy {
        traffic_policy(cx, "spec.trafficPolicy", tp);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let p = format!("spec.subsets[{i}]");
        if s.name.is_empty() {
            cx.error(&format!("{p}.name"), "Required value");
        } else if !common::k8s_label(&s.name) {
            cx.error(
                &format!("{p}.name"),
                format!("subset name {:?} is not a valid DNS-1123 label", s.name),
            );
        }
        if names.contains(&s.name.as_str()) {
            cx.error(
                &format!("{p}.name"),
                format!("duplicate subset name {:?}", s.name),
            );
        }
        names.push(&s.name);
        selector_labels(cx, &format!("{p}.labels"), &s.labels);
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(cx, &format!("{p}.trafficPolicy"), tp);
        }
    }
}

fn traffic_policy(cx: &mut Ctx, p: &str, tp: &TrafficPolicy) {
    if let Some(lb) = &tp.load_balancer {
        load_balancer(cx, &format!("{p}.loadBalancer"), lb);
    }
    if let Some(cp) = &tp.connection_pool {
        connection_pool(cx, &format!("{p}.connectionPool"), cp);
    }
    if let Some(od) = &tp.outlier_detection {
        outlier_detection(cx, &format!("{p}.outlierDetection"), od);
    }
    if let Some(tls) = &tp.tls {
        client_tls(cx, &format!("{p}.tls"), tls);
    }
    if tp.port_level_settings.len() > 4096 {
        cx.error(
            &format!("{p}.portLevelSettings"),
            "at most 4096 port level settings are allowed",
        );
    }
    let mut ports: Vec<u32> = Vec::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = format!("{p}.portLevelSettings[{i}]");
        match pl.port.as_ref().and_then(|ps| ps.number) {
            None => cx.error(&format!("{pp}.port"), "port is required"),
            Some(n) => {
                port(cx, &format!("{pp}.port.number"), n);
                if ports.contains(&n) {
                    cx.error(
                        &format!("{pp}.port.number"),
                        format!("duplicate port level settings for port {n}"),
                    );
                }
                ports.push(n);
            }
        }
        if let Some(lb) = &pl.load_balancer {
            load_balancer(cx, &format!("{pp}.loadBalancer"), lb);
        }
        if let Some(cp) = &pl.connection_pool {
            connection_pool(cx, &format!("{pp}.connectionPool"), cp);
        }
        if let Some(od) = &pl.outlier_detection {
            outlier_detection(cx, &format!("{pp}.outlierDetection"), od);
        }
        if let Some(tls) = &pl.tls {
            client_tls(cx, &format!("{pp}.tls"), tls);
        }
    }
    if let Some(t) = &tp.tunnel {
        let tp = format!("{p}.tunnel");
        if let Some(proto) = &t.protocol
            && !matches!(proto.as_str(), "CONNECT" | "POST" | "connect" | "post")
        {
            cx.error(
                &format!("{tp}.protocol"),
                format!("tunnel protocol must be CONNECT or POST (got {proto:?})"),
            );
        }
        if t.target_host.as_deref().unwrap_or("").is_empty() {
            cx.error(&format!("{tp}.targetHost"), "Required value");
        }
        match t.target_port {
            None => cx.error(&format!("{tp}.targetPort"), "Required value"),
            Some(n) => port(cx, &format!("{tp}.targetPort"), n),
        }
    }
    if let Some(rb) = &tp.retry_budget {
        if let Some(pc) = rb.percent {
            percent(cx, &format!("{p}.retryBudget.percent"), pc);
        }
        duration(
            cx,
            &format!("{p}.retryBudget.budgetInterval"),
            rb.budget_interval.as_ref(),
        );
    }
}

fn load_balancer(cx: &mut Ctx, p: &str, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        cx.error(p, "only one of simple or consistentHash may be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = format!("{p}.consistentHash");
        let keys = usize::from(ch.http_header_name.is_some())
            + usize::from(ch.http_cookie.is_some())
            + usize::from(ch.use_source_ip.is_some())
            + usize::from(ch.http_query_parameter_name.is_some());
        if keys > 1 {
            cx.error(&cp, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set");
        }
        if let Some(c) = &ch.http_cookie {
            if c.name.is_empty() {
                cx.error(&format!("{cp}.httpCookie.name"), "Required value");
            }
            // A zero ttl is a session cookie, so only the syntax is checked here.
            if let Some(ttl) = &c.ttl
                && common::parse_duration(ttl).is_none()
            {
                cx.error(
                    &format!("{cp}.httpCookie.ttl"),
                    format!("{ttl:?} is not a duration"),
                );
            }
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            cx.error(&cp, "only one of ringHash or maglev may be set");
        }
        if ch.minimum_ring_size.is_some() && (ch.ring_hash.is_some() || ch.maglev.is_some()) {
            cx.error(
                &cp,
                "minimumRingSize cannot be combined with ringHash or maglev",
            );
        }
        if let Some(size) = ch.maglev.as_ref().and_then(|m| m.table_size)
            && !is_prime(size)
        {
            cx.error(
                &format!("{cp}.maglev.tableSize"),
                format!("table size must be a prime number (got {size})"),
            );
        }
    }
    if lb.warmup_duration_secs.is_some() && lb.warmup.is_some() {
        cx.error(p, "only one of warmupDurationSecs or warmup can be set");
    }
    duration(
        cx,
        &format!("{p}.warmupDurationSecs"),
        lb.warmup_duration_secs.as_ref(),
    );
    if let Some(w) = &lb.warmup {
        let wp = format!("{p}.warmup");
        match &w.duration {
            None => cx.error(&format!("{wp}.duration"), "Required value"),
            Some(d) => duration(cx, &format!("{wp}.duration"), Some(d)),
        }
        if let Some(mp) = w.minimum_percent
            && !(0.0..=100.0).contains(&mp)
        {
            cx.error(
                &format!("{wp}.minimumPercent"),
                format!("Invalid value: {mp}: must be between 0 and 100"),
            );
        }
        if let Some(a) = w.aggression
            && a < 0.0
        {
            cx.error(
                &format!("{wp}.aggression"),
                format!("Invalid value: {a}: must be greater than or equal to 0"),
            );
        }
    }
    if let Some(l) = &lb.locality_lb_setting {
        let lp = format!("{p}.localityLbSetting");
        if !l.distribute.is_empty() && !l.failover.is_empty() {
            cx.error(&lp, "only one of distribute or failover can be set");
        }
        for (i, d) in l.distribute.iter().enumerate() {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                cx.error(
                    &format!("{lp}.distribute[{i}].to"),
                    format!("total weight must be 100 (got {total})"),
                );
            }
        }
        for (i, f) in l.failover.iter().enumerate() {
            if f.from.is_some() && f.from == f.to {
                cx.error(
                    &format!("{lp}.failover[{i}]"),
                    "failover from and to must differ",
                );
            }
        }
    }
}

fn connection_pool(cx: &mut Ctx, p: &str, cp: &ConnectionPoolSettings) {
    if let Some(tcp) = &cp.tcp {
        let tp = format!("{p}.tcp");
        if tcp.max_connections.is_some_and(|n| n < 0) {
            cx.error(&format!("{tp}.maxConnections"), "must not be negative");
        }
        duration(
            cx,
            &format!("{tp}.connectTimeout"),
            tcp.connect_timeout.as_ref(),
        );
        duration(
            cx,
            &format!("{tp}.maxConnectionDuration"),
            tcp.max_connection_duration.as_ref(),
        );
        duration(cx, &format!("{tp}.idleTimeout"), tcp.idle_timeout.as_ref());
        if let Some(ka) = &tcp.tcp_keepalive {
            duration(cx, &format!("{tp}.tcpKeepalive.time"), ka.time.as_ref());
            duration(
                cx,
                &format!("{tp}.tcpKeepalive.interval"),
                ka.interval.as_ref(),
            );
        }
    }
    if let Some(http) = &cp.http {
        let hp = format!("{p}.http");
        for (field, v) in [
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
            ("maxConcurrentStreams", http.max_concurrent_streams),
        ] {
            if v.is_some_and(|n| n < 0) {
                cx.error(&format!("{hp}.{field}"), "must not be negative");
            }
        }
        duration(cx, &format!("{hp}.idleTimeout"), http.idle_timeout.as_ref());
        if let Some(ka) = &http.http2_keep_alive {
            duration(
                cx,
                &format!("{hp}.http2KeepAlive.interval"),
                ka.interval.as_ref(),
            );
            duration(
                cx,
                &format!("{hp}.http2KeepAlive.timeout"),
                ka.timeout.as_ref(),
            );
        }
    }
}

fn outlier_detection(cx: &mut Ctx, p: &str, od: &OutlierDetection) {
    duration(cx, &format!("{p}.interval"), od.interval.as_ref());
    duration(
        cx,
        &format!("{p}.baseEjectionTime"),
        od.base_ejection_time.as_ref(),
    );
    if let Some(n) = od.max_ejection_percent {
        percent(cx, &format!("{p}.maxEjectionPercent"), f64::from(n));
    }
    if let Some(n) = od.min_health_percent {
        percent(cx, &format!("{p}.minHealthPercent"), f64::from(n));
    }
    if od.consecutive_errors.is_some_and(|n| n < 0) {
        cx.error(&format!("{p}.consecutiveErrors"), "must not be negative");
    }
    for (i, code) in od.outlier_detection_http_error_codes.iter().enumerate() {
        if !(100..=599).contains(code) {
            cx.error(
                &format!("{p}.outlierDetectionHttpErrorCodes[{i}]"),
                format!("HTTP status must be in 100..599 (got {code})"),
            );
        }
    }
}

fn client_tls(cx: &mut Ctx, p: &str, tls: &ClientTlsSettings) {
    let has_files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some();
    match tls.mode {
        Some(ClientTlsMode::IstioMutual) if has_files || tls.credential_name.is_some() => {
            cx.error(
                p,
                "ISTIO_MUTUAL TLS cannot have associated certificates or a credentialName",
            );
        }
        Some(ClientTlsMode::Mutual) if tls.credential_name.is_none() => {
            if tls.client_certificate.is_none() {
                cx.error(
                    &format!("{p}.clientCertificate"),
                    "client certificate required for mutual tls",
                );
            }
            if tls.private_key.is_none() {
                cx.error(
                    &format!("{p}.privateKey"),
                    "private key required for mutual tls",
                );
            }
        }
        _ => {}
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}
