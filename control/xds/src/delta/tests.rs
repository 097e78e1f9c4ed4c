use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::snapshot::type_url::{CLUSTER, ENDPOINT, LISTENER};

fn snap(version: &str, items: &[(&str, &str, &str)]) -> Snapshot {
    let mut s = Snapshot::new(version);
    for (t, name, body) in items {
        s.insert(
            *name,
            Any {
                type_url: (*t).to_owned(),
                value: body.as_bytes().to_vec(),
            },
        );
    }
    s
}

fn req(type_url: &str, nonce: &str, sub: &[&str], unsub: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_owned(),
        response_nonce: nonce.to_owned(),
        resource_names_subscribe: sub.iter().map(|n| (*n).to_owned()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn sends_only_changes_and_removals() {
    let s1 = snap("v1", &[(CLUSTER, "a", "A1"), (CLUSTER, "b", "B1")]);
    let mut st = DeltaStream::new(1);
    let out = st.on_request(&req(CLUSTER, "", &[], &[]), &s1);
    assert_eq!(out.kind, RequestKind::Initial);
    let r1 = out.response.unwrap();
    assert_eq!(names(&r1), ["a", "b"]);
    assert_eq!(r1.system_version_info, "v1");
    let out = st.on_request(&req(CLUSTER, &r1.nonce, &[], &[]), &s1);
    assert_eq!(out.kind, RequestKind::Ack);
    assert!(out.response.is_none());
    assert_eq!(st.status()[CLUSTER].acked_version.as_deref(), Some("v1"));

    // b changes, c is added, a is removed.
    let s2 = snap("v2", &[(CLUSTER, "b", "B2"), (CLUSTER, "c", "C1")]);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(names(&r2), ["b", "c"]);
    assert_eq!(r2.removed_resources, ["a"]);
    // Nothing changed: nothing sent.
    let s3 = snap("v3", &[(CLUSTER, "b", "B2"), (CLUSTER, "c", "C1")]);
    assert!(st.on_snapshot(&s3).is_empty());
}

#[test]
fn initial_resource_versions_skip_what_the_client_has() {
    let s1 = snap("v1", &[(CLUSTER, "a", "A1"), (CLUSTER, "b", "B1")]);
    let version_a = s1.resources[CLUSTER]["a"].version.clone();
    let mut request = req(CLUSTER, "", &[], &[]);
    request.initial_resource_versions = [
        ("a".to_owned(), version_a),
        ("gone".to_owned(), "x".to_owned()),
    ]
    .into();
    let mut st = DeltaStream::new(1);
    let r = st.on_request(&request, &s1).response.unwrap();
    assert_eq!(names(&r), ["b"]);
    assert_eq!(r.removed_resources, ["gone"]);
}

#[test]
fn named_subscriptions_and_unsubscribe() {
    let s = snap("v1", &[(ENDPOINT, "a", "A"), (ENDPOINT, "b", "B")]);
    let mut st = DeltaStream::new(1);
    let r = st
        .on_request(&req(ENDPOINT, "", &["a"], &[]), &s)
        .response
        .unwrap();
    assert_eq!(names(&r), ["a"]);
    let r = st
        .on_request(&req(ENDPOINT, &r.nonce, &["b"], &[]), &s)
        .response
        .unwrap();
    assert_eq!(names(&r), ["b"], "only the newly subscribed resource");
    // Unsubscribe a: nothing to send, and a later change to a is not pushed.
    let out = st.on_request(&req(ENDPOINT, &r.nonce, &[], &["a"]), &s);
    assert!(out.response.is_none());
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B")]);
    assert!(st.on_snapshot(&s2).is_empty());
}

#[test]
fn nack_is_recorded_and_stale_nonce_still_subscribes() {
    let s1 = snap("v1", &[(LISTENER, "l", "L1"), (ENDPOINT, "a", "A")]);
    let s2 = snap("v2", &[(LISTENER, "l", "L2"), (ENDPOINT, "a", "A")]);
    let mut st = DeltaStream::new(1);
    let r1 = st
        .on_request(&req(LISTENER, "", &[], &[]), &s1)
        .response
        .unwrap();
    let r2 = st.on_snapshot(&s2).remove(0);
    let mut n = req(LISTENER, &r2.nonce, &[], &[]);
    n.error_detail = Some(Status {
        code: 3,
        message: "bad listener".into(),
        details: vec![],
    });
    let out = st.on_request(&n, &s2);
    assert_eq!(out.kind, RequestKind::Nack("bad listener".into()));
    assert!(out.response.is_none());
    let status = &st.status()[LISTENER];
    assert_eq!(status.acked_version, None);
    assert_eq!(
        status.nack.as_ref().map(|n| n.error.as_str()),
        Some("bad listener")
    );

    // A stale nonce records nothing but its subscription changes apply.
    let r = st
        .on_request(&req(ENDPOINT, "", &["a"], &[]), &s2)
        .response
        .unwrap();
    let s3 = snap(
        "v3",
        &[
            (LISTENER, "l", "L2"),
            (ENDPOINT, "a", "A3"),
            (ENDPOINT, "b", "B"),
        ],
    );
    assert_eq!(
        st.on_snapshot(&s3).len(),
        1,
        "a changed: a newer EDS response"
    );
    let out = st.on_request(&req(ENDPOINT, &r.nonce, &["b"], &[]), &s3);
    assert_eq!(out.kind, RequestKind::Stale);
    assert_eq!(names(&out.response.unwrap()), ["b"]);
    assert_ne!(r1.nonce, r2.nonce);
}

#[test]
fn wildcard_star_and_unsubscribe_star() {
    let s = snap("v1", &[(CLUSTER, "a", "A"), (CLUSTER, "b", "B")]);
    let mut st = DeltaStream::new(1);
    let r = st
        .on_request(&req(CLUSTER, "", &["a"], &[]), &s)
        .response
        .unwrap();
    assert_eq!(names(&r), ["a"]);
    let r = st
        .on_request(&req(CLUSTER, &r.nonce, &["*"], &[]), &s)
        .response
        .unwrap();
    assert_eq!(names(&r), ["b"]);
    // Leaving the wildcard keeps the explicit names; b is forgotten by the client.
    let out = st.on_request(&req(CLUSTER, &r.nonce, &[], &["*"]), &s);
    assert!(out.response.is_none());
    let s2 = snap("v2", &[(CLUSTER, "a", "A"), (CLUSTER, "b", "B2")]);
    assert!(st.on_snapshot(&s2).is_empty());
}

#[test]
fn a_cluster_change_resends_every_subscribed_assignment() {
    let s1 = snap(
        "v1",
        &[
            (CLUSTER, "a", "CA1"),
            (CLUSTER, "b", "CB1"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B1"),
            (ENDPOINT, "other", "O1"),
        ],
    );
    let mut st = DeltaStream::new(1);
    let rc = st
        .on_request(&req(CLUSTER, "", &[], &[]), &s1)
        .response
        .unwrap();
    let re = st
        .on_request(&req(ENDPOINT, "", &["a", "b"], &[]), &s1)
        .response
        .unwrap();
    st.on_request(&req(CLUSTER, &rc.nonce, &[], &[]), &s1);
    st.on_request(&req(ENDPOINT, &re.nonce, &[], &[]), &s1);
    // Cluster a is redefined, no endpoint moves: the push carries a, then every subscribed
    // assignment, for Envoy re-creates a and may wait for its assignment.
    let s2 = snap(
        "v2",
        &[
            (CLUSTER, "a", "CA2"),
            (CLUSTER, "b", "CB1"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B1"),
            (ENDPOINT, "other", "O1"),
        ],
    );
    let out = st.on_snapshot(&s2);
    let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CLUSTER, ENDPOINT]);
    assert_eq!(names(&out[0]), ["a"]);
    assert_eq!(names(&out[1]), ["a", "b"]);
    assert!(out[1].removed_resources.is_empty());
    st.on_request(&req(CLUSTER, &out[0].nonce, &[], &[]), &s2);
    st.on_request(&req(ENDPOINT, &out[1].nonce, &[], &[]), &s2);
    // An endpoint-only push still sends only the assignment that changed.
    let s3 = snap(
        "v3",
        &[
            (CLUSTER, "a", "CA2"),
            (CLUSTER, "b", "CB1"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B3"),
        ],
    );
    let out = st.on_snapshot(&s3);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_url, ENDPOINT);
    assert_eq!(names(&out[0]), ["b"]);
}

fn nack(type_url: &str, nonce: &str, error: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: error.into(),
            details: vec![],
        }),
        ..req(type_url, nonce, &[], &[])
    }
}

