use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::snapshot::type_url::{CLUSTER, ENDPOINT, LISTENER};
use crate::status::Nack;

fn any(type_url: &str, body: &str) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: body.as_bytes().to_vec(),
    }
}

/// A snapshot from (type, name, body) triples.
fn snap(version: &str, items: &[(&str, &str, &str)]) -> Snapshot {
    let mut s = Snapshot::new(version);
    for (t, name, body) in items {
        s.insert(*name, any(t, body));
    }
    s
}

fn req(type_url: &str, version: &str, nonce: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_owned(),
        type_url: type_url.to_owned(),
        response_nonce: nonce.to_owned(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    }
}

fn nack(type_url: &str, version: &str, nonce: &str, error: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: error.to_owned(),
            details: vec![],
        }),
        ..req(type_url, version, nonce, &[])
    }
}

fn bodies(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .collect()
}

#[test]
fn wildcard_initial_push_then_ack() {
    let s1 = snap("v1", &[(CLUSTER, "a", "A1"), (CLUSTER, "b", "B1")]);
    let mut st = SotwStream::new(7);
    let out = st.on_request(&req(CLUSTER, "", "", &[]), &s1);
    assert_eq!(out.kind, RequestKind::Initial);
    let r = out.response.unwrap();
    assert_eq!(r.version_info, "v1");
    assert_eq!(bodies(&r), ["A1", "B1"]);
    assert_eq!(st.subscription(CLUSTER), Some(&Subscription::Wildcard));

    let out = st.on_request(&req(CLUSTER, "v1", &r.nonce, &[]), &s1);
    assert_eq!(out.kind, RequestKind::Ack);
    assert!(out.response.is_none(), "nothing changed: no response");
    let status = &st.status()[CLUSTER];
    assert_eq!(status.acked_version.as_deref(), Some("v1"));
    assert!(status.synced());
    // Wildcard stays wildcard with empty names.
    assert_eq!(st.subscription(CLUSTER), Some(&Subscription::Wildcard));
}

#[test]
fn nack_keeps_previous_version_and_records_error() {
    let s1 = snap("v1", &[(CLUSTER, "a", "A1")]);
    let s2 = snap("v2", &[(CLUSTER, "a", "A2")]);
    let mut st = SotwStream::new(1);
    let r1 = st
        .on_request(&req(CLUSTER, "", "", &[]), &s1)
        .response
        .unwrap();
    st.on_request(&req(CLUSTER, "v1", &r1.nonce, &[]), &s1);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(r2.version_info, "v2");
    assert_ne!(r2.nonce, r1.nonce, "nonces are unique per response");

    let out = st.on_request(&nack(CLUSTER, "v1", &r2.nonce, "unsupported field x"), &s2);
    assert_eq!(out.kind, RequestKind::Nack("unsupported field x".into()));
    assert!(out.response.is_none(), "a NACKed version is not sent again");
    let status = &st.status()[CLUSTER];
    assert_eq!(status.acked_version.as_deref(), Some("v1"));
    assert_eq!(status.sent_version.as_deref(), Some("v2"));
    assert_eq!(
        status.nack,
        Some(Nack {
            version: "v2".into(),
            error: "unsupported field x".into()
        })
    );
    assert!(!status.synced());

    // A fixed snapshot goes out, and its ACK clears the NACK.
    let s3 = snap("v3", &[(CLUSTER, "a", "A3")]);
    let r3 = st.on_snapshot(&s3).remove(0);
    st.on_request(&req(CLUSTER, "v3", &r3.nonce, &[]), &s3);
    let status = &st.status()[CLUSTER];
    assert_eq!(status.acked_version.as_deref(), Some("v3"));
    assert_eq!(status.nack, None);
}

