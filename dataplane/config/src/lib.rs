//! Envoy configuration into Spar's immutable [`Snapshot`].
//!
//! What it does:
//! - Loads Envoy bootstrap files (YAML or JSON, as Envoy does) into envoy-types structs,
//!   without per-field converters: the text becomes a prost-reflect `DynamicMessage` of
//!   `envoy.config.bootstrap.v3.Bootstrap` over a descriptor pool compiled at build time
//!   from the `.proto` files that ship with envoy-types (`typed_config` `Any` fields resolve
//!   by `@type`), and is then transcoded into [`envoy_types`] structs.
//! - Refuses, field by field, everything spar-proxy does not support yet (the table in
//!   `allowlist.rs`): a config is applied whole or not at all, never silently trimmed.
//! - Compiles a checked bootstrap into a [`Snapshot`] ([`compile()`], pure), reporting every
//!   semantic problem at once (undefined clusters, duplicate names and addresses, bad
//!   domains, ports, ...).
//! - Every error names file, line and field path:
//!   `bootstrap.yaml:14: static_resources.listeners[0]...virtual_hosts[1].domains: ...`.
//! - Compiles what xDS sent with the bootstrap ([`Bootstrap::compile_xds`]): clusters and
//!   listeners added to the static ones, and `ClusterLoadAssignment`s (EDS) by name for the
//!   clusters of `type: EDS` with `eds_cluster_config.eds_config: {ads: {}}` (optionally
//!   `resource_api_version: V3` and `initial_fetch_timeout`). A cluster takes the assignment
//!   named by its `service_name`, or else by its own name ([`assignment_name`]); the
//!   assignment compiles exactly like an inline `load_assignment`, and a missing one means
//!   no endpoints. [`check_assignment`] checks one assignment on its own (for an EDS NACK);
//!   [`endpoints_config_dump`] is Envoy's `EndpointsConfigDump`. EDS from anything but ADS,
//!   EDS clusters in `static_resources` and EDS clusters without ADS are refused.
//!
//! What it does not do: no sockets, no file watching, no xDS transport (spar-ads receives,
//! warms and hands over the resources), and no matching or load balancing (spar-route and
//! spar-cluster do those).

#![forbid(unsafe_code)]

mod allowlist;
mod compile;
mod decode;
mod descriptor;
mod dynamic;
mod error;
mod runtime;
mod snapshot;
mod source;
mod subset;
#[cfg(test)]
mod test_support;

use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap as EnvoyBootstrap;
use prost_reflect::DynamicMessage;

pub use compile::compile;
pub use compile::eds::assignment_name;
pub use dynamic::{Xds, check_assignment, endpoints_config_dump};
pub use error::{ConfigError, ConfigErrors, FieldPath};
pub use snapshot::{
    Ads, ChainMatch, ClusterTransport, Codec, ConnectionInfo, DEFAULT_DELAYED_CLOSE_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HTTP_IDLE_TIMEOUT, DEFAULT_HTTP2,
    DEFAULT_LISTENER_FILTERS_TIMEOUT, DEFAULT_MAX_HEADERS_COUNT, DEFAULT_MAX_REQUEST_HEADERS_KB,
    DEFAULT_REQUEST_HEADERS_TIMEOUT, DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_TCP_IDLE_TIMEOUT,
    DownstreamTls, EscapedSlashesAction, FilterChain, Http2Settings, HttpSettings, Inspect,
    Listener, ListenerKind, ServerHeaderTransformation, Snapshot, TcpSettings, UpstreamTls,
};

/// Text format of a config file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.yaml` / `.yml`.
    Yaml,
    /// `.json`.
    Json,
}

impl Format {
    /// The format a file name's extension names, as Envoy picks it.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A bootstrap that parsed and passed the subset check.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// The config as envoy-types structs.
    pub envoy: EnvoyBootstrap,
    /// The config as proto3 JSON (proto field names, `Any` expanded), for `/config_dump`.
    pub json: serde_json::Value,
    source: Option<Source>,
    /// Where the SDS secrets that TLS contexts name come from (the proxy's mesh identity).
    secrets: Option<std::sync::Arc<dyn spar_tls::Secrets>>,
}

impl Bootstrap {
    /// Runs the subset check on a bootstrap that came from no file (tests, xDS).
    pub fn from_envoy(envoy: EnvoyBootstrap) -> Result<Self, ConfigErrors> {
        let msg = decode::from_envoy(&envoy, descriptor::BOOTSTRAP).map_err(ConfigErrors::one)?;
        checked(&msg, None)
    }

    /// This bootstrap with clusters and listeners received over xDS added to its static
    /// ones: [`Bootstrap::compile_xds`] with no EDS assignments.
    pub fn compile_dynamic(
        &self,
        clusters: &[envoy_types::pb::envoy::config::cluster::v3::Cluster],
        listeners: &[envoy_types::pb::envoy::config::listener::v3::Listener],
        version: u64,
    ) -> Result<Snapshot, ConfigErrors> {
        let none = std::collections::BTreeMap::new();
        self.compile_xds(
            Xds {
                clusters,
                listeners,
                assignments: &none,
            },
            version,
        )
    }

    /// This bootstrap with `secrets` serving the SDS secrets its TLS contexts (and those
    /// xDS adds) name.
    pub fn with_secrets(mut self, secrets: std::sync::Arc<dyn spar_tls::Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The file this bootstrap was read from, with the line of each field.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }
}

