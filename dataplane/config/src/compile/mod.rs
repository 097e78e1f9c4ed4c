//! `compile`: a checked bootstrap into a [`Snapshot`]. Pure (no I/O, no clock) except
//! for reading the certificate files TLS contexts name (`tls.rs`). Every semantic problem
//! is collected, so one run reports them all.

mod action;
mod cluster;
pub(crate) mod eds;
pub(crate) mod endpoints;
mod http;
mod lb;
mod listener;
mod policy;
mod resilience;
mod route;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{Address, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use spar_cluster::ClusterId;

use crate::error::{ConfigError, ConfigErrors, FieldPath};
use crate::snapshot::Snapshot;
use crate::{Bootstrap, Source};

/// Largest duration protobuf can express (10,000 years); larger ones are refused so that
/// no later arithmetic on them can overflow.
const MAX_DURATION_SECS: i64 = 315_576_000_000;

/// Compiles `b` into a snapshot stamped `version`. Pure: the same input gives the same
/// snapshot. `b` is expected to have passed the subset check (every way to build a
/// [`Bootstrap`] runs it).
pub fn compile(b: &Bootstrap, version: u64) -> Result<Snapshot, ConfigErrors> {
    compile_with(b, &BTreeMap::new(), None, version)
}

/// [`compile`] with the `ClusterLoadAssignment`s received over EDS, by name, for the EDS
/// clusters; the clusters from index `dynamic_from` on came over xDS (`None`: all static).
pub(crate) fn compile_with(
    b: &Bootstrap,
    assignments: &BTreeMap<String, ClusterLoadAssignment>,
    dynamic_from: Option<usize>,
    version: u64,
) -> Result<Snapshot, ConfigErrors> {
    let statics = b.envoy.static_resources.clone().unwrap_or_default();
    let mut ctx = Ctx {
        source: b.source.as_ref(),
        secrets: b.secrets.as_deref(),
        assignments,
        has_ads: b
            .envoy
            .dynamic_resources
            .as_ref()
            .is_some_and(|d| d.ads_config.is_some()),
        dynamic_from: dynamic_from.unwrap_or(statics.clusters.len()),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let root = FieldPath::root();
    let sr = root.field("static_resources");

    let (clusters, transports) =
        cluster::compile_all(&mut ctx, &statics.clusters, &sr.field("clusters"));
    let names: HashMap<&str, ClusterId> = clusters
        .iter()
        .enumerate()
        .rev() // the first of duplicate names wins (duplicates are an error anyway)
        .filter_map(|(i, c)| Some((c.name.as_str(), ClusterId(u32::try_from(i).ok()?))))
        .collect();
    let limits = listener::connection_limits(&mut ctx, b.envoy.layered_runtime.as_ref());
    let listeners = listener::compile_all(
        &mut ctx,
        &statics.listeners,
        &sr.field("listeners"),
        &names,
        limits,
    );

    let admin = b.envoy.admin.as_ref().and_then(|a| {
        let p = root.field("admin").field("address");
        a.address
            .as_ref()
            .and_then(|addr| ctx.socket_addr(addr, &p, Bind::Listen))
    });
    let ads = ads_source(&mut ctx, &b.envoy, &clusters);
    if !ctx.errors.is_empty() {
        let mut errors = ctx.errors;
        // An EDS assignment shared by several clusters reports its errors once.
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert((e.path.clone(), e.message.clone())));
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(ConfigErrors(errors));
    }
    let config_dump = serde_json::json!({
        "configs": [{
            "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "bootstrap": b.json,
            "version_info": version.to_string(),
        }]
    });
    Ok(Snapshot {
        version,
        admin,
        listeners,
        clusters: clusters.into_iter().map(std::sync::Arc::new).collect(),
        transports,
        warnings: ctx.warnings,
        config_dump,
        ads,
    })
}

/// Compiles one EDS assignment on its own (no cluster takes it yet); its errors point
/// under `at`.
pub(crate) fn check_assignment(
    la: &ClusterLoadAssignment,
    at: &FieldPath,
) -> Result<(), ConfigErrors> {
    let none = BTreeMap::new();
    let mut ctx = Ctx {
        source: None,
        secrets: None,
        assignments: &none,
        has_ads: true,
        dynamic_from: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    endpoints::compile_assignment(&mut ctx, la, at);
    if ctx.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(ctx.errors))
    }
}

