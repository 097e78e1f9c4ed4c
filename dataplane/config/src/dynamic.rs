//! Resources received over xDS compiled with a bootstrap: clusters and listeners added to
//! its static ones, and the `ClusterLoadAssignment`s its EDS clusters take their endpoints
//! from. Also the checks and dumps of those assignments on their own.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;

use crate::compile::{self, eds};
use crate::error::{ConfigError, ConfigErrors};
use crate::{Bootstrap, DynamicNames, Snapshot, decode, dynamic_error, subset};

/// Full name of an EDS resource.
const ASSIGNMENT: &str = "envoy.config.endpoint.v3.ClusterLoadAssignment";

/// What an xDS client has received and accepted so far.
#[derive(Clone, Copy, Debug)]
pub struct Xds<'a> {
    /// CDS: added to the bootstrap's static clusters.
    pub clusters: &'a [Cluster],
    /// LDS: added to the bootstrap's static listeners.
    pub listeners: &'a [Listener],
    /// EDS, by resource name: the endpoints of the EDS clusters ([`assignment_name`] says
    /// which one a cluster takes). An EDS cluster whose assignment is missing has no
    /// endpoints; assignments no cluster names are ignored.
    ///
    /// [`assignment_name`]: crate::assignment_name
    pub assignments: &'a BTreeMap<String, ClusterLoadAssignment>,
}

impl Bootstrap {
    /// This bootstrap with what xDS sent, checked and compiled like a bootstrap into snapshot
    /// `version`. A dynamic resource whose name a static one has is refused (xDS does not
    /// replace static resources). Errors name each dynamic resource by its name
    /// (`listener `http`.address`, `cluster_load_assignment `svc`.endpoints[0]...`), so a
    /// NACK says which resource and which field.
    pub fn compile_xds(&self, xds: Xds<'_>, version: u64) -> Result<Snapshot, ConfigErrors> {
        let mut envoy = self.envoy.clone();
        let statics = envoy.static_resources.get_or_insert_with(Default::default);
        let first = (statics.clusters.len(), statics.listeners.len());
        let mut errors = Vec::new();
        for c in xds.clusters {
            if statics.clusters.iter().any(|s| s.name == c.name) {
                errors.push(dynamic_error(
                    "cluster",
                    &c.name,
                    "has the name of a static cluster",
                ));
            }
        }
        for l in xds.listeners {
            if statics.listeners.iter().any(|s| s.name == l.name) {
                errors.push(dynamic_error(
                    "listener",
                    &l.name,
                    "has the name of a static listener",
                ));
            }
        }
        // Only the assignments some cluster takes are checked: the others are not used.
        let used: std::collections::BTreeSet<&str> = xds
            .clusters
            .iter()
            .filter_map(eds::assignment_name)
            .collect();
        for (name, la) in xds.assignments {
            if used.contains(name.as_str()) {
                errors.extend(subset_errors(name, la));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        statics.clusters.extend(xds.clusters.iter().cloned());
        statics.listeners.extend(xds.listeners.iter().cloned());
        let names = DynamicNames {
            first,
            clusters: xds.clusters.iter().map(|c| c.name.clone()).collect(),
            listeners: xds.listeners.iter().map(|l| l.name.clone()).collect(),
        };
        let rename =
            |e: ConfigErrors| ConfigErrors(e.0.into_iter().map(|e| names.rename(e)).collect());
        let mut checked = Bootstrap::from_envoy(envoy).map_err(rename)?;
        checked.secrets = self.secrets.clone();
        compile::compile_with(&checked, xds.assignments, Some(first.0), version).map_err(rename)
    }
}

/// Checks one `ClusterLoadAssignment` on its own, as EDS delivers it: every field is one
/// spar-proxy supports, and its endpoints compile (IP addresses, ports, weights, priorities
/// without gaps, health status, `envoy.lb` metadata). Errors point at
/// `cluster_load_assignment `name`.<field>`.
pub fn check_assignment(la: &ClusterLoadAssignment) -> Result<(), ConfigErrors> {
    let errors = subset_errors(&la.cluster_name, la);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    compile::check_assignment(la, &eds::assignment_path(&la.cluster_name))
}

/// The subset check of an assignment, its paths under `cluster_load_assignment `name``.
fn subset_errors(name: &str, la: &ClusterLoadAssignment) -> Vec<ConfigError> {
    let msg = match decode::from_envoy(la, ASSIGNMENT) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    let at = eds::assignment_path(name);
    subset::check(&msg)
        .into_iter()
        .map(|(path, message)| ConfigError {
            file: None,
            line: None,
            path: at.dotted(path.as_str()),
            message,
        })
        .collect()
}

/// Envoy's `EndpointsConfigDump` for `/config_dump`: one `dynamic_endpoint_configs` entry
/// per assignment, with the `version_info` it came with.
pub fn endpoints_config_dump<'a>(
    assignments: impl IntoIterator<Item = (&'a str, &'a ClusterLoadAssignment)>,
) -> serde_json::Value {
    let dynamic: Vec<serde_json::Value> = assignments
        .into_iter()
        .map(|(version, la)| {
            let config = decode::from_envoy(la, ASSIGNMENT)
                .and_then(|m| decode::to_json(&m))
                .map(|mut v| {
                    if let Some(o) = v.as_object_mut() {
                        o.insert(
                            "@type".to_owned(),
                            format!("type.googleapis.com/{ASSIGNMENT}").into(),
                        );
                    }
                    v
                })
                .unwrap_or_else(|e| serde_json::json!({ "error": e.message }));
            serde_json::json!({ "version_info": version, "endpoint_config": config })
        })
        .collect();
    serde_json::json!({
        "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        "dynamic_endpoint_configs": dynamic,
    })
}
