//! Documents into typed [`Resource`]s: kind recognition, strict decoding of Istio specs,
//! lenient decoding of the Kubernetes kinds, and messages for what cannot be decoded.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::message::{Code, Level, Message, ResourceRef, codes};
use crate::model::ObjectMeta;
use crate::model::destination_rule::DestinationRule;
use crate::model::gateway::Gateway;
use crate::model::kube::{DeploymentSpec, ServiceSpec};
use crate::model::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::model::service_entry::ServiceEntry;
use crate::model::sidecar::Sidecar;
use crate::model::telemetry::Telemetry;
use crate::model::virtual_service::VirtualService;
use crate::model::workload::{WorkloadEntry, WorkloadGroup};
use crate::path;
use crate::yaml::{self, Lines, RawDoc, Start};

/// How to read input.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace of objects whose metadata has none (`kubectl apply -n`).
    pub default_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_namespace: "default".to_owned(),
        }
    }
}

/// A decoded spec. Istio kinds are decoded strictly; `Undecodable` marks an Istio object
/// whose spec was refused (the refusal is a message), kept so that references to it resolve.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
    Gateway(Gateway),
    ServiceEntry(ServiceEntry),
    Sidecar(Sidecar),
    WorkloadEntry(WorkloadEntry),
    WorkloadGroup(WorkloadGroup),
    PeerAuthentication(PeerAuthentication),
    RequestAuthentication(RequestAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    Telemetry(Telemetry),
    Service(ServiceSpec),
    Deployment(DeploymentSpec),
    Namespace,
    /// A recognised Istio (or Gateway API) kind that Spar does not implement.
    Unsupported,
    Undecodable,
}

/// One object from the input, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub file: Arc<str>,
    /// 0-based index of the document in its file.
    pub doc_index: usize,
    /// Line the document starts on.
    pub line: usize,
    pub api_version: String,
    pub kind: String,
    pub meta: ObjectMeta,
    /// `metadata.namespace`, or the default namespace.
    pub namespace: String,
    pub spec: Spec,
    /// Shared: a reload clones every resource it reuses (`spar_control::world::Loader`), and
    /// copying each field path made the clone most of a reload (scale benchmark,
    /// perf/results/2026-11-24-xds-scale.md).
    lines: Arc<Lines>,
}

impl Resource {
    /// `Kind namespace/name`, as messages print it.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// The line of a field, or of its nearest enclosing field, or of the document.
    pub fn line_of(&self, path: &str) -> usize {
        self.lines.find(path).unwrap_or(self.line)
    }

    /// A message about a field of this resource.
    pub fn message(&self, code: Code, path: &str, text: impl Into<String>) -> Message {
        Message {
            level: code.level,
            code,
            resource: Some(self.reference()),
            file: self.file.clone(),
            line: Some(self.line_of(path)),
            path: path.to_owned(),
            text: text.into(),
        }
    }
}

/// What [`load`] found in one file.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub messages: Vec<Message>,
}

/// Reads every document of one file. Kinds outside Istio and the three Kubernetes kinds
/// Spar reads (ServiceAccount, Secret, ConfigMap, ...) are skipped without a message.
pub fn load(file: &str, text: &str, options: &Options) -> Loaded {
    load_part(file, text, Start::FILE, options).0
}

/// Like [`load`] for a part of a file that starts at `start` (a part [`split`] gives):
/// lines and document indexes are the file's. Also returns the index after the part's last
/// document, where the next part starts. The cap on values applies to each part.
///
/// [`split`]: crate::split
pub fn load_part(file: &str, text: &str, start: Start, options: &Options) -> (Loaded, usize) {
    let file: Arc<str> = Arc::from(file);
    let mut out = Loaded::default();
    let (docs, next, err) = yaml::documents(text, start);
    for doc in docs {
        decode(&file, doc, options, &mut out);
    }
    if let Some(err) = err {
        out.messages.push(Message {
            level: Level::Error,
            code: codes::YAML_SYNTAX,
            resource: None,
            file: file.clone(),
            line: Some(err.line),
            path: String::new(),
            text: err.message,
        });
    }
    (out, next)
}

/// The kinds Spar reads, by API group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Istio,
    Kube,
    Unsupported,
}

