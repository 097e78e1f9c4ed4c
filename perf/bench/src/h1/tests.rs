use super::*;

fn response(raw: &[u8], head_request: bool) -> ResponseHead {
    match parse_response_head(raw, head_request) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn response_framing_table() {
    let cases: &[(&[u8], bool, u16, Framing, bool)] = &[
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            false,
            200,
            Framing::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            200,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
            200,
            Framing::Chunked,
            true,
        ),
        // chunked wins over content-length
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            false,
            200,
            Framing::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            true,
            200,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
            false,
            204,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            false,
            304,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            false,
            100,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            false,
            200,
            Framing::UntilClose,
            false,
        ),
        (
            b"HTTP/1.1 500 Oops\r\ncontent-length: 1\r\nconnection: close\r\n\r\n",
            false,
            500,
            Framing::Length(1),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            false,
            200,
            Framing::Length(1),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\nConnection: Keep-Alive\r\n\r\n",
            false,
            200,
            Framing::Length(1),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: upgrade, close\r\ncontent-length: 1\r\n\r\n",
            false,
            200,
            Framing::Length(1),
            false,
        ),
    ];
    for &(raw, head_req, status, body, keep_alive) in cases {
        let h = response(raw, head_req);
        let what = String::from_utf8_lossy(raw);
        assert_eq!(h.len, raw.len(), "{what}");
        assert_eq!(h.status, status, "{what}");
        assert_eq!(h.body, body, "{what}");
        assert_eq!(h.keep_alive, keep_alive, "{what}");
    }
}

#[test]
fn response_head_incomplete_and_rejected() {
    let full = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
    for cut in 0..full.len() {
        assert_eq!(
            parse_response_head(&full[..cut], false),
            Ok(None),
            "cut {cut}"
        );
    }
    let bad: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        b"HTTX/1.1 200 OK\r\n\r\n",
    ];
    for raw in bad {
        assert!(
            parse_response_head(raw, false).is_err(),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    // Same length twice is allowed.
    let dup = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n";
    assert_eq!(response(dup, false).body, Framing::Length(5));
}

#[test]
fn request_heads() {
    let raw = b"POST /a/b?c=d HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc";
    let Ok(Some(r)) = parse_request_head(raw) else {
        panic!("not parsed");
    };
    assert_eq!(&raw[r.path.0..r.path.1], b"/a/b?c=d");
    assert_eq!(r.body, Framing::Length(3));
    assert!(r.keep_alive && !r.is_head);
    assert_eq!(r.len, raw.len() - 3);

    let raw = b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    let Ok(Some(r)) = parse_request_head(raw) else {
        panic!("not parsed");
    };
    assert_eq!(r.body, Framing::Chunked);
    assert!(!r.keep_alive);

    let Ok(Some(r)) = parse_request_head(b"HEAD /h HTTP/1.0\r\n\r\n") else {
        panic!("not parsed");
    };
    assert!(r.is_head && !r.keep_alive);
    assert_eq!(r.body, Framing::Empty);

    assert_eq!(
        parse_request_head(b"GET / HTTP/1.1\r\nhost: x\r\n"),
        Ok(None)
    );
    assert!(parse_request_head(b"GET / HTTP/1.1\r\ncontent-length: -1\r\n\r\n").is_err());
}

/// Feeds `body` to a skipper in pieces of `step` bytes; returns bytes consumed.
fn skip_in_steps(framing: Framing, body: &[u8], step: usize) -> Result<usize, H1Error> {
    let mut s = BodySkipper::new(framing);
    let mut used = 0;
    while !s.is_done() && used < body.len() {
        let end = (used + step).min(body.len());
        let n = s.skip(&body[used..end])?;
        used += n;
        if n == 0 {
            break;
        }
    }
    if s.is_done() {
        Ok(used)
    } else {
        Err(H1Error::UnexpectedEof)
    }
}

#[test]
fn chunked_bodies_in_any_split() {
    let bodies: &[&[u8]] = &[
        b"0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5;name=val\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
        b"3\r\nabc\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n",
        b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
    ];
    for body in bodies {
        // Trailing bytes belong to the next message and must not be eaten.
        let mut with_next = body.to_vec();
        with_next.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for step in 1..=body.len() {
            assert_eq!(
                skip_in_steps(Framing::Chunked, &with_next, step),
                Ok(body.len()),
                "{} step {step}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[test]
fn chunked_rejects_bad_framing() {
    let bad: &[&[u8]] = &[
        b"x\r\n",
        b"\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloX\r\n",
        b"5;ext\n",
        b"0\r\nbad\ntrailer\r\n\r\n",
        b"11111111111111111\r\n",
    ];
    for body in bad {
        assert!(
            matches!(
                skip_in_steps(Framing::Chunked, body, 1),
                Err(H1Error::Chunked)
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn length_and_close_delimited() {
    assert_eq!(skip_in_steps(Framing::Length(4), b"abcdEXTRA", 3), Ok(4));
    assert_eq!(skip_in_steps(Framing::Empty, b"", 1), Ok(0));

    let mut s = BodySkipper::new(Framing::Length(10));
    assert_eq!(s.skip(b"abc"), Ok(3));
    assert_eq!(s.eof(), Err(H1Error::UnexpectedEof));

    let mut s = BodySkipper::new(Framing::UntilClose);
    assert_eq!(s.skip(b"abc"), Ok(3));
    assert!(!s.is_done());
    assert_eq!(s.eof(), Ok(()));
    assert!(s.is_done());
}
