//! `serde_json::Value` -> prost-reflect `DynamicMessage` -> envoy-types structs, with the
//! path of the first bad field (serde_path_to_error) turned into `file:line: path: message`.

use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::Source;
use crate::descriptor::{self, internal};
use crate::error::{ConfigError, FieldPath};

/// Decodes `value` as message `desc`. Unknown fields are errors (Envoy rejects them too).
pub(crate) fn to_dynamic(
    value: &Value,
    desc: MessageDescriptor,
    source: &Source,
) -> Result<DynamicMessage, ConfigError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    match DynamicMessage::deserialize_with_options(desc.clone(), de, &options) {
        Ok(msg) => Ok(msg),
        Err(e) => {
            let segments: Vec<Segment> = track.path().iter().cloned().collect();
            let mut path = FieldPath::root();
            for s in &segments {
                path = match s {
                    Segment::Seq { index } => path.index(*index),
                    Segment::Map { key } | Segment::Enum { variant: key } => path.field(key),
                    Segment::Unknown => path.field("?"),
                };
            }
            let text = e.to_string();
            if let Some(name) = unknown_type(&text) {
                // Point at the `@type` line, the one to fix.
                let message = format!("unknown type `{name}` (not a message spar-proxy knows)");
                return Err(source.error(&path.field("@type"), message));
            }
            let message = match unknown_field(&text) {
                Some(name) => {
                    let hint = message_at(&desc, value, &segments)
                        .map(|d| {
                            let near = closest(name, &d);
                            let near = near
                                .map(|n| format!("; did you mean `{n}`?"))
                                .unwrap_or_default();
                            format!(" (not a field of {}{near})", d.full_name())
                        })
                        .unwrap_or_default();
                    path = path.field(name);
                    format!("unknown field `{name}`{hint}")
                }
                None => text,
            };
            Err(source.error(&path, message))
        }
    }
}

/// The field name in prost-reflect's "unrecognized field name 'x'" error.
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unrecognized field name '")?
        .strip_suffix('\'')
}

/// The message name in prost-reflect's "message 'x' not found" error (an `Any` `@type`).
fn unknown_type(message: &str) -> Option<&str> {
    message
        .strip_prefix("message '")?
        .strip_suffix("' not found")
}

/// The message type found at `segments` below `root`, following `@type` through `Any`.
fn message_at(
    root: &MessageDescriptor,
    value: &Value,
    segments: &[Segment],
) -> Option<MessageDescriptor> {
    let mut desc = resolve_any(root.clone(), value)?;
    let mut value = value;
    let mut in_map = false;
    for s in segments {
        match s {
            Segment::Seq { index } => value = value.get(index)?,
            Segment::Map { key } if in_map => {
                value = value.get(key)?;
                in_map = false;
                desc = resolve_any(desc, value)?;
            }
            Segment::Map { key } => {
                value = value.get(key)?;
                let field = desc
                    .get_field_by_name(key)
                    .or_else(|| desc.get_field_by_json_name(key))?;
                let Kind::Message(next) = field.kind() else {
                    return None;
                };
                if field.is_map() {
                    let Kind::Message(v) = next.map_entry_value_field().kind() else {
                        return None;
                    };
                    desc = v;
                    in_map = true;
                } else {
                    desc = resolve_any(next, value)?;
                }
            }
            Segment::Enum { .. } | Segment::Unknown => return None,
        }
    }
    (!in_map).then_some(desc)
}

/// For `google.protobuf.Any`, the message named by the value's `@type`.
fn resolve_any(desc: MessageDescriptor, value: &Value) -> Option<MessageDescriptor> {
    if desc.full_name() != "google.protobuf.Any" {
        return Some(desc);
    }
    let url = value.get("@type")?.as_str()?;
    let name = url.rsplit('/').next()?;
    desc.parent_pool().get_message_by_name(name)
}

/// The field of `desc` nearest to the misspelt `name`, if one is close enough to suggest.
fn closest(name: &str, desc: &MessageDescriptor) -> Option<String> {
    let wanted = name.to_ascii_lowercase();
    desc.fields()
        .map(|f| {
            let d = edit_distance(&wanted, &f.name().to_ascii_lowercase())
                .min(edit_distance(&wanted, &f.json_name().to_ascii_lowercase()));
            (d, f.name().to_owned())
        })
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance over bytes (field names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.bytes().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Re-encodes a dynamic message as the envoy-types struct `T` (same wire format).
pub(crate) fn transcode<T: Message + Default>(msg: &DynamicMessage) -> Result<T, ConfigError> {
    T::decode(msg.encode_to_vec().as_slice())
        .map_err(|e| internal(format!("transcoding {}: {e}", msg.descriptor().full_name())))
}

/// The message as proto3 JSON with proto field names, `Any` expanded: what Envoy's
/// `/config_dump` shows.
pub(crate) fn to_json(msg: &DynamicMessage) -> Result<Value, ConfigError> {
    let options = SerializeOptions::new().use_proto_field_name(true);
    msg.serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| internal(format!("serializing {}: {e}", msg.descriptor().full_name())))
}

/// Decodes an envoy-types struct back into a dynamic message of `full_name`.
pub(crate) fn from_envoy<T: Message>(
    value: &T,
    full_name: &str,
) -> Result<DynamicMessage, ConfigError> {
    let desc = descriptor::message(full_name)?;
    DynamicMessage::decode(desc, value.encode_to_vec().as_slice())
        .map_err(|e| internal(format!("decoding {full_name}: {e}")))
}
