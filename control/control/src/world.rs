//! The configuration directory: every YAML file, loaded and analyzed together. A
//! directory with any error is refused as a whole (nothing invalid reaches a proxy).
//! [`Loader`] keeps what each file parsed to, so a change re-parses only the files whose
//! text changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spar_istio::{Level, Loaded, Options, Resource};
use tracing::{info, warn};

/// A validated configuration.
#[derive(Debug)]
pub struct World {
    pub resources: Vec<Resource>,
    pub registry: spar_translate::Registry,
}

impl World {
    /// A configuration whose registry is already built (the Kubernetes source's).
    pub fn new(resources: Vec<Resource>, registry: spar_translate::Registry) -> World {
        World {
            resources,
            registry,
        }
    }
}

/// Loads and analyzes every `*.yaml` / `*.yml` under `dir`.
pub fn load(dir: &Path) -> Result<World, String> {
    Loader::default().load_dir(dir)
}

/// Loads configurations again and again (the file source's), parsing only the files whose
/// text changed since the last load; analysis and the registry still take the whole set.
#[derive(Debug, Default)]
pub struct Loader {
    /// File name -> its text and what it loaded to, as of the last load.
    files: HashMap<String, (String, Loaded)>,
}

impl Loader {
    /// Loads and analyzes every `*.yaml` / `*.yml` under `dir`.
    pub fn load_dir(&mut self, dir: &Path) -> Result<World, String> {
        let mut files = Vec::new();
        collect(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
        files.sort();
        let mut texts = Vec::with_capacity(files.len());
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            texts.push((f.display().to_string(), text));
        }
        self.load_texts(texts)
    }

    /// Loads and analyzes files given as (name, text), in that order; the whole set is
    /// refused on any error.
    pub fn load_texts(&mut self, texts: Vec<(String, String)>) -> Result<World, String> {
        let options = Options::default();
        let mut resources = Vec::new();
        let mut messages = Vec::new();
        let mut kept = HashMap::with_capacity(texts.len());
        for (file, text) in texts {
            let loaded = match self.files.remove(&file) {
                Some((old, loaded)) if old == text => loaded,
                _ => spar_istio::load(&file, &text, &options),
            };
            resources.extend(loaded.resources.iter().cloned());
            messages.extend(loaded.messages.iter().cloned());
            kept.insert(file, (text, loaded));
        }
        self.files = kept;
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
            files = self.files.len(),
            resources = resources.len(),
            "configuration loaded"
        );
        let registry = spar_translate::Registry::from_resources(&resources);
        Ok(World {
            resources,
            registry,
        })
    }
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
pub fn fingerprint(dir: &Path) -> u64 {
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
