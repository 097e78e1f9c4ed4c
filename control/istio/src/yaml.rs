//! Multi-document YAML text into `serde_json::Value`s, remembering the line of every field
//! so that messages can say `file:line`.
//!
//! The event parser is driven with an explicit stack (no recursion); nesting is capped and
//! alias expansion is counted, so hostile input cannot exhaust the stack or the memory.
//! Duplicate keys are refused, as Kubernetes' strict YAML decoding does.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::path;

/// Deepest nesting accepted. Istio resources nest about 12 levels (a DestinationRule's
/// port-level consistent-hash cookie); the cap keeps serde's recursion far from the stack limit.
const MAX_DEPTH: usize = 64;

/// Most values one file may expand to, aliases included. A 1,000-service mesh config is
/// about 100,000 values; "billion laughs" aliases stop here.
const MAX_VALUES: usize = 2_000_000;

/// Field path (`spec.http[0].route`) -> 1-based line, for one document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lines(HashMap<String, usize>);

impl Lines {
    /// The line of `path`, or of its nearest enclosing field that has one.
    pub fn find(&self, mut p: &str) -> Option<usize> {
        loop {
            if let Some(&line) = self.0.get(p) {
                return Some(line);
            }
            p = path::parent(p)?;
        }
    }

    fn insert(&mut self, path: String, line: usize) {
        self.0.entry(path).or_insert(line);
    }
}

/// One YAML document: its 0-based index in the file, the line it starts on, its value.
#[derive(Debug)]
pub(crate) struct RawDoc {
    pub index: usize,
    pub line: usize,
    pub value: Value,
    pub lines: Lines,
}

/// A YAML syntax (or limit) error; the documents before it are still returned.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub line: usize,
    pub message: String,
}

struct Frame {
    kind: FrameKind,
    path: String,
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

/// Splits `text`, a part of a file that starts at `start`, into documents. Empty documents
/// (only comments, or a trailing `---`) are skipped but still counted in the index, as
/// `kubectl` counts them. Also returns the index after the part's last document.
pub(crate) fn documents(text: &str, start: Start) -> (Vec<RawDoc>, usize, Option<YamlError>) {
    // YAML allows no NUL in a stream, and the parser takes one for the end of its input: a
    // file with one would be read up to it and the rest dropped without a word.
    if let Some(at) = text.find('\0') {
        let line = start.line + text[..at].matches('\n').count();
        let message = "YAML syntax: NUL character (U+0000) is not allowed".to_owned();
        return (Vec::new(), start.index, Some(YamlError { line, message }));
    }
    let mut docs = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let mut state = DocState::default();
    let mut index = start.index;
    let mut values = 0usize;
    let line_at = |mark: &Marker| line_of(mark) + start.line.saturating_sub(1);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                let message = format!("YAML syntax: {}", e.info());
                return (
                    docs,
                    index,
                    Some(YamlError {
                        line: line_at(e.marker()),
                        message,
                    }),
                );
            }
        };
        let line = line_at(&mark);
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart => {
                state = DocState {
                    start: line,
                    ..DocState::default()
                };
            }
            Event::DocumentEnd => {
                let done = std::mem::take(&mut state);
                if let Some(value) = done.root
                    && !value.is_null()
                {
                    docs.push(RawDoc {
                        index,
                        line: done.start,
                        value,
                        lines: done.lines,
                    });
                }
                index += 1;
            }
            event => {
                if let Err(message) = state.event(event, line, &mut values) {
                    return (docs, index, Some(YamlError { line, message }));
                }
            }
        }
    }
    (docs, index, None)
}

/// Where a part of a file starts: its first line (1-based) and the index of its first
/// document in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    pub line: usize,
    pub index: usize,
}

impl Start {
    /// The start of a whole file.
    pub const FILE: Start = Start { line: 1, index: 0 };
}

