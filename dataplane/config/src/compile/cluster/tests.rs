//! Cluster compile: load balancing, endpoints, circuit breakers, outlier detection and
//! health checks, with their refusals.

use std::time::Duration;

use spar_cluster::health::DEFAULT_EXPECTED;
use spar_cluster::{
    ClusterId, ConfiguredHealth, HealthCheckKind, LbPolicy, OutlierConfig, RetryBudget,
    SubsetFallback, Thresholds,
};

use crate::test_support::*;

const C: &str = "static_resources.clusters[0]";

fn cluster(text: &str) -> spar_cluster::Cluster {
    compiled(text).cluster(ClusterId(0)).clone()
}

#[test]
fn lb_policies() {
    let cases = [
        ("", LbPolicy::RoundRobin),
        ("lb_policy: RANDOM", LbPolicy::Random),
        (
            "lb_policy: LEAST_REQUEST",
            LbPolicy::LeastRequest { choice_count: 2 },
        ),
        (
            "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 5}",
            LbPolicy::LeastRequest { choice_count: 5 },
        ),
        (
            "lb_policy: RING_HASH",
            LbPolicy::RingHash {
                min_ring: 1024,
                max_ring: 8 << 20,
            },
        ),
        (
            "lb_policy: RING_HASH\nring_hash_lb_config: {minimum_ring_size: 10, maximum_ring_size: 100}",
            LbPolicy::RingHash {
                min_ring: 10,
                max_ring: 100,
            },
        ),
        ("lb_policy: MAGLEV", LbPolicy::Maglev { table_size: 65537 }),
        (
            "lb_policy: MAGLEV\nmaglev_lb_config: {table_size: 251}",
            LbPolicy::Maglev { table_size: 251 },
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(cluster(&with(&[("#CLUSTER", yaml)])).lb, want, "{yaml}");
    }
}

#[test]
fn endpoints_priorities_localities_metadata() {
    let text = with(&[
        (
            "#LB_ENDPOINT",
            "load_balancing_weight: 3\nhealth_status: DRAINING\nmetadata:\n  filter_metadata:\n    envoy.lb: {version: v1, canary: true, shard: 7, ratio: 0.5}",
        ),
        (
            "#LOCALITIES",
            "- priority: 1\n  locality: {region: r1, zone: z1}\n  load_balancing_weight: 5\n  lb_endpoints:\n  - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}\n    health_status: TIMEOUT\n- lb_endpoints:\n  - endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}\n    health_status: DEGRADED",
        ),
        (
            "#CLUSTER",
            "common_lb_config: {healthy_panic_threshold: {value: 25}, locality_weighted_lb_config: {}}",
        ),
    ]);
    let c = cluster(&text);
    // Sorted by priority, stable: 8080 (P0), 10.0.0.3 (P0), 10.0.0.2 (P1).
    let got: Vec<(String, u32, u32, u32, ConfiguredHealth)> = c
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.weight,
                e.priority,
                e.locality,
                e.health,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("127.0.0.1:8080".into(), 3, 0, 0, ConfiguredHealth::Draining),
            ("10.0.0.3:80".into(), 1, 0, 2, ConfiguredHealth::Degraded),
            ("10.0.0.2:80".into(), 1, 1, 1, ConfiguredHealth::Unhealthy),
        ]
    );
    let md: Vec<(&str, &str)> = c.endpoints[0]
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        md,
        [
            ("canary", "true"),
            ("ratio", "0.5"),
            ("shard", "7"),
            ("version", "v1")
        ]
    );
    assert_eq!(c.localities.len(), 3);
    assert_eq!(
        (
            c.localities[1].region.as_str(),
            c.localities[1].zone.as_str(),
            c.localities[1].weight,
            c.localities[1].priority
        ),
        ("r1", "z1", 5, 1)
    );
    assert_eq!(c.localities[0].weight, 0, "no weight given");
    assert_eq!(c.panic_threshold_percent, 25.0);
    assert!(c.locality_weighted);
}

