use crate::test_support::Vars;
use crate::*;

#[test]
fn template_parse_and_render() {
    let mut vars = Vars::new();
    vars.req = vars
        .req
        .header("x-user", "alice")
        .header("x-multi", "a")
        .header("x-multi", "b");
    // (template, rendered)
    let cases: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("", ""),
        ("100%%", "100%"),
        ("%%%%", "%%"),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.0.1:40000"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.1"),
        ("%DOWNSTREAM_REMOTE_PORT%", "40000"),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "[::1]:15001"),
        ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "::1"),
        ("%DOWNSTREAM_LOCAL_PORT%", "15001"),
        ("%UPSTREAM_REMOTE_ADDRESS%", ""),
        ("%HOSTNAME%", "node-1"),
        ("%PROTOCOL%", "HTTP/1.1"),
        ("user=%REQ(X-User)%;", "user=alice;"),
        ("%REQ(x-multi)%", "a,b"),
        ("[%REQ(x-absent)%]", "[]"),
        ("a %HOSTNAME% b %PROTOCOL% c", "a node-1 b HTTP/1.1 c"),
    ];
    for (t, want) in cases {
        let v = HeaderValue::parse(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        let mut out = Vec::new();
        v.render(&vars, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), *want, "{t}");
    }
    vars.upstream = Some("10.1.1.1:8080".parse().expect("literal"));
    let mut out = Vec::new();
    HeaderValue::parse("%UPSTREAM_REMOTE_ADDRESS%")
        .expect("valid")
        .render(&vars, &mut out);
    assert_eq!(out, b"10.1.1.1:8080");
    assert_eq!(
        HeaderValue::literal("x"),
        HeaderValue::parse("x").expect("valid")
    );
}

#[test]
fn template_errors() {
    // (template, message part)
    let cases: &[(&str, &str)] = &[
        ("50%", "unterminated variable"),
        ("%HOSTNAME", "unterminated variable"),
        ("%NOPE%", "%NOPE% is not supported"),
        ("%START_TIME%", "not supported"),
        ("%REQ(bad name)%", "is not a header name"),
        ("%REQ()%", "is not a header name"),
        ("a\r\nb", "CR, LF or NUL"),
        ("a\nb", "CR, LF or NUL"),
        ("a\0b", "CR, LF or NUL"),
    ];
    for (t, part) in cases {
        let e = HeaderValue::parse(t).expect_err(t);
        assert!(e.contains(part), "{t}: {e}");
    }
}

#[test]
fn names_and_values() {
    for ok in ["x-a", "X_B", "a!#$%&'*+-.^_`|~9"] {
        assert!(valid_header_name(ok), "{ok}");
    }
    for bad in ["", "a b", "a:b", ":path", "a\"", "é"] {
        assert!(!valid_header_name(bad), "{bad}");
    }
    assert!(valid_header_value(b"a b\tc"));
    assert!(!valid_header_value(b"a\rb"));
}

fn add(name: &str, value: &str, action: AppendAction) -> HeaderAppend {
    HeaderAppend {
        name: name.into(),
        value: HeaderValue::parse(value).expect("valid"),
        action,
        keep_empty_value: false,
    }
}

