//! The configuration directory: every YAML file, loaded and analyzed together. A
//! directory with any error is refused as a whole (nothing invalid reaches a proxy).
//! [`Loader`] keeps what each file parsed to, so a change re-parses only the files whose
//! text changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spar_istio::{Level, Loaded, Message, Options, Resource, Start};
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

/// Loads configurations again and again (the file source's), parsing only what changed
/// since the last load: a file whose text is the same is read but not parsed again, and in
/// a changed file only the documents (parts between `---` lines, [`spar_istio::split`])
/// whose text or position changed are parsed and validated. A document after one that gained or lost
/// lines starts on another line, so it is parsed again: its messages keep their lines. The
/// cross-resource analysis and the registry still take the whole set.
#[derive(Debug, Default)]
pub struct Loader {
    /// File name -> what it loaded to, as of the last load.
    files: HashMap<String, File>,
    /// Parts parsed by the last load (the others were reused).
    parsed: usize,
}

/// One file as of the last load.
#[derive(Debug)]
struct File {
    text: String,
    /// The file's parts in order, or the whole file as one part when it cannot be split
    /// (directives, `...` markers) or a part of it is not valid YAML: a syntax error ends
    /// the file's reading, as a load of the whole file does.
    parts: Vec<Part>,
}

/// One part of a file: its text, where it starts, and what it loaded to.
#[derive(Debug)]
struct Part {
    text: String,
    start: Start,
    /// The index of the next part's first document.
    next: usize,
    loaded: Loaded,
    /// The validation messages of `loaded.resources` (each depends on its resource only).
    validation: Vec<Message>,
}

impl Part {
    fn load(file: &str, text: &str, start: Start, options: &Options) -> Part {
        let (loaded, next) = spar_istio::load_part(file, text, start, options);
        let validation = loaded
            .resources
            .iter()
            .flat_map(spar_istio::validate)
            .collect();
        Part {
            text: text.to_owned(),
            start,
            next,
            loaded,
            validation,
        }
    }

    /// A syntax or document-level error (not a mapping, no kind): the file is then read
    /// whole, so that what it is refused for is what a whole-file read says. A document
    /// read alone can differ there (the YAML parser places some marks by what follows a
    /// document, e.g. an empty block scalar before `---`); valid files, the reload's case,
    /// read alike either way.
    fn has_load_error(&self) -> bool {
        self.loaded.messages.iter().any(|m| m.level == Level::Error)
    }
}

impl File {
    /// Loads `text`, reusing the parts of `old` that start where they did, with the same
    /// text.
    /// `parsed` counts the parts parsed.
    fn load(
        name: &str,
        text: String,
        old: Option<File>,
        options: &Options,
        parsed: &mut usize,
    ) -> File {
        let old = match old {
            Some(old) if old.text == text => return old,
            Some(old) => old.parts,
            None => Vec::new(),
        };
        let parts = match spar_istio::split(&text) {
            Some(split) => Self::load_parts(name, &split, old, options, parsed),
            None => None,
        };
        let parts = parts.unwrap_or_else(|| {
            *parsed += 1;
            vec![Part::load(name, &text, Start::FILE, options)]
        });
        File { text, parts }
    }

    /// None when a part has a syntax or document-level error (read the file whole then).
    fn load_parts(
        name: &str,
        split: &[(usize, &str)],
        old: Vec<Part>,
        options: &Options,
        parsed: &mut usize,
    ) -> Option<Vec<Part>> {
        let mut old = old.into_iter();
        let mut parts = Vec::with_capacity(split.len());
        let mut index = 0;
        for &(line, text) in split {
            let start = Start { line, index };
            let part = match old.next() {
                Some(p) if p.start == start && p.text == text => p,
                _ => {
                    *parsed += 1;
                    Part::load(name, text, start, options)
                }
            };
            if part.has_load_error() {
                return None;
            }
            index = part.next;
            parts.push(part);
        }
        Some(parts)
    }
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
        let (resources, messages) = self.read(texts);
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
            parsed = self.parsed,
            "configuration loaded"
        );
        let registry = spar_translate::Registry::from_resources(&resources);
        Ok(World {
            resources,
            registry,
        })
    }

    /// Every resource and every message of the files, in the order a load of each file and
    /// `spar_istio::analyze` over all their resources give.
    fn read(&mut self, texts: Vec<(String, String)>) -> (Vec<Resource>, Vec<Message>) {
        let options = Options::default();
        let mut kept = HashMap::with_capacity(texts.len());
        let mut order = Vec::with_capacity(texts.len());
        self.parsed = 0;
        for (name, text) in texts {
            let old = self.files.remove(&name);
            let file = File::load(&name, text, old, &options, &mut self.parsed);
            order.push(name.clone());
            kept.insert(name, file);
        }
        self.files = kept;
        let parts = || {
            order
                .iter()
                .filter_map(|name| self.files.get(name))
                .flat_map(|f| &f.parts)
        };
        let mut resources = Vec::new();
        let mut messages = Vec::new();
        for part in parts() {
            resources.extend(part.loaded.resources.iter().cloned());
            messages.extend(part.loaded.messages.iter().cloned());
        }
        // In the order `spar_istio::analyze` gives: each resource's validation, then the
        // cross-resource checks.
        for part in parts() {
            messages.extend(part.validation.iter().cloned());
        }
        messages.extend(spar_istio::analyze_references(&resources));
        (resources, messages)
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

#[cfg(test)]
mod tests;