#[test]
fn stale_nonce_is_ignored() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B1")]);
    let mut st = SotwStream::new(1);
    let r1 = st
        .on_request(&req(ENDPOINT, "", "", &["a"]), &s1)
        .response
        .unwrap();
    let r2 = st.on_snapshot(&s2).remove(0);
    // The client ACKs r1 (and asks for b) before it saw r2: ignored, subscription included.
    let out = st.on_request(&req(ENDPOINT, "v1", &r1.nonce, &["a", "b"]), &s2);
    assert_eq!(out.kind, RequestKind::Stale);
    assert!(out.response.is_none());
    assert_eq!(st.status()[ENDPOINT].acked_version, None);
    assert_eq!(
        st.subscription(ENDPOINT),
        Some(&Subscription::Names(["a".to_owned()].into()))
    );
    // With the current nonce, the new name is answered (alone: the client has a's).
    let out = st.on_request(&req(ENDPOINT, "v2", &r2.nonce, &["a", "b"]), &s2);
    assert_eq!(out.kind, RequestKind::Ack);
    assert_eq!(bodies(&out.response.unwrap()), ["B1"]);
}

#[test]
fn subscribe_and_unsubscribe_named_resources() {
    let s = snap(
        "v1",
        &[
            (ENDPOINT, "a", "A"),
            (ENDPOINT, "b", "B"),
            (ENDPOINT, "c", "C"),
        ],
    );
    let mut st = SotwStream::new(1);
    let r = st
        .on_request(&req(ENDPOINT, "", "", &["a"]), &s)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["A"]);
    // Subscribe to c too: the response carries c (EDS need not resend a).
    let r = st
        .on_request(&req(ENDPOINT, "v1", &r.nonce, &["a", "c"]), &s)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["C"]);
    // Unsubscribe from a: EDS absence deletes nothing, so no response is needed.
    let out = st.on_request(&req(ENDPOINT, "v1", &r.nonce, &["c"]), &s);
    assert!(out.response.is_none());
    // Subscribe to a again: it is sent again.
    let r = st
        .on_request(&req(ENDPOINT, "v1", &r.nonce, &["a", "c"]), &s)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["A"]);
    // Empty names after explicit names: unsubscribed from everything, not wildcard.
    let out = st.on_request(&req(ENDPOINT, "v1", &r.nonce, &[]), &s);
    assert!(out.response.is_none());
    assert_eq!(
        st.subscription(ENDPOINT),
        Some(&Subscription::Names(Default::default()))
    );
    // Explicit "*" is wildcard: everything, as the client dropped what it had.
    let r = st
        .on_request(&req(ENDPOINT, "v1", &r.nonce, &["*"]), &s)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["A", "B", "C"]);
}

#[test]
fn an_endpoint_change_sends_only_the_assignments_that_changed() {
    let s1 = snap(
        "v1",
        &[
            (CLUSTER, "a", "CA"),
            (CLUSTER, "b", "CB"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B1"),
            (ENDPOINT, "other", "O1"),
        ],
    );
    let mut st = SotwStream::new(1);
    let rc = st
        .on_request(&req(CLUSTER, "", "", &[]), &s1)
        .response
        .unwrap();
    let re = st
        .on_request(&req(ENDPOINT, "", "", &["a", "b"]), &s1)
        .response
        .unwrap();
    assert_eq!(
        bodies(&re),
        ["A1", "B1"],
        "the first response: every name asked for"
    );
    st.on_request(&req(CLUSTER, "v1", &rc.nonce, &[]), &s1);
    st.on_request(&req(ENDPOINT, "v1", &re.nonce, &["a", "b"]), &s1);
    // b's endpoints move, and an assignment nobody asked for changes: one response, b only,
    // under the new version; no CDS push.
    let s2 = snap(
        "v2",
        &[
            (CLUSTER, "a", "CA"),
            (CLUSTER, "b", "CB"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B2"),
            (ENDPOINT, "other", "O2"),
        ],
    );
    let out = st.on_snapshot(&s2);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_url, ENDPOINT);
    assert_eq!(out[0].version_info, "v2");
    assert_eq!(bodies(&out[0]), ["B2"]);
    // A cluster change still sends every cluster (and every assignment: see below).
    let s3 = snap(
        "v3",
        &[
            (CLUSTER, "a", "CA2"),
            (CLUSTER, "b", "CB"),
            (ENDPOINT, "a", "A1"),
            (ENDPOINT, "b", "B2"),
        ],
    );
    let out = st.on_snapshot(&s3);
    assert_eq!(bodies(&out[0]), ["CA2", "CB"]);
    // A reconnect (a new stream) gets every subscribed assignment again.
    let mut again = SotwStream::new(2);
    let r = again
        .on_request(&req(ENDPOINT, "v2", "1-3", &["a", "b"]), &s3)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["A1", "B2"]);
}

