//! EDS in the session: subscriptions by name, warming, merges by name, NACKs of bad
//! assignments, timeouts, unsubscribing.

use std::cell::RefCell;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};

use super::*;

fn eds_cluster(name: &str, service: &str, timeout: Option<i64>) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            service_name: service.into(),
            eds_config: Some(ConfigSource {
                config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                initial_fetch_timeout: timeout.map(|seconds| {
                    envoy_types::pb::google::protobuf::Duration { seconds, nanos: 0 }
                }),
                ..ConfigSource::default()
            }),
        }),
        ..Cluster::default()
    }
}

fn cds(version: &str, nonce: &str, clusters: &[Cluster]) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: CLUSTER_TYPE.into(),
        resources: clusters.iter().map(|c| any(CLUSTER_TYPE, c)).collect(),
        ..DiscoveryResponse::default()
    }
}

/// Assignments named `names`, each with `localities` empty locality groups (a marker the
/// tests read back).
fn eds(version: &str, nonce: &str, names: &[&str], localities: usize) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: ENDPOINT_TYPE.into(),
        resources: names
            .iter()
            .map(|n| {
                any(
                    ENDPOINT_TYPE,
                    &ClusterLoadAssignment {
                        cluster_name: (*n).into(),
                        endpoints: vec![LocalityLbEndpoints::default(); localities],
                        ..ClusterLoadAssignment::default()
                    },
                )
            })
            .collect(),
        ..DiscoveryResponse::default()
    }
}

/// Records every update applied; refuses listeners named `bad` and, as a check, any
/// assignment with a `policy`.
#[derive(Default)]
struct Recorder {
    applied: RefCell<Vec<Update>>,
}

impl Apply for &Recorder {
    fn apply(&mut self, update: &Update) -> Result<(), String> {
        picky(update)?;
        self.applied.borrow_mut().push(update.clone());
        Ok(())
    }

    fn check_assignment(&mut self, la: &ClusterLoadAssignment) -> Result<(), String> {
        match la.policy {
            Some(_) => Err("policy: field not supported".into()),
            None => Ok(()),
        }
    }
}

fn types(reply: &Reply) -> Vec<&str> {
    reply.requests.iter().map(|r| r.type_url.as_str()).collect()
}

fn acked(reply: &Reply, type_url: &str) -> Option<(String, String)> {
    reply
        .requests
        .iter()
        .find(|r| r.type_url == type_url && r.error_detail.is_none())
        .map(|r| (r.version_info.clone(), r.response_nonce.clone()))
}

/// A session holding EDS clusters `a` and `b` (service `b-svc`) with their assignments,
/// and a listener.
fn warmed(rec: &Recorder) -> Session {
    let mut s = Session::new(node());
    s.subscriptions();
    let a = eds_cluster("a", "", None);
    let b = eds_cluster("b", "b-svc", None);
    s.on_response(&cds("c1", "n1", &[a, b]), &mut &*rec);
    s.on_response(&eds("e1", "n2", &["a", "b-svc"], 1), &mut &*rec);
    s.on_response(&listeners("l1", "n3", &["http"]), &mut &*rec);
    assert!(s.warming().is_none());
    s
}

