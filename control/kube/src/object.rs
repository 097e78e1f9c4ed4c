//! One Kubernetes object as spar-kube keeps it: trimmed to what Spar reads (so status
//! updates, resourceVersion bumps and managedFields do not count as changes), then decoded:
//! config kinds through spar-istio (load + validate, the file name `k8s:KIND/NS/NAME`),
//! EndpointSlices and Pods into spar-translate's registry input.
//!
//! What it does not do: no requests, no cross-object checks (those belong to the store and
//! the translation), no Kubernetes schema validation beyond what spar-istio checks.

use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};
use spar_istio::model::Labels;
use spar_istio::{Level, Options, Resource};
use spar_translate::registry::{EndpointSlice, SliceEndpoint, SlicePort};

use crate::kinds::{Kind, Role};

/// Annotation `kubectl apply` writes: a copy of the whole object, noise for Spar.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Where an object lives: (kind, namespace or "" when cluster-scoped, name).
pub(crate) type Key = (&'static str, String, String);

/// An object in its trimmed form: `apiVersion`, `kind`, the `metadata` Spar reads (name,
/// namespace, labels, annotations) and the fields its kind needs (`spec`; for an
/// EndpointSlice `addressType`, `endpoints`, `ports`; nothing more for a Pod).
pub(crate) fn trim(kind: &Kind, api_version: &str, obj: &DynamicObject) -> (Key, Value) {
    let meta = &obj.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.clone()));
    if !namespace.is_empty() {
        metadata.insert("namespace".into(), Value::String(namespace.clone()));
    }
    if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(annotations) = meta.annotations.as_ref() {
        let kept: Map<String, Value> = annotations
            .iter()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED)
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if !kept.is_empty() {
            metadata.insert("annotations".into(), Value::Object(kept));
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.to_owned()));
    out.insert("kind".into(), Value::String(kind.kind.to_owned()));
    out.insert("metadata".into(), Value::Object(metadata));
    let fields: &[&str] = match kind.role {
        Role::Config => &["spec"],
        Role::EndpointSlice => &["addressType", "endpoints", "ports"],
        Role::Pod => &[],
    };
    for field in fields {
        if let Some(v) = obj.data.get(field) {
            out.insert((*field).to_owned(), v.clone());
        }
    }
    ((kind.kind, namespace, name), Value::Object(out))
}

/// What an object gives the configuration.
#[derive(Clone, Debug)]
pub(crate) enum Decoded {
    /// A valid config object, with the warnings it raised.
    Config {
        resources: Vec<Resource>,
        warnings: Vec<String>,
    },
    /// A config object with errors: left out of the configuration.
    Invalid {
        errors: Vec<String>,
    },
    Slice(EndpointSlice),
    Pod(Labels),
}

/// The file name messages give for an object.
pub(crate) fn file_name(key: &Key) -> String {
    let (kind, namespace, name) = key;
    format!("k8s:{kind}/{namespace}/{name}")
}

/// Decodes a trimmed object.
pub(crate) fn decode(role: Role, key: &Key, value: &Value) -> Decoded {
    match role {
        Role::Config => config(key, value),
        Role::EndpointSlice => {
            match serde_json::from_value::<discovery::EndpointSlice>(value.clone()) {
                Ok(slice) => Decoded::Slice(endpoint_slice(&key.1, &slice)),
                // Left out like an invalid config object: the API server would not serve it.
                Err(e) => Decoded::Invalid {
                    errors: vec![format!("{}: not an EndpointSlice: {e}", file_name(key))],
                },
            }
        }
        Role::Pod => {
            let labels = value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Decoded::Pod(labels)
        }
    }
}

fn config(key: &Key, value: &Value) -> Decoded {
    // JSON is YAML; pretty-printed so that messages' line numbers point at one field each.
    let text = match serde_json::to_string_pretty(value) {
        Ok(text) => text,
        Err(e) => {
            return Decoded::Invalid {
                errors: vec![format!("{}: {e}", file_name(key))],
            };
        }
    };
    let loaded = spar_istio::load(&file_name(key), &text, &Options::default());
    let mut messages = loaded.messages;
    for r in &loaded.resources {
        messages.extend(spar_istio::validate(r));
    }
    let (errors, warnings): (Vec<_>, Vec<_>) =
        messages.iter().partition(|m| m.level == Level::Error);
    let errors: Vec<String> = errors.iter().map(|m| m.to_string()).collect();
    if !errors.is_empty() {
        return Decoded::Invalid { errors };
    }
    Decoded::Config {
        resources: loaded.resources,
        warnings: warnings.iter().map(|m| m.to_string()).collect(),
    }
}

fn endpoint_slice(namespace: &str, s: &discovery::EndpointSlice) -> EndpointSlice {
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .cloned()
        .unwrap_or_default();
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p.name.clone().unwrap_or_default(),
                port: u32::try_from(p.port?).ok()?,
            })
        })
        .collect();
    // FQDN slices carry host names, not addresses: the registry takes IPs only.
    let endpoints = if s.address_type == "FQDN" {
        Vec::new()
    } else {
        s.endpoints
            .iter()
            .map(|e| SliceEndpoint {
                addresses: e.addresses.clone(),
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                pod: e
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone()),
            })
            .collect()
    };
    EndpointSlice {
        namespace: namespace.to_owned(),
        name: s.metadata.name.clone().unwrap_or_default(),
        service,
        ports,
        endpoints,
    }
}

#[cfg(test)]
mod tests;
