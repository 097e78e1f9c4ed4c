use serde_json::json;

use super::*;

fn parsed(text: &str) -> (Value, Lines) {
    match parse(text, "t.yaml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn error(text: &str) -> ConfigError {
    match parse(text, "t.yaml") {
        Ok(p) => panic!("expected an error, got {:?}", p.0),
        Err(e) => e,
    }
}

fn line(lines: &Lines, path: &str) -> Option<usize> {
    lines.0.get(&normalize(path)).copied()
}

#[test]
fn plain_scalars_resolve_like_yaml_1_2() {
    let cases: &[(&str, Value)] = &[
        ("null", Value::Null),
        ("~", Value::Null),
        ("", Value::Null),
        ("true", json!(true)),
        ("False", json!(false)),
        ("yes", json!("yes")), // YAML 1.1 booleans are strings in 1.2
        ("10000", json!(10000)),
        ("-7", json!(-7)),
        ("+7", json!(7)),
        ("18446744073709551615", json!(18_446_744_073_709_551_615u64)),
        ("0x1F", json!(31)),
        ("0o17", json!(15)),
        ("1.5", json!(1.5)),
        ("1e3", json!(1000.0)),
        (".5", json!(0.5)),
        (".inf", json!("Infinity")),
        ("-.inf", json!("-Infinity")),
        (".nan", json!("NaN")),
        ("0.25s", json!("0.25s")),
        ("1.2.3", json!("1.2.3")),
        ("127.0.0.1", json!("127.0.0.1")),
        ("e3", json!("e3")),
        ("1e", json!("1e")),
        ("-", json!("-")),
    ];
    for (text, want) in cases {
        assert_eq!(&resolve_plain(text), want, "{text:?}");
    }
}

#[test]
fn quoted_and_tagged_scalars_stay_strings() {
    let (v, _) = parsed("a: \"10\"\nb: '0x10'\nc: !!str true\nd: 10\n");
    assert_eq!(v, json!({"a": "10", "b": "0x10", "c": "true", "d": 10}));
}

#[test]
fn records_the_line_of_every_field_and_item() {
    let text = "\
a:
  b: 1
  list:
  - x: 1
    y: 2
  - 7
c: [1,
    2]
";
    let (v, lines) = parsed(text);
    assert_eq!(
        v,
        json!({"a": {"b": 1, "list": [{"x": 1, "y": 2}, 7]}, "c": [1, 2]})
    );
    let cases: &[(&str, usize)] = &[
        ("a", 1),
        ("a.b", 2),
        ("a.list", 3),
        ("a.list[0]", 4),
        ("a.list[0].x", 4),
        ("a.list[0].y", 5),
        ("a.list[1]", 6),
        ("c", 7),
        ("c[1]", 8),
    ];
    for (path, want) in cases {
        assert_eq!(line(&lines, path), Some(*want), "{path}");
    }
    // Lookups fall back to the nearest enclosing field.
    let deep = FieldPath::root()
        .field("a")
        .field("list")
        .index(0)
        .field("missing");
    assert_eq!(lines.find(&deep), Some(4));
    // ... up to the document itself.
    assert_eq!(lines.find(&FieldPath::root().field("nowhere")), Some(1));
}

#[test]
fn camel_case_keys_share_lines_with_proto_names() {
    let (_, lines) = parsed("staticResources:\n  listeners: []\n");
    let p = FieldPath::root()
        .field("static_resources")
        .field("listeners");
    assert_eq!(lines.find(&p), Some(2));
}

#[test]
fn json_documents_parse_with_lines() {
    let text = "{\n  \"a\": {\n    \"b\": [1, 2],\n    \"c\": \"x\"\n  }\n}\n";
    let (v, lines) = parsed(text);
    assert_eq!(v, json!({"a": {"b": [1, 2], "c": "x"}}));
    assert_eq!(line(&lines, "a.c"), Some(4));
}

#[test]
fn type_key_goes_first() {
    let (v, _) = parsed("cfg:\n  z: 1\n  \"@type\": t\n  a: 2\n");
    let keys: Vec<&String> = v["cfg"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("@type"));
}

#[test]
fn anchors_and_aliases_expand() {
    let (v, _) = parsed("base: &b {port: 1}\ncopy: *b\nlist: [*b, *b]\n");
    assert_eq!(v["copy"], json!({"port": 1}));
    assert_eq!(v["list"], json!([{"port": 1}, {"port": 1}]));
}

#[test]
fn empty_document_is_an_empty_object() {
    for text in ["", "# only a comment\n", "---\n", "~\n"] {
        assert_eq!(parsed(text).0, json!({}), "{text:?}");
    }
}

#[test]
fn rejections_carry_a_line() {
    let nested = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let laughs = {
        let mut t = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            t.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        t
    };
    let cases: Vec<(String, &str, usize)> = vec![
        ("a: 1\na: 2\n".into(), "duplicate key `a`", 2),
        ("a: 1\n---\nb: 2\n".into(), "only one YAML document", 2),
        (
            "? [1, 2]\n: x\n".into(),
            "mapping keys must be plain strings",
            1,
        ),
        ("a: *nope\n".into(), "YAML", 1),
        ("a: [1, 2\nb: 3\n".into(), "YAML", 2),
        ("a:\n\tb: 1\n".into(), "YAML", 2),
        (nested, "nesting deeper than 64 levels", 1),
        (laughs, "more than 5000000 values", 7),
    ];
    for (text, want, want_line) in cases {
        let e = error(&text);
        assert!(e.message.contains(want), "{text:?}: {e}");
        assert_eq!(e.line, Some(want_line), "{text:?}: {e}");
        assert_eq!(e.file.as_deref(), Some("t.yaml"));
    }
}
