//! The subset check: walk every field that is set in a decoded bootstrap (by reflection,
//! into lists, maps and the messages inside `Any`) and refuse any field, enum value or
//! `typed_config` type that is not in the allowlist. Nothing is ever silently ignored.

use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage, Value};

use crate::allowlist::{self, Rule};
use crate::decode::transcode;
use crate::error::FieldPath;
use crate::runtime;

const NOT_SUPPORTED: &str = "field not supported by spar-proxy yet";

/// Every unsupported thing set in `msg`, with its path, in field order.
pub(crate) fn check(msg: &DynamicMessage) -> Vec<(FieldPath, String)> {
    let mut out = Vec::new();
    check_message(msg, &FieldPath::root(), &mut out);
    out
}

fn check_message(msg: &DynamicMessage, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    let desc = msg.descriptor();
    for (field, value) in msg.fields() {
        let fpath = path.field(field.name());
        let Some(rule) = allowlist::rule(desc.full_name(), field.name()) else {
            out.push((fpath, NOT_SUPPORTED.to_owned()));
            continue;
        };
        match (rule, value, field.kind()) {
            (Rule::Enum(allowed), Value::EnumNumber(n), Kind::Enum(e)) => {
                let name = e
                    .get_value(*n)
                    .map_or_else(|| n.to_string(), |v| v.name().to_owned());
                if !allowed.contains(&name.as_str()) {
                    out.push((
                        fpath,
                        format!(
                            "{name} not supported by spar-proxy yet (supported: {})",
                            allowed.join(", ")
                        ),
                    ));
                }
                continue;
            }
            (Rule::AtMost(max), Value::List(items), _) if items.len() > max => {
                out.push((
                    fpath.clone(),
                    format!(
                        "{} entries; spar-proxy supports at most {max} yet",
                        items.len()
                    ),
                ));
            }
            _ => {}
        }
        check_value(value, &fpath, rule, out);
    }
}

fn check_value(value: &Value, path: &FieldPath, rule: Rule, out: &mut Vec<(FieldPath, String)>) {
    if rule == Rule::Unused {
        return;
    }
    match value {
        Value::Message(m) => check_nested(m, path, rule, out),
        Value::List(items) => {
            for (i, v) in items.iter().enumerate() {
                check_value(v, &path.index(i), rule, out);
            }
        }
        Value::Map(map) => {
            let mut entries: Vec<(String, &Value)> =
                map.iter().map(|(k, v)| (key_text(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, v) in entries {
                let kpath = path.field(&key);
                let value_rule = match rule {
                    // The value must be of the type its key names.
                    Rule::KeyedTypes(types) => match types.iter().position(|t| *t == key) {
                        Some(i) => Rule::Types(types.get(i..=i).unwrap_or_default()),
                        None => {
                            out.push((
                                kpath,
                                format!("extension {key} not supported by spar-proxy yet"),
                            ));
                            continue;
                        }
                    },
                    other => other,
                };
                check_value(v, &kpath, value_rule, out);
            }
        }
        _ => {}
    }
}

fn key_text(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

fn check_nested(
    m: &DynamicMessage,
    path: &FieldPath,
    rule: Rule,
    out: &mut Vec<(FieldPath, String)>,
) {
    match m.descriptor().full_name() {
        "google.protobuf.Any" => check_any(m, path, rule, out),
        "google.protobuf.BoolValue" if rule == Rule::True => {
            let set = m.get_field_by_name("value").and_then(|v| v.as_bool());
            if set != Some(true) {
                out.push((
                    path.clone(),
                    "only true is supported by spar-proxy yet".to_owned(),
                ));
            }
        }
        "google.protobuf.Struct" if rule == Rule::RuntimeKeys => check_runtime(m, path, out),
        // Durations, wrappers, Struct metadata: leaves.
        name if name.starts_with("google.protobuf.") => {}
        _ => check_message(m, path, out),
    }
}

/// An `Any` must hold one of the types its rule allows; its content is checked in turn.
fn check_any(m: &DynamicMessage, path: &FieldPath, rule: Rule, out: &mut Vec<(FieldPath, String)>) {
    let url = m
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let type_name = url.rsplit('/').next().unwrap_or_default();
    let allowed = match rule {
        Rule::Types(types) => types,
        _ => &[],
    };
    if !allowed.contains(&type_name) {
        let supported = if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed.join(", ")
        };
        out.push((
            path.field("@type"),
            format!(
                "type {type_name} not supported by spar-proxy yet here (supported: {supported})"
            ),
        ));
        return;
    }
    let bytes = m
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let inner = m
        .descriptor()
        .parent_pool()
        .get_message_by_name(type_name)
        .ok_or_else(|| format!("type {type_name} is unknown"))
        .and_then(|desc| {
            DynamicMessage::decode(desc, bytes)
                .map_err(|e| format!("does not decode as {type_name}: {e}"))
        });
    match inner {
        // Checked by its own compiler.
        Ok(_) if allowlist::DELEGATED.contains(&type_name) => {}
        Ok(inner) => check_message(&inner, path, out),
        Err(e) => out.push((path.clone(), e)),
    }
}

/// Runtime layer keys: only the ones `runtime.rs` knows.
fn check_runtime(m: &DynamicMessage, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    let layer = match transcode::<envoy_types::pb::google::protobuf::Struct>(m) {
        Ok(layer) => layer,
        Err(e) => {
            out.push((path.clone(), e.message));
            return;
        }
    };
    for (key, _) in runtime::flatten(&layer) {
        if runtime::limit_listener(&key).is_none() {
            out.push((
                path.field(&key),
                format!(
                    "runtime key {key} not supported by spar-proxy yet \
                     (supported: envoy.resource_limits.listener.<listener name>.connection_limit)"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
