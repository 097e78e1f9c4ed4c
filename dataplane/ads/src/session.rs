//! The protocol bookkeeping of one ADS client, without I/O: what to subscribe to, how to
//! answer each response (ACK what the caller applied, NACK what it refused, with the
//! reason), and which versions to claim after a reconnect.

use std::collections::{BTreeMap, HashSet};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use prost::Message;

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// gRPC INVALID_ARGUMENT, the code a NACK's `error_detail` carries.
const INVALID_ARGUMENT: i32 = 3;

/// Everything the server has sent and the caller accepted: the config to run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub clusters: Vec<Cluster>,
    pub listeners: Vec<Listener>,
}

/// What a response led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and ACKed.
    Applied { type_url: String, version: String },
    /// Refused and NACKed; the previous config stays.
    Rejected { type_url: String, error: String },
}

/// One client's state across streams.
#[derive(Debug)]
pub struct Session {
    node: Node,
    current: Update,
    /// The version last applied, by type.
    versions: BTreeMap<&'static str, String>,
}

impl Session {
    pub fn new(node: Node) -> Session {
        Session {
            node,
            current: Update::default(),
            versions: BTreeMap::new(),
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

    /// The first requests of a new stream: clusters, then listeners (wildcard), each
    /// claiming the version already held so the server can tell a reconnect from a start.
    pub fn subscriptions(&self) -> Vec<DiscoveryRequest> {
        [CLUSTER_TYPE, LISTENER_TYPE]
            .into_iter()
            .map(|type_url| DiscoveryRequest {
                version_info: self.version(type_url).unwrap_or_default().to_owned(),
                node: Some(self.node.clone()),
                type_url: type_url.to_owned(),
                ..DiscoveryRequest::default()
            })
            .collect()
    }

    /// Handles one response: decodes it, offers the resulting config to `apply`, and
    /// returns the ACK or NACK to send back.
    pub fn on_response(
        &mut self,
        response: &DiscoveryResponse,
        mut apply: impl FnMut(&Update) -> Result<(), String>,
    ) -> (DiscoveryRequest, Outcome) {
        let type_url = response.type_url.as_str();
        let candidate = match self.candidate(response) {
            Ok(c) => c,
            Err(error) => return self.nack(response, error),
        };
        if let Err(error) = apply(&candidate) {
            return self.nack(response, error);
        }
        self.current = candidate;
        let key = if type_url == CLUSTER_TYPE {
            CLUSTER_TYPE
        } else {
            LISTENER_TYPE
        };
        self.versions.insert(key, response.version_info.clone());
        let ack = DiscoveryRequest {
            version_info: response.version_info.clone(),
            type_url: type_url.to_owned(),
            response_nonce: response.nonce.clone(),
            ..DiscoveryRequest::default()
        };
        let outcome = Outcome::Applied {
            type_url: type_url.to_owned(),
            version: response.version_info.clone(),
        };
        (ack, outcome)
    }

    /// The config the response would make: the current one with this type replaced.
    fn candidate(&self, response: &DiscoveryResponse) -> Result<Update, String> {
        let mut next = self.current.clone();
        match response.type_url.as_str() {
            CLUSTER_TYPE => next.clusters = decode_all(response, |c: &Cluster| &c.name)?,
            LISTENER_TYPE => next.listeners = decode_all(response, |l: &Listener| &l.name)?,
            other => return Err(format!("resource type {other} is not subscribed")),
        }
        Ok(next)
    }

    fn nack(&self, response: &DiscoveryResponse, error: String) -> (DiscoveryRequest, Outcome) {
        let request = DiscoveryRequest {
            // The version still in force, as the protocol asks.
            version_info: self
                .version(&response.type_url)
                .unwrap_or_default()
                .to_owned(),
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(Status {
                code: INVALID_ARGUMENT,
                message: error.clone(),
                details: Vec::new(),
            }),
            ..DiscoveryRequest::default()
        };
        let outcome = Outcome::Rejected {
            type_url: response.type_url.clone(),
            error,
        };
        (request, outcome)
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
