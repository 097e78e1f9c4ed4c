//! The protocol bookkeeping of one ADS client, without I/O or clock: what to subscribe to,
//! how to answer each response (ACK what the caller applied, NACK what it refused, with the
//! reason), which versions to claim after a reconnect, and EDS warming.
//!
//! EDS: the client subscribes by name to the `ClusterLoadAssignment`s of the EDS clusters
//! it holds or is warming ([`cluster_assignment`]). A CDS update whose EDS clusters lack
//! their assignment is held (warming) until they arrive or the caller calls
//! [`Session::on_warming_timeout`] (after [`Warming::timeout`]); LDS updates arriving
//! meanwhile are held with it, and the lot is applied as one swap. An EDS response merges
//! into the assignments held, by name: an assignment the response does not carry is kept
//! (in state of the world only Listener and Cluster responses are the full set).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use prost::Message;

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// gRPC INVALID_ARGUMENT, the code a NACK's `error_detail` carries.
const INVALID_ARGUMENT: i32 = 3;

/// Envoy's default `initial_fetch_timeout`: how long a new EDS cluster may wait for its
/// assignment before it is used without endpoints.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything the server has sent and the caller accepted: the config to run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub clusters: Vec<Cluster>,
    pub listeners: Vec<Listener>,
    /// EDS, by resource name: the assignments of the EDS clusters in `clusters` that have
    /// arrived (a cluster warmed without its assignment has none here).
    pub assignments: BTreeMap<String, ClusterLoadAssignment>,
    /// The `version_info` of the EDS response each assignment last came in.
    pub assignment_versions: BTreeMap<String, String>,
}

/// What the caller does with what the server sends.
pub trait Apply {
    /// Compiles and swaps in `update`, or says why not (the NACK's `error_detail`).
    fn apply(&mut self, update: &Update) -> Result<(), String>;

    /// Checks one assignment on its own, before it is merged: an error NACKs the EDS
    /// response and keeps the assignments held.
    fn check_assignment(&mut self, _assignment: &ClusterLoadAssignment) -> Result<(), String> {
        Ok(())
    }
}

impl<F: FnMut(&Update) -> Result<(), String>> Apply for F {
    fn apply(&mut self, update: &Update) -> Result<(), String> {
        self(update)
    }
}

/// What a response (or a warming timeout) led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and ACKed.
    Applied { type_url: String, version: String },
    /// Refused and NACKed; the previous config stays.
    Rejected { type_url: String, error: String },
    /// Held, not answered yet: a CDS update waiting for the assignments of its EDS clusters
    /// (named), or an LDS update waiting for that CDS update.
    Warming {
        type_url: String,
        version: String,
        waiting_for: Vec<String>,
    },
    /// The warming timeout passed: the held update was applied with these assignments
    /// missing (their clusters have no endpoints until they arrive).
    TimedOut { missing: Vec<String> },
}

/// The requests to send and what happened, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub requests: Vec<DiscoveryRequest>,
    pub outcomes: Vec<Outcome>,
}

/// A held CDS update, waiting for assignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warming {
    /// The assignments still missing, by name.
    pub waiting_for: Vec<String>,
    /// How long the update may be held in all, from when it started warming: the longest
    /// `initial_fetch_timeout` of the clusters still waiting (default 15 s); `None` when one
    /// of them has `0s` (wait for ever, as Envoy).
    pub timeout: Option<Duration>,
}

/// A response held for warming.
#[derive(Clone, Debug)]
struct Held<T> {
    resources: Vec<T>,
    version: String,
    nonce: String,
}

/// One client's state across streams.
#[derive(Debug)]
pub struct Session {
    node: Node,
    current: Update,
    /// The version last applied, by type.
    versions: BTreeMap<&'static str, String>,
    /// The nonce last received on this stream, by type.
    nonces: BTreeMap<&'static str, String>,
    /// A CDS update warming, and an LDS update held with it.
    clusters: Option<Held<Cluster>>,
    listeners: Option<Held<Listener>>,
    /// The assignment names last requested on this stream.
    subscribed: BTreeSet<String>,
    /// `subscribed` as a request carries it, kept with it: an ACK does not rebuild it.
    subscribed_names: Vec<String>,
    /// The clusters in force or held changed since the names wanted were last worked out:
    /// only then are they worked out again (over every cluster), not on every response.
    clusters_changed: bool,
}

