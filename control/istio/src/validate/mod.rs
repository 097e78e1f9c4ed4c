//! Per-resource validation: the rules of Istio's admission webhook and of the CRDs' CEL and
//! OpenAPI constraints that the typed decoding does not already enforce. Every broken rule
//! is reported; nothing stops at the first.

mod common;
mod destination_rule;
mod gateway;
mod http_policy;
mod security;
mod service_entry;
mod telemetry;
mod virtual_service;

use crate::message::{Code, Message, codes};
use crate::resource::{Resource, Spec};

pub(crate) use common::{is_ip, wildcard_match};

/// Problems found in one resource, as (code, field path, text).
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    found: Vec<(Code, String, String)>,
}

impl Ctx {
    pub(crate) fn error(&mut self, path: &str, text: impl Into<String>) {
        self.found
            .push((codes::SCHEMA_VALIDATION_ERROR, path.to_owned(), text.into()));
    }

    pub(crate) fn warn(&mut self, path: &str, text: impl Into<String>) {
        self.found
            .push((codes::VALIDATION_WARNING, path.to_owned(), text.into()));
    }
}

/// Every problem of one resource (not counting decoding errors, reported by `load`).
pub fn validate(resource: &Resource) -> Vec<Message> {
    let mut cx = Ctx::default();
    let ns = resource.namespace.as_str();
    match &resource.spec {
        Spec::VirtualService(vs) => virtual_service::validate(&mut cx, vs, ns),
        Spec::DestinationRule(dr) => destination_rule::validate(&mut cx, dr, ns),
        Spec::Gateway(gw) => gateway::validate(&mut cx, gw),
        Spec::Sidecar(sc) => gateway::validate_sidecar(&mut cx, sc),
        Spec::ServiceEntry(se) => service_entry::validate(&mut cx, se, ns),
        Spec::WorkloadEntry(we) => service_entry::validate_workload_entry(&mut cx, "spec", we),
        Spec::WorkloadGroup(wg) => service_entry::validate_workload_group(&mut cx, wg),
        Spec::PeerAuthentication(pa) => security::validate_peer(&mut cx, pa),
        Spec::RequestAuthentication(ra) => security::validate_request(&mut cx, ra, ns),
        Spec::AuthorizationPolicy(ap) => security::validate_authz(&mut cx, ap, ns),
        Spec::Telemetry(t) => telemetry::validate(&mut cx, t, ns),
        Spec::Service(_)
        | Spec::Deployment(_)
        | Spec::Namespace
        | Spec::Unsupported
        | Spec::Undecodable => {}
    }
    cx.found
        .into_iter()
        .map(|(code, path, text)| resource.message(code, &path, text))
        .collect()
}

#[cfg(test)]
mod tests;
