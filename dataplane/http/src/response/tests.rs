// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;

use super::*;

fn parse(input: &[u8], method: &Method) -> Result<Option<ResponseHead>, ResponseError> {
    let mut buf = BytesMut::from(input);
    parse_response(&mut buf, &Limits::default(), method)
}

fn ok(input: &[u8], method: &Method) -> ResponseHead {
    match parse(input, method) {
        Ok(Some(head)) => head,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn err(input: &[u8]) -> ResponseError {
    match parse(input, &Method::Get) {
        Err(e) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

#[test]
fn parses_a_response_and_leaves_the_body() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhelloHTTP/1.1"[..],
    );
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let head = parse_response(&mut buf, &Limits::default(), &Method::Get)
        .unwrap()
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(&head.reason[..], b"OK");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.body, ResponseBody::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.headers.len(), 2);
    assert_eq!(head.header("server").map(|v| &v[..]), Some(&b"x"[..]));
    assert!(range.contains(&(head.headers[1].value.as_ptr() as usize)));
    assert_eq!(&buf[..], b"helloHTTP/1.1");
}

#[test]
fn framing_table() {
    use ResponseBody::*;
    // (request method, head, body, keep_alive)
    let cases: &[(Method, &[u8], ResponseBody, bool)] = &[
        (
            Method::Head,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
            None,
            true,
        ),
        (
            Method::Head,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
            None,
            true,
        ),
        (Method::Head, b"HTTP/1.1 200 OK\r\n", None, true),
        (Method::Get, b"HTTP/1.1 100 Continue\r\n", None, true),
        (
            Method::Get,
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n",
            None,
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n",
            None,
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n",
            None,
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n",
            None,
            true,
        ),
        (
            Method::Connect,
            b"HTTP/1.1 200 Connection Established\r\n",
            None,
            true,
        ),
        (
            Method::Connect,
            b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n",
            Length(2),
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            Length(5),
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
            Length(0),
            true,
        ),
        (
            Method::Post,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
            Chunked,
            true,
        ),
        (
            Method::Get,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n",
            Chunked,
            true,
        ),
        (Method::Get, b"HTTP/1.1 200 OK\r\n", UntilClose, false),
        (
            Method::Get,
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n",
            UntilClose,
            false,
        ),
        (
            Method::Get,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n",
            Length(1),
            false,
        ),
        (
            Method::Get,
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n",
            Length(1),
            false,
        ),
        (
            Method::Get,
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n",
            Length(1),
            true,
        ),
        (Method::Get, b"HTTP/1.0 200 OK\r\n", UntilClose, false),
    ];
    for (method, head, body, keep_alive) in cases {
        let input = [head, &b"\r\n"[..]].concat();
        let parsed = ok(&input, method);
        assert_eq!(
            (parsed.body, parsed.keep_alive),
            (*body, *keep_alive),
            "{method:?} {:?}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn ambiguous_framing_is_an_error() {
    use ResponseError::*;
    let cases: &[(&[u8], ResponseError)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n",
            BadTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n",
            BadContentLength,
        ),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n", Malformed("obs_fold")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n",
            Malformed("bad_header_name"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x00\r\n",
            Malformed("bad_header_value"),
        ),
        (
            b"HTTP/1.1 200 OK\nContent-Length: 5\r\n",
            Malformed("bare_lf"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\n",
            Malformed("bare_lf"),
        ),
        (b"HTTP/1.1 099 Low\r\n", Malformed("bad_status")),
        (b"HTTP/1.1 20 OK\r\n", Malformed("bad_status")),
        (b"HTTP/1.1 2000 OK\r\n", Malformed("bad_status")),
        (b"HTTP/2.0 200 OK\r\n", Malformed("bad_version")),
        (b"HTTP/1.1 200 O\x01K\r\n", Malformed("bad_status")),
        (b"ICY 200 OK\r\n", Malformed("bad_version")),
    ];
    for (head, expected) in cases {
        let input = [head, &b"\r\n"[..]].concat();
        assert_eq!(
            err(&input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(head)
        );
        assert_eq!(expected.status(), 502);
    }
}

#[test]
fn reason_phrase_as_sent() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"HTTP/1.1 200 OK\r\n\r\n", b"OK"),
        (b"HTTP/1.1 200 \r\n\r\n", b""),
        (b"HTTP/1.1 200\r\n\r\n", b""),
        (b"HTTP/1.1 404 Not  Found \r\n\r\n", b"Not  Found "),
        (
            b"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\r\n\r\n",
            b"D\xc3\xa9j\xc3\xa0",
        ),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", b"OK"),
    ];
    for (input, reason) in cases {
        assert_eq!(&ok(input, &Method::Get).reason[..], *reason);
    }
}

#[test]
fn partial_heads_at_every_split_point() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"HTTP/1.0 404 Not Found\r\nX-A:  b \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    ] {
        let mut whole_buf = BytesMut::from(input);
        let whole = parse_response(&mut whole_buf, &Limits::default(), &Method::Get);
        let head_len = if whole.is_ok() {
            input.len() - whole_buf.len()
        } else {
            input.len()
        };
        for split in 0..head_len {
            let mut buf = BytesMut::from(&input[..split]);
            match parse_response(&mut buf, &Limits::default(), &Method::Get) {
                Ok(None) => {}
                Err(e) => {
                    assert_eq!(Err(e), whole);
                    continue;
                }
                Ok(Some(head)) => panic!("prefix {split} parsed: {head:?}"),
            }
            buf.extend_from_slice(&input[split..]);
            assert_eq!(
                parse_response(&mut buf, &Limits::default(), &Method::Get),
                whole
            );
            assert_eq!(buf.len(), whole_buf.len());
        }
    }
}

#[test]
fn limits() {
    let limits = Limits {
        max_head_bytes: 64,
        max_headers: 2,
        ..Limits::default()
    };
    let parse = |input: &[u8]| parse_response(&mut BytesMut::from(input), &limits, &Method::Get);
    let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(64));
    assert_eq!(parse(long.as_bytes()), Err(ResponseError::HeadTooLarge));
    assert_eq!(
        parse(&long.as_bytes()[..64]),
        Err(ResponseError::HeadTooLarge)
    );
    assert_eq!(parse(&long.as_bytes()[..63]), Ok(None));
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
        Err(ResponseError::TooManyHeaders)
    );
    assert!(
        parse(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n")
            .unwrap()
            .is_some()
    );
    for e in [
        ResponseError::Malformed("bad_status"),
        ResponseError::BadContentLength,
        ResponseError::BadTransferEncoding,
        ResponseError::HeadTooLarge,
        ResponseError::TooManyHeaders,
    ] {
        assert!(
            e.reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        );
    }
}

#[test]
fn large_partial_heads_must_start_like_one() {
    let good = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(3000));
    assert_eq!(parse(good.as_bytes(), &Method::Get), Ok(None));
    let bad = format!("<html>{}", "a".repeat(3000));
    assert_eq!(
        parse(bad.as_bytes(), &Method::Get),
        Err(ResponseError::Malformed("bad_version"))
    );
}