/// The assignment an EDS cluster takes (`eds_cluster_config.service_name`, or else its
/// name), with its `initial_fetch_timeout` (`None`: no timeout); `None` for other clusters.
pub fn cluster_assignment(c: &Cluster) -> Option<(&str, Option<Duration>)> {
    let eds = cluster::DiscoveryType::Eds as i32;
    if c.cluster_discovery_type != Some(cluster::ClusterDiscoveryType::Type(eds)) {
        return None;
    }
    let config = c.eds_cluster_config.as_ref();
    let service = config.map(|e| e.service_name.as_str()).unwrap_or_default();
    let name = if service.is_empty() { &c.name } else { service };
    let timeout = match config
        .and_then(|e| e.eds_config.as_ref())
        .and_then(|s| s.initial_fetch_timeout.as_ref())
    {
        None => Some(DEFAULT_INITIAL_FETCH_TIMEOUT),
        Some(d) if d.seconds <= 0 && d.nanos <= 0 => None,
        Some(d) => Some(Duration::new(
            u64::try_from(d.seconds).unwrap_or_default(),
            u32::try_from(d.nanos).unwrap_or_default(),
        )),
    };
    Some((name, timeout))
}

fn assignment_names(clusters: &[Cluster]) -> impl Iterator<Item = &str> {
    clusters
        .iter()
        .filter_map(cluster_assignment)
        .map(|(name, _)| name)
}

impl Session {
    pub fn new(node: Node) -> Session {
        Session {
            node,
            current: Update::default(),
            versions: BTreeMap::new(),
            nonces: BTreeMap::new(),
            clusters: None,
            listeners: None,
            subscribed: BTreeSet::new(),
            subscribed_names: Vec::new(),
            clusters_changed: false,
        }
    }

    /// The config in force.
    pub fn current(&self) -> &Update {
        &self.current
    }

    /// The version last applied for `type_url`.
    pub fn version(&self, type_url: &str) -> Option<&str> {
        self.versions.get(type_url).map(String::as_str)
    }

    /// The CDS update held for warming, if any.
    pub fn warming(&self) -> Option<Warming> {
        let held = self.clusters.as_ref()?;
        let mut waiting_for = Vec::new();
        let mut timeout = Some(Duration::ZERO);
        for (name, t) in held.resources.iter().filter_map(cluster_assignment) {
            if !self.current.assignments.contains_key(name) {
                waiting_for.push(name.to_owned());
                timeout = timeout.zip(t).map(|(a, b)| a.max(b));
            }
        }
        waiting_for.sort();
        waiting_for.dedup();
        Some(Warming {
            waiting_for,
            timeout,
        })
    }

    /// The first requests of a new stream: clusters (wildcard), the assignments of the EDS
    /// clusters held (by name; none when there are none), then listeners (wildcard), each
    /// claiming the version already held so the server can tell a reconnect from a start.
    /// An update held for warming is dropped: the server sends the state again.
    pub fn subscriptions(&mut self) -> Vec<DiscoveryRequest> {
        self.clusters = None;
        self.listeners = None;
        self.nonces.clear();
        self.clusters_changed = false;
        self.subscribed = self.wanted();
        self.subscribed_names = self.subscribed.iter().cloned().collect();
        let mut out = vec![self.request(CLUSTER_TYPE)];
        if !self.subscribed.is_empty() {
            out.push(self.request(ENDPOINT_TYPE));
        }
        out.push(self.request(LISTENER_TYPE));
        out
    }