/// EDS subscribed to a and b, with the first response acknowledged.
fn eds_synced(s1: &Snapshot) -> DeltaStream {
    let mut st = DeltaStream::new(1);
    let r1 = st
        .on_request(&req(ENDPOINT, "", &["a", "b"], &[]), s1)
        .response
        .unwrap();
    assert_eq!(names(&r1), ["a", "b"]);
    let out = st.on_request(&req(ENDPOINT, &r1.nonce, &[], &[]), s1);
    assert_eq!(out.kind, RequestKind::Ack);
    st
}

#[test]
fn the_good_resources_of_a_nacked_response_go_out_with_the_next_one() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let mut st = eds_synced(&s1);
    // A2 is good, B2 is bad: the client rejects the response whole and keeps A1 and B1.
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B2")]);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(names(&r2), ["a", "b"]);
    let out = st.on_request(&nack(ENDPOINT, &r2.nonce, "bad b"), &s2);
    assert_eq!(out.kind, RequestKind::Nack("bad b".into()));
    assert!(out.response.is_none(), "a NACKed version is not sent again");
    // Nothing changed since: still nothing to send.
    assert!(st.on_snapshot(&s2).is_empty());
    // b is fixed: a goes out again with it, or the client would keep A1 for good.
    let s3 = snap("v3", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B3")]);
    let r3 = st.on_snapshot(&s3).remove(0);
    assert_eq!(names(&r3), ["a", "b"]);
    let out = st.on_request(&req(ENDPOINT, &r3.nonce, &[], &[]), &s3);
    assert_eq!(out.kind, RequestKind::Ack);
    // Once acknowledged, only changes again.
    let s4 = snap("v4", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B4")]);
    assert_eq!(names(&st.on_snapshot(&s4)[0]), ["b"]);
}

#[test]
fn a_nack_of_an_earlier_delta_response_is_not_lost_when_a_later_one_is_acknowledged() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let mut st = eds_synced(&s1);
    // Two responses in flight; the client rejects the first and accepts the second.
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B1")]);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(names(&r2), ["a"]);
    let s3 = snap("v3", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B3")]);
    let r3 = st.on_snapshot(&s3).remove(0);
    assert_eq!(names(&r3), ["b"]);
    let out = st.on_request(&nack(ENDPOINT, &r2.nonce, "bad a"), &s3);
    assert_eq!(out.kind, RequestKind::Stale);
    assert!(out.response.is_none());
    let out = st.on_request(&req(ENDPOINT, &r3.nonce, &[], &[]), &s3);
    assert_eq!(out.kind, RequestKind::Ack);
    assert!(out.response.is_none());
    // The client has A1: the next response carries a again.
    let s4 = snap("v4", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B4")]);
    assert_eq!(names(&st.on_snapshot(&s4)[0]), ["a", "b"]);
}
