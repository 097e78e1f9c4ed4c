//! Strictness: framing, field syntax, request-line forms and Host. Each rule has accepted
//! and refused cases.

use super::*;
#[test]
fn framing_accepted() {
    let cases: &[(&[u8], RequestBody)] = &[
        (b"Content-Length: 5\r\n", RequestBody::Length(5)),
        (b"Content-Length: 0\r\n", RequestBody::Length(0)),
        (b"Content-Length: 0005\r\n", RequestBody::Length(5)),
        (b"Content-Length:   5\t\r\n", RequestBody::Length(5)), // OWS is not part of the value
        (
            b"Content-Length: 18446744073709551615\r\n",
            RequestBody::Length(u64::MAX),
        ),
        (b"Transfer-Encoding: chunked\r\n", RequestBody::Chunked),
        (b"transfer-encoding: CHUNKED\r\n", RequestBody::Chunked),
        (b"Transfer-Encoding: , chunked\r\n", RequestBody::Chunked), // empty list elements
        (
            b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n",
            RequestBody::Chunked,
        ),
        (b"", RequestBody::None),
    ];
    for (fields, body) in cases {
        let input = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], fields, b"\r\n"].concat();
        assert_eq!(
            ok(&input).body,
            *body,
            "{:?}",
            String::from_utf8_lossy(fields)
        );
    }
}