fn mutation(add: Vec<HeaderAppend>, remove: &[&str]) -> HeaderMutation {
    HeaderMutation {
        add,
        remove: remove.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn append_actions() {
    use AppendAction::*;
    let original = ["x-present"];
    let has = |n: &str| original.contains(&n);
    let vars = Vars::new();
    // (mutations applied in order, planned removals, planned additions)
    type Case = (
        Vec<HeaderMutation>,
        Vec<&'static str>,
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            vec![mutation(
                vec![add("x-present", "1", AppendIfExistsOrAdd)],
                &[],
            )],
            vec![],
            vec![("x-present", "1")],
        ),
        (
            vec![mutation(vec![add("x-new", "1", AppendIfExistsOrAdd)], &[])],
            vec![],
            vec![("x-new", "1")],
        ),
        (
            vec![mutation(vec![add("x-present", "1", AddIfAbsent)], &[])],
            vec![],
            vec![],
        ),
        (
            vec![mutation(vec![add("x-new", "1", AddIfAbsent)], &[])],
            vec![],
            vec![("x-new", "1")],
        ),
        (
            vec![mutation(
                vec![add("x-present", "1", OverwriteIfExistsOrAdd)],
                &[],
            )],
            vec!["x-present"],
            vec![("x-present", "1")],
        ),
        (
            vec![mutation(
                vec![add("x-new", "1", OverwriteIfExistsOrAdd)],
                &[],
            )],
            vec!["x-new"],
            vec![("x-new", "1")],
        ),
        (
            vec![mutation(
                vec![add("x-present", "1", OverwriteIfExists)],
                &[],
            )],
            vec!["x-present"],
            vec![("x-present", "1")],
        ),
        (
            vec![mutation(vec![add("x-new", "1", OverwriteIfExists)], &[])],
            vec![],
            vec![],
        ),
        // Removal before addition within a level: the removed header no longer exists.
        (
            vec![mutation(
                vec![add("x-present", "1", AddIfAbsent)],
                &["x-present"],
            )],
            vec!["x-present"],
            vec![("x-present", "1")],
        ),
        (
            vec![mutation(
                vec![add("x-present", "1", OverwriteIfExists)],
                &["x-present"],
            )],
            vec!["x-present"],
            vec![],
        ),
        // An addition planned by a more specific level counts as existing for the next.
        (
            vec![
                mutation(vec![add("x-new", "route", AppendIfExistsOrAdd)], &[]),
                mutation(vec![add("x-new", "vhost", AddIfAbsent)], &[]),
            ],
            vec![],
            vec![("x-new", "route")],
        ),
        // Less specific levels win overwrites (Envoy's default order).
        (
            vec![
                mutation(vec![add("x-new", "route", AppendIfExistsOrAdd)], &[]),
                mutation(vec![add("x-new", "config", OverwriteIfExists)], &[]),
            ],
            vec!["x-new"],
            vec![("x-new", "config")],
        ),
        // A later level's removal drops what an earlier level added.
        (
            vec![
                mutation(
                    vec![
                        add("x-new", "route", AppendIfExistsOrAdd),
                        add("x-keep", "k", AppendIfExistsOrAdd),
                    ],
                    &[],
                ),
                mutation(vec![], &["x-new"]),
            ],
            vec!["x-new"],
            vec![("x-keep", "k")],
        ),
        // Appends keep order, duplicates included.
        (
            vec![mutation(
                vec![
                    add("x-a", "1", AppendIfExistsOrAdd),
                    add("x-a", "2", AppendIfExistsOrAdd),
                ],
                &[],
            )],
            vec![],
            vec![("x-a", "1"), ("x-a", "2")],
        ),
        // Empty values are skipped unless keep_empty_value.
        (
            vec![mutation(
                vec![add("x-e", "%REQ(x-none)%", AppendIfExistsOrAdd)],
                &[],
            )],
            vec![],
            vec![],
        ),
        (
            vec![mutation(
                vec![add("x-present", "", OverwriteIfExistsOrAdd)],
                &[],
            )],
            vec![],
            vec![],
        ),
    ];
    for (levels, remove, added) in cases {
        let mut e = HeaderEdits::default();
        for m in &levels {
            e.apply(m, &has, &vars);
        }
        let got_add: Vec<(&str, &str)> = e
            .add
            .iter()
            .map(|(n, v)| (n.as_str(), std::str::from_utf8(v).expect("utf8")))
            .collect();
        assert_eq!(
            (
                e.remove.iter().map(String::as_str).collect::<Vec<_>>(),
                got_add
            ),
            (remove, added),
            "{levels:?}"
        );
    }
    let mut keep = add("x-e", "", AppendIfExistsOrAdd);
    keep.keep_empty_value = true;
    let mut e = HeaderEdits::default();
    assert!(e.is_empty());
    e.apply(&mutation(vec![keep], &[]), &has, &vars);
    assert_eq!(e.add, vec![("x-e".to_string(), Vec::new())]);
    assert!(!e.is_empty());
    assert!(HeaderMutation::default().is_empty());
    assert!(!mutation(vec![], &["a"]).is_empty());
}