/// Where a loaded config came from: file name and the line of every field.
#[derive(Clone, Debug)]
pub struct Source {
    file: String,
    lines: source::Lines,
}

impl Source {
    /// File name as given to the loader.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// 1-based line of `path`, or of its nearest enclosing field in the file.
    pub fn line(&self, path: &FieldPath) -> Option<usize> {
        self.lines.find(path)
    }

    pub(crate) fn error(&self, path: &FieldPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: Some(self.file.clone()),
            line: self.line(path),
            path: path.clone(),
            message: message.into(),
        }
    }
}

/// Reads, parses and checks the bootstrap file at `path`; the format follows its extension
/// (`.yaml`, `.yml` or `.json`).
pub fn load_bootstrap(path: &Path) -> Result<Bootstrap, ConfigErrors> {
    let name = path.display().to_string();
    let fail = |message: String| {
        ConfigErrors::one(ConfigError {
            file: Some(name.clone()),
            line: None,
            path: FieldPath::root(),
            message,
        })
    };
    let format = Format::from_path(path)
        .ok_or_else(|| fail("config file name must end in .yaml, .yml or .json".to_owned()))?;
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    load_bootstrap_str(&text, &name, format)
}

/// Parses and checks bootstrap `text`; `file_name` labels errors.
pub fn load_bootstrap_str(
    text: &str,
    file_name: &str,
    format: Format,
) -> Result<Bootstrap, ConfigErrors> {
    let (value, lines) = parse_text(text, file_name, format).map_err(ConfigErrors::one)?;
    let source = Source {
        file: file_name.to_owned(),
        lines,
    };
    let desc = descriptor::message(descriptor::BOOTSTRAP).map_err(ConfigErrors::one)?;
    let msg = decode::to_dynamic(&value, desc, &source).map_err(ConfigErrors::one)?;
    checked(&msg, Some(source))
}

/// YAML 1.2 parses JSON too, with line marks, so both formats take the same path. JSON is
/// first checked as strict JSON (YAML would accept `{"a": }`); should the YAML parser refuse
/// a valid JSON file (tab indentation, say), serde_json's value is used, without lines.
fn parse_text(
    text: &str,
    file_name: &str,
    format: Format,
) -> Result<(serde_json::Value, source::Lines), ConfigError> {
    if format == Format::Yaml {
        return source::parse(text, file_name);
    }
    let fail = |line: Option<usize>, message: String| ConfigError {
        file: Some(file_name.to_owned()),
        line,
        path: FieldPath::root(),
        message,
    };
    let strict = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| fail(Some(e.line()), format!("JSON: {e}")))?;
    match source::parse(text, file_name) {
        Ok(parsed) => Ok(parsed),
        Err(e) if e.message.starts_with("duplicate key") => Err(e),
        Err(_) => {
            source::check_depth(&strict).map_err(|m| fail(None, m))?;
            Ok((strict, source::Lines::default()))
        }
    }
}

/// Subset check, then the envoy-types value and the JSON dump.
fn checked(msg: &DynamicMessage, source: Option<Source>) -> Result<Bootstrap, ConfigErrors> {
    let problems = subset::check(msg);
    if !problems.is_empty() {
        let mut errors: Vec<ConfigError> = problems
            .into_iter()
            .map(|(path, message)| match &source {
                Some(s) => s.error(&path, message),
                None => ConfigError {
                    file: None,
                    line: None,
                    path,
                    message,
                },
            })
            .collect();
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(ConfigErrors(errors));
    }
    let envoy = decode::transcode::<EnvoyBootstrap>(msg).map_err(ConfigErrors::one)?;
    let json = decode::to_json(msg).map_err(ConfigErrors::one)?;
    Ok(Bootstrap {
        envoy,
        json,
        source,
        secrets: None,
    })
}

#[cfg(test)]
mod tests;

/// Where the dynamic resources start among the static ones, and their names.
struct DynamicNames {
    first: (usize, usize),
    clusters: Vec<String>,
    listeners: Vec<String>,
}

impl DynamicNames {
    /// `static_resources.listeners[N].x` becomes `listener `name`.x` for a dynamic one.
    fn rename(&self, e: ConfigError) -> ConfigError {
        let text = e.path.to_string();
        let named = |prefix: &str, first: usize, kind: &str, names: &[String]| {
            let rest = text.strip_prefix(prefix)?;
            let (index, tail) = rest.split_once(']')?;
            let i = index.parse::<usize>().ok()?.checked_sub(first)?;
            Some(format!("{kind} `{}`{tail}", names.get(i)?))
        };
        let renamed = named(
            "static_resources.clusters[",
            self.first.0,
            "cluster",
            &self.clusters,
        )
        .or_else(|| {
            named(
                "static_resources.listeners[",
                self.first.1,
                "listener",
                &self.listeners,
            )
        });
        match renamed {
            Some(path) => ConfigError {
                path: FieldPath::root().field(&path),
                ..e
            },
            None => e,
        }
    }
}

fn dynamic_error(kind: &str, name: &str, message: &str) -> ConfigError {
    ConfigError {
        file: None,
        line: None,
        path: FieldPath::root().field(&format!("{kind} `{name}`")),
        message: message.to_owned(),
    }
}
