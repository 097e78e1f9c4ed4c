//! `ClusterLoadAssignment`s (a STATIC cluster's `load_assignment`, or one received over EDS)
//! into endpoints and localities: priorities, locality and
//! endpoint weights, configured health, and `filter_metadata["envoy.lb"]` for subsets.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata as PbMetadata};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use spar_cluster::{ConfiguredHealth, Endpoint, Locality, Metadata};

use super::Ctx;
use crate::error::FieldPath;

/// The only `filter_metadata` namespace load balancing reads.
pub(crate) const LB_METADATA: &str = "envoy.lb";

/// A STATIC cluster's inline `load_assignment`: endpoints sorted by priority (stable) and
/// one locality per `LocalityLbEndpoints`.
pub(super) fn compile(
    ctx: &mut Ctx<'_>,
    c: &PbCluster,
    p: &FieldPath,
) -> (Vec<Endpoint>, Vec<Locality>) {
    match &c.load_assignment {
        Some(la) => compile_assignment(ctx, la, &p.field("load_assignment")),
        None => (Vec::new(), Vec::new()),
    }
}

/// One `ClusterLoadAssignment` at `p`, inline in a STATIC cluster or received over EDS:
/// endpoints sorted by priority (stable) and one locality per `LocalityLbEndpoints`.
pub(crate) fn compile_assignment(
    ctx: &mut Ctx<'_>,
    la: &ClusterLoadAssignment,
    p: &FieldPath,
) -> (Vec<Endpoint>, Vec<Locality>) {
    let mut out = Vec::new();
    let mut localities = Vec::new();
    let lp = p.field("endpoints");
    for (i, group) in la.endpoints.iter().enumerate() {
        let gp = lp.index(i);
        if group.metadata.is_some() {
            // Allowlisted nowhere, so the subset check refuses it first; kept for clarity.
            ctx.error(&gp.field("metadata"), "not supported by spar-proxy yet");
        }
        let weight = match group.load_balancing_weight {
            None => 0,
            Some(w) if w.value == 0 => {
                ctx.error(
                    &gp.field("load_balancing_weight"),
                    "load_balancing_weight must be at least 1",
                );
                1
            }
            Some(w) => w.value,
        };
        let loc = group.locality.clone().unwrap_or_default();
        let locality = u32::try_from(localities.len()).unwrap_or(u32::MAX);
        localities.push(Locality {
            region: loc.region,
            zone: loc.zone,
            sub_zone: loc.sub_zone,
            weight,
            priority: group.priority,
        });
        let locp = gp.field("lb_endpoints");
        for (j, lbe) in group.lb_endpoints.iter().enumerate() {
            let ep = locp.index(j);
            let weight = match lbe.load_balancing_weight {
                None => 1,
                Some(w) if w.value == 0 => {
                    ctx.error(
                        &ep.field("load_balancing_weight"),
                        "load_balancing_weight must be at least 1",
                    );
                    1
                }
                Some(w) => w.value,
            };
            let address = match &lbe.host_identifier {
                Some(lb_endpoint::HostIdentifier::Endpoint(e)) => match &e.address {
                    Some(a) => ctx.socket_addr(
                        a,
                        &ep.field("endpoint").field("address"),
                        super::Bind::Connect,
                    ),
                    None => {
                        ctx.error(
                            &ep.field("endpoint").field("address"),
                            "address is required",
                        );
                        None
                    }
                },
                Some(lb_endpoint::HostIdentifier::EndpointName(_)) => {
                    ctx.error(
                        &ep.field("endpoint_name"),
                        "named endpoints are not supported by spar-proxy yet",
                    );
                    None
                }
                None => {
                    ctx.error(&ep.field("endpoint"), "endpoint is required");
                    None
                }
            };
            let health = match HealthStatus::try_from(lbe.health_status) {
                Ok(HealthStatus::Unknown) => ConfiguredHealth::Unknown,
                Ok(HealthStatus::Healthy) => ConfiguredHealth::Healthy,
                Ok(HealthStatus::Unhealthy | HealthStatus::Timeout) => ConfiguredHealth::Unhealthy,
                Ok(HealthStatus::Draining) => ConfiguredHealth::Draining,
                Ok(HealthStatus::Degraded) => ConfiguredHealth::Degraded,
                Err(_) => {
                    ctx.error(&ep.field("health_status"), "unknown health_status");
                    ConfiguredHealth::Unknown
                }
            };
            let metadata = lb_metadata(ctx, lbe.metadata.as_ref(), &ep.field("metadata"));
            if let Some(address) = address {
                out.push(Endpoint {
                    priority: group.priority,
                    locality,
                    metadata: Arc::new(metadata),
                    health,
                    ..Endpoint::new(address, weight)
                });
            }
        }
    }
    // Envoy: priorities run from 0 without gaps.
    let mut priorities: Vec<u32> = localities.iter().map(|l| l.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    if let Some((i, missing)) = priorities
        .iter()
        .enumerate()
        .find(|(i, p)| u32::try_from(*i).ok() != Some(**p))
        .map(|(i, _)| (i, i))
    {
        let at = localities
            .iter()
            .position(|l| u32::try_from(missing).ok().is_some_and(|m| l.priority > m))
            .unwrap_or(i);
        ctx.error(
            &lp.index(at).field("priority"),
            format!("priorities must run from 0 without gaps; priority {missing} has no endpoints"),
        );
    }
    out.sort_by_key(|e| e.priority);
    (out, localities)
}

/// `filter_metadata["envoy.lb"]` as stringified pairs; other namespaces are refused (nothing
/// in spar-proxy reads them yet).
fn lb_metadata(ctx: &mut Ctx<'_>, m: Option<&PbMetadata>, p: &FieldPath) -> Metadata {
    let Some(m) = m else {
        return Metadata::new();
    };
    let fp = p.field("filter_metadata");
    let mut keys: Vec<&String> = m.filter_metadata.keys().collect();
    keys.sort();
    let mut out = Metadata::new();
    for key in keys {
        let Some(s) = m.filter_metadata.get(key) else {
            continue;
        };
        if key != LB_METADATA {
            ctx.error(
                &fp.field(key),
                format!(
                    "filter_metadata namespace {key} not supported by spar-proxy yet (supported: {LB_METADATA})"
                ),
            );
            continue;
        }
        out = struct_pairs(ctx, s, &fp.field(key));
    }
    out
}

/// A `Struct` of scalar values as stringified pairs (see [`value_string`]).
pub(crate) fn struct_pairs(ctx: &mut Ctx<'_>, s: &Struct, p: &FieldPath) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in &s.fields {
        match value_string(v) {
            Ok(text) => {
                out.insert(k.clone(), text);
            }
            Err(e) => ctx.error(&p.field(k), e),
        }
    }
    out
}

/// A metadata value as text: strings as they are, booleans `true`/`false`, whole numbers
/// without a fraction (`1`, not `1.0`), other numbers in Rust's shortest round-trip form.
/// Envoy compares `google.protobuf.Value`s, so `"1"` and `1` are different there but equal
/// here; lists, structs and null are refused.
pub(crate) fn value_string(v: &Value) -> Result<String, String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Ok(s.clone()),
        Some(Kind::BoolValue(b)) => Ok(b.to_string()),
        // Whole and within i64's exact range: the cast is exact.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            Ok((*n as i64).to_string())
        }
        Some(Kind::NumberValue(n)) if n.is_finite() => Ok(n.to_string()),
        _ => Err(
            "only string, number and bool metadata values are supported by spar-proxy yet"
                .to_owned(),
        ),
    }
}