#[test]
fn snapshot_pushes_only_changed_types_in_push_order() {
    let s1 = snap("v1", &[(LISTENER, "l", "L1"), (CLUSTER, "c", "C1")]);
    let mut st = SotwStream::new(1);
    let rl = st
        .on_request(&req(LISTENER, "", "", &[]), &s1)
        .response
        .unwrap();
    let rc = st
        .on_request(&req(CLUSTER, "", "", &[]), &s1)
        .response
        .unwrap();
    st.on_request(&req(LISTENER, "v1", &rl.nonce, &[]), &s1);
    st.on_request(&req(CLUSTER, "v1", &rc.nonce, &[]), &s1);

    // Same content, new version: nothing to push.
    let s2 = snap("v2", &[(LISTENER, "l", "L1"), (CLUSTER, "c", "C1")]);
    assert!(st.on_snapshot(&s2).is_empty());
    // Both change: clusters before listeners.
    let s3 = snap("v3", &[(LISTENER, "l", "L3"), (CLUSTER, "c", "C3")]);
    let out = st.on_snapshot(&s3);
    let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CLUSTER, LISTENER]);
    // A cluster removed: CDS is the full set, so the removal is pushed.
    let s4 = snap("v4", &[(LISTENER, "l", "L3")]);
    let out = st.on_snapshot(&s4);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_url, CLUSTER);
    assert!(out[0].resources.is_empty());
}

#[test]
fn a_nonce_from_another_stream_counts_as_initial() {
    // Reconnect: the client's first request on the new stream may carry an old nonce.
    let s1 = snap("v1", &[(CLUSTER, "a", "A1")]);
    let mut st = SotwStream::new(2);
    let out = st.on_request(&req(CLUSTER, "v1", "1-9", &[]), &s1);
    assert_eq!(out.kind, RequestKind::Initial);
    assert!(out.response.is_some());
}

/// The client rejects an EDS response, still subscribed to a and b (and at v1).
fn eds_nack(nonce: &str, error: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        resource_names: vec!["a".into(), "b".into()],
        ..nack(ENDPOINT, "v1", nonce, error)
    }
}

/// EDS subscribed to a and b, with the first response acknowledged.
fn eds_synced(s1: &Snapshot) -> (SotwStream, DiscoveryResponse) {
    let mut st = SotwStream::new(1);
    let r1 = st
        .on_request(&req(ENDPOINT, "", "", &["a", "b"]), s1)
        .response
        .unwrap();
    assert_eq!(bodies(&r1), ["A1", "B1"]);
    let out = st.on_request(&req(ENDPOINT, "v1", &r1.nonce, &["a", "b"]), s1);
    assert_eq!(out.kind, RequestKind::Ack);
    (st, r1)
}

