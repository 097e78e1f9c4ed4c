//! Prometheus text exposition (format 0.0.4), summed over workers.
//!
//! Written here rather than through a metrics registry crate because the
//! values are merged from per-worker single-writer counters at scrape time
//! and must keep Envoy's exact names (no `_total` suffix added to Envoy's
//! counters), which registry crates rewrite.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::counters::{Counter, Flag, RbacStats, WorkerStats};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// family name -> (kind, labels text -> value)
type Families = BTreeMap<&'static str, (Kind, BTreeMap<String, i64>)>;

struct Merge(Families);

impl Merge {
    fn add(&mut self, name: &'static str, kind: Kind, labels: String, value: i64) {
        let family = self
            .0
            .entry(name)
            .or_insert_with(|| (kind, BTreeMap::new()));
        *family.1.entry(labels).or_default() += value;
    }
}

fn label(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const CLASSES: [&str; 5] = ["1", "2", "3", "4", "5"];

/// An RBAC filter set's counters: `envoy_{scope}_rbac_allowed` (and denied, shadow) and
/// `spar_{scope}_rbac_decisions_total{policy, reason, shadow}`, labelled `key=value`.
fn rbac(m: &mut Merge, s: &RbacStats, scope: &str, key: &str, value: &str) {
    let l = label(&[(key, value)]);
    let totals: [(&'static str, &'static str, &Counter); 4] = [
        (
            "envoy_http_rbac_allowed",
            "envoy_listener_rbac_allowed",
            &s.allowed,
        ),
        (
            "envoy_http_rbac_denied",
            "envoy_listener_rbac_denied",
            &s.denied,
        ),
        (
            "envoy_http_rbac_shadow_allowed",
            "envoy_listener_rbac_shadow_allowed",
            &s.shadow_allowed,
        ),
        (
            "envoy_http_rbac_shadow_denied",
            "envoy_listener_rbac_shadow_denied",
            &s.shadow_denied,
        ),
    ];
    let http = scope == "http";
    for (http_name, listener_name, c) in totals {
        let name = if http { http_name } else { listener_name };
        m.add(name, Kind::Counter, l.clone(), as_i64(c.get()));
    }
    let name = if http {
        "spar_http_rbac_decisions_total"
    } else {
        "spar_listener_rbac_decisions_total"
    };
    let policies = s
        .policies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (policy, by) in policies.iter() {
        for ((reason, shadow), v) in by {
            let l = label(&[
                (key, value),
                ("policy", policy),
                ("reason", reason),
                ("shadow", if *shadow { "true" } else { "false" }),
            ]);
            m.add(name, Kind::Counter, l, as_i64(*v));
        }
    }
}

/// Renders every worker's counters, summed, plus `extra` lines the caller
/// owns (process and config metrics), as Prometheus text.
pub fn render_prometheus(workers: &[std::sync::Arc<WorkerStats>], extra: &str) -> String {
    use Kind::{Counter as C, Gauge as G};
    let mut m = Merge(BTreeMap::new());
    for w in workers {
        for (prefix, s) in w.http_all() {
            let l = label(&[("envoy_http_conn_manager_prefix", &prefix)]);
            m.add(
                "envoy_http_downstream_cx_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_total.get()),
            );
            m.add(
                "envoy_http_downstream_cx_http2_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_http2_total.get()),
            );
            m.add(
                "envoy_http_downstream_cx_active",
                G,
                l.clone(),
                s.downstream_cx_active.get(),
            );
            m.add(
                "envoy_http_downstream_rq_total",
                C,
                l.clone(),
                as_i64(s.downstream_rq_total.get()),
            );
            m.add(
                "envoy_http_downstream_rq_active",
                G,
                l.clone(),
                s.downstream_rq_active.get(),
            );
            m.add(
                "envoy_http_downstream_rq_timeout",
                C,
                l.clone(),
                as_i64(s.downstream_rq_timeout.get()),
            );
            m.add(
                "envoy_http_downstream_cx_idle_timeout",
                C,
                l.clone(),
                as_i64(s.downstream_cx_idle_timeout.get()),
            );
            m.add(
                "envoy_http_downstream_rq_header_timeout",
                C,
                l.clone(),
                as_i64(s.downstream_rq_header_timeout.get()),
            );
            let more = [
                (
                    "spar_http_downstream_rq_redirect",
                    &s.downstream_rq_redirect,
                ),
                (
                    "spar_http_downstream_rq_direct_response",
                    &s.downstream_rq_direct_response,
                ),
                ("envoy_http_fault_aborts_injected", &s.fault_aborts_injected),
                ("envoy_http_fault_delays_injected", &s.fault_delays_injected),
                ("spar_http_cors_preflight", &s.cors_preflight),
                (
                    "envoy_http_downstream_cx_upgrades_total",
                    &s.downstream_cx_upgrades_total,
                ),
            ];
            for (name, c) in more {
                m.add(name, C, l.clone(), as_i64(c.get()));
            }
            m.add(
                "envoy_http_downstream_cx_upgrades_active",
                G,
                l.clone(),
                s.downstream_cx_upgrades_active.get(),
            );
            for (i, class) in CLASSES.iter().enumerate() {
                let l = label(&[
                    ("envoy_response_code_class", class),
                    ("envoy_http_conn_manager_prefix", &prefix),
                ]);
                m.add(
                    "envoy_http_downstream_rq_xx",
                    C,
                    l,
                    as_i64(s.downstream_rq_xx[i].get()),
                );
            }
            for flag in Flag::ALL {
                let l = label(&[
                    ("envoy_http_conn_manager_prefix", &prefix),
                    ("response_flags", flag.code()),
                ]);
                let v = s.response_flags[flag as usize].get();
                m.add("spar_http_response_flags_total", C, l, as_i64(v));
            }
            let rejected = s
                .rejected
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (reason, v) in rejected.iter() {
                let l = label(&[
                    ("envoy_http_conn_manager_prefix", &prefix),
                    ("reason", reason),
                ]);
                m.add("spar_http_downstream_rq_rejected_total", C, l, as_i64(*v));
            }
            drop(rejected);
            rbac(
                &mut m,
                &s.rbac,
                "http",
                "envoy_http_conn_manager_prefix",
                &prefix,
            );
        }
        for (prefix, s) in w.tcp_all() {
            let l = label(&[("envoy_tcp_prefix", &prefix)]);
            m.add(
                "envoy_tcp_downstream_cx_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_total.get()),
            );
            m.add(
                "envoy_tcp_downstream_cx_rx_bytes_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_rx_bytes_total.get()),
            );
            m.add(
                "envoy_tcp_downstream_cx_tx_bytes_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_tx_bytes_total.get()),
            );
            m.add(
                "envoy_tcp_downstream_cx_no_route",
                C,
                l.clone(),
                as_i64(s.downstream_cx_no_route.get()),
            );
            m.add("envoy_tcp_idle_timeout", C, l, as_i64(s.idle_timeout.get()));
        }
        for (addr, s) in w.listeners_all() {
            let l = label(&[("envoy_listener_address", &addr)]);
            m.add(
                "envoy_listener_downstream_cx_total",
                C,
                l.clone(),
                as_i64(s.downstream_cx_total.get()),
            );
            m.add(
                "envoy_listener_downstream_cx_active",
                G,
                l.clone(),
                s.downstream_cx_active.get(),
            );
            for (name, c) in [
                (
                    "envoy_listener_downstream_cx_overflow",
                    &s.downstream_cx_overflow,
                ),
                (
                    "envoy_listener_no_filter_chain_match",
                    &s.no_filter_chain_match,
                ),
                (
                    "envoy_listener_downstream_pre_cx_timeout",
                    &s.downstream_pre_cx_timeout,
                ),
                ("envoy_listener_ssl_handshake", &s.ssl_handshake),
                (
                    "envoy_listener_ssl_connection_error",
                    &s.ssl_connection_error,
                ),
            ] {
                m.add(name, C, l.clone(), as_i64(c.get()));
            }
            rbac(&mut m, &s.rbac, "listener", "envoy_listener_address", &addr);
        }
        for (name, s) in w.clusters_all() {
            let l = label(&[("envoy_cluster_name", &name)]);
            let counters = [
                ("envoy_cluster_upstream_cx_total", &s.upstream_cx_total),
                (
                    "envoy_cluster_upstream_cx_connect_fail",
                    &s.upstream_cx_connect_fail,
                ),
                (
                    "envoy_cluster_upstream_cx_connect_timeout",
                    &s.upstream_cx_connect_timeout,
                ),
                ("envoy_cluster_upstream_cx_destroy", &s.upstream_cx_destroy),
                (
                    "envoy_cluster_upstream_cx_idle_timeout",
                    &s.upstream_cx_idle_timeout,
                ),
                ("envoy_cluster_upstream_rq_total", &s.upstream_rq_total),
                ("envoy_cluster_upstream_rq_timeout", &s.upstream_rq_timeout),
                ("envoy_cluster_upstream_rq_retry", &s.upstream_rq_retry),
                (
                    "envoy_cluster_upstream_rq_retry_success",
                    &s.upstream_rq_retry_success,
                ),
                (
                    "envoy_cluster_upstream_rq_retry_overflow",
                    &s.upstream_rq_retry_overflow,
                ),
                (
                    "envoy_cluster_upstream_rq_retry_limit_exceeded",
                    &s.upstream_rq_retry_limit_exceeded,
                ),
                (
                    "envoy_cluster_upstream_rq_per_try_timeout",
                    &s.upstream_rq_per_try_timeout,
                ),
                (
                    "envoy_cluster_upstream_rq_pending_overflow",
                    &s.upstream_rq_pending_overflow,
                ),
                ("spar_cluster_upstream_rq_overflow", &s.upstream_rq_overflow),
                (
                    "envoy_cluster_upstream_cx_overflow",
                    &s.upstream_cx_overflow,
                ),
                ("spar_cluster_upstream_rq_mirrored", &s.upstream_rq_mirrored),
                (
                    "envoy_cluster_outlier_detection_ejections_enforced_total",
                    &s.outlier_detection_ejections_enforced_total,
                ),
                ("envoy_cluster_ssl_handshake", &s.ssl_handshake),
                (
                    "envoy_cluster_ssl_connection_error",
                    &s.ssl_connection_error,
                ),
            ];
            for (name, c) in counters {
                m.add(name, C, l.clone(), as_i64(c.get()));
            }
            m.add(
                "envoy_cluster_upstream_cx_active",
                G,
                l.clone(),
                s.upstream_cx_active.get(),
            );
            m.add(
                "envoy_cluster_outlier_detection_ejections_active",
                G,
                l.clone(),
                s.outlier_detection_ejections_active.get(),
            );
            for (i, class) in CLASSES.iter().enumerate() {
                let cl = label(&[
                    ("envoy_response_code_class", class),
                    ("envoy_cluster_name", &name),
                ]);
                m.add(
                    "envoy_cluster_upstream_rq_xx",
                    C,
                    cl,
                    as_i64(s.upstream_rq_xx[i].get()),
                );
            }
        }
    }
    let mut out = String::with_capacity(8192);
    for (name, (kind, rows)) in &m.0 {
        let kind = if *kind == Kind::Counter {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    out.push_str(extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_workers_and_keeps_envoy_names() {
        let a = Arc::new(WorkerStats::default());
        let b = Arc::new(WorkerStats::default());
        a.http("ingress_http").downstream_rq_total.add(3);
        b.http("ingress_http").downstream_rq_total.add(4);
        b.http("ingress_http").response(503);
        b.http("ingress_http").flag(Flag::UpstreamConnectionFailure);
        a.cluster("svc").upstream_cx_connect_fail.inc();
        a.http("ingress_http").reject("bad_content_length");
        let text = render_prometheus(&[a, b], "");
        assert!(text.contains(
            "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_http\"} 7\n"
        ));
        assert!(text.contains("envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\",envoy_http_conn_manager_prefix=\"ingress_http\"} 1\n"));
        assert!(text.contains("response_flags=\"UF\"} 1\n"));
        assert!(
            text.contains("envoy_cluster_upstream_cx_connect_fail{envoy_cluster_name=\"svc\"} 1\n")
        );
        assert!(text.contains("reason=\"bad_content_length\"} 1\n"));
        assert_eq!(
            text.matches("# TYPE envoy_http_downstream_rq_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(label(&[("a", "x\"y\\z\n")]), "a=\"x\\\"y\\\\z\\n\"");
    }

    #[test]
    fn gauge_goes_down() {
        let g = crate::Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }
}