    /// Handles one response: decodes it, offers the resulting config to `apply` (or holds
    /// it for warming), and returns the requests to send back: the ACK or NACK, the ACKs of
    /// a held update it completed, and a new EDS subscription when the names changed.
    pub fn on_response(&mut self, response: &DiscoveryResponse, apply: &mut impl Apply) -> Reply {
        let mut reply = Reply::default();
        match response.type_url.as_str() {
            CLUSTER_TYPE => {
                self.nonces.insert(CLUSTER_TYPE, response.nonce.clone());
                match decode_all(response, |c: &Cluster| &c.name) {
                    Err(error) => self.nack(&mut reply, CLUSTER_TYPE, &response.nonce, error),
                    Ok(clusters) => {
                        self.clusters_changed = true;
                        self.clusters = Some(Held {
                            resources: clusters,
                            version: response.version_info.clone(),
                            nonce: response.nonce.clone(),
                        });
                        self.finish_if_warm(&mut reply, apply);
                    }
                }
            }
            LISTENER_TYPE => {
                self.nonces.insert(LISTENER_TYPE, response.nonce.clone());
                match decode_all(response, |l: &Listener| &l.name) {
                    Err(error) => self.nack(&mut reply, LISTENER_TYPE, &response.nonce, error),
                    Ok(listeners) if self.clusters.is_some() => {
                        reply.outcomes.push(Outcome::Warming {
                            type_url: LISTENER_TYPE.to_owned(),
                            version: response.version_info.clone(),
                            waiting_for: vec![CLUSTER_TYPE.to_owned()],
                        });
                        self.listeners = Some(Held {
                            resources: listeners,
                            version: response.version_info.clone(),
                            nonce: response.nonce.clone(),
                        });
                    }
                    Ok(listeners) => match self.try_apply(apply, None, Some(listeners)) {
                        Ok(()) => self.ack(
                            &mut reply,
                            LISTENER_TYPE,
                            &response.version_info,
                            &response.nonce,
                        ),
                        Err(e) => self.nack(&mut reply, LISTENER_TYPE, &response.nonce, e),
                    },
                }
            }
            ENDPOINT_TYPE => {
                self.nonces.insert(ENDPOINT_TYPE, response.nonce.clone());
                match self.merge_assignments(response, apply) {
                    Ok(()) => self.ack(
                        &mut reply,
                        ENDPOINT_TYPE,
                        &response.version_info,
                        &response.nonce,
                    ),
                    Err(e) => self.nack(&mut reply, ENDPOINT_TYPE, &response.nonce, e),
                }
                self.finish_if_warm(&mut reply, apply);
            }
            other => {
                let error = format!("resource type {other} is not subscribed");
                let request = DiscoveryRequest {
                    type_url: other.to_owned(),
                    response_nonce: response.nonce.clone(),
                    error_detail: Some(status(&error)),
                    ..DiscoveryRequest::default()
                };
                reply.requests.push(request);
                reply.outcomes.push(Outcome::Rejected {
                    type_url: other.to_owned(),
                    error,
                });
            }
        }
        self.resubscribe(&mut reply);
        reply
    }

    /// The warming timeout passed: applies the held update without the assignments still
    /// missing (their clusters have no endpoints until they arrive).
    pub fn on_warming_timeout(&mut self, apply: &mut impl Apply) -> Reply {
        let mut reply = Reply::default();
        if let Some(w) = self.warming() {
            reply.outcomes.push(Outcome::TimedOut {
                missing: w.waiting_for,
            });
            self.finish(&mut reply, apply);
            self.resubscribe(&mut reply);
        }
        reply
    }

    /// Decodes, checks and merges an EDS response's assignments (the subscribed ones; the
    /// others are ignored), applying them when a cluster in force takes one. Nothing is
    /// kept on error.
    fn merge_assignments(
        &mut self,
        response: &DiscoveryResponse,
        apply: &mut impl Apply,
    ) -> Result<(), String> {
        let received = decode_all(response, |la: &ClusterLoadAssignment| &la.cluster_name)?;
        let received: Vec<ClusterLoadAssignment> = received
            .into_iter()
            .filter(|la| self.subscribed.contains(&la.cluster_name))
            .collect();
        for la in &received {
            apply
                .check_assignment(la)
                .map_err(|e| format!("ClusterLoadAssignment `{}`: {e}", la.cluster_name))?;
        }
        let in_use: HashSet<&str> = assignment_names(&self.current.clusters).collect();
        let needs_apply = received
            .iter()
            .any(|la| in_use.contains(la.cluster_name.as_str()));
        let mut previous = Vec::with_capacity(received.len());
        for la in received {
            let name = la.cluster_name.clone();
            let old = self.current.assignments.insert(name.clone(), la);
            previous.push((name, old));
        }
        let applied = match needs_apply {
            true => apply.apply(&self.current),
            false => Ok(()),
        };
        if let Err(e) = applied {
            for (name, old) in previous {
                match old {
                    Some(old) => self.current.assignments.insert(name, old),
                    None => self.current.assignments.remove(&name),
                };
            }
            return Err(e);
        }
        for (name, _) in previous {
            self.current
                .assignment_versions
                .insert(name, response.version_info.clone());
        }
        Ok(())
    }

