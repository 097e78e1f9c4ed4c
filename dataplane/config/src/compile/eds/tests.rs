//! EDS clusters: endpoints from assignments given beside the clusters, compiled like inline
//! ones; the EDS settings refused with their field; assignments checked on their own.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use spar_cluster::ConfiguredHealth;

use crate::test_support::*;
use crate::{Bootstrap, Xds, check_assignment, endpoints_config_dump};

const ADS: &str = "dynamic_resources:\n  ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: backend } }] }\n  cds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }\n  lds_config: { ads: {} }";

/// Two localities at priorities 0 and 1, weights and a health status: the inline and the
/// EDS forms of the same endpoints must compile alike.
const ENDPOINTS: &str = "endpoints:
- locality: { zone: a }
  load_balancing_weight: 3
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
    load_balancing_weight: 2
  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
    health_status: DRAINING
- priority: 1
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.3, port_value: 81 } } }";

/// The bootstrap with ADS (clusters and listeners over it).
fn base() -> Bootstrap {
    loaded(&with(&[("#BOOTSTRAP", ADS)]))
}

/// A cluster parsed from YAML (`- name: ...` under `clusters:`), checked by the subset check.
fn cluster(yaml: &str) -> Cluster {
    let text = with(&[("#CLUSTERS", yaml)]);
    let clusters = loaded(&text)
        .envoy
        .static_resources
        .unwrap_or_default()
        .clusters;
    clusters[1].clone()
}