#[test]
fn the_good_assignments_of_a_nacked_response_go_out_with_the_next_one() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let (mut st, _) = eds_synced(&s1);
    // A2 is good, B2 is bad: the client rejects the response whole and keeps A1 and B1.
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B2")]);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(bodies(&r2), ["A2", "B2"]);
    let out = st.on_request(&eds_nack(&r2.nonce, "bad b"), &s2);
    assert_eq!(out.kind, RequestKind::Nack("bad b".into()));
    assert!(out.response.is_none(), "a NACKed version is not sent again");
    // Nothing changed since: still nothing to send.
    assert!(st.on_snapshot(&s2).is_empty());
    // b is fixed: a goes out again with it, or the client would keep A1 for good.
    let s3 = snap("v3", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B3")]);
    let r3 = st.on_snapshot(&s3).remove(0);
    assert_eq!(bodies(&r3), ["A2", "B3"]);
    let out = st.on_request(&req(ENDPOINT, "v3", &r3.nonce, &["a", "b"]), &s3);
    assert_eq!(out.kind, RequestKind::Ack);
    // Once acknowledged, only changes again.
    let s4 = snap("v4", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B4")]);
    assert_eq!(bodies(&st.on_snapshot(&s4)[0]), ["B4"]);
}

#[test]
fn a_nack_of_an_earlier_response_is_not_lost_when_a_later_one_is_acknowledged() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let (mut st, _) = eds_synced(&s1);
    // Two responses in flight; the client rejects the first and accepts the second.
    let s2 = snap("v2", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B1")]);
    let r2 = st.on_snapshot(&s2).remove(0);
    assert_eq!(bodies(&r2), ["A2"]);
    let s3 = snap("v3", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B3")]);
    let r3 = st.on_snapshot(&s3).remove(0);
    assert_eq!(bodies(&r3), ["B3"]);
    let out = st.on_request(&eds_nack(&r2.nonce, "bad a"), &s3);
    assert_eq!(out.kind, RequestKind::Stale);
    assert!(out.response.is_none());
    let out = st.on_request(&req(ENDPOINT, "v3", &r3.nonce, &["a", "b"]), &s3);
    assert_eq!(out.kind, RequestKind::Ack);
    assert!(out.response.is_none());
    // The client has A1: the next response carries a again.
    let s4 = snap("v4", &[(ENDPOINT, "a", "A2"), (ENDPOINT, "b", "B4")]);
    assert_eq!(bodies(&st.on_snapshot(&s4)[0]), ["A2", "B4"]);
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
    let mut st = SotwStream::new(1);
    let rc = st
        .on_request(&req(CLUSTER, "", "", &[]), &s1)
        .response
        .unwrap();
    let re = st
        .on_request(&req(ENDPOINT, "", "", &["a", "b"]), &s1)
        .response
        .unwrap();
    st.on_request(&req(CLUSTER, "v1", &rc.nonce, &[]), &s1);
    st.on_request(&req(ENDPOINT, "v1", &re.nonce, &["a", "b"]), &s1);
    // Cluster a is redefined (a DestinationRule edit), no endpoint moves: Envoy re-creates
    // a and waits for its assignment, so the push carries the clusters, then every
    // subscribed assignment (and nothing unsubscribed).
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
    assert_eq!(bodies(&out[0]), ["CA2", "CB1"]);
    assert_eq!(bodies(&out[1]), ["A1", "B1"]);
    assert_eq!(out[1].version_info, "v2");
    st.on_request(&req(CLUSTER, "v2", &out[0].nonce, &[]), &s2);
    st.on_request(&req(ENDPOINT, "v2", &out[1].nonce, &["a", "b"]), &s2);
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
    assert_eq!(bodies(&out[0]), ["B3"]);
}

#[test]
fn diff_walks_only_maps_that_differ() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let s2 = snap("v2", &[(ENDPOINT, "b", "B2"), (ENDPOINT, "c", "C1")]);
    let (m1, m2) = (&s1.resources[ENDPOINT], &s2.resources[ENDPOINT]);
    let (changed, removed) = diff(m1, m2);
    assert_eq!(changed, ["b", "c"]);
    assert_eq!(removed, ["a"]);
    let same = Arc::clone(m1);
    let (changed, removed) = diff(m1, &same);
    assert!(changed.is_empty() && removed.is_empty());
}

#[test]
fn resubscribing_sends_the_new_names_only_and_an_unchanged_request_keeps_the_subscription() {
    let s1 = snap("v1", &[(ENDPOINT, "a", "A1"), (ENDPOINT, "b", "B1")]);
    let (mut st, r1) = eds_synced(&s1);
    // The same names again: nothing to send.
    let out = st.on_request(&req(ENDPOINT, "v1", &r1.nonce, &["a", "b"]), &s1);
    assert!(out.response.is_none());
    // Drop b, then take it back: it goes out again, a does not.
    let r = st
        .on_request(&req(ENDPOINT, "v1", &r1.nonce, &["a"]), &s1)
        .response;
    assert!(r.is_none());
    let r = st
        .on_request(&req(ENDPOINT, "v1", &r1.nonce, &["a", "b"]), &s1)
        .response
        .unwrap();
    assert_eq!(bodies(&r), ["B1"]);
}
