//! EDS clusters: `type: EDS` with `eds_cluster_config.eds_config: {ads: {}}`, their
//! endpoints taken from the `ClusterLoadAssignment` named `eds_cluster_config.service_name`
//! (or else the cluster's name) among those received over ADS. The assignment compiles
//! exactly like a STATIC cluster's inline `load_assignment` (`endpoints.rs`).
//!
//! Refused, each with its field: EDS from anywhere but ADS (the subset check already refuses
//! `path`, `path_config_source` and `api_config_source`; an `eds_config` without `ads` is
//! refused here), EDS clusters without ADS in the bootstrap, EDS clusters in
//! `static_resources` (spar-proxy subscribes to the endpoints of the clusters CDS sends),
//! `load_assignment` on an EDS cluster and `eds_cluster_config` on a STATIC one.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as PbCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use spar_cluster::{Endpoint, Locality};

use super::{Ctx, endpoints};
use crate::error::FieldPath;

/// `Cluster.type` EDS (`envoy.config.cluster.v3.Cluster.DiscoveryType`).
const EDS: i32 = cluster::DiscoveryType::Eds as i32;

/// The name of the `ClusterLoadAssignment` an EDS cluster's endpoints come under:
/// `eds_cluster_config.service_name`, or the cluster's name when that is empty. `None` for
/// a cluster that is not of type EDS.
pub fn assignment_name(c: &PbCluster) -> Option<&str> {
    if c.cluster_discovery_type != Some(cluster::ClusterDiscoveryType::Type(EDS)) {
        return None;
    }
    let service = c
        .eds_cluster_config
        .as_ref()
        .map(|e| e.service_name.as_str())
        .unwrap_or_default();
    Some(if service.is_empty() { &c.name } else { service })
}

/// Where the errors of the assignment called `name` point: `cluster_load_assignment `name``.
pub(crate) fn assignment_path(name: &str) -> FieldPath {
    FieldPath::root().field(&format!("cluster_load_assignment `{name}`"))
}

/// Endpoints and localities of cluster `c` at `p` when it is an EDS cluster (from its
/// assignment, or none while it has not arrived); `None` for any other cluster. Checks the
/// EDS settings on the way.
pub(super) fn endpoints(
    ctx: &mut Ctx<'_>,
    c: &PbCluster,
    p: &FieldPath,
    dynamic: bool,
) -> Option<(Vec<Endpoint>, Vec<Locality>)> {
    let Some(name) = assignment_name(c) else {
        if c.eds_cluster_config.is_some() {
            ctx.error(
                &p.field("eds_cluster_config"),
                "eds_cluster_config is only for clusters of type EDS",
            );
        }
        return None;
    };
    let ep = p.field("eds_cluster_config").field("eds_config");
    if !ctx.has_ads {
        ctx.error(
            &p.field("type"),
            "a cluster of type EDS takes its endpoints over ADS, and this bootstrap has no dynamic_resources.ads_config",
        );
    } else if !dynamic {
        ctx.error(
            &p.field("type"),
            "EDS clusters in static_resources are not supported by spar-proxy yet (send them over CDS)",
        );
    }
    let source = c
        .eds_cluster_config
        .as_ref()
        .and_then(|e| e.eds_config.as_ref());
    match source.and_then(|s| s.config_source_specifier.as_ref()) {
        Some(ConfigSourceSpecifier::Ads(_)) => {}
        _ => ctx.error(
            &ep,
            "eds_config must be `ads: {}`: spar-proxy takes endpoints over its ADS stream only",
        ),
    }
    if let Some(t) = source.and_then(|s| s.initial_fetch_timeout.as_ref()) {
        ctx.duration(t, &ep.field("initial_fetch_timeout"));
    }
    if c.load_assignment.is_some() {
        ctx.error(
            &p.field("load_assignment"),
            "an EDS cluster's endpoints come over ADS; load_assignment is for STATIC clusters",
        );
    }
    let assignments = ctx.assignments;
    Some(match assignments.get(name) {
        Some(la) => endpoints::compile_assignment(ctx, la, &assignment_path(name)),
        None => (Vec::new(), Vec::new()),
    })
}

#[cfg(test)]
mod tests;