/// Splits a file's text at its `---` lines into parts of one document each (the first part,
/// before any `---`, may hold none), with the line each part starts on, so that a caller can
/// parse only the parts whose text changed. None when the text has directives (`%YAML`) or
/// document end markers (`...`), whose effect crosses parts, or a carriage return not
/// followed by a line feed (a line break to YAML but not to this split, so the parts'
/// lines would drift): parse the whole text then.
pub fn split(text: &str) -> Option<Vec<(usize, &str)>> {
    let bytes = text.as_bytes();
    if bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    let marker = |line: &str, m: &str| {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
    };
    let mut parts = Vec::new();
    let (mut from, mut first_line) = (0, 1);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with('%') || marker(line, "...") {
            return None;
        }
        if marker(line, "---") && offset > 0 {
            parts.push((first_line, &text[from..offset]));
            (from, first_line) = (offset, n + 1);
        }
        offset += line.len();
    }
    parts.push((first_line, &text[from..]));
    Some(parts)
}

#[derive(Default)]
struct DocState {
    start: usize,
    lines: Lines,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Value, usize)>,
    root: Option<Value>,
}

impl DocState {
    fn event(&mut self, event: Event, line: usize, values: &mut usize) -> Result<(), String> {
        // A finished node: (value, its anchor, values inside it counting itself).
        let (value, anchor, size) = match event {
            Event::Alias(id) => match self.anchors.get(&id) {
                // Refuse before cloning: the clone is what would exhaust memory.
                Some((_, size)) if values.saturating_add(*size) > MAX_VALUES => {
                    return Err(too_big());
                }
                Some((value, size)) => {
                    *values += size;
                    (value.clone(), 0, *size)
                }
                None => return Err("alias to an unknown or enclosing anchor".into()),
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
                }) = self.stack.last_mut()
                {
                    if map.contains_key(&text) {
                        return Err(format!("duplicate key {text:?}"));
                    }
                    self.lines.insert(path::field(path, &text), line);
                    *key = Some(text);
                    return Ok(());
                }
                let as_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !as_str {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                *values += 1;
                (value, anchor, 1)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let path = match self.stack.last() {
                    None => String::new(),
                    Some(Frame {
                        kind: FrameKind::Map { key: None, .. },
                        ..
                    }) => return Err("mapping keys must be plain strings".into()),
                    Some(Frame {
                        kind: FrameKind::Map { key: Some(k), .. },
                        path,
                        ..
                    }) => path::field(path, k),
                    Some(Frame {
                        kind: FrameKind::Seq { items },
                        path,
                        ..
                    }) => path::index(path, items.len()),
                };
                if self.stack.is_empty() {
                    // The document "starts" at its first node, not at a `---` or comment.
                    self.start = line;
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                self.lines.insert(path.clone(), line);
                let kind = if matches!(event, Event::MappingStart(..)) {
                    FrameKind::Map {
                        map: Map::new(),
                        key: None,
                    }
                } else {
                    FrameKind::Seq { items: Vec::new() }
                };
                self.stack.push(Frame {
                    kind,
                    path,
                    anchor,
                    size: 1,
                });
                *values += 1;
                return Ok(());
            }
            Event::MappingEnd | Event::SequenceEnd => match self.stack.pop() {
                Some(Frame {
                    kind: FrameKind::Map { map, .. },
                    anchor,
                    size,
                    ..
                }) => (Value::Object(map), anchor, size),
                Some(Frame {
                    kind: FrameKind::Seq { items },
                    anchor,
                    size,
                    ..
                }) => (Value::Array(items), anchor, size),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        if *values > MAX_VALUES {
            return Err(too_big());
        }
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(size);
        match &mut parent.kind {
            FrameKind::Map { map, key } => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => return Err("mapping keys must be plain strings".into()),
            },
            FrameKind::Seq { items } => {
                self.lines
                    .insert(path::index(&parent.path, items.len()), line);
                items.push(value);
            }
        }
        Ok(())
    }
}

fn too_big() -> String {
    format!("file expands to more than {MAX_VALUES} values")
}

/// yaml-rust2 counts lines from 1 and columns from 0.
fn line_of(mark: &Marker) -> usize {
    mark.line().max(1)
}

/// YAML 1.2 core schema for plain (unquoted) scalars: null, booleans, integers, floats;
/// anything else is a string.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
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
