//! Config errors that point at the file, the line and the field.

use std::fmt;

/// A dotted field path as Envoy users read it:
/// `static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix`.
/// Map keys are appended like fields (`...typed_extension_protocol_options.<key>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(String);

impl FieldPath {
    /// The root (the whole document).
    pub fn root() -> Self {
        Self::default()
    }

    /// The path of field or map key `name` under this one.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The path of list element `index` under this one.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// A relative dotted path (`rules.policies.x.permissions[0]`, as another crate's
    /// compiler reports it) under this one.
    pub fn dotted(&self, relative: &str) -> Self {
        if relative.is_empty() {
            return self.clone();
        }
        if self.0.is_empty() || relative.starts_with('[') {
            Self(format!("{}{relative}", self.0))
        } else {
            Self(format!("{}.{relative}", self.0))
        }
    }

    /// The path as text; empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The enclosing path, `None` at the root.
    pub(crate) fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            return None;
        }
        let cut = self.0.rfind(['.', '[']).unwrap_or_default();
        Some(Self(self.0[..cut].to_owned()))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One problem in a config, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File name as given to the loader; `None` for config that came from no file (xDS).
    pub file: Option<String>,
    /// 1-based line of the field (or of its nearest enclosing field that is in the file).
    pub line: Option<usize>,
    /// Field path; empty for problems with the document as a whole.
    pub path: FieldPath,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `file:line: path: message`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.path.as_str().is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config, in file order. Display prints one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        Self(vec![error])
    }
}
