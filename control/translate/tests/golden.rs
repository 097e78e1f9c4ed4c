//! Golden files: each `tests/golden/<case>/input.yaml` (Istio and Kubernetes YAML; its first
//! line names the proxy: `# proxy: router|sidecar NAMESPACE [key=value,...]`) is translated,
//! and the result, as Envoy JSON from spar-config's own loader, must equal `expected.yaml`.
//! `SPAR_BLESS=1` rewrites the expected files.
//!
//! Every case is also the compile-back check: the listeners and clusters, put in an Envoy
//! bootstrap's static_resources, must pass spar-config's subset check and compile with no
//! error, which is what spar-proxy will do with them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::StaticResources;
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

/// The translation as spar-proxy would load it: checked, compiled, and dumped as JSON.
fn compile_back(t: &Translation) -> Result<serde_json::Value> {
    let bootstrap = Bootstrap {
        static_resources: Some(StaticResources {
            listeners: t.listeners.clone(),
            clusters: t.clusters.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // As a proxy with a mesh identity loads it: SDS `default` and `ROOTCA` are served.
    let identity = spar_identity::Identity::new("spiffe://cluster.local/ns/golden/sa/golden");
    let checked = spar_config::Bootstrap::from_envoy(bootstrap)
        .map_err(|e| anyhow::anyhow!("spar-proxy refuses the translation:\n{e}"))?
        .with_secrets(std::sync::Arc::new(identity));
    spar_config::compile(&checked, 1)
        .map_err(|e| anyhow::anyhow!("spar-proxy cannot compile the translation:\n{e}"))?;
    let statics = checked
        .json
        .get("static_resources")
        .cloned()
        .unwrap_or_default();
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
