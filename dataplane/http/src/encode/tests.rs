// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::{Limits, Method, parse_request, parse_response};

fn request(input: &[u8]) -> RequestHead {
    parse_request(&mut BytesMut::from(input), &Limits::default())
        .unwrap()
        .unwrap()
}

fn response(input: &[u8], method: &Method) -> ResponseHead {
    parse_response(&mut BytesMut::from(input), &Limits::default(), method)
        .unwrap()
        .unwrap()
}

fn forward(input: &[u8], opts: &ForwardOptions<'_>) -> String {
    let mut out = BytesMut::new();
    encode_request_head(&mut out, &request(input), opts);
    String::from_utf8(out.to_vec()).unwrap()
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

#[test]
fn route_edits_remove_fields_and_override_host() {
    let edits = ForwardOptions {
        remove_headers: &["x-secret", "x-gone"],
        authority_override: Some(b"new.example"),
        extra_headers: &[(b"x-secret", b"replaced")],
        ..ForwardOptions::default()
    };
    assert_eq!(
        forward(
            b"GET / HTTP/1.1\r\nHost: old\r\nX-Secret: a\r\nx-keep: 1\r\nX-GONE: b\r\n\r\n",
            &edits
        ),
        "GET / HTTP/1.1\r\nhost: new.example\r\nx-keep: 1\r\nx-secret: replaced\r\n\r\n"
    );
    // Absolute-form: the override wins over the target's authority too.
    assert_eq!(
        forward(
            b"GET http://t.example/p HTTP/1.1\r\nHost: h\r\n\r\n",
            &edits
        ),
        "GET /p HTTP/1.1\r\nhost: new.example\r\nx-secret: replaced\r\n\r\n"
    );
}

#[test]
fn extra_fields_never_change_framing() {
    let sneaky = ForwardOptions {
        extra_headers: &[
            (b"Content-Length", b"5"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"close"),
            (b"x-ok", b"1"),
        ],
        ..ForwardOptions::default()
    };
    assert_eq!(
        forward(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &sneaky),
        "GET / HTTP/1.1\r\nHost: a\r\nx-ok: 1\r\n\r\n"
    );
}

#[test]
fn response_edits_remove_fields() {
    let mut out = BytesMut::new();
    let head = response(
        b"HTTP/1.1 200 OK\r\nServer: up\r\nX-Internal: 1\r\n\r\n",
        &Method::Get,
    );
    encode_response_head(
        &mut out,
        &head,
        &ResponseBody::Length(0),
        false,
        Version::Http11,
        &[(b"server", b"spar")],
        &["server", "x-internal"],
    );
    assert_eq!(
        &out[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nserver: spar\r\n\r\n"
    );
}

#[test]
fn local_reply_with_fields() {
    let mut out = BytesMut::new();
    encode_local_reply_with(&mut out, 301, b"", false, &[(b"location", b"https://a/b")]);
    assert_eq!(
        &out[..],
        b"HTTP/1.1 301 Moved Permanently\r\ncontent-length: 0\r\nlocation: https://a/b\r\n\r\n"
    );
    out.clear();
    encode_local_reply_with(
        &mut out,
        200,
        b"{}",
        true,
        &[(b"content-type", b"application/json")],
    );
    assert_eq!(
        &out[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n{}"
    );
}

#[test]
fn request_hop_by_hop_fields_are_removed_and_framing_written_once() {
    let input = b"POST /submit?x=1 HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nX-Secret: s\r\nUpgrade: websocket\r\nContent-Length: 5\r\nExpect: 100-continue\r\nAccept: */*\r\n\r\n";
    assert_eq!(
        forward(input, &ForwardOptions::default()),
        "POST /submit?x=1 HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\ncontent-length: 5\r\n\r\n"
    );
    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n";
    assert_eq!(
        forward(chunked, &ForwardOptions::default()),
        "POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    // HTTP/1.0 keep-alive goes upstream as plain HTTP/1.1.
    assert_eq!(
        forward(
            b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            &ForwardOptions::default()
        ),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    // Other expectations stay.
    assert_eq!(
        forward(
            b"GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n",
            &ForwardOptions::default()
        ),
        "GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n"
    );
}

#[test]
fn connection_cannot_remove_host() {
    assert_eq!(
        forward(
            b"GET / HTTP/1.1\r\nConnection: Host, x-a\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
            &ForwardOptions::default()
        ),
        "GET / HTTP/1.1\r\nHost: a\r\nX-B: 2\r\n\r\n"
    );
    // More nominated names than kept at hand.
    assert_eq!(
        forward(b"GET / HTTP/1.1\r\nConnection: a, b, c, d, e, f\r\nHost: h\r\nA: 1\r\nF: 2\r\nG: 3\r\n\r\n", &ForwardOptions::default()),
        "GET / HTTP/1.1\r\nHost: h\r\nG: 3\r\n\r\n"
    );
}

#[test]
fn forwarding_headers() {
    let opts = ForwardOptions {
        append_xff: Some(CLIENT),
        set_xfp: Some(b"https"),
        request_id: Some(b"abc"),
        extra_headers: &[(b"x-envoy-x", b"1")],
        ..ForwardOptions::default()
    };
    // Absent: all added, after the framing field.
    assert_eq!(
        forward(
            b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            &opts
        ),
        "PUT / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: https\r\nx-request-id: abc\r\nx-envoy-x: 1\r\n\r\n"
    );
    // Present: XFF appended to the last one, XFP and x-request-id kept as received.
    assert_eq!(
        forward(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\nX-Forwarded-Proto: http\r\nX-Request-Id: mine\r\n\r\n", &opts),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: mine\r\nx-envoy-x: 1\r\n\r\n"
    );
    // An empty XFF gets the address alone; IPv6 as text.
    let v6 = ForwardOptions {
        append_xff: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ..ForwardOptions::default()
    };
    assert_eq!(
        forward(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:\r\n\r\n",
            &v6
        ),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: ::1\r\n\r\n"
    );
    // Fields that Connection removes count as absent.
    assert_eq!(
        forward(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, x-request-id\r\nX-Forwarded-For: 6.6.6.6\r\nX-Request-Id: mine\r\n\r\n", &opts),
        "GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: https\r\nx-request-id: abc\r\nx-envoy-x: 1\r\n\r\n"
    );
    // Without options nothing is added.
    assert_eq!(
        forward(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &ForwardOptions::default()
        ),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    );
}

#[test]
fn request_target_and_host() {
    let none = ForwardOptions::default();
    assert_eq!(
        forward(
            b"GET http://b.example:8080/p?q HTTP/1.1\r\nHost: other\r\nAccept: x\r\n\r\n",
            &none
        ),
        "GET /p?q HTTP/1.1\r\nhost: b.example:8080\r\nAccept: x\r\n\r\n"
    );
    assert_eq!(
        forward(b"GET http://b.example HTTP/1.0\r\n\r\n", &none),
        "GET / HTTP/1.1\r\nhost: b.example\r\n\r\n"
    );
    assert_eq!(
        forward(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &none),
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    assert_eq!(
        forward(
            b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
            &none
        ),
        "CONNECT a.example:443 HTTP/1.1\r\nhost: a.example:443\r\n\r\n"
    );
    let rewrite = ForwardOptions {
        path_override: Some(b"/v2/items?id=1"),
        ..ForwardOptions::default()
    };
    assert_eq!(
        forward(b"GET /v1/items?id=1 HTTP/1.1\r\nHost: a\r\n\r\n", &rewrite),
        "GET /v2/items?id=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    );
}

#[test]
fn upgrade_is_forwarded_only_when_asked() {
    let input = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
    let upgrade = ForwardOptions {
        upgrade: true,
        ..ForwardOptions::default()
    };
    assert_eq!(
        forward(input, &upgrade),
        "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    );
    assert_eq!(
        forward(input, &ForwardOptions::default()),
        "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\n\r\n"
    );
}

#[test]
fn encoded_requests_parse_back_the_same() {
    let opts = ForwardOptions {
        append_xff: Some(CLIENT),
        set_xfp: Some(b"http"),
        request_id: Some(b"id"),
        ..ForwardOptions::default()
    };
    for input in [
        &b"POST http://a.example/x?y HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"[..],
        b"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"PUT /p HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    ] {
        let original = request(input);
        let mut out = BytesMut::new();
        encode_request_head(&mut out, &original, &opts);
        let again = parse_request(&mut out, &Limits::default())
            .unwrap()
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(again.method, original.method);
        assert_eq!(again.path_and_query(), original.path_and_query());
        assert_eq!(again.authority, original.authority);
        assert_eq!(again.body, original.body);
        assert_eq!(again.version, Version::Http11);
        assert!(!again.expect_continue);
        assert_eq!(
            again.header("x-forwarded-for").map(|v| &v[..]),
            Some(&b"10.0.0.1"[..])
        );
    }
}

fn respond(
    input: &[u8],
    method: &Method,
    body: ResponseBody,
    close: bool,
    client: Version,
) -> String {
    let mut out = BytesMut::new();
    encode_response_head(
        &mut out,
        &response(input, method),
        &body,
        close,
        client,
        &[],
        &[],
    );
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn response_heads() {
    use ResponseBody::*;
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nServer: up\r\n\r\n";
    let get = &Method::Get;
    // (upstream head, request method, body, close, client version, expected)
    type Case<'a> = (&'a [u8], &'a Method, ResponseBody, bool, Version, &'a str);
    let cases: &[Case<'_>] = &[
        (ok, get, Length(5), false, Version::Http11, "HTTP/1.1 200 OK\r\nServer: up\r\ncontent-length: 5\r\n\r\n"),
        (ok, get, Chunked, false, Version::Http11, "HTTP/1.1 200 OK\r\nServer: up\r\ntransfer-encoding: chunked\r\n\r\n"),
        (ok, get, Length(5), true, Version::Http11, "HTTP/1.1 200 OK\r\nServer: up\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"),
        (ok, get, Length(5), false, Version::Http10, "HTTP/1.0 200 OK\r\nServer: up\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n"),
        (ok, get, UntilClose, false, Version::Http10, "HTTP/1.0 200 OK\r\nServer: up\r\nconnection: close\r\n\r\n"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nTE: x\r\nProxy-Connection: y\r\n\r\n",
            get, Chunked, false, Version::Http11,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", &Method::Head, None, false, Version::Http11, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n", get, None, false, Version::Http11, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", get, None, false, Version::Http11, "HTTP/1.1 204 No Content\r\n\r\n"),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", get, None, false, Version::Http11, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n",
            get, None, false, Version::Http11,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\nconnection: upgrade\r\n\r\n",
        ),
        (b"HTTP/1.1 404 \r\n\r\n", get, Length(0), false, Version::Http11, "HTTP/1.1 404 \r\ncontent-length: 0\r\n\r\n"),
    ];
    for (input, method, body, close, client, expected) in cases {
        assert_eq!(
            respond(input, method, *body, *close, *client),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Extra headers come last.
    let mut out = BytesMut::new();
    let head = response(b"HTTP/1.1 200 OK\r\n\r\n", get);
    encode_response_head(
        &mut out,
        &head,
        &Length(0),
        false,
        Version::Http11,
        &[(b"x-spar", b"1"), (b"server", b"spar")],
        &[],
    );
    assert_eq!(
        &out[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-spar: 1\r\nserver: spar\r\n\r\n"
    );
}

#[test]
fn local_replies() {
    let reply = |status: u16, body: &[u8], close: bool| {
        let mut out = BytesMut::new();
        encode_local_reply(&mut out, status, body, close);
        out.freeze()
    };
    assert_eq!(
        reply(503, b"no healthy upstream", true),
        Bytes::from_static(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 19\r\nconnection: close\r\n\r\nno healthy upstream")
    );
    assert_eq!(
        reply(404, b"", false),
        Bytes::from_static(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    );
    assert_eq!(
        reply(599, b"x", false),
        Bytes::from_static(
            b"HTTP/1.1 599 Unknown\r\ncontent-type: text/plain\r\ncontent-length: 1\r\n\r\nx"
        )
    );
    // It parses as the response it is.
    let mut buf = BytesMut::from(&reply(431, b"too big", true)[..]);
    let head = parse_response(&mut buf, &Limits::default(), &Method::Get)
        .unwrap()
        .unwrap();
    assert_eq!(
        (head.status, head.body, head.keep_alive),
        (431, ResponseBody::Length(7), false)
    );
    assert_eq!(&buf[..], b"too big");
}

#[test]
fn reason_phrases() {
    for (status, reason) in [
        (100, "Continue"),
        (200, "OK"),
        (400, "Bad Request"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (431, "Request Header Fields Too Large"),
        (502, "Bad Gateway"),
        (505, "HTTP Version Not Supported"),
        (0, "Unknown"),
    ] {
        assert_eq!(reason_phrase(status), reason);
    }
}

#[test]
fn uuid_v4_format() {
    assert_eq!(&uuid_v4([0; 16]), b"00000000-0000-4000-8000-000000000000");
    assert_eq!(
        &uuid_v4([0xff; 16]),
        b"ffffffff-ffff-4fff-bfff-ffffffffffff"
    );
    let random = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde,
        0xf0,
    ];
    let id = uuid_v4(random);
    assert_eq!(&id, b"12345678-9abc-4ef0-9234-56789abcdef0");
    for (i, &b) in id.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            assert_eq!(b, b'-');
        } else {
            assert!(b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        }
    }
    // Version nibble 4, variant 10xx.
    assert_eq!(id[14], b'4');
    assert!(matches!(id[19], b'8' | b'9' | b'a' | b'b'));
}