#[test]
fn smuggling_attempts_are_refused() {
    use RequestError::*;
    let cases: &[(&[u8], RequestError)] = &[
        (
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            BadTransferEncoding,
        ),
        (
            b"Content-Length: 5\r\nContent-Length: 5\r\n",
            BadContentLength,
        ),
        (
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            BadContentLength,
        ),
        (b"Content-Length: +5\r\n", BadContentLength),
        (b"Content-Length: -5\r\n", BadContentLength),
        (b"Content-Length: 5 5\r\n", BadContentLength),
        (b"Content-Length: \xa05\r\n", BadContentLength),
        (b"Content-Length: 5,5\r\n", BadContentLength),
        (b"Content-Length: 5, 5\r\n", BadContentLength),
        (b"Content-Length: 0x5\r\n", BadContentLength),
        (b"Content-Length: 5.0\r\n", BadContentLength),
        (b"Content-Length:\r\n", BadContentLength),
        (
            b"Content-Length: 18446744073709551616\r\n",
            BadContentLength,
        ),
        (b"Transfer-Encoding: chunked, gzip\r\n", BadTransferEncoding),
        (b"Transfer-Encoding: gzip\r\n", BadTransferEncoding),
        (b"Transfer-Encoding: gzip, chunked\r\n", BadTransferEncoding),
        (
            b"Transfer-Encoding: chunked, chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
        ),
        (b"Transfer-Encoding: xchunked\r\n", BadTransferEncoding),
        (b"Transfer-Encoding: chunked;x=1\r\n", BadTransferEncoding),
        (b"Transfer-Encoding: identity\r\n", BadTransferEncoding),
        (b"Transfer-Encoding: \"chunked\"\r\n", BadTransferEncoding),
        (b"Transfer-Encoding:\r\n", BadTransferEncoding),
        (
            b"Transfer-Encoding: chunked\r\n folded\r\n",
            Malformed("obs_fold"),
        ),
        (b"X-A: b\r\n\tfolded\r\n", Malformed("obs_fold")),
        (
            b"Transfer-Encoding : chunked\r\n",
            Malformed("bad_header_name"),
        ),
        (b"Content-Length\t: 5\r\n", Malformed("bad_header_name")),
        (b"X-A: b\nContent-Length: 5\r\n", Malformed("bare_lf")),
        (b"X-A: b\n", Malformed("bare_lf")),
        (b"X-A: a\x00b\r\n", Malformed("bad_header_value")),
        (b"X-A: a\rb\r\n", Malformed("bad_header_value")),
        (b"X-A: a\x01b\r\n", Malformed("bad_header_value")),
        (b"X-A: a\x7fb\r\n", Malformed("bad_header_value")),
        (b"X(A): b\r\n", Malformed("bad_header_name")),
        (b"X A: b\r\n", Malformed("bad_header_name")),
        (b": b\r\n", Malformed("bad_header_name")),
        (b"Host: b\r\n", DuplicateHost),
        (b"host: a\r\n", DuplicateHost),
    ];
    for (fields, expected) in cases {
        let input = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], fields, b"\r\n"].concat();
        assert_eq!(
            err(&input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(fields)
        );
        assert_eq!(expected.status(), 400);
    }
    // Transfer-Encoding on HTTP/1.0: even chunked.
    assert_eq!(
        err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        BadTransferEncoding
    );
    // A bare LF ending the request line or the head.
    assert_eq!(
        err(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        Malformed("bare_lf")
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
        Malformed("bare_lf")
    );
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\n\n"), Malformed("bare_lf"));
    // Whitespace before the first field.
    assert_eq!(
        err(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        Malformed("obs_fold")
    );
}

#[test]
fn field_values_allow_htab_and_obs_text() {
    let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\tb \xc3\xa9\xff\r\n\r\n");
    assert_eq!(&head.headers[1].value[..], b"a\tb \xc3\xa9\xff");
}

#[test]
fn request_line_checks() {
    use RequestError::*;
    let cases: &[(&[u8], RequestError)] = &[
        (b"GET / HTTP/2.0", UnsupportedVersion),
        (b"GET / HTTP/1.2", UnsupportedVersion),
        (b"GET / HTTP/3", UnsupportedVersion),
        (b"PRI * HTTP/2.0", UnsupportedVersion),
        (b"GET / http/1.1", Malformed("bad_version")),
        (b"GET / FOO/1.1", Malformed("bad_version")),
        (b"GET / HTTP/1.1 ", Malformed("bad_request_line")),
        (b"GET  / HTTP/1.1", Malformed("bad_target")),
        (b"GE(T / HTTP/1.1", Malformed("bad_method")),
        (b" GET / HTTP/1.1", Malformed("bad_method")),
        (b"\x16\x03\x01\x02\x00", Malformed("bad_method")),
        (b"GET /a\x01b HTTP/1.1", Malformed("bad_target")),
        (b"GET /a b HTTP/1.1", Malformed("bad_version")),
        (b"GET /a#frag HTTP/1.1", Malformed("bad_target")),
        (b"GET * HTTP/1.1", Malformed("bad_target")),
        (b"OPTIONS *x HTTP/1.1", Malformed("bad_target")),
        (b"GET a.example:443 HTTP/1.1", Malformed("bad_target")),
        (b"GET ftp://a.example/ HTTP/1.1", Malformed("bad_target")),
        (b"GET http:///p HTTP/1.1", Malformed("bad_target")),
        (
            b"GET http://user@a.example/ HTTP/1.1",
            Malformed("bad_target"),
        ),
        (b"GET http://a.example?q HTTP/1.1", Malformed("bad_target")),
        (b"GET http://a\\b/ HTTP/1.1", Malformed("bad_target")),
        (b"CONNECT / HTTP/1.1", Malformed("bad_target")),
        (b"CONNECT a.example HTTP/1.1", Malformed("bad_target")),
        (b"CONNECT a.example: HTTP/1.1", Malformed("bad_target")),
        (b"CONNECT :443 HTTP/1.1", Malformed("bad_target")),
        (
            b"CONNECT http://a.example:443 HTTP/1.1",
            Malformed("bad_target"),
        ),
    ];
    for (line, expected) in cases {
        let input = [line, &b"\r\nHost: a\r\n\r\n"[..]].concat();
        assert_eq!(
            err(&input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(UnsupportedVersion.status(), 505);
    assert_eq!(Malformed("bad_target").status(), 400);
}

#[test]
fn target_forms_and_authority() {
    // (request line, host field, path, path_and_query, authority)
    type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8], Option<&'a [u8]>);
    let cases: &[Case<'_>] = &[
        (
            b"GET /p?q HTTP/1.1",
            b"Host: h.example\r\n",
            b"/p",
            b"/p?q",
            Some(b"h.example"),
        ),
        (b"GET /p HTTP/1.1", b"Host:\r\n", b"/p", b"/p", Some(b"")),
        (b"GET /p HTTP/1.0", b"", b"/p", b"/p", None),
        (
            b"GET http://A.example:8080/p?q HTTP/1.1",
            b"Host: other\r\n",
            b"/p",
            b"/p?q",
            Some(b"A.example:8080"),
        ),
        (
            b"GET HTTPS://a.example HTTP/1.1",
            b"",
            b"/",
            b"/",
            Some(b"a.example"),
        ),
        (
            b"GET http://[::1]:80/x HTTP/1.1",
            b"",
            b"/x",
            b"/x",
            Some(b"[::1]:80"),
        ),
        (
            b"OPTIONS http://a.example HTTP/1.1",
            b"",
            b"*",
            b"*",
            Some(b"a.example"),
        ),
        (
            b"OPTIONS * HTTP/1.1",
            b"Host: a\r\n",
            b"*",
            b"*",
            Some(b"a"),
        ),
        (
            b"CONNECT a.example:443 HTTP/1.1",
            b"",
            b"a.example:443",
            b"a.example:443",
            Some(b"a.example:443"),
        ),
        (
            b"CONNECT [::1]:443 HTTP/1.1",
            b"Host: x\r\n",
            b"[::1]:443",
            b"[::1]:443",
            Some(b"[::1]:443"),
        ),
    ];
    for (line, host, path, pq, authority) in cases {
        let input = [line, &b"\r\n"[..], host, b"\r\n"].concat();
        let head = ok(&input);
        assert_eq!(head.path(), *path, "{:?}", String::from_utf8_lossy(line));
        assert_eq!(head.path_and_query(), *pq);
        assert_eq!(head.authority.as_deref(), *authority);
    }
}

#[test]
fn host_checks() {
    use RequestError::*;
    assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), MissingHost);
    assert_eq!(err(b"OPTIONS * HTTP/1.1\r\n\r\n"), MissingHost);
    assert_eq!(
        err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        DuplicateHost
    );
    // Also when an absolute-form target overrides it.
    assert_eq!(
        err(b"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        DuplicateHost
    );
    for bad in [&b"a b"[..], b"a/b", b"user@a", b"a?b", b"a\"b", b"\xc3\xa9"] {
        let input = [&b"GET / HTTP/1.1\r\nHost: "[..], bad, b"\r\n\r\n"].concat();
        assert_eq!(
            err(&input),
            Malformed("bad_host"),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for good in [
        &b"a.example"[..],
        b"a.example:8080",
        b"[::1]:80",
        b"xn--bcher-kva.example",
        b"10.0.0.1",
    ] {
        let input = [&b"GET / HTTP/1.1\r\nHost: "[..], good, b"\r\n\r\n"].concat();
        assert_eq!(ok(&input).authority.as_deref(), Some(good));
    }
    assert_eq!(MissingHost.status(), 400);
    assert_eq!(DuplicateHost.status(), 400);
}