#[test]
fn subsets() {
    let text = with(&[(
        "#CLUSTER",
        "lb_subset_config:\n  fallback_policy: DEFAULT_SUBSET\n  default_subset: {version: v1, n: 2}\n  subset_selectors:\n  - keys: [version, stage]\n  - keys: [stage, version]\n  - keys: [version]",
    )]);
    let s = cluster(&text)
        .subsets
        .unwrap_or_else(|| panic!("no subsets"));
    assert_eq!(s.fallback, SubsetFallback::DefaultSubset);
    assert_eq!(
        s.default_subset.into_iter().collect::<Vec<_>>(),
        [
            ("n".to_string(), "2".to_string()),
            ("version".into(), "v1".into())
        ]
    );
    assert_eq!(
        s.selectors,
        [
            vec!["stage".to_string(), "version".into()],
            vec!["version".into()]
        ]
    );
    let plain = cluster(&with(&[(
        "#CLUSTER",
        "lb_subset_config: {subset_selectors: [{keys: [a]}]}",
    )]));
    assert_eq!(
        plain.subsets.map(|s| s.fallback),
        Some(SubsetFallback::NoFallback)
    );
}

#[test]
fn circuit_breakers() {
    let text = with(&[(
        "#CLUSTER",
        "circuit_breakers:\n  thresholds:\n  - {max_connections: 10, max_retries: 1, retry_budget: {budget_percent: {value: 30}, min_retry_concurrency: 5}}\n  - {priority: HIGH, max_requests: 7}",
    )]);
    let c = cluster(&text);
    assert_eq!(
        c.thresholds,
        Thresholds {
            max_connections: 10,
            max_retries: 1,
            retry_budget: Some(RetryBudget {
                budget_percent: 30.0,
                min_retry_concurrency: 5
            }),
            ..Thresholds::default()
        }
    );
    assert_eq!(c.thresholds_high.map(|t| t.max_requests), Some(7));
    let c = cluster(&with(&[(
        "#CLUSTER",
        "circuit_breakers: {thresholds: [{retry_budget: {}}]}",
    )]));
    assert_eq!(c.thresholds.retry_budget, Some(RetryBudget::default()));
    assert_eq!(cluster(BASE).thresholds_high, None);
}

#[test]
fn outlier_detection() {
    assert_eq!(cluster(BASE).outlier, None);
    assert_eq!(
        cluster(&with(&[("#CLUSTER", "outlier_detection: {}")])).outlier,
        Some(OutlierConfig::default())
    );
    // What Istio emits for a DestinationRule outlierDetection.
    let text = with(&[(
        "#CLUSTER",
        "outlier_detection:\n  consecutive_5xx: 7\n  interval: 1s\n  base_ejection_time: 2s\n  max_ejection_time: 20s\n  max_ejection_time_jitter: 0.5s\n  max_ejection_percent: 50\n  enforcing_consecutive_5xx: 90\n  consecutive_gateway_failure: 3\n  enforcing_consecutive_gateway_failure: 100\n  split_external_local_origin_errors: true\n  consecutive_local_origin_failure: 4\n  enforcing_consecutive_local_origin_failure: 80\n  enforcing_success_rate: 0",
    )]);
    assert_eq!(
        cluster(&text).outlier,
        Some(OutlierConfig {
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(2),
            max_ejection_time: Duration::from_secs(20),
            max_ejection_time_jitter: Duration::from_millis(500),
            max_ejection_percent: 50,
            consecutive_5xx: 7,
            enforcing_consecutive_5xx: 90,
            consecutive_gateway_failure: 3,
            enforcing_consecutive_gateway_failure: 100,
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: 4,
            enforcing_consecutive_local_origin_failure: 80,
        })
    );
}

#[test]
fn health_checks() {
    let text = with(&[(
        "#CLUSTER",
        "health_checks:\n- timeout: 1s\n  interval: 2s\n  interval_jitter: 0.1s\n  unhealthy_threshold: 3\n  healthy_threshold: 2\n  http_health_check: {path: /healthz, host: svc.local, expected_statuses: [{start: 200, end: 300}, {start: 404, end: 405}]}\n- timeout: 1s\n  interval: 2s\n  unhealthy_threshold: 1\n  healthy_threshold: 1\n  tcp_health_check: {send: {text: \"50494e47\"}, receive: [{text: \"504f4e47\"}]}\n- timeout: 1s\n  interval: 2s\n  unhealthy_threshold: 1\n  healthy_threshold: 1\n  http_health_check: {path: /}",
    )]);
    let hc = cluster(&text).health_checks;
    assert_eq!(hc.len(), 3);
    assert_eq!(
        (
            hc[0].timeout,
            hc[0].interval,
            hc[0].interval_jitter,
            hc[0].unhealthy_threshold,
            hc[0].healthy_threshold
        ),
        (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_millis(100),
            3,
            2
        )
    );
    assert_eq!(
        hc[0].kind,
        HealthCheckKind::Http {
            path: "/healthz".into(),
            host: Some("svc.local".into()),
            expected: vec![200..300, 404..405]
        }
    );
    assert_eq!(
        hc[1].kind,
        HealthCheckKind::Tcp {
            send: Some(b"PING".to_vec()),
            receive: vec![b"PONG".to_vec()]
        }
    );
    assert_eq!(
        hc[2].kind,
        HealthCheckKind::Http {
            path: "/".into(),
            host: None,
            expected: vec![DEFAULT_EXPECTED]
        }
    );
}