#[test]
fn a_cds_update_warms_until_its_assignments_arrive_then_applies_as_one_swap() {
    let rec = Recorder::default();
    let mut s = Session::new(node());
    assert_eq!(
        s.subscriptions().len(),
        2,
        "no EDS request without EDS clusters"
    );
    let clusters = [
        eds_cluster("a", "", None),
        eds_cluster("b", "b-svc", None),
        Cluster {
            name: "static".into(),
            ..Cluster::default()
        },
    ];
    let reply = s.on_response(&cds("c1", "n1", &clusters), &mut &rec);
    // Held: no CDS ACK yet, a subscription by name instead.
    assert_eq!(types(&reply), [ENDPOINT_TYPE]);
    assert_eq!(reply.requests[0].resource_names, ["a", "b-svc"]);
    assert_eq!(reply.requests[0].response_nonce, "", "no EDS response yet");
    assert!(
        matches!(&reply.outcomes[0], Outcome::Warming { waiting_for, .. } if waiting_for == &["a", "b-svc"])
    );
    // A listener update waits with it.
    let reply = s.on_response(&listeners("l1", "n2", &["http"]), &mut &rec);
    assert!(reply.requests.is_empty(), "{reply:?}");
    assert!(
        matches!(&reply.outcomes[0], Outcome::Warming { type_url, .. } if type_url == LISTENER_TYPE)
    );
    // Half the assignments: ACKed, stored, still warming.
    let reply = s.on_response(&eds("e1", "n3", &["a"], 1), &mut &rec);
    assert_eq!(types(&reply), [ENDPOINT_TYPE]);
    assert_eq!(
        acked(&reply, ENDPOINT_TYPE),
        Some(("e1".into(), "n3".into()))
    );
    assert_eq!(
        reply.requests[0].resource_names,
        ["a", "b-svc"],
        "an ACK carries the names"
    );
    assert_eq!(
        s.warming().map(|w| w.waiting_for),
        Some(vec!["b-svc".to_owned()])
    );
    assert!(
        rec.applied.borrow().is_empty(),
        "nothing applied while warming"
    );
    // The rest: one swap with clusters, listeners and assignments; everything ACKed.
    let reply = s.on_response(&eds("e2", "n4", &["b-svc"], 1), &mut &rec);
    assert_eq!(
        acked(&reply, CLUSTER_TYPE),
        Some(("c1".into(), "n1".into()))
    );
    assert_eq!(
        acked(&reply, LISTENER_TYPE),
        Some(("l1".into(), "n2".into()))
    );
    assert_eq!(
        acked(&reply, ENDPOINT_TYPE),
        Some(("e2".into(), "n4".into()))
    );
    let applied = rec.applied.borrow();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].clusters.len(), 3);
    assert_eq!(applied[0].listeners.len(), 1);
    assert_eq!(applied[0].assignments.len(), 2);
    assert_eq!(applied[0].assignment_versions["a"], "e1");
    assert!(s.warming().is_none());
}

#[test]
fn eds_updates_apply_at_once_and_merge_by_name() {
    let rec = Recorder::default();
    let mut s = warmed(&rec);
    let before = rec.applied.borrow().len();
    // Only `a` changed: `b-svc` is kept.
    let reply = s.on_response(&eds("e2", "n9", &["a"], 3), &mut &rec);
    assert_eq!(
        acked(&reply, ENDPOINT_TYPE),
        Some(("e2".into(), "n9".into()))
    );
    let applied = rec.applied.borrow();
    assert_eq!(applied.len(), before + 1);
    let last = applied.last().map(|u| &u.assignments);
    assert_eq!(last.map(|a| a["a"].endpoints.len()), Some(3));
    assert_eq!(last.map(|a| a.contains_key("b-svc")), Some(true));
    // A name not subscribed to is ignored.
    drop(applied);
    s.on_response(&eds("e3", "n10", &["stranger"], 1), &mut &rec);
    assert!(!s.current().assignments.contains_key("stranger"));
}

#[test]
fn a_bad_assignment_is_nacked_and_the_last_good_one_kept() {
    let rec = Recorder::default();
    let mut s = warmed(&rec);
    let mut bad = eds("e2", "n9", &["a"], 5);
    let mut la = ClusterLoadAssignment::decode(bad.resources[0].value.as_slice()).unwrap();
    la.policy = Some(Default::default());
    bad.resources[0].value = la.encode_to_vec();
    let before = rec.applied.borrow().len();
    let reply = s.on_response(&bad, &mut &rec);
    let nack = &reply.requests[0];
    assert_eq!(nack.type_url, ENDPOINT_TYPE);
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("e1", "n9")
    );
    assert_eq!(
        nack.resource_names,
        ["a", "b-svc"],
        "a NACK keeps the subscription"
    );
    let message = &nack.error_detail.as_ref().unwrap().message;
    assert!(
        message.contains("ClusterLoadAssignment `a`: policy"),
        "{message}"
    );
    assert_eq!(rec.applied.borrow().len(), before, "nothing applied");
    assert_eq!(s.current().assignments["a"].endpoints.len(), 1);
    assert_eq!(s.version(ENDPOINT_TYPE), Some("e1"));
}