    /// Applies the held update when every assignment it needs is here.
    fn finish_if_warm(&mut self, reply: &mut Reply, apply: &mut impl Apply) {
        let Some(w) = self.warming() else {
            return;
        };
        if w.waiting_for.is_empty() {
            self.finish(reply, apply);
        } else if let Some(held) = &self.clusters {
            reply.outcomes.push(Outcome::Warming {
                type_url: CLUSTER_TYPE.to_owned(),
                version: held.version.clone(),
                waiting_for: w.waiting_for,
            });
        }
    }

    /// Applies the held CDS update (and the LDS update held with it) as one swap, ACKing
    /// both; when that fails, finds which to NACK: the clusters with the listeners in
    /// force, then the listeners with the clusters in force.
    fn finish(&mut self, reply: &mut Reply, apply: &mut impl Apply) {
        let Some(clusters) = self.clusters.take() else {
            return;
        };
        self.clusters_changed = true;
        let Some(listeners) = self.listeners.take() else {
            let Held {
                resources,
                version,
                nonce,
            } = clusters;
            match self.try_apply(apply, Some(resources), None) {
                Ok(()) => self.ack(reply, CLUSTER_TYPE, &version, &nonce),
                Err(e) => self.nack(reply, CLUSTER_TYPE, &nonce, e),
            }
            return;
        };
        let both = self.try_apply(
            apply,
            Some(clusters.resources.clone()),
            Some(listeners.resources.clone()),
        );
        if both.is_ok() {
            self.ack(reply, CLUSTER_TYPE, &clusters.version, &clusters.nonce);
            self.ack(reply, LISTENER_TYPE, &listeners.version, &listeners.nonce);
            return;
        }
        match self.try_apply(apply, Some(clusters.resources), None) {
            Ok(()) => {
                self.ack(reply, CLUSTER_TYPE, &clusters.version, &clusters.nonce);
                let error = both.err().unwrap_or_default();
                self.nack(reply, LISTENER_TYPE, &listeners.nonce, error);
            }
            Err(e) => {
                self.nack(reply, CLUSTER_TYPE, &clusters.nonce, e);
                match self.try_apply(apply, None, Some(listeners.resources)) {
                    Ok(()) => self.ack(reply, LISTENER_TYPE, &listeners.version, &listeners.nonce),
                    Err(e) => self.nack(reply, LISTENER_TYPE, &listeners.nonce, e),
                }
            }
        }
    }

    /// Offers the config in force with `clusters` and/or `listeners` replaced to `apply`;
    /// keeps it on success, restores the previous one on error.
    fn try_apply(
        &mut self,
        apply: &mut impl Apply,
        clusters: Option<Vec<Cluster>>,
        listeners: Option<Vec<Listener>>,
    ) -> Result<(), String> {
        let old_clusters = clusters.map(|c| std::mem::replace(&mut self.current.clusters, c));
        let old_listeners = listeners.map(|l| std::mem::replace(&mut self.current.listeners, l));
        let result = apply.apply(&self.current);
        if result.is_err() {
            if let Some(c) = old_clusters {
                self.current.clusters = c;
            }
            if let Some(l) = old_listeners {
                self.current.listeners = l;
            }
        }
        result
    }

    /// The assignment names to subscribe to: those of the clusters in force and warming.
    fn wanted(&self) -> BTreeSet<String> {
        let held = self.clusters.as_ref().map(|h| h.resources.as_slice());
        assignment_names(&self.current.clusters)
            .chain(assignment_names(held.unwrap_or_default()))
            .map(str::to_owned)
            .collect()
    }