fn classify(group: &str, version: &str, kind: &str) -> Result<Option<Known>, String> {
    let served: &[&str] = match group {
        "networking.istio.io" => &["v1alpha3", "v1beta1", "v1"],
        "security.istio.io" => &["v1beta1", "v1"],
        "telemetry.istio.io" => &["v1alpha1", "v1"],
        "extensions.istio.io" | "gateway.networking.k8s.io" => {
            return Ok(Some(Known::Unsupported));
        }
        "" if matches!(kind, "Service" | "Namespace") && version == "v1" => {
            return Ok(Some(Known::Kube));
        }
        "apps" if kind == "Deployment" && version == "v1" => return Ok(Some(Known::Kube)),
        _ => return Ok(None),
    };
    let kinds: &[&str] = match group {
        "networking.istio.io" => &[
            "VirtualService",
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "Sidecar",
            "WorkloadEntry",
            "WorkloadGroup",
            "EnvoyFilter",
            "ProxyConfig",
        ],
        "security.istio.io" => &[
            "PeerAuthentication",
            "RequestAuthentication",
            "AuthorizationPolicy",
        ],
        _ => &["Telemetry"],
    };
    if !kinds.contains(&kind) {
        return Err(format!("unknown kind {kind:?} in API group {group}"));
    }
    if matches!(kind, "EnvoyFilter" | "ProxyConfig") {
        return Ok(Some(Known::Unsupported));
    }
    if !served.contains(&version) {
        return Err(format!(
            "version {version:?} of {group} is not served (served: {})",
            served.join(", ")
        ));
    }
    Ok(Some(Known::Istio))
}

fn decode(file: &Arc<str>, doc: RawDoc, options: &Options, out: &mut Loaded) {
    let file_message = |code: Code, line: usize, text: String| Message {
        level: code.level,
        code,
        resource: None,
        file: file.clone(),
        line: Some(line),
        path: String::new(),
        text,
    };
    let Value::Object(mut top) = doc.value else {
        out.messages.push(file_message(
            codes::UNKNOWN_KIND,
            doc.line,
            format!("document {} is not a mapping", doc.index),
        ));
        return;
    };
    let (Some(Value::String(api_version)), Some(Value::String(kind))) =
        (top.get("apiVersion"), top.get("kind"))
    else {
        out.messages.push(file_message(
            codes::UNKNOWN_KIND,
            doc.line,
            format!("document {} has no apiVersion or kind", doc.index),
        ));
        return;
    };
    let (api_version, kind) = (api_version.clone(), kind.clone());
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let known = match classify(group, version, &kind) {
        Ok(Some(known)) => known,
        Ok(None) => return,
        Err(text) => {
            out.messages
                .push(file_message(codes::UNKNOWN_KIND, doc.line, text));
            return;
        }
    };
    let meta_value = top.remove("metadata").unwrap_or(Value::Null);
    let mut resource = Resource {
        file: file.clone(),
        doc_index: doc.index,
        line: doc.line,
        api_version: api_version.clone(),
        kind: kind.clone(),
        meta: ObjectMeta::default(),
        namespace: options.default_namespace.clone(),
        spec: Spec::Undecodable,
        lines: Arc::new(doc.lines),
    };
    let mut problems: Vec<(String, String)> = Vec::new();
    match typed::<ObjectMeta>(meta_value, "metadata") {
        Ok(meta) => resource.meta = meta,
        Err(p) => problems.push(p),
    }
    if let Some(ns) = resource.meta.namespace.clone().filter(|n| !n.is_empty()) {
        resource.namespace = ns;
    }
    if resource.meta.name.is_empty() {
        problems.push(("metadata.name".into(), "Required value".into()));
    }
    let spec_value = top.remove("spec");
    if known == Known::Istio {
        for key in top.keys() {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "status") {
                problems.push((key.clone(), "unknown field".into()));
            }
        }
    }
    resource.spec = match known {
        Known::Unsupported => {
            out.messages.push(resource.message(
                codes::UNSUPPORTED_KIND,
                "",
                format!("{kind} is recognised but not supported by Spar; it is ignored"),
            ));
            Spec::Unsupported
        }
        Known::Kube => match kind.as_str() {
            "Service" => {
                lenient(spec_value, &mut problems).map_or(Spec::Undecodable, Spec::Service)
            }
            "Deployment" => {
                lenient(spec_value, &mut problems).map_or(Spec::Undecodable, Spec::Deployment)
            }
            _ => Spec::Namespace,
        },
        Known::Istio => istio_spec(&kind, spec_value, &mut problems),
    };
    for (path, text) in problems {
        out.messages
            .push(resource.message(codes::SCHEMA_VALIDATION_ERROR, &path, text));
    }
    out.resources.push(resource);
}