#[test]
fn removed_clusters_are_unsubscribed_and_forgotten() {
    let rec = Recorder::default();
    let mut s = warmed(&rec);
    // `b` goes; `a` has its assignment: applied at once, with a narrower subscription.
    let reply = s.on_response(&cds("c2", "n9", &[eds_cluster("a", "", None)]), &mut &rec);
    assert_eq!(types(&reply), [CLUSTER_TYPE, ENDPOINT_TYPE]);
    assert_eq!(reply.requests[1].resource_names, ["a"]);
    assert_eq!(
        reply.requests[1].response_nonce, "n2",
        "the EDS nonce last received"
    );
    assert_eq!(reply.requests[1].version_info, "e1");
    assert!(!s.current().assignments.contains_key("b-svc"));
    // No EDS cluster left: an empty list unsubscribes from everything.
    let reply = s.on_response(&cds("c3", "n10", &[]), &mut &rec);
    assert_eq!(types(&reply), [CLUSTER_TYPE, ENDPOINT_TYPE]);
    assert!(reply.requests[1].resource_names.is_empty());
    assert!(s.current().assignments.is_empty());
}

#[test]
fn warming_times_out_by_the_longest_initial_fetch_timeout() {
    let rec = Recorder::default();
    let mut s = Session::new(node());
    s.subscriptions();
    let short = eds_cluster("short", "", Some(2));
    let default = eds_cluster("default", "", None);
    s.on_response(&cds("c1", "n1", &[short.clone(), default]), &mut &rec);
    let w = s.warming().unwrap();
    assert_eq!(w.timeout, Some(DEFAULT_INITIAL_FETCH_TIMEOUT));
    // Once `default` has its assignment, only `short`'s timeout counts.
    s.on_response(&eds("e1", "n2", &["default"], 1), &mut &rec);
    assert_eq!(s.warming().unwrap().timeout, Some(Duration::from_secs(2)));
    let reply = s.on_warming_timeout(&mut &rec);
    assert_eq!(
        reply.outcomes[0],
        Outcome::TimedOut {
            missing: vec!["short".into()]
        }
    );
    assert_eq!(
        acked(&reply, CLUSTER_TYPE),
        Some(("c1".into(), "n1".into()))
    );
    assert_eq!(
        rec.applied.borrow().last().map(|u| u.clusters.len()),
        Some(2)
    );
    assert!(s.warming().is_none());
    // `0s`: no timeout.
    s.on_response(
        &cds("c2", "n3", &[eds_cluster("never", "", Some(0)), short]),
        &mut &rec,
    );
    assert_eq!(s.warming().unwrap().timeout, None);
}

#[test]
fn a_held_listener_update_is_nacked_on_its_own() {
    let rec = Recorder::default();
    let mut s = warmed(&rec);
    s.on_response(
        &cds(
            "c2",
            "n9",
            &[eds_cluster("a", "", None), eds_cluster("new", "", None)],
        ),
        &mut &rec,
    );
    s.on_response(&listeners("l2", "n10", &["http", "bad"]), &mut &rec);
    let reply = s.on_response(&eds("e2", "n11", &["new"], 1), &mut &rec);
    assert_eq!(
        acked(&reply, CLUSTER_TYPE),
        Some(("c2".into(), "n9".into()))
    );
    let nack = reply
        .requests
        .iter()
        .find(|r| r.type_url == LISTENER_TYPE)
        .unwrap();
    assert_eq!(
        (nack.version_info.as_str(), nack.response_nonce.as_str()),
        ("l1", "n10")
    );
    assert!(nack.error_detail.is_some());
    assert_eq!(s.current().clusters.len(), 2);
    assert_eq!(s.current().listeners.len(), 1);
}

#[test]
fn a_reconnect_subscribes_by_name_and_drops_what_was_warming() {
    let rec = Recorder::default();
    let mut s = warmed(&rec);
    s.on_response(&cds("c2", "n9", &[eds_cluster("x", "", None)]), &mut &rec);
    assert!(s.warming().is_some());
    let first = s.subscriptions();
    assert_eq!(
        first
            .iter()
            .map(|r| r.type_url.as_str())
            .collect::<Vec<_>>(),
        [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE]
    );
    assert_eq!(first[0].version_info, "c1");
    assert_eq!(first[1].version_info, "e1");
    assert_eq!(first[1].resource_names, ["a", "b-svc"]);
    assert!(first.iter().all(|r| r.response_nonce.is_empty()));
    assert!(s.warming().is_none());
}
