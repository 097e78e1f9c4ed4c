//! Golden files: each `tests/golden/<case>/input.yaml` (Istio and Kubernetes YAML; its first
//! line names the proxy: `# proxy: router|sidecar NAMESPACE [key=value,...]`) is translated,
//! and the result, as Envoy JSON from spar-config's own loader, must equal `expected.yaml`.
//! `SPAR_BLESS=1` rewrites the expected files.
//!
//! Every case is also the compile-back check: the listeners, clusters and EDS assignments
//! must pass spar-config's subset check and compile with no error as xDS resources under
//! an ADS bootstrap, which is what spar-proxy will do with them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::StaticResources;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use spar_config::Xds;
use spar_istio::model::Labels;
use spar_istio::{Level, Options, load};
use spar_translate::{ProxyKind, ProxyNode, Registry, Translation, translate};

fn proxy_line(input: &str) -> Result<ProxyNode> {
    let line = input.lines().next().unwrap_or_default();
    let Some(rest) = line.strip_prefix("# proxy:") else {
        bail!("the first line must be `# proxy: router|sidecar NAMESPACE [k=v,...]`");
    };
    let mut words = rest.split_whitespace();
    let kind = match words.next() {
        Some("router") => ProxyKind::Router,
        Some("sidecar") => ProxyKind::Sidecar,
        other => bail!("unknown proxy kind {other:?}"),
    };
    let namespace = words.next().context("namespace")?.to_owned();
    let mut labels = Labels::new();
    if let Some(list) = words.next() {
        for kv in list.split(',') {
            let (k, v) = kv.split_once('=').context("label k=v")?;
            labels.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(ProxyNode {
        kind,
        namespace,
        labels,
    })
}

fn run(input: &str) -> Result<Translation> {
    let proxy = proxy_line(input)?;
    let loaded = load("input.yaml", input, &Options::default());
    let errors: Vec<_> = loaded
        .messages
        .iter()
        .filter(|m| m.level == Level::Error)
        .collect();
    if !errors.is_empty() {
        bail!("input does not load: {errors:?}");
    }
    for r in &loaded.resources {
        let problems: Vec<_> = spar_istio::validate(r)
            .into_iter()
            .filter(|m| m.level == Level::Error)
            .collect();
        if !problems.is_empty() {
            bail!("input is not valid Istio config: {problems:?}");
        }
    }
    let registry = Registry::from_resources(&loaded.resources);
    let mut t = translate(&loaded.resources, &registry, &proxy);
    t.notes.extend(registry.notes().iter().cloned());
    Ok(t)
}

/// A bootstrap whose clusters and listeners come over ADS, as spar-proxy's under
/// spar-control (EDS clusters need it).
const ADS_BOOTSTRAP: &str = "
dynamic_resources:
  ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds } }] }
  cds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }
  lds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 15010 } } } }] }]
";

/// The translation as spar-proxy would load it: checked, compiled (the clusters and
/// listeners as CDS and LDS, the assignments as EDS), and dumped as JSON.
fn compile_back(t: &Translation) -> Result<serde_json::Value> {
    // The subset check, which also gives the JSON: the resources as static ones.
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners: t.listeners.clone(),
            clusters: t.clusters.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let checked = spar_config::Bootstrap::from_envoy(bootstrap)
        .map_err(|e| anyhow::anyhow!("spar-proxy refuses the translation:\n{e}"))?;
    // As a proxy with a mesh identity loads it over ADS: SDS `default` and `ROOTCA` are
    // served.
    let identity = spar_identity::Identity::new("spiffe://cluster.local/ns/golden/sa/golden");
    let ads = spar_config::load_bootstrap_str(ADS_BOOTSTRAP, "ads.yaml", spar_config::Format::Yaml)
        .map_err(|e| anyhow::anyhow!("the test's ADS bootstrap:\n{e}"))?
        .with_secrets(std::sync::Arc::new(identity));
    let assignments: BTreeMap<String, ClusterLoadAssignment> = t
        .endpoints
        .iter()
        .map(|la| (la.cluster_name.clone(), la.clone()))
        .collect();
    ads.compile_xds(
        Xds {
            clusters: &t.clusters,
            listeners: &t.listeners,
            assignments: &assignments,
        },
        1,
    )
    .map_err(|e| anyhow::anyhow!("spar-proxy cannot compile the translation:\n{e}"))?;
    for la in &t.endpoints {
        spar_config::check_assignment(la).map_err(|e| {
            anyhow::anyhow!(
                "spar-proxy refuses the assignment {}:\n{e}",
                la.cluster_name
            )
        })?;
    }
    let statics = checked
        .json
        .get("static_resources")
        .cloned()
        .unwrap_or_default();
    let dump = spar_config::endpoints_config_dump(t.endpoints.iter().map(|la| ("", la)));
    let endpoints: Vec<serde_json::Value> = dump["dynamic_endpoint_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let mut la = d["endpoint_config"].clone();
            if let Some(o) = la.as_object_mut() {
                o.remove("@type");
            }
            la
        })
        .collect();
    let notes: Vec<String> = t
        .notes
        .iter()
        .map(|n| match &n.resource {
            Some(r) => format!(
                "{} {}/{}: {}: {}",
                r.kind, r.namespace, r.name, n.path, n.message
            ),
            None => n.message.clone(),
        })
        .collect();
    Ok(serde_json::json!({
        "listeners": statics.get("listeners").cloned().unwrap_or_default(),
        "clusters": statics.get("clusters").cloned().unwrap_or_default(),
        "endpoints": endpoints,
        "notes": notes,
    }))
}

fn cases() -> Result<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

#[test]
fn golden() -> Result<()> {
    let bless = std::env::var_os("SPAR_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let dirs = cases()?;
    assert!(!dirs.is_empty(), "no golden cases found");
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let input = std::fs::read_to_string(dir.join("input.yaml"))?;
        let got = run(&input)
            .and_then(|t| compile_back(&t))
            .with_context(|| format!("case {name}"))?;
        let text = serde_yaml::to_string(&got)?;
        let expected_path = dir.join("expected.yaml");
        if bless {
            std::fs::write(&expected_path, &text)?;
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != text {
            failures.push(format!(
                "{name}: output differs from expected.yaml (SPAR_BLESS=1 rewrites it); got:\n{text}"
            ));
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
