//! What analysis reports: [`Message`]s with a level, a code, the resource, `file:line`, the
//! field path and a text, printed in `istioctl analyze`'s shape.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// How bad a message is. Only [`Level::Error`] makes `sparctl analyze` fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        })
    }
}

/// A message code: its identifier and the level it always has.
///
/// `IST` codes reuse `istioctl analyze`'s numbers where the meaning is the same; `SPR` codes
/// are Spar's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code {
    pub id: &'static str,
    pub name: &'static str,
    pub level: Level,
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id)
    }
}

/// Every code analysis emits.
pub mod codes {
    use super::{Code, Level};

    /// A reference (gateway, destination host, subset) to an object that is not in the
    /// input. istioctl also uses IST0101 for this; like its per-file use, Spar makes it a
    /// warning, since the object may live elsewhere in the cluster.
    pub const REFERENCED_RESOURCE_NOT_FOUND: Code = Code {
        id: "IST0101",
        name: "ReferencedResourceNotFound",
        level: Level::Warning,
    };
    /// A document Istio would refuse: unknown field, wrong type or enum value, or a broken
    /// validation rule (the webhook's and the CRD's CEL rules).
    pub const SCHEMA_VALIDATION_ERROR: Code = Code {
        id: "IST0106",
        name: "SchemaValidationError",
        level: Level::Error,
    };
    /// Accepted, but probably not what was meant (Istio's webhook warnings).
    pub const VALIDATION_WARNING: Code = Code {
        id: "IST0106",
        name: "SchemaValidationWarning",
        level: Level::Warning,
    };
    /// An HTTP route after a catch-all route can never match.
    pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: Code = Code {
        id: "IST0130",
        name: "VirtualServiceUnreachableRule",
        level: Level::Warning,
    };
    /// A gateway-bound VirtualService host that no server of that gateway serves.
    pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: Code = Code {
        id: "IST0132",
        name: "VirtualServiceHostNotFoundInGateway",
        level: Level::Warning,
    };
    /// The file is not valid YAML; the documents after the error are not read.
    pub const YAML_SYNTAX: Code = Code {
        id: "SPR0001",
        name: "YamlSyntaxError",
        level: Level::Error,
    };
    /// A document without `apiVersion`/`kind`, or an unknown kind in an Istio API group.
    pub const UNKNOWN_KIND: Code = Code {
        id: "SPR0002",
        name: "UnknownKind",
        level: Level::Error,
    };
    /// An Istio kind Spar recognises but does not implement (EnvoyFilter, WasmPlugin, ...).
    pub const UNSUPPORTED_KIND: Code = Code {
        id: "SPR0003",
        name: "UnsupportedKind",
        level: Level::Info,
    };
    /// Valid Istio that spar-proxy cannot carry out yet: the translation leaves it out
    /// (a TCP server, a TLS mode, a field); the rest of the resource applies.
    pub const UNSUPPORTED_BY_PROXY: Code = Code {
        id: "SPR0004",
        name: "UnsupportedBySparProxy",
        level: Level::Warning,
    };

    /// All codes, for documentation and tests.
    pub const ALL: &[Code] = &[
        REFERENCED_RESOURCE_NOT_FOUND,
        SCHEMA_VALIDATION_ERROR,
        VALIDATION_WARNING,
        VIRTUAL_SERVICE_UNREACHABLE_RULE,
        VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
        YAML_SYNTAX,
        UNKNOWN_KIND,
        UNSUPPORTED_KIND,
        UNSUPPORTED_BY_PROXY,
    ];
}

/// The object a message is about: `VirtualService default/reviews`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    pub level: Level,
    pub code: Code,
    /// None for file-level problems (YAML syntax, a document with no kind).
    pub resource: Option<ResourceRef>,
    #[serde(serialize_with = "serialize_str")]
    pub file: Arc<str>,
    /// 1-based; the line of the field when known, else of the document.
    pub line: Option<usize>,
    /// `spec.http[0].route[0].destination.host`; empty for the whole document.
    pub path: String,
    pub text: String,
}

impl fmt::Display for Message {
    /// `Error [IST0106] (VirtualService default/reviews vs.yaml:12) spec.http[0]: text`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] (", self.level, self.code.id)?;
        if let Some(r) = &self.resource {
            write!(f, "{r} ")?;
        }
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(") ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.text)
    }
}

fn serialize_str<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}