const HC: &str = "health_checks:\n- timeout: 1s\n  interval: 1s\n  unhealthy_threshold: 1\n  healthy_threshold: 1\n  ";

#[test]
fn refusals() {
    let ep = format!("{C}.load_assignment.endpoints[0].lb_endpoints[0]");
    // (marker, yaml, needle on the error line, path, message part)
    let cases: Vec<(&str, String, &str, String, &str)> = vec![
        ("#CLUSTER", "lb_policy: CLUSTER_PROVIDED".into(), "CLUSTER_PROVIDED", format!("{C}.lb_policy"), "CLUSTER_PROVIDED not supported by spar-proxy yet"),
        ("#CLUSTER", "ring_hash_lb_config: {minimum_ring_size: 8}".into(), "ring_hash_lb_config", format!("{C}.ring_hash_lb_config"), "applies to lb_policy RING_HASH, not ROUND_ROBIN"),
        ("#CLUSTER", "lb_policy: RING_HASH\nring_hash_lb_config: {hash_function: MURMUR_HASH_2}".into(), "hash_function", format!("{C}.ring_hash_lb_config.hash_function"), "field not supported by spar-proxy yet"),
        ("#CLUSTER", "lb_policy: RING_HASH\nring_hash_lb_config: {minimum_ring_size: 100, maximum_ring_size: 10}".into(), "ring_hash_lb_config", format!("{C}.ring_hash_lb_config.minimum_ring_size"), "above maximum_ring_size"),
        ("#CLUSTER", "lb_policy: RING_HASH\nring_hash_lb_config: {maximum_ring_size: 9000000}".into(), "ring_hash_lb_config", format!("{C}.ring_hash_lb_config.maximum_ring_size"), "from 1 to 8388608"),
        ("#CLUSTER", "lb_policy: MAGLEV\nmaglev_lb_config: {table_size: 65536}".into(), "table_size", format!("{C}.maglev_lb_config.table_size"), "prime"),
        ("#CLUSTER", "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 1}".into(), "choice_count", format!("{C}.least_request_lb_config.choice_count"), "at least 2"),
        ("#CLUSTER", "lb_policy: LEAST_REQUEST\nleast_request_lb_config: {active_request_bias: {default_value: 2, runtime_key: x}}".into(), "active_request_bias", format!("{C}.least_request_lb_config.active_request_bias"), "field not supported"),
        ("#CLUSTER", "common_lb_config: {healthy_panic_threshold: {value: 120}}".into(), "healthy_panic_threshold", format!("{C}.common_lb_config.healthy_panic_threshold.value"), "from 0 to 100"),
        ("#CLUSTER", "lb_policy: MAGLEV\ncommon_lb_config: {locality_weighted_lb_config: {}}".into(), "locality_weighted_lb_config", format!("{C}.common_lb_config.locality_weighted_lb_config"), "ROUND_ROBIN, LEAST_REQUEST and RANDOM only"),
        ("#CLUSTER", "common_lb_config: {zone_aware_lb_config: {}}".into(), "zone_aware_lb_config", format!("{C}.common_lb_config.zone_aware_lb_config"), "field not supported"),
        ("#CLUSTER", "lb_subset_config: {subset_selectors: [{keys: []}]}".into(), "lb_subset_config", format!("{C}.lb_subset_config.subset_selectors[0].keys"), "at least one non-empty key"),
        ("#CLUSTER", "lb_subset_config: {panic_mode_any: true}".into(), "panic_mode_any", format!("{C}.lb_subset_config.panic_mode_any"), "field not supported"),
        ("#LB_ENDPOINT", "metadata: {filter_metadata: {istio: {workload: w}}}".into(), "filter_metadata", format!("{ep}.metadata.filter_metadata.istio"), "namespace istio not supported by spar-proxy yet"),
        ("#LB_ENDPOINT", "metadata: {filter_metadata: {envoy.lb: {v: [1, 2]}}}".into(), "filter_metadata", format!("{ep}.metadata.filter_metadata.envoy.lb.v"), "only string, number and bool"),
        ("#LOCALITIES", "- priority: 2\n  lb_endpoints: []".into(), "priority: 2", format!("{C}.load_assignment.endpoints[1].priority"), "priority 1 has no endpoints"),
        ("#CLUSTER", "circuit_breakers: {thresholds: [{priority: HIGH}, {priority: HIGH}]}".into(), "circuit_breakers", format!("{C}.circuit_breakers.thresholds[1]"), "priority HIGH are given twice"),
        ("#CLUSTER", "circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 101}}}]}".into(), "circuit_breakers", format!("{C}.circuit_breakers.thresholds[0].retry_budget.budget_percent.value"), "from 0 to 100"),
        ("#CLUSTER", "circuit_breakers: {thresholds: [{track_remaining: true}]}".into(), "circuit_breakers", format!("{C}.circuit_breakers.thresholds[0].track_remaining"), "field not supported"),
        ("#CLUSTER", "outlier_detection: {enforcing_success_rate: 100}".into(), "enforcing_success_rate", format!("{C}.outlier_detection.enforcing_success_rate"), "not supported by spar-proxy yet"),
        ("#CLUSTER", "outlier_detection: {enforcing_failure_percentage: 5}".into(), "enforcing_failure_percentage", format!("{C}.outlier_detection.enforcing_failure_percentage"), "not supported by spar-proxy yet"),
        ("#CLUSTER", "outlier_detection: {success_rate_minimum_hosts: 3}".into(), "success_rate_minimum_hosts", format!("{C}.outlier_detection.success_rate_minimum_hosts"), "field not supported"),
        ("#CLUSTER", "outlier_detection: {max_ejection_percent: 101}".into(), "max_ejection_percent", format!("{C}.outlier_detection.max_ejection_percent"), "percentage from 0 to 100"),
        ("#CLUSTER", "outlier_detection: {interval: 0s}".into(), "interval", format!("{C}.outlier_detection.interval"), "greater than 0s"),
        ("#CLUSTER", "health_checks: [{interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {}}]".into(), "health_checks", format!("{C}.health_checks[0].timeout"), "timeout is required"),
        ("#CLUSTER", format!("{HC}http_health_check: {{path: /, expected_statuses: [{{start: 300, end: 200}}]}}"), "expected_statuses", format!("{C}.health_checks[0].http_health_check.expected_statuses[0]"), "100 <= start < end <= 600"),
        ("#CLUSTER", format!("{HC}http_health_check: {{host: x}}"), "http_health_check", format!("{C}.health_checks[0].http_health_check.path"), "path is required"),
        ("#CLUSTER", format!("{HC}tcp_health_check: {{send: {{text: zz}}}}"), "tcp_health_check", format!("{C}.health_checks[0].tcp_health_check.send.text"), "hex"),
        ("#CLUSTER", format!("{HC}http_health_check: {{path: /, codec_client_type: HTTP2}}"), "codec_client_type", format!("{C}.health_checks[0].http_health_check.codec_client_type"), "field not supported"),
        ("#CLUSTER", format!("{HC}grpc_health_check: {{}}"), "grpc_health_check", format!("{C}.health_checks[0].grpc_health_check"), "field not supported"),
        ("#CLUSTER", "health_checks: [{timeout: 1s, interval: 1s, healthy_threshold: 1, tcp_health_check: {}}]".into(), "health_checks", format!("{C}.health_checks[0].unhealthy_threshold"), "unhealthy_threshold is required"),
        ("#CLUSTER", format!("{HC}no_traffic_interval: 5s\n  tcp_health_check: {{}}"), "no_traffic_interval", format!("{C}.health_checks[0].no_traffic_interval"), "field not supported"),
    ];
    for (marker, yaml, needle, path, message) in cases {
        let text = with(&[(marker, yaml.as_str())]);
        let errors = match load(&text) {
            Err(e) => e.0,
            Ok(b) => match crate::compile(&b, 1) {
                Ok(_) => panic!("should be refused: {yaml}"),
                Err(e) => e.0,
            },
        };
        assert_one(&errors, &text, needle, &path, message);
    }
}
