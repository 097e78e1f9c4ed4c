//! Typed models of the Istio kinds, decoded strictly: an unknown field, a wrong type or an
//! unknown enum value is an error, as the Kubernetes API server's strict field validation
//! makes it for Istio's CRDs (`preserveUnknownFields: false`).
//!
//! Field names are the CRD (JSON) names; optional scalars are `Option` where "unset" differs
//! from the zero value (proto wrapper types, oneofs, CEL `has()` rules).

pub mod destination_rule;
pub mod gateway;
pub mod kube;
pub mod security;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;
pub mod workload;

use std::collections::BTreeMap;

use serde::Deserialize;

/// Label key -> value.
pub type Labels = BTreeMap<String, String>;

/// `{exact | prefix | regex}`; all unset (`{}`) means "present" where that is allowed.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// A percentage, 0..100, with fractions.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

/// `port: {number}`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortSelector {
    pub number: Option<u32>,
}

/// `selector: {matchLabels}` (security and telemetry kinds).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    pub match_labels: Option<Labels>,
}

/// `workloadSelector: {labels}` (networking kinds).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkingSelector {
    pub labels: Option<Labels>,
}

/// `targetRef`/`targetRefs[]`: a Gateway API style reference to what a policy attaches to.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// `metadata`: only the fields Spar uses are typed; the rest of Kubernetes' ObjectMeta
/// (uid, resourceVersion, ...) is accepted and ignored.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub creation_timestamp: Option<String>,
}
