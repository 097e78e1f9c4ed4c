// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;

use super::*;

mod strictness;

fn parse(input: &[u8]) -> Result<Option<RequestHead>, RequestError> {
    parse_with(input, &Limits::default())
}

fn parse_with(input: &[u8], limits: &Limits) -> Result<Option<RequestHead>, RequestError> {
    let mut buf = BytesMut::from(input);
    parse_request(&mut buf, limits)
}

fn ok(input: &[u8]) -> RequestHead {
    match parse(input) {
        Ok(Some(head)) => head,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn err(input: &[u8]) -> RequestError {
    match parse(input) {
        Err(e) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn parses_a_simple_request_without_copying() {
    let mut buf = BytesMut::from(
        &b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Empty:\r\n\r\n"[..],
    );
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let head = parse_request(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    assert_eq!(head.method, Method::Get);
    assert_eq!(&head.target[..], b"/a/b?x=1");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.path(), b"/a/b");
    assert_eq!(head.path_and_query(), b"/a/b?x=1");
    assert_eq!(head.authority.as_deref(), Some(&b"example.com"[..]));
    assert_eq!(head.body, RequestBody::None);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
    assert_eq!(head.upgrade, None);
    let fields: Vec<(&[u8], &[u8])> = head
        .headers
        .iter()
        .map(|h| (&h.name[..], &h.value[..]))
        .collect();
    assert_eq!(
        fields,
        [
            (&b"Host"[..], &b"example.com"[..]),
            (b"Accept", b"*/*"),
            (b"X-Empty", b"")
        ]
    );
    // Zero copy: the parts point into the read buffer's memory.
    for part in [&head.target, &head.headers[0].name, &head.headers[1].value] {
        assert!(range.contains(&(part.as_ptr() as usize)));
    }
    assert_eq!(head.header("accept").map(|v| &v[..]), Some(&b"*/*"[..]));
    assert_eq!(
        head.header("HOST").map(|v| &v[..]),
        Some(&b"example.com"[..])
    );
    assert_eq!(head.header("missing"), None);
}

#[test]
fn pipelined_requests_parse_in_order_and_leave_the_rest() {
    let mut buf = BytesMut::from(
        &b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\nHost: a\r\n\r\nGET /4"[..],
    );
    let limits = Limits::default();
    let first = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(&first.target[..], b"/1");
    let second = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(&second.target[..], b"/2");
    assert_eq!(second.method, Method::Post);
    assert_eq!(second.body, RequestBody::Length(5));
    assert!(buf.starts_with(b"hello"));
    let _ = buf.split_to(5);
    let third = parse_request(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(&third.target[..], b"/3");
    assert_eq!(&buf[..], b"GET /4");
    assert_eq!(parse_request(&mut buf, &limits), Ok(None));
    assert_eq!(&buf[..], b"GET /4");
}

/// Every proper prefix gives None (or, for invalid input, the final error) and leaves the
/// buffer alone; the whole input gives the one-shot result.
fn check_every_split(input: &[u8]) {
    let mut buf = BytesMut::from(input);
    let whole = parse_request(&mut buf, &Limits::default());
    let rest_len = buf.len();
    let head_len = if whole.is_ok() {
        input.len() - rest_len
    } else {
        input.len()
    };
    for split in 0..head_len {
        let mut buf = BytesMut::from(&input[..split]);
        match parse_request(&mut buf, &Limits::default()) {
            Ok(None) => assert_eq!(&buf[..], &input[..split]),
            Err(e) => {
                assert_eq!(
                    Err(e),
                    whole,
                    "prefix {split} of {:?}",
                    String::from_utf8_lossy(input)
                );
                continue;
            }
            Ok(Some(head)) => panic!("prefix {split} parsed: {head:?}"),
        }
        buf.extend_from_slice(&input[split..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default()),
            whole,
            "split at {split}"
        );
        assert_eq!(buf.len(), rest_len);
    }
}

#[test]
fn partial_heads_at_every_split_point() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"\r\n\r\nPOST /upload?x=y HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 3\r\nX-A:  b \r\n\r\nabc",
        b"PUT http://h.example/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    ] {
        check_every_split(input);
    }
}

#[test]
fn leading_empty_lines_are_skipped() {
    let mut buf = BytesMut::from(&b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nrest"[..]);
    let head = parse_request(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(&head.target[..], b"/");
    assert_eq!(&buf[..], b"rest");
    assert_eq!(
        err(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        RequestError::Malformed("bare_lf")
    );
    assert_eq!(parse(b"\r\n\r\n"), Ok(None));
}

#[test]
fn request_line_limit_on_partial_and_complete_input() {
    let limits = Limits {
        max_request_line_bytes: 64,
        ..Limits::default()
    };
    // "GET " + target + " HTTP/1.1\r\n" is 15 bytes around the target.
    let line = |target_len: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(target_len - 1));
    let fits = format!("{}Host: a\r\n\r\n", line(64 - 15));
    assert!(parse_with(fits.as_bytes(), &limits).unwrap().is_some());
    let over = format!("{}Host: a\r\n\r\n", line(64 - 14));
    assert_eq!(
        parse_with(over.as_bytes(), &limits),
        Err(RequestError::UriTooLong)
    );
    // Partial: no LF within the limit.
    let partial = format!("GET /{}", "a".repeat(64));
    assert_eq!(
        parse_with(partial.as_bytes(), &limits),
        Err(RequestError::UriTooLong)
    );
    assert_eq!(parse_with(&partial.as_bytes()[..63], &limits), Ok(None));
    // Default: 16 KiB, on a long partial line too (it skips the eager parse).
    let long = format!("GET /{}", "a".repeat(16 * 1024));
    assert_eq!(parse(long.as_bytes()), Err(RequestError::UriTooLong));
    assert_eq!(RequestError::UriTooLong.status(), 414);
}

#[test]
fn head_limit_on_partial_and_complete_input() {
    let limits = Limits {
        max_head_bytes: 100,
        ..Limits::default()
    };
    let head = |filler: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(filler)
        )
    };
    let exact = head(100 - head(0).len());
    assert_eq!(exact.len(), 100);
    assert!(parse_with(exact.as_bytes(), &limits).unwrap().is_some());
    let over = head(101 - head(0).len());
    assert_eq!(
        parse_with(over.as_bytes(), &limits),
        Err(RequestError::HeadTooLarge)
    );
    assert_eq!(
        parse_with(&over.as_bytes()[..100], &limits),
        Err(RequestError::HeadTooLarge)
    );
    assert_eq!(parse_with(&over.as_bytes()[..99], &limits), Ok(None));
    // Default 60 KiB on partial input past the eager-parse size.
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(60 * 1024));
    assert_eq!(parse(big.as_bytes()), Err(RequestError::HeadTooLarge));
    assert_eq!(RequestError::HeadTooLarge.status(), 431);
}

#[test]
fn header_count_limit() {
    let with = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s
    };
    assert_eq!(ok(with(100).as_bytes()).headers.len(), 100);
    assert_eq!(err(with(101).as_bytes()), RequestError::TooManyHeaders);
    // On partial input too.
    let partial = with(101);
    assert_eq!(
        parse(&partial.as_bytes()[..partial.len() - 2]),
        Err(RequestError::TooManyHeaders)
    );
    // Past the stack slots.
    let limits = Limits {
        max_headers: 300,
        ..Limits::default()
    };
    let head = parse_with(with(300).as_bytes(), &limits).unwrap().unwrap();
    assert_eq!(head.headers.len(), 300);
    assert_eq!(&head.headers[299].name[..], b"X-299");
    assert_eq!(
        parse_with(with(301).as_bytes(), &limits),
        Err(RequestError::TooManyHeaders)
    );
    assert_eq!(RequestError::TooManyHeaders.status(), 431);
}

#[test]
fn keep_alive_by_version_and_connection() {
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"HTTP/1.1", b"", true),
        (b"HTTP/1.1", b"Connection: close\r\n", false),
        (b"HTTP/1.1", b"Connection: Close\r\n", false),
        (b"HTTP/1.1", b"Connection: keep-alive, close\r\n", false),
        (
            b"HTTP/1.1",
            b"Connection: foo\r\nConnection: close\r\n",
            false,
        ),
        (b"HTTP/1.1", b"Connection: keep-alive\r\n", true),
        (b"HTTP/1.0", b"", false),
        (b"HTTP/1.0", b"Connection: keep-alive\r\n", true),
        (b"HTTP/1.0", b"Connection: Keep-Alive\r\n", true),
        (b"HTTP/1.0", b"Connection: keep-alive, close\r\n", false),
    ];
    for (version, fields, keep_alive) in cases {
        let input = [&b"GET / "[..], version, b"\r\nHost: a\r\n", fields, b"\r\n"].concat();
        assert_eq!(
            ok(&input).keep_alive,
            *keep_alive,
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn expect_continue() {
    let cases: &[(&[u8], &[u8], bool)] = &[
        (b"HTTP/1.1", b"Expect: 100-continue\r\n", true),
        (b"HTTP/1.1", b"expect: 100-Continue\r\n", true),
        (b"HTTP/1.1", b"Expect: something-else\r\n", false),
        (b"HTTP/1.1", b"", false),
        (b"HTTP/1.0", b"Expect: 100-continue\r\n", false),
    ];
    for (version, fields, expected) in cases {
        let input = [
            &b"PUT / "[..],
            version,
            b"\r\nHost: a\r\nContent-Length: 1\r\n",
            fields,
            b"\r\n",
        ]
        .concat();
        assert_eq!(
            ok(&input).expect_continue,
            *expected,
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn upgrade_needs_the_connection_option_and_http11() {
    type Case<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);
    let cases: &[Case<'_>] = &[
        (
            b"HTTP/1.1",
            b"Connection: Upgrade\r\nUpgrade: websocket\r\n",
            Some(b"websocket"),
        ),
        (
            b"HTTP/1.1",
            b"Upgrade: h2c, websocket\r\nConnection: keep-alive, upgrade\r\n",
            Some(b"h2c, websocket"),
        ),
        (b"HTTP/1.1", b"Upgrade: websocket\r\n", None),
        (b"HTTP/1.1", b"Connection: upgrade\r\n", None),
        (
            b"HTTP/1.0",
            b"Connection: upgrade\r\nUpgrade: websocket\r\n",
            None,
        ),
    ];
    for (version, fields, expected) in cases {
        let input = [
            &b"GET /ws "[..],
            version,
            b"\r\nHost: a\r\n",
            fields,
            b"\r\n",
        ]
        .concat();
        assert_eq!(
            ok(&input).upgrade.as_deref(),
            *expected,
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn methods() {
    let cases: &[(&[u8], Method, bool)] = &[
        (b"GET", Method::Get, true),
        (b"HEAD", Method::Head, true),
        (b"POST", Method::Post, false),
        (b"PUT", Method::Put, true),
        (b"DELETE", Method::Delete, true),
        (b"OPTIONS", Method::Options, true),
        (b"TRACE", Method::Trace, true),
        (b"PATCH", Method::Patch, false),
        (
            b"PROPFIND",
            Method::Other(Bytes::from_static(b"PROPFIND")),
            false,
        ),
        (b"get", Method::Other(Bytes::from_static(b"get")), false),
    ];
    for (token, method, idempotent) in cases {
        let input = [token, &b" / HTTP/1.1\r\nHost: a\r\n\r\n"[..]].concat();
        let head = ok(&input);
        assert_eq!(head.method, *method);
        assert_eq!(head.method.as_bytes(), *token);
        assert_eq!(head.method.is_idempotent(), *idempotent);
        assert_eq!(Method::from_bytes(Bytes::copy_from_slice(token)), *method);
    }
    assert!(!Method::Connect.is_idempotent());
}

#[test]
fn error_reasons_are_snake_case_labels() {
    use RequestError::*;
    let all = [
        UriTooLong,
        HeadTooLarge,
        TooManyHeaders,
        Malformed("bare_lf"),
        BadContentLength,
        BadTransferEncoding,
        MissingHost,
        DuplicateHost,
        UnsupportedVersion,
    ];
    for e in all {
        let reason = e.reason();
        assert!(
            !reason.is_empty() && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
    }
    assert_eq!(Malformed("obs_fold").reason(), "obs_fold");
}

#[test]
fn other_protocols_are_refused_at_once_even_when_large() {
    // A TLS ClientHello over 2 KiB (post-quantum key shares): no LF, no empty line.
    let mut hello = vec![0x16, 0x03, 0x01, 0x08, 0x00, 0x01];
    hello.resize(2100, 0x2a);
    assert_eq!(parse(&hello), Err(RequestError::Malformed("bad_method")));
    // A large partial head that is fine so far waits.
    let long = format!(
        "POST /{} HTTP/1.1\r\nHost: a\r\nX: {}",
        "a".repeat(1000),
        "b".repeat(2000)
    );
    assert_eq!(parse(long.as_bytes()), Ok(None));
}
