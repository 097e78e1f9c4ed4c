//! The configuration directory: every YAML file, loaded and analyzed together. A
//! directory with any error is refused as a whole (nothing invalid reaches a proxy).

use std::path::{Path, PathBuf};

use spar_istio::{Level, Options, Resource};
use tracing::{info, warn};

/// A validated configuration.
pub(crate) struct World {
    pub(crate) resources: Vec<Resource>,
    pub(crate) registry: spar_translate::Registry,
}

/// Loads and analyzes every `*.yaml` / `*.yml` under `dir`.
pub(crate) fn load(dir: &Path) -> Result<World, String> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    files.sort();
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let options = Options::default();
    let mut resources = Vec::new();
    let mut messages = Vec::new();
    for (file, text) in &texts {
        let loaded = spar_istio::load(file, text, &options);
        resources.extend(loaded.resources);
        messages.extend(loaded.messages);
    }
    messages.extend(spar_istio::analyze(&resources));
    let errors: Vec<String> = messages
        .iter()
        .filter(|m| m.level == Level::Error)
        .map(|m| m.to_string())
        .collect();
    for m in messages.iter().filter(|m| m.level != Level::Error) {
        warn!("{m}");
    }
    if !errors.is_empty() {
        return Err(format!("{} error(s):\n{}", errors.len(), errors.join("\n")));
    }
    info!(
        files = files.len(),
        resources = resources.len(),
        "configuration loaded"
    );
    let registry = spar_translate::Registry::from_resources(&resources);
    Ok(World {
        resources,
        registry,
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Changes when any YAML file under `dir` changes (names, sizes, contents).
pub(crate) fn fingerprint(dir: &Path) -> u64 {
    let mut files = Vec::new();
    if collect(dir, &mut files).is_err() {
        return 0;
    }
    files.sort();
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in files {
        mix(f.as_os_str().as_encoded_bytes());
        if let Ok(bytes) = std::fs::read(&f) {
            mix(&bytes);
        }
    }
    h
}
