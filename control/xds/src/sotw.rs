//! State-of-the-world ADS, sans I/O: what to send for a request or a new snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::snapshot::{Entry, Snapshot, type_url};
use crate::status::{Nonces, Outcome, RequestKind, TypeStatus, classify};

/// What a client subscribed to, for one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Every resource of the type (`*`, or no names on the first request: LDS and CDS).
    Wildcard,
    /// These names only.
    Names(BTreeSet<String>),
}

impl Subscription {
    /// The subscription a request asks for, given the one before it.
    ///
    /// Envoy's rules: `*` means wildcard; an empty list means wildcard on the first request
    /// and keeps a wildcard subscription wildcard; after explicit names, an empty list
    /// unsubscribes from everything.
    pub(crate) fn from_names(names: &[String], previous: Option<&Subscription>) -> Subscription {
        if names.iter().any(|n| n == "*") {
            return Subscription::Wildcard;
        }
        if names.is_empty() && matches!(previous, None | Some(Subscription::Wildcard)) {
            return Subscription::Wildcard;
        }
        Subscription::Names(names.iter().cloned().collect())
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            Subscription::Wildcard => true,
            Subscription::Names(names) => names.contains(name),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TypeState {
    subscription: Option<Subscription>,
    /// The names of the request `subscription` was built from: a request with the same
    /// names (every ACK of a large EDS subscription) leaves it as it is, unparsed.
    requested: Vec<String>,
    /// The type's resources when the last response was sent (None: nothing sent yet), the
    /// snapshot's own map: the client holds the subscribed ones, but for `added` and
    /// `resend`. A push compares it with the new map, skipping a map that is the same.
    sent: Option<Arc<BTreeMap<String, Entry>>>,
    /// Names subscribed since the last response: the client has not got them.
    added: BTreeSet<String>,
    /// Names carried by the responses sent since the client last acknowledged one: what a
    /// NACK may have rejected.
    unacked: BTreeSet<String>,
    /// Names `sent` vouches for that the client may not have, since a NACK rejected a response
    /// carrying them (the client keeps its older copies). The next response of the type
    /// carries them, whatever triggers it; they trigger none themselves, so a NACKed version
    /// is not sent straight back.
    resend: BTreeSet<String>,
    status: TypeStatus,
}

/// Per-stream state of a state-of-the-world ADS stream.
#[derive(Clone, Debug)]
pub struct SotwStream {
    nonces: Nonces,
    types: BTreeMap<String, TypeState>,
}

impl SotwStream {
    /// A new stream; `stream_id` makes its nonces unique among streams.
    pub fn new(stream_id: u64) -> Self {
        SotwStream {
            nonces: Nonces::new(stream_id),
            types: BTreeMap::new(),
        }
    }

    /// Handles one request against the node's current snapshot.
    ///
    /// A stale nonce is ignored, except that a stale NACK marks what it may have lost. An ACK
    /// or NACK is recorded; a response follows only when the subscribed resources differ from what
    /// was last sent (a NACKed version is not sent again). A NACK marks the resources of the
    /// responses it may have rejected, so the next response of the type carries them again:
    /// with partial responses (EDS), the client would otherwise never get the good resources
    /// of a rejected response. The first request of a type is always answered, even with no
    /// resources.
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Outcome<DiscoveryResponse> {
        let state = self.types.entry(request.type_url.clone()).or_default();
        let error = request.error_detail.as_ref().map(|e| e.message.as_str());
        let kind = classify(
            &mut state.status,
            &request.response_nonce,
            error,
            Some(&request.version_info),
        );
        match kind {
            RequestKind::Ack => state.unacked.clear(),
            // The client rejected the last response and kept what it had before: everything
            // sent since its last ACK may be missing.
            RequestKind::Nack(_) => state.resend.append(&mut state.unacked),
            // A NACK of an earlier response (a later one was already on its way): which names
            // it carried is not known, so mark all that are unacknowledged; the later
            // response's ACK or NACK comes next.
            RequestKind::Stale if error.is_some() => {
                state.resend.extend(state.unacked.iter().cloned());
            }
            RequestKind::Initial | RequestKind::Stale => {}
        }
        if kind == RequestKind::Stale {
            return Outcome {
                kind,
                response: None,
            };
        }
        if state.subscription.is_none() || request.resource_names != state.requested {
            resubscribe(
                state,
                &request.resource_names,
                snapshot.of_type(&request.type_url),
            );
        }
        let force = kind == RequestKind::Initial;
        let response = respond(&mut self.nonces, &request.type_url, state, snapshot, force);
        Outcome { kind, response }
    }

    /// The responses a new snapshot calls for, in push order: one per subscribed type whose
    /// resources changed (added or changed; removed, for LDS and CDS). LDS and CDS responses
    /// carry the full set; other types only the resources added or changed, except that a
    /// push that changes the clusters carries every subscribed ClusterLoadAssignment.
    ///
    /// Envoy re-creates a cluster whose definition changed and may wait for its assignment
    /// again (up to `initial_fetch_timeout`, then it runs the cluster with no endpoints); an
    /// assignment whose content did not change would otherwise not be sent. Istio too resends
    /// EDS with every push that changes clusters.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut order: Vec<&String> = self.types.keys().collect();
        order.sort_by_key(|t| (type_url::rank(t), t.as_str()));
        let order: Vec<String> = order.into_iter().cloned().collect();
        let mut out = Vec::new();
        // PUSH_ORDER puts clusters before their assignments.
        let mut clusters_changed = false;
        for type_url in order {
            let Some(state) = self.types.get_mut(&type_url) else {
                continue;
            };
            if state.subscription.is_none() {
                continue;
            }
            let all = clusters_changed && type_url == type_url::ENDPOINT;
            if let Some(response) = respond(&mut self.nonces, &type_url, state, snapshot, all) {
                clusters_changed |= type_url == type_url::CLUSTER;
                out.push(response);
            }
        }
        out
    }

    /// Sync state of every type this stream has seen.
    pub fn status(&self) -> BTreeMap<String, TypeStatus> {
        self.types
            .iter()
            .map(|(t, s)| (t.clone(), s.status.clone()))
            .collect()
    }

    /// The current subscription for a type.
    pub fn subscription(&self, type_url: &str) -> Option<&Subscription> {
        self.types.get(type_url)?.subscription.as_ref()
    }
}

/// Applies a request whose names differ from the last one's: the names newly subscribed are
/// due with the next response, those dropped are forgotten (subscribing again sends them
/// again).
fn resubscribe(state: &mut TypeState, names: &[String], current: Option<&BTreeMap<String, Entry>>) {
    let subscription = Subscription::from_names(names, state.subscription.as_ref());
    match (&state.subscription, &subscription) {
        // The first request sends everything subscribed.
        (None, _) | (Some(Subscription::Wildcard), _) => {}
        (Some(old), Subscription::Names(new)) => {
            state
                .added
                .extend(new.iter().filter(|n| !old.contains(n)).cloned());
        }
        (Some(old), Subscription::Wildcard) => {
            state.added.extend(
                current
                    .into_iter()
                    .flatten()
                    .map(|(n, _)| n)
                    .filter(|n| !old.contains(n))
                    .cloned(),
            );
        }
    }
    state.added.retain(|name| subscription.contains(name));
    state.unacked.retain(|name| subscription.contains(name));
    state.resend.retain(|name| subscription.contains(name));
    state.subscription = Some(subscription);
    state.requested = names.to_vec();
}

/// The names whose entries differ between two maps of one type: added or changed (in `new`,
/// not at the same version in `old`), and removed. Nothing when both are the same map; one
/// ordered walk of both otherwise, comparing versions, not resources.
pub(crate) fn diff<'a>(
    old: &'a Arc<BTreeMap<String, Entry>>,
    new: &'a Arc<BTreeMap<String, Entry>>,
) -> (Vec<&'a String>, Vec<&'a String>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    if Arc::ptr_eq(old, new) {
        return (changed, removed);
    }
    let mut old = old.iter().peekable();
    let mut new = new.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some((o, _)), None) => {
                removed.push(*o);
                old.next();
            }
            (None, Some((n, _))) => {
                changed.push(*n);
                new.next();
            }
            (Some((o, oe)), Some((n, ne))) => match o.cmp(n) {
                std::cmp::Ordering::Less => {
                    removed.push(*o);
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    changed.push(*n);
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if oe.version != ne.version {
                        changed.push(*n);
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    (changed, removed)
}

fn respond(
    nonces: &mut Nonces,
    type_url: &str,
    state: &mut TypeState,
    snapshot: &Snapshot,
    force: bool,
) -> Option<DiscoveryResponse> {
    let subscription = state.subscription.as_ref()?;
    let current = snapshot
        .shared_of_type(type_url)
        .cloned()
        .unwrap_or_default();
    let full_state = type_url::is_full_state(type_url);
    // What differs from the last response, among the subscribed names: the cost of a push
    // is that of what changed, not of what is subscribed.
    let differing: Option<Vec<&String>> = state.sent.as_ref().map(|sent| {
        let (changed, removed) = diff(sent, &current);
        let mut differing: Vec<&String> = changed
            .into_iter()
            .filter(|name| subscription.contains(name))
            .collect();
        // Dropping a resource matters only where a response is the full set: for RDS and
        // EDS, absence from a response deletes nothing.
        if full_state {
            differing.extend(removed.into_iter().filter(|n| subscription.contains(n)));
        }
        differing
    });
    let changed = match &differing {
        None => true,
        Some(differing) => {
            !differing.is_empty() || state.added.iter().any(|n| current.contains_key(n))
        }
    };
    if !changed && !force {
        return None;
    }
    // LDS and CDS responses are the full set. Other types (EDS above all: one endpoint
    // change in a large mesh) carry only what the client has not got, as the xDS protocol
    // allows: added, changed, newly subscribed, or in a response it rejected; everything on
    // a stream's first request.
    let included: Vec<(&String, &Entry)> = match differing {
        Some(differing) if !force && !full_state => {
            let names: BTreeSet<&String> = differing
                .into_iter()
                .chain(&state.added)
                .chain(&state.resend)
                .collect();
            names
                .into_iter()
                .filter_map(|name| current.get_key_value(name))
                .collect()
        }
        _ => current
            .iter()
            .filter(|(name, _)| subscription.contains(name))
            .collect(),
    };
    let resources = included.iter().map(|(_, e)| e.resource.clone()).collect();
    state
        .unacked
        .extend(included.iter().map(|(name, _)| (*name).clone()));
    // Whatever was not included is gone from the snapshot: nothing to resend.
    state.resend.clear();
    state.added.clear();
    let nonce = nonces.next();
    state.sent = Some(Arc::clone(&current));
    state.status.sent_version = Some(snapshot.version.clone());
    state.status.sent_nonce = Some(nonce.clone());
    Some(DiscoveryResponse {
        version_info: snapshot.version.clone(),
        resources,
        type_url: type_url.to_owned(),
        nonce,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