/// `dynamic_resources`: ADS over gRPC to a static cluster, with clusters and listeners
/// (both or neither) coming over it. Anything else is refused.
fn ads_source(
    ctx: &mut Ctx<'_>,
    envoy: &crate::EnvoyBootstrap,
    clusters: &[spar_cluster::Cluster],
) -> Option<crate::snapshot::Ads> {
    use envoy_types::pb::envoy::config::core::v3::{config_source, grpc_service};
    let d = envoy.dynamic_resources.as_ref()?;
    let p = FieldPath::root().field("dynamic_resources");
    let over_ads = |c: &Option<envoy_types::pb::envoy::config::core::v3::ConfigSource>| {
        matches!(
            c.as_ref().and_then(|c| c.config_source_specifier.as_ref()),
            Some(config_source::ConfigSourceSpecifier::Ads(_))
        )
    };
    for (field, source) in [("cds_config", &d.cds_config), ("lds_config", &d.lds_config)] {
        if !over_ads(source) {
            ctx.error(
                &p.field(field),
                "must be `ads: {}`: spar-proxy takes clusters and listeners over ADS only",
            );
        }
        // spar-proxy runs its static config until xDS sends more: no initial fetch timeout.
        let timeout = source
            .as_ref()
            .and_then(|s| s.initial_fetch_timeout.as_ref());
        if timeout.is_some_and(|t| t.seconds != 0 || t.nanos != 0) {
            ctx.error(
                &p.field(field).field("initial_fetch_timeout"),
                "only 0s (no timeout) is supported by spar-proxy yet here; initial_fetch_timeout acts on a cluster's eds_config",
            );
        }
    }
    let ap = p.field("ads_config");
    let cluster = d
        .ads_config
        .as_ref()
        .and_then(|a| a.grpc_services.first())
        .and_then(|g| match &g.target_specifier {
            Some(grpc_service::TargetSpecifier::EnvoyGrpc(e)) => Some(e.cluster_name.clone()),
            _ => None,
        });
    let Some(cluster) = cluster else {
        ctx.error(
            &ap.field("grpc_services"),
            "one grpc_service with envoy_grpc.cluster_name is required",
        );
        return None;
    };
    let gp = ap
        .field("grpc_services")
        .index(0)
        .field("envoy_grpc")
        .field("cluster_name");
    let Some(c) = clusters.iter().find(|c| c.name == cluster) else {
        ctx.error(
            &gp,
            format!("cluster `{cluster}` is not defined in static_resources.clusters"),
        );
        return None;
    };
    let Some(endpoint) = c.endpoints.first() else {
        ctx.error(&gp, format!("cluster `{cluster}` has no endpoint"));
        return None;
    };
    Some(crate::snapshot::Ads {
        cluster,
        address: endpoint.address,
    })
}

/// Collects errors and knows where fields are.
/// Whether an address is one spar-proxy listens on (port 0 allowed) or
/// one it connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bind {
    Listen,
    Connect,
}

pub(crate) struct Ctx<'a> {
    source: Option<&'a Source>,
    /// The SDS secrets spar-proxy serves itself (its mesh identity), if it has one.
    pub(crate) secrets: Option<&'a dyn spar_tls::Secrets>,
    /// The `ClusterLoadAssignment`s received over EDS, by name.
    assignments: &'a BTreeMap<String, ClusterLoadAssignment>,
    /// Whether the bootstrap has an ADS server (EDS clusters need one).
    has_ads: bool,
    /// Index of the first cluster that came over xDS (the ones before are static).
    dynamic_from: usize,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        let message = message.into();
        self.errors.push(match self.source {
            Some(s) => s.error(path, message),
            None => ConfigError {
                file: None,
                line: None,
                path: path.clone(),
                message,
            },
        });
    }

    /// A protobuf duration, or `None` (after an error) when negative or out of range.
    fn duration(&mut self, d: &PbDuration, path: &FieldPath) -> Option<Duration> {
        let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000);
        let secs = u64::try_from(d.seconds)
            .ok()
            .filter(|_| d.seconds <= MAX_DURATION_SECS);
        match (secs, nanos) {
            (Some(s), Some(n)) => Some(Duration::new(s, n)),
            _ => {
                self.error(path, "duration must be between 0s and 315576000000s");
                None
            }
        }
    }

    /// Envoy's timeout convention: absent means `default`, `0s` means disabled (`None`).
    fn timeout(
        &mut self,
        d: Option<&PbDuration>,
        path: &FieldPath,
        default: Option<Duration>,
    ) -> Option<Duration> {
        match d {
            None => default,
            Some(d) => self.duration(d, path).filter(|d| !d.is_zero()),
        }
    }

    /// An `Address` that must be a TCP socket address with an IP literal and a
    /// port 1-65535; port 0 ("any free port", as Envoy binds it) only where
    /// `bind` says this is an address to listen on.
    fn socket_addr(&mut self, addr: &Address, path: &FieldPath, bind: Bind) -> Option<SocketAddr> {
        let Some(address::Address::SocketAddress(sa)) = &addr.address else {
            self.error(path, "socket_address is required");
            return None;
        };
        let path = path.field("socket_address");
        let ip = match sa.address.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) if sa.address.is_empty() => {
                self.error(&path.field("address"), "address is required");
                None
            }
            Err(_) => {
                self.error(
                    &path.field("address"),
                    format!(
                        "`{}` is not an IP address (STATIC addresses must be IP literals)",
                        sa.address
                    ),
                );
                None
            }
        };
        let port = match sa.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => match u16::try_from(p) {
                Ok(0) if bind == Bind::Listen => Some(0),
                Ok(0) => {
                    self.error(&path.field("port_value"), "port 0 is not allowed");
                    None
                }
                Ok(p) => Some(p),
                Err(_) => {
                    self.error(
                        &path.field("port_value"),
                        format!("port {p} is out of range (1-65535)"),
                    );
                    None
                }
            },
            Some(socket_address::PortSpecifier::NamedPort(_)) => {
                self.error(
                    &path.field("named_port"),
                    "named ports are not supported by spar-proxy yet",
                );
                None
            }
            None => {
                self.error(&path.field("port_value"), "port_value is required");
                None
            }
        };
        Some(SocketAddr::new(ip?, port?))
    }
}

#[cfg(test)]
mod tests;