fn lenient<T: DeserializeOwned>(
    value: Option<Value>,
    problems: &mut Vec<(String, String)>,
) -> Option<T> {
    match typed::<T>(value.unwrap_or(Value::Null), "spec") {
        Ok(v) => Some(v),
        Err(p) => {
            problems.push(p);
            None
        }
    }
}

fn istio_spec(kind: &str, value: Option<Value>, problems: &mut Vec<(String, String)>) -> Spec {
    // The CRDs of these kinds mark `spec` required; the others take an absent spec as empty.
    let value = match value {
        None | Some(Value::Null)
            if matches!(kind, "ServiceEntry" | "WorkloadEntry" | "WorkloadGroup") =>
        {
            problems.push(("spec".into(), "Required value".into()));
            return Spec::Undecodable;
        }
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => drop_nulls(v),
    };
    fn spec<T: DeserializeOwned>(
        value: Value,
        problems: &mut Vec<(String, String)>,
        wrap: fn(T) -> Spec,
    ) -> Spec {
        match typed::<T>(value, "spec") {
            Ok(t) => wrap(t),
            Err(p) => {
                problems.push(p);
                Spec::Undecodable
            }
        }
    }
    match kind {
        "VirtualService" => spec(value, problems, Spec::VirtualService),
        "DestinationRule" => spec(value, problems, Spec::DestinationRule),
        "Gateway" => spec(value, problems, Spec::Gateway),
        "ServiceEntry" => spec(value, problems, Spec::ServiceEntry),
        "Sidecar" => spec(value, problems, Spec::Sidecar),
        "WorkloadEntry" => spec(value, problems, Spec::WorkloadEntry),
        "WorkloadGroup" => spec(value, problems, Spec::WorkloadGroup),
        "PeerAuthentication" => spec(value, problems, Spec::PeerAuthentication),
        "RequestAuthentication" => spec(value, problems, Spec::RequestAuthentication),
        "AuthorizationPolicy" => spec(value, problems, Spec::AuthorizationPolicy),
        _ => spec(value, problems, Spec::Telemetry),
    }
}

/// The API server drops `key: null` from objects before validating (a null field is an
/// unset field); nulls inside lists stay and are type errors.
fn drop_nulls(value: Value) -> Value {
    // Recursion depth is bounded by the YAML reader's nesting cap (64 levels).
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

/// Decodes `value` (found at `at`) into `T`, or returns the failing field path and a message
/// worded like the API server's.
fn typed<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut p = at.to_owned();
        for segment in e.path().iter() {
            p = match segment {
                serde_path_to_error::Segment::Seq { index } => path::index(&p, *index),
                serde_path_to_error::Segment::Map { key } => path::field(&p, key),
                serde_path_to_error::Segment::Enum { variant } => path::field(&p, variant),
                serde_path_to_error::Segment::Unknown => p,
            };
        }
        reword(p, &e.into_inner().to_string())
    })
}

/// serde's wording into the API server's: `unknown field "x"`, `Unsupported value: "X"`.
fn reword(path: String, serde_text: &str) -> (String, String) {
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = serde_text.strip_prefix("unknown field ")
        && let Some(name) = quoted(rest)
    {
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| e.replace('`', "\""));
        let text = match expected {
            Some(e) => format!("unknown field {name:?} (expected {e})"),
            None => format!("unknown field {name:?}"),
        };
        // The path already names the field when serde got as far as its value.
        let at = if path.ends_with(&format!(".{name}")) {
            path
        } else {
            path::field(&path, &name)
        };
        return (at, text);
    }
    if let Some(rest) = serde_text.strip_prefix("unknown variant ")
        && let Some(name) = quoted(rest)
    {
        let supported = rest
            .split_once("expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").replace('`', "\""))
            .unwrap_or_default();
        return (
            path,
            format!("Unsupported value: {name:?}: supported values: {supported}"),
        );
    }
    if let Some(rest) = serde_text.strip_prefix("missing field ")
        && let Some(name) = quoted(rest)
    {
        return (path::field(&path, &name), "Required value".into());
    }
    let text = serde_text
        .replace("expected struct ", "expected an object ")
        .replace('`', "\"");
    (path, format!("Invalid value: {text}"))
}