    /// Forgets assignments no cluster takes any more and makes every EDS request of the
    /// reply carry the names wanted now (in state of the world each request is the whole
    /// subscription); adds one when none is there and the names changed.
    fn resubscribe(&mut self, reply: &mut Reply) {
        // Unchanged clusters want the same names: they are worked out again only after the
        // clusters changed, not on every response.
        if std::mem::take(&mut self.clusters_changed) {
            let wanted = self.wanted();
            if wanted != self.subscribed {
                self.current
                    .assignments
                    .retain(|name, _| wanted.contains(name));
                self.current
                    .assignment_versions
                    .retain(|name, _| wanted.contains(name));
                self.subscribed_names = wanted.iter().cloned().collect();
                self.subscribed = wanted;
                if !reply.requests.iter().any(|r| r.type_url == ENDPOINT_TYPE) {
                    reply.requests.push(self.request(ENDPOINT_TYPE));
                }
            }
        }
        for r in reply
            .requests
            .iter_mut()
            .filter(|r| r.type_url == ENDPOINT_TYPE)
        {
            if r.resource_names != self.subscribed_names {
                r.resource_names = self.subscribed_names.clone();
            }
        }
    }

    /// A request for `type_url` claiming the version held, with the nonce last received
    /// on this stream and, for EDS, the names subscribed.
    fn request(&self, type_url: &'static str) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.version(type_url).unwrap_or_default().to_owned(),
            node: Some(self.node.clone()),
            type_url: type_url.to_owned(),
            response_nonce: self.nonces.get(type_url).cloned().unwrap_or_default(),
            resource_names: if type_url == ENDPOINT_TYPE {
                self.subscribed_names.clone()
            } else {
                Vec::new()
            },
            ..DiscoveryRequest::default()
        }
    }

    fn ack(&mut self, reply: &mut Reply, type_url: &'static str, version: &str, nonce: &str) {
        self.versions.insert(type_url, version.to_owned());
        reply.requests.push(DiscoveryRequest {
            version_info: version.to_owned(),
            type_url: type_url.to_owned(),
            response_nonce: nonce.to_owned(),
            ..DiscoveryRequest::default()
        });
        reply.outcomes.push(Outcome::Applied {
            type_url: type_url.to_owned(),
            version: version.to_owned(),
        });
    }

    fn nack(&self, reply: &mut Reply, type_url: &'static str, nonce: &str, error: String) {
        reply.requests.push(DiscoveryRequest {
            // The version still in force, as the protocol asks.
            version_info: self.version(type_url).unwrap_or_default().to_owned(),
            type_url: type_url.to_owned(),
            response_nonce: nonce.to_owned(),
            error_detail: Some(status(&error)),
            ..DiscoveryRequest::default()
        });
        reply.outcomes.push(Outcome::Rejected {
            type_url: type_url.to_owned(),
            error,
        });
    }
}

fn status(error: &str) -> Status {
    Status {
        code: INVALID_ARGUMENT,
        message: error.to_owned(),
        details: Vec::new(),
    }
}

/// Decodes every resource of a response as `M`, refusing a wrong type URL, a resource
/// that does not decode, and a name given twice; errors name the resource.
fn decode_all<M: Message + Default>(
    response: &DiscoveryResponse,
    name: impl Fn(&M) -> &String,
) -> Result<Vec<M>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(response.resources.len());
    for (i, any) in response.resources.iter().enumerate() {
        if any.type_url != response.type_url {
            return Err(format!(
                "resources[{i}]: type {} in a {} response",
                any.type_url, response.type_url
            ));
        }
        let m = M::decode(any.value.as_slice())
            .map_err(|e| format!("resources[{i}]: cannot decode: {e}"))?;
        let n = name(&m).clone();
        if n.is_empty() {
            return Err(format!("resources[{i}]: a resource without a name"));
        }
        if !seen.insert(n.clone()) {
            return Err(format!("resources[{i}]: `{n}` is sent twice"));
        }
        out.push(m);
    }
    Ok(out)
}
