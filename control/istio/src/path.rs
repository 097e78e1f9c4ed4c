//! Field paths as messages print them: `spec.http[0].route[1].destination.host`.

/// `parent.key` (or `key` at the root).
pub(crate) fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The enclosing path: `a.b[2]` -> `a.b` -> `a` -> `` -> None.
pub(crate) fn parent(p: &str) -> Option<&str> {
    if p.is_empty() {
        return None;
    }
    let cut = p.rfind(['.', '[']).unwrap_or(0);
    Some(&p[..cut])
}
