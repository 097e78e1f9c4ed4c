//! YAML (and JSON, which YAML 1.2 parses) text into a `serde_json::Value`, remembering the
//! line of every field so later errors can say `file:line`.
//!
//! The event parser is driven with an explicit stack (no recursion), nesting is capped and
//! aliases are counted, so hostile input cannot exhaust the stack or the memory.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{ConfigError, FieldPath};

/// Deepest nesting accepted. Envoy configs nest about 20 levels (a route's header matcher
/// inside a virtual host inside an HCM inside a listener); the cap keeps later recursive
/// passes (serde, reflection) far from the 2 MiB stack of a test or worker thread.
const MAX_DEPTH: usize = 64;

/// Most values a document may expand to, aliases included: a bootstrap with 10,000 virtual
/// hosts is about 200,000 values, and "billion laughs" aliases stop here.
const MAX_VALUES: usize = 5_000_000;

/// Where each field is in the file: normalized path -> 1-based line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lines(HashMap<String, usize>);

impl Lines {
    fn insert(&mut self, path: &FieldPath, line: usize) {
        self.0.entry(normalize(path.as_str())).or_insert(line);
    }

    /// The line of `path`, or of its nearest enclosing field that has one.
    pub(crate) fn find(&self, path: &FieldPath) -> Option<usize> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(&line) = self.0.get(&normalize(cur.as_str())) {
                return Some(line);
            }
            p = cur.parent();
        }
        None
    }
}

/// Field names may be written in proto (`static_resources`) or JSON (`staticResources`)
/// form; both map to the proto form so that paths from either side find the same line.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A collection being built, with the path it sits at and the number of values inside it
/// (aliases expanded), which an alias to it would copy.
struct Frame {
    kind: FrameKind,
    path: FieldPath,
    anchor: usize,
    size: usize,
}

enum FrameKind {
    /// A mapping; `key` is set between a key and its value.
    Map {
        map: Map<String, Value>,
        key: Option<String>,
    },
    Seq {
        items: Vec<Value>,
    },
}

/// Parses one YAML document. `file` only labels errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<(Value, Lines), ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: Some(file.to_owned()),
        line: Some(line),
        path: FieldPath::root(),
        message,
    };
    let too_big = |line: usize| {
        err(
            line,
            format!("document expands to more than {MAX_VALUES} values"),
        )
    };
    let mut parser = Parser::new_from_str(text);
    let mut lines = Lines::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Value, usize)> = HashMap::new();
    let mut root: Option<Value> = None;
    let mut documents = 0;
    let mut values = 0usize;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| err(line_of(e.marker()), format!("YAML: {}", e.info())))?;
        let line = line_of(&mark);
        // A finished node: (value, its anchor, values inside it counting itself).
        let (value, anchor, size) = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(err(line, "only one YAML document is allowed".into()));
                }
                continue;
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::Alias(id) => match anchors.get(&id) {
                // Refuse before cloning: the clone is what would exhaust memory.
                Some((_, size)) if values.saturating_add(*size) > MAX_VALUES => {
                    return Err(too_big(line));
                }
                Some((value, size)) => {
                    values += size;
                    (value.clone(), 0, *size)
                }
                None => return Err(err(line, "alias to an unknown or enclosing anchor".into())),
            },
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(Frame {
                    kind:
                        FrameKind::Map {
                            map,
                            key: key @ None,
                        },
                    path,
                    ..
                }) = stack.last_mut()
                {
                    if map.contains_key(&text) {
                        return Err(err(line, format!("duplicate key `{text}`")));
                    }
                    lines.insert(&path.field(&text), line);
                    *key = Some(text);
                    continue;
                }
                let as_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !as_str {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                values += 1;
                (value, anchor, 1)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let path = match stack.last() {
                    None => FieldPath::root(),
                    Some(Frame {
                        kind: FrameKind::Map { key: None, .. },
                        ..
                    }) => {
                        return Err(err(line, "mapping keys must be plain strings".into()));
                    }
                    Some(Frame {
                        kind: FrameKind::Map { key: Some(k), .. },
                        path,
                        ..
                    }) => path.field(k),
                    Some(Frame {
                        kind: FrameKind::Seq { items },
                        path,
                        ..
                    }) => path.index(items.len()),
                };
                if stack.len() >= MAX_DEPTH {
                    return Err(err(line, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                lines.insert(&path, line);
                let kind = if matches!(event, Event::MappingStart(..)) {
                    FrameKind::Map {
                        map: Map::new(),
                        key: None,
                    }
                } else {
                    FrameKind::Seq { items: Vec::new() }
                };
                stack.push(Frame {
                    kind,
                    path,
                    anchor,
                    size: 1,
                });
                values += 1;
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => match stack.pop() {
                Some(Frame {
                    kind: FrameKind::Map { map, .. },
                    anchor,
                    size,
                    ..
                }) => (Value::Object(type_first(map)), anchor, size),
                Some(Frame {
                    kind: FrameKind::Seq { items },
                    anchor,
                    size,
                    ..
                }) => (Value::Array(items), anchor, size),
                None => continue,
            },
        };
        if values > MAX_VALUES {
            return Err(too_big(line));
        }
        if anchor > 0 {
            anchors.insert(anchor, (value.clone(), size));
        }
        let Some(parent) = stack.last_mut() else {
            root = Some(value);
            continue;
        };
        parent.size = parent.size.saturating_add(size);
        match &mut parent.kind {
            FrameKind::Map { map, key } => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => return Err(err(line, "mapping keys must be plain strings".into())),
            },
            FrameKind::Seq { items } => {
                lines.insert(&parent.path.index(items.len()), line);
                items.push(value);
            }
        }
    }
    // An empty document is an empty bootstrap, as for Envoy.
    let root = match root {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    Ok((root, lines))
}

/// Refuses values nested deeper than [`MAX_DEPTH`] (for documents that did not come through
/// [`parse`]).
pub(crate) fn check_depth(value: &Value) -> Result<(), String> {
    let mut todo = vec![(value, 0usize)];
    while let Some((v, depth)) = todo.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        todo.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// yaml-rust2 counts lines from 1 and columns from 0.
fn line_of(mark: &Marker) -> usize {
    mark.line().max(1)
}

/// prost-reflect reads the `@type` of an `Any` first and then streams the other fields with
/// their paths intact; entries before `@type` would be buffered and lose their path. Put it
/// first whatever the map's ordering.
fn type_first(map: Map<String, Value>) -> Map<String, Value> {
    if !map.contains_key("@type") {
        return map;
    }
    let mut map = map;
    let mut out = Map::new();
    if let Some(t) = map.remove("@type") {
        out.insert("@type".to_owned(), t);
    }
    out.extend(map);
    out
}

/// YAML 1.2 core schema for plain (unquoted) scalars: null, booleans, integers, floats;
/// anything else is a string.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        // proto3 JSON spells the non-finite floats as these strings.
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::String("Infinity".into());
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::String("-Infinity".into()),
        ".nan" | ".NaN" | ".NAN" => return Value::String("NaN".into()),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = digits.parse::<u64>()
            && !s.starts_with('-')
        {
            return Value::Number(u.into());
        }
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(u) = u64::from_str_radix(hex, 16)
    {
        return Value::Number(u.into());
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(u) = u64::from_str_radix(oct, 8)
    {
        return Value::Number(u.into());
    }
    if is_float(s)
        && let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(s.to_owned())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests;
