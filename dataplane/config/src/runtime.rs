//! Runtime keys from `layered_runtime` static layers. Spar reads one family of keys, the
//! per-listener connection limit Envoy documents:
//! `envoy.resource_limits.listener.<listener name>.connection_limit`.
//! Any other key is refused rather than ignored.

use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

const LIMIT_PREFIX: &str = "envoy.resource_limits.listener.";
const LIMIT_SUFFIX: &str = ".connection_limit";

/// The listener named by a connection-limit key, `None` for any other key.
pub(crate) fn limit_listener(key: &str) -> Option<&str> {
    let name = key.strip_prefix(LIMIT_PREFIX)?.strip_suffix(LIMIT_SUFFIX)?;
    (!name.is_empty()).then_some(name)
}

/// The layer's leaf values by dotted key, as Envoy flattens nested static layers
/// (`{envoy: {resource_limits: ...}}` is `envoy.resource_limits...`), sorted by key.
pub(crate) fn flatten(layer: &Struct) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    let mut todo: Vec<(String, &Struct)> = vec![(String::new(), layer)];
    while let Some((prefix, s)) = todo.pop() {
        for (k, v) in &s.fields {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &v.kind {
                Some(Kind::StructValue(inner)) => todo.push((key, inner)),
                _ => out.push((key, v)),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A connection limit value: a whole number from 0 to 2^32-1.
pub(crate) fn limit_value(v: &Value) -> Result<u32, String> {
    match v.kind {
        Some(Kind::NumberValue(n))
            if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) =>
        {
            // In range and whole: the cast is exact.
            Ok(n as u32)
        }
        _ => Err("connection limit must be a whole number from 0 to 4294967295".to_owned()),
    }
}
