use crate::*;

#[test]
fn full_match_is_anchored() {
    let r = SafeRegex::new("a+|b").expect("valid");
    assert!(r.is_full_match(b"aaa"));
    assert!(r.is_full_match(b"b"));
    assert!(!r.is_full_match(b"ab"));
    assert!(!r.is_full_match(b"xaaa"));
    assert_eq!(r.pattern(), "a+|b");
    assert_eq!(format!("{r:?}"), "SafeRegex(\"a+|b\")");
}

#[test]
fn hostile_and_invalid_patterns_are_refused() {
    let long = "a".repeat(4097);
    let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    // (pattern, message part)
    let cases: Vec<(&str, &str)> = vec![
        (&long, "at most 4096"),
        ("a{1000}{1000}", "too complex"),
        ("(?:a{100}){100}{100}", "too complex"),
        (&nested, "invalid regex"),
        ("(", "invalid regex"),
        ("a{2,1}", "invalid regex"),
        ("(?P<n>a)(?P<n>b)", "invalid regex"),
        ("\\", "invalid regex"),
        ("(?<=a)b", "invalid regex"), // look-behind: not RE2
        ("(a)\\1", "invalid regex"),  // back-reference: not RE2
    ];
    for (pattern, part) in cases {
        match SafeRegex::new(pattern) {
            Ok(_) => panic!("{:.40} should be refused", pattern),
            Err(e) => assert!(e.to_string().contains(part), "{:.40}: {e}", pattern),
        }
    }
    // Just under the limits is fine.
    assert!(SafeRegex::new(&"a".repeat(4096)).is_ok());
    assert!(SafeRegex::new("a{100}").is_ok());
}

#[test]
fn rewrite_substitution() {
    let rr = |p: &str, s: &str| RegexRewrite::new(SafeRegex::new(p).expect("valid"), s.into());
    // (pattern, substitution, input, output)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "^/service/([^/]+)(/.*)$",
            "\\2/instance/\\1",
            "/service/foo/v1/api",
            Some("/v1/api/instance/foo"),
        ),
        (
            "one",
            "two",
            "/xxx/one/yyy/one/zzz",
            Some("/xxx/two/yyy/two/zzz"),
        ),
        (
            "^(.*?)one(.*)$",
            "\\1two\\2",
            "/xxx/one/yyy/one/zzz",
            Some("/xxx/two/yyy/one/zzz"),
        ),
        ("(?i)/xxx/", "/yyy/", "/aaa/XxX/bbb", Some("/aaa/yyy/bbb")),
        ("x", "\\\\", "axb", Some("a\\b")),
        ("x", "[\\0]", "axb", Some("a[x]b")),
        ("nomatch", "y", "/a", None),
        ("^", "/p", "/a", Some("/p/a")),
    ];
    for (p, s, input, want) in cases {
        let got = rr(p, s).expect("valid rewrite").apply(input.as_bytes());
        assert_eq!(got.as_deref(), want.map(str::as_bytes), "{p} {s} {input}");
    }
    for (p, s, part) in [
        ("(a)", "\\2", "group \\2 but the regex has 1"),
        ("a", "\\1", "has 0 capture"),
        ("a", "\\n", "a backslash must be followed"),
        ("a", "x\\", "a backslash must be followed"),
    ] {
        let e = rr(p, s).expect_err("refused");
        assert!(e.0.contains(part), "{p} {s}: {e}");
    }
}