/// An assignment named `name` with `body` (YAML of its fields).
fn assignment(name: &str, body: &str) -> ClusterLoadAssignment {
    let inline = format!(
        "- name: holder\n  load_assignment:\n    cluster_name: {name}\n{}",
        indent(body, "    ")
    );
    let mut la = cluster(&inline).load_assignment.expect("load_assignment");
    la.cluster_name = name.to_owned();
    la
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn map(las: &[ClusterLoadAssignment]) -> BTreeMap<String, ClusterLoadAssignment> {
    las.iter()
        .map(|la| (la.cluster_name.clone(), la.clone()))
        .collect()
}

fn compile(
    clusters: &[Cluster],
    las: &[ClusterLoadAssignment],
) -> Result<crate::Snapshot, crate::ConfigErrors> {
    base().compile_xds(
        Xds {
            clusters,
            listeners: &[],
            assignments: &map(las),
        },
        2,
    )
}

const EDS: &str = "- name: svc\n  type: EDS\n  eds_cluster_config: { eds_config: { ads: {} } }";

#[test]
fn eds_endpoints_compile_like_inline_ones() {
    let inline = cluster(&format!(
        "- name: inline\n  load_assignment:\n    cluster_name: inline\n{}",
        indent(ENDPOINTS, "    ")
    ));
    let eds = cluster(EDS);
    let s = compile(&[inline, eds], &[assignment("svc", ENDPOINTS)]).expect("compiles");
    let by_name = |n: &str| s.cluster(s.cluster_by_name(n).expect(n)).clone();
    let (inline, eds) = (by_name("inline"), by_name("svc"));
    assert_eq!(eds.endpoints.len(), 3);
    assert_eq!(eds.endpoints, inline.endpoints);
    assert_eq!(eds.localities, inline.localities);
    assert_eq!(eds.endpoints[0].weight, 2);
    assert_eq!(eds.endpoints[1].health, ConfiguredHealth::Draining);
    assert_eq!(eds.endpoints[2].priority, 1);
    assert_eq!(eds.localities[0].weight, 3);
}

#[test]
fn the_assignment_is_named_by_service_name_or_else_the_cluster() {
    let named = cluster(
        "- name: outbound|80||svc.ns.svc.cluster.local\n  type: EDS\n  eds_cluster_config: { service_name: svc-v1, eds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 5s } }",
    );
    assert_eq!(crate::assignment_name(&named), Some("svc-v1"));
    assert_eq!(crate::assignment_name(&cluster(EDS)), Some("svc"));
    let static_one = cluster("- name: st\n  load_assignment: { cluster_name: st }");
    assert_eq!(crate::assignment_name(&static_one), None);
    let las = [
        assignment("svc-v1", ENDPOINTS),
        assignment("outbound|80||svc.ns.svc.cluster.local", "endpoints: []"),
    ];
    let s = compile(std::slice::from_ref(&named), &las).expect("compiles");
    let id = s.cluster_by_name(&named.name).expect("cluster");
    assert_eq!(s.cluster(id).endpoints.len(), 3);
    // Before its assignment arrives, an EDS cluster has no endpoints (a warming timeout).
    let s = compile(std::slice::from_ref(&named), &[]).expect("compiles");
    assert!(s.cluster(id).endpoints.is_empty());
}

#[test]
fn eds_from_anywhere_but_ads_is_refused_with_its_field() {
    let at = |field: &str| format!("cluster `svc`.eds_cluster_config.eds_config{field}");
    let cases = [
        (
            "{ path: /etc/eds.yaml }",
            at(".path"),
            "field not supported",
        ),
        (
            "{ api_config_source: { api_type: GRPC, grpc_services: [{ envoy_grpc: { cluster_name: backend } }] } }",
            at(".api_config_source"),
            "field not supported",
        ),
        ("{ resource_api_version: V3 }", at(""), "must be `ads: {}`"),
        (
            "{ ads: {}, initial_fetch_timeout: -1s }",
            at(".initial_fetch_timeout"),
            "duration must be",
        ),
    ];
    for (source, path, message) in cases {
        let text = with(&[(
            "#CLUSTERS",
            &format!("- name: svc\n  type: EDS\n  eds_cluster_config: {{ eds_config: {source} }}"),
        )]);
        // Loaded as a static cluster would fail for being static: take it as a dynamic one.
        let c = match crate::load_bootstrap_str(&text, FILE, crate::Format::Yaml) {
            Ok(b) => b.envoy.static_resources.unwrap_or_default().clusters[1].clone(),
            Err(e) => {
                let e = &e.0[0];
                assert!(
                    e.path
                        .as_str()
                        .ends_with(path.rsplit('`').next().unwrap_or_default()),
                    "{source}: {e}"
                );
                assert!(e.message.contains(message), "{source}: {e}");
                continue;
            }
        };
        let Err(e) = compile(&[c], &[]) else {
            panic!("{source} should be refused")
        };
        assert_eq!(e.0[0].path.as_str(), path, "{e}");
        assert!(e.0[0].message.contains(message), "{e}");
    }
}

#[test]
fn eds_cluster_mistakes_are_refused() {
    let with_inline = cluster(&format!(
        "{EDS}\n  load_assignment: {{ cluster_name: svc }}"
    ));
    let Err(e) = compile(&[with_inline], &[]) else {
        panic!("load_assignment on EDS")
    };
    assert_eq!(e.0[0].path.as_str(), "cluster `svc`.load_assignment", "{e}");
    let static_with_eds = cluster(
        "- name: svc\n  eds_cluster_config: { eds_config: { ads: {} } }\n  load_assignment: { cluster_name: svc }",
    );
    let Err(e) = compile(&[static_with_eds], &[]) else {
        panic!("eds_cluster_config on STATIC")
    };
    assert!(
        e.0[0].message.contains("only for clusters of type EDS"),
        "{e}"
    );
    let timeout = with(&[(
        "#BOOTSTRAP",
        &ADS.replace("initial_fetch_timeout: 0s", "initial_fetch_timeout: 5s"),
    )]);
    let errors = compile_errors(&timeout);
    assert_eq!(
        errors[0].path.as_str(),
        "dynamic_resources.cds_config.initial_fetch_timeout"
    );
}

#[test]
fn eds_clusters_need_ads_and_come_over_cds() {
    let text = with(&[("#CLUSTERS", EDS)]);
    let errors = compile_errors(&text);
    assert_one(
        &errors,
        &text,
        "type: EDS",
        "static_resources.clusters[1].type",
        "no dynamic_resources.ads_config",
    );
    let text = with(&[("#CLUSTERS", EDS), ("#BOOTSTRAP", ADS)]);
    let errors = compile_errors(&text);
    assert!(
        errors[0]
            .message
            .contains("EDS clusters in static_resources"),
        "{}",
        show(&errors)
    );
}

#[test]
fn a_bad_assignment_is_named_with_its_field() {
    let bad_ip = ENDPOINTS.replace("10.0.0.2", "svc.local");
    let la = assignment("svc", &bad_ip);
    let field = "cluster_load_assignment `svc`.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address";
    let Err(e) = compile(&[cluster(EDS)], std::slice::from_ref(&la)) else {
        panic!("a bad address")
    };
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path.as_str(), field);
    let Err(e) = check_assignment(&la) else {
        panic!("a bad address")
    };
    assert_eq!(e.0[0].path.as_str(), field);
    assert!(e.0[0].message.contains("not an IP address"), "{e}");
    // A gap in priorities, a zero weight, an unsupported field.
    let gap = assignment("svc", &ENDPOINTS.replace("priority: 1", "priority: 2"));
    let e = check_assignment(&gap).unwrap_err();
    assert!(e.0[0].message.contains("without gaps"), "{e}");
    let mut policy = assignment("svc", ENDPOINTS);
    policy.policy = Some(Default::default());
    if let Some(p) = policy.policy.as_mut() {
        p.overprovisioning_factor =
            Some(envoy_types::pb::google::protobuf::UInt32Value { value: 140 });
    }
    let e = check_assignment(&policy).unwrap_err();
    assert_eq!(
        e.0[0].path.as_str(),
        "cluster_load_assignment `svc`.policy",
        "{e}"
    );
    assert!(check_assignment(&assignment("svc", ENDPOINTS)).is_ok());
    // Assignments no cluster takes are not compiled.
    assert!(compile(&[], &[la]).is_ok());
}

#[test]
fn endpoints_dump_as_envoy_does() {
    let la = assignment("svc", ENDPOINTS);
    let dump = endpoints_config_dump([("7", &la)]);
    assert_eq!(
        dump["@type"],
        "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
    );
    let entry = &dump["dynamic_endpoint_configs"][0];
    assert_eq!(entry["version_info"], "7");
    let config = &entry["endpoint_config"];
    assert_eq!(
        config["@type"],
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    );
    assert_eq!(config["cluster_name"], "svc");
    assert_eq!(
        config["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"],
        "10.0.0.1"
    );
}
