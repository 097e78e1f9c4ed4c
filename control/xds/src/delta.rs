//! Delta (incremental) ADS, sans I/O: only what was added, changed or removed.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use crate::snapshot::{Snapshot, type_url};
use crate::status::{Nonces, Outcome, RequestKind, TypeStatus, classify};

#[derive(Clone, Debug, Default)]
struct TypeState {
    /// None until the first request of the type.
    wildcard: Option<bool>,
    names: BTreeSet<String>,
    /// What the client has: name → version (its `initial_resource_versions`, then what was
    /// sent, dropping what was removed or unsubscribed).
    known: BTreeMap<String, String>,
    /// Names carried (as resources or removals) by the responses sent since the client last
    /// acknowledged one: what a NACK may have rejected.
    unacked: BTreeSet<String>,
    /// Names whose last change a NACK may have rejected (the client rejects a response whole
    /// and keeps its older copies). The next response of the type carries them again,
    /// whatever triggers it; they trigger none themselves, so a NACKed version is not sent
    /// straight back.
    resend: BTreeSet<String>,
    status: TypeStatus,
}

impl TypeState {
    fn subscribed(&self, name: &str) -> bool {
        self.wildcard == Some(true) || self.names.contains(name)
    }
}

/// Per-stream state of a delta ADS stream.
#[derive(Clone, Debug)]
pub struct DeltaStream {
    nonces: Nonces,
    types: BTreeMap<String, TypeState>,
}

impl DeltaStream {
    /// A new stream; `stream_id` makes its nonces unique among streams.
    pub fn new(stream_id: u64) -> Self {
        DeltaStream {
            nonces: Nonces::new(stream_id),
            types: BTreeMap::new(),
        }
    }

    /// Handles one request against the node's current snapshot.
    ///
    /// Subscription changes always apply (they are increments: dropping them would lose
    /// them), even with a stale nonce; only the ACK/NACK part depends on the nonce. A NACK
    /// (stale or not) marks what the responses since the last ACK carried, and the next
    /// response of the type carries it again: the client rejects a response whole, so its good
    /// resources would otherwise never reach it. The first request of a type is always
    /// answered, so the client knows it is in sync.
    pub fn on_request(
        &mut self,
        request: &DeltaDiscoveryRequest,
        snapshot: &Snapshot,
    ) -> Outcome<DeltaDiscoveryResponse> {
        let state = self.types.entry(request.type_url.clone()).or_default();
        let error = request.error_detail.as_ref().map(|e| e.message.as_str());
        let kind = classify(&mut state.status, &request.response_nonce, error, None);
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
        let first = state.wildcard.is_none();
        if first {
            // Legacy wildcard: a first request without names subscribes to everything.
            state.wildcard = Some(request.resource_names_subscribe.is_empty());
            state.known = request
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        for name in &request.resource_names_subscribe {
            if name == "*" {
                state.wildcard = Some(true);
            } else {
                state.names.insert(name.clone());
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = Some(false);
            } else {
                state.names.remove(name);
            }
        }
        // The client forgets what it unsubscribed from.
        let wildcard = state.wildcard == Some(true);
        let names = &state.names;
        state
            .known
            .retain(|name, _| wildcard || names.contains(name));
        state
            .unacked
            .retain(|name| wildcard || names.contains(name));
        state.resend.retain(|name| wildcard || names.contains(name));
        let carry = if first || kind == RequestKind::Initial {
            Carry::ChangesOrEmpty
        } else {
            Carry::Changes
        };
        let response = respond(&mut self.nonces, &request.type_url, state, snapshot, carry);
        Outcome { kind, response }
    }

    /// The responses a new snapshot calls for, in push order: per subscribed type, the
    /// resources added or changed and the names removed; nothing for unchanged types. A push
    /// that changes the clusters carries every subscribed ClusterLoadAssignment, as state of
    /// the world does and for the same reason (see [`crate::SotwStream::on_snapshot`]):
    /// Envoy may wait for the assignment of a cluster it re-created.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut order: Vec<String> = self.types.keys().cloned().collect();
        order.sort_by_key(|t| type_url::rank(t));
        let mut out = Vec::new();
        // PUSH_ORDER puts clusters before their assignments.
        let mut clusters_changed = false;
        for type_url in order {
            let Some(state) = self.types.get_mut(&type_url) else {
                continue;
            };
            if state.wildcard.is_none() {
                continue;
            }
            let carry = if clusters_changed && type_url == type_url::ENDPOINT {
                Carry::All
            } else {
                Carry::Changes
            };
            if let Some(response) = respond(&mut self.nonces, &type_url, state, snapshot, carry) {
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
}

/// What a response carries, and whether one is due without changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carry {
    /// What the client has not got; nothing when it has everything.
    Changes,
    /// What the client has not got; an empty response when it has everything.
    ChangesOrEmpty,
    /// Every subscribed resource, those the client has too.
    All,
}

fn respond(
    nonces: &mut Nonces,
    type_url: &str,
    state: &mut TypeState,
    snapshot: &Snapshot,
    carry: Carry,
) -> Option<DeltaDiscoveryResponse> {
    let current = snapshot.of_type(type_url);
    // What a NACK may have rejected goes out again with the next response (the resource as it
    // is now, or its removal if it is gone), but does not call for one by itself.
    let mut changed = false;
    let mut resources = Vec::new();
    for (name, entry) in current.into_iter().flatten() {
        if !state.subscribed(name) {
            continue;
        }
        let differs = carry == Carry::All || state.known.get(name) != Some(&entry.version);
        changed |= differs;
        if differs || state.resend.contains(name) {
            resources.push(resource(name, entry));
        }
    }
    let mut removed: Vec<String> = state
        .known
        .keys()
        .filter(|name| current.is_none_or(|c| !c.contains_key(*name)))
        .cloned()
        .collect();
    changed |= !removed.is_empty();
    if !changed && carry != Carry::ChangesOrEmpty {
        return None;
    }
    removed.extend(
        std::mem::take(&mut state.resend)
            .into_iter()
            .filter(|name| {
                current.is_none_or(|c| !c.contains_key(name)) && !state.known.contains_key(name)
            }),
    );
    for resource in &resources {
        state
            .known
            .insert(resource.name.clone(), resource.version.clone());
        state.unacked.insert(resource.name.clone());
    }
    for name in &removed {
        state.known.remove(name);
        state.unacked.insert(name.clone());
    }
    let nonce = nonces.next();
    state.status.sent_version = Some(snapshot.version.clone());
    state.status.sent_nonce = Some(nonce.clone());
    Some(DeltaDiscoveryResponse {
        system_version_info: snapshot.version.clone(),
        resources,
        type_url: type_url.to_owned(),
        removed_resources: removed,
        nonce,
        ..Default::default()
    })
}

fn resource(name: &str, entry: &crate::snapshot::Entry) -> Resource {
    Resource {
        name: name.to_owned(),
        version: entry.version.clone(),
        resource: Some(entry.resource.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
