// Tests may panic on the unexpected: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Case tables are tuples; naming each row type would not make them clearer.
#![allow(clippy::type_complexity)]

use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn convert(p: &http::request::Parts, eos: bool) -> Result<H2Request, ConvertError> {
    request_head(p, eos, &Limits::default())
}

#[test]
fn requests_become_http11_heads() {
    // (method, uri, fields, end_of_stream, target, authority, body, scheme)
    let cases: &[(
        &str,
        &str,
        &[(&str, &str)],
        bool,
        &str,
        &str,
        RequestBody,
        Option<Scheme>,
    )] = &[
        (
            "GET",
            "https://example.com/a?b=c",
            &[],
            true,
            "/a?b=c",
            "example.com",
            RequestBody::None,
            Some(Scheme::Https),
        ),
        (
            "POST",
            "http://svc:8080/upload",
            &[("content-length", "5")],
            false,
            "/upload",
            "svc:8080",
            RequestBody::Length(5),
            Some(Scheme::Http),
        ),
        (
            "POST",
            "http://svc/stream",
            &[("content-type", "application/grpc"), ("te", "trailers")],
            false,
            "/stream",
            "svc",
            RequestBody::Chunked,
            Some(Scheme::Http),
        ),
        // :authority wins over a conflicting host (RFC 9113 8.3.1).
        (
            "GET",
            "http://right.example/",
            &[("host", "wrong.example")],
            true,
            "/",
            "right.example",
            RequestBody::None,
            Some(Scheme::Http),
        ),
        // No :authority: the host field is kept; h2 drops :scheme then.
        (
            "GET",
            "/only-path",
            &[("host", "h.example")],
            true,
            "/only-path",
            "h.example",
            RequestBody::None,
            None,
        ),
        (
            "CONNECT",
            "proxy.example:443",
            &[],
            false,
            "proxy.example:443",
            "proxy.example:443",
            RequestBody::Chunked,
            None,
        ),
    ];
    for (method, uri, hdrs, eos, target, authority, body, scheme) in cases {
        let p = parts(method, uri, hdrs);
        let got = convert(&p, *eos).unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        assert_eq!(got.head.method.as_bytes(), method.as_bytes(), "{uri}");
        assert_eq!(&got.head.target[..], target.as_bytes(), "{uri}");
        assert_eq!(
            got.head.authority.as_deref(),
            Some(authority.as_bytes()),
            "{uri}"
        );
        assert_eq!(got.head.body, *body, "{uri}");
        assert_eq!(got.scheme, *scheme, "{uri}");
        assert_eq!(got.head.version, spar_http::Version::Http11);
        let hosts = got
            .head
            .headers
            .iter()
            .filter(|h| &h.name[..] == b"host")
            .count();
        assert_eq!(hosts, 1, "{uri}: exactly one host");
    }
}

#[test]
fn malformed_requests_are_refused() {
    let cases: &[(&str, &str, &[(&str, &str)], bool, &str)] = &[
        (
            "GET",
            "http://h/",
            &[("connection", "close")],
            true,
            "connection_specific_field",
        ),
        (
            "GET",
            "http://h/",
            &[("keep-alive", "5")],
            true,
            "connection_specific_field",
        ),
        (
            "GET",
            "http://h/",
            &[("proxy-connection", "x")],
            true,
            "connection_specific_field",
        ),
        (
            "POST",
            "http://h/",
            &[("transfer-encoding", "chunked")],
            false,
            "connection_specific_field",
        ),
        (
            "GET",
            "http://h/",
            &[("upgrade", "websocket")],
            true,
            "connection_specific_field",
        ),
        ("GET", "http://h/", &[("te", "gzip")], true, "bad_te"),
        ("GET", "ftp://h/", &[], true, "bad_scheme"),
        (
            "POST",
            "http://h/",
            &[("content-length", "3")],
            true,
            "content_length_mismatch",
        ),
        (
            "GET",
            "http://h/",
            &[("content-length", "1"), ("content-length", "2")],
            false,
            "bad_content_length",
        ),
        ("GET", "/no-authority", &[], true, "missing_host"),
        ("CONNECT", "h:443", &[("x", "y")], false, ""),
    ];
    for (method, uri, hdrs, eos, reason) in cases {
        let p = parts(method, uri, hdrs);
        match convert(&p, *eos) {
            Err(e) => {
                assert_eq!(e.reason(), *reason, "{method} {uri} {hdrs:?}");
                assert_eq!(e.status(), 400);
            }
            Ok(_) if reason.is_empty() => {}
            Ok(h) => panic!("{method} {uri} {hdrs:?} accepted: {h:?}"),
        }
    }
}

#[test]
fn connect_needs_a_port_and_no_path() {
    let p = parts("CONNECT", "h.example", &[]);
    assert_eq!(convert(&p, false).unwrap_err().status(), 400);
    let p = parts("CONNECT", "http://h.example:443/x", &[]);
    assert!(convert(&p, false).is_err());
}

#[test]
fn extended_connect_is_refused_clearly() {
    let mut p = parts("CONNECT", "https://h.example/chat", &[]);
    p.extensions
        .insert(h2::ext::Protocol::from_static("websocket"));
    let e = convert(&p, false).unwrap_err();
    assert_eq!(e, ConvertError::ExtendedConnect("websocket".into()));
    assert_eq!(e.status(), 501);
    assert!(e.to_string().contains("websocket"));
}

#[test]
fn options_asterisk() {
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some("h".parse().unwrap());
    uri.path_and_query = Some("*".parse().unwrap());
    let uri = http::Uri::from_parts(uri).unwrap();
    let mut p = parts("OPTIONS", "/", &[]);
    p.uri = uri;
    let got = convert(&p, true).unwrap();
    assert_eq!(&got.head.target[..], b"*");
}

#[test]
fn cookies_are_joined() {
    let p = parts(
        "GET",
        "http://h/",
        &[("cookie", "a=1"), ("x", "y"), ("cookie", "b=2")],
    );
    let got = convert(&p, true).unwrap();
    assert_eq!(got.head.header("cookie").unwrap(), "a=1; b=2");
    assert_eq!(got.head.header("x").unwrap(), "y");
}

#[test]
fn limits_apply_as_for_http11() {
    let long = "a".repeat(70 * 1024);
    let p = parts("GET", "http://h/", &[("x-big", &long)]);
    assert_eq!(convert(&p, true).unwrap_err().status(), 431);
    let path = format!("http://h/{}", "p".repeat(17 * 1024));
    let p = parts("GET", &path, &[]);
    assert_eq!(convert(&p, true).unwrap_err().status(), 414);
}

fn h1(input: &str) -> RequestHead {
    let mut buf = BytesMut::from(input.as_bytes());
    parse_request(&mut buf, &Limits::default())
        .unwrap()
        .unwrap()
}

#[test]
fn h2_request_strips_hop_by_hop_and_moves_host() {
    let head = h1(concat!(
        "POST /api?x=1 HTTP/1.1\r\n",
        "Host: svc.example\r\n",
        "Connection: keep-alive, X-Secret\r\n",
        "X-Secret: s\r\n",
        "Keep-Alive: timeout=5\r\n",
        "TE: trailers\r\n",
        "Expect: 100-continue\r\n",
        "Content-Length: 4\r\n",
        "X-Forwarded-For: 10.0.0.1\r\n",
        "X-Remove: r\r\n",
        "Content-Type: text/plain\r\n",
        "\r\n"
    ));
    let opts = ForwardOptions {
        append_xff: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
        set_xfp: Some(b"http"),
        request_id: Some(b"id-1"),
        extra_headers: &[(b"x-added", b"1")],
        remove_headers: &["x-remove"],
        ..ForwardOptions::default()
    };
    let req = h2_request(&head, Scheme::Http, &opts).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri().to_string(), "http://svc.example/api?x=1");
    assert_eq!(req.version(), http::Version::HTTP_2);
    let h = req.headers();
    for gone in [
        "host",
        "connection",
        "x-secret",
        "keep-alive",
        "expect",
        "x-remove",
    ] {
        assert!(h.get(gone).is_none(), "{gone} kept");
    }
    assert_eq!(h["te"], "trailers");
    assert_eq!(h["content-length"], "4");
    assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"], "id-1");
    assert_eq!(h["x-added"], "1");
    assert_eq!(h["content-type"], "text/plain");
}

#[test]
fn h2_request_overrides_and_connect() {
    let head = h1("GET http://abs.example/p HTTP/1.1\r\nHost: other\r\nTE: gzip\r\n\r\n");
    let opts = ForwardOptions {
        authority_override: Some(b"rewritten:81"),
        path_override: Some(b"/new"),
        ..ForwardOptions::default()
    };
    let req = h2_request(&head, Scheme::Https, &opts).unwrap();
    assert_eq!(req.uri().to_string(), "https://rewritten:81/new");
    assert!(
        req.headers().get("te").is_none(),
        "te other than trailers dropped"
    );

    let head = h1("CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n");
    let req = h2_request(&head, Scheme::Http, &ForwardOptions::default()).unwrap();
    assert_eq!(req.uri().authority().unwrap().as_str(), "db.example:5432");
    assert!(req.uri().scheme().is_none());
    assert!(req.uri().path_and_query().is_none());

    let head = h1("GET / HTTP/1.0\r\n\r\n");
    let e = h2_request(&head, Scheme::Http, &ForwardOptions::default()).unwrap_err();
    assert_eq!(e.reason(), "missing_authority");
}

#[test]
fn h2_round_trip_keeps_the_request() {
    let p = parts(
        "PUT",
        "https://h.example/r?q",
        &[("content-length", "2"), ("x-a", "1"), ("x-a", "2")],
    );
    let got = convert(&p, false).unwrap();
    let back = h2_request(&got.head, got.scheme.unwrap(), &ForwardOptions::default()).unwrap();
    assert_eq!(back.method(), http::Method::PUT);
    assert_eq!(back.uri(), &p.uri);
    assert_eq!(back.headers(), &p.headers);
}

fn res_parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = http::Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn responses_become_http11_heads() {
    // (status, fields, end_of_stream, request method, body)
    let cases: &[(u16, &[(&str, &str)], bool, Method, ResponseBody)] = &[
        (
            200,
            &[("content-length", "10")],
            false,
            Method::Get,
            ResponseBody::Length(10),
        ),
        (200, &[], false, Method::Get, ResponseBody::Chunked),
        (200, &[], true, Method::Get, ResponseBody::None),
        (204, &[], true, Method::Get, ResponseBody::None),
        (
            200,
            &[("content-length", "10")],
            true,
            Method::Head,
            ResponseBody::None,
        ),
        (
            304,
            &[("content-length", "10")],
            true,
            Method::Get,
            ResponseBody::None,
        ),
        (
            103,
            &[("link", "</a>; rel=preload")],
            false,
            Method::Get,
            ResponseBody::None,
        ),
        (
            200,
            &[("content-length", "0")],
            true,
            Method::Post,
            ResponseBody::Length(0),
        ),
    ];
    for (status, hdrs, eos, method, body) in cases {
        let p = res_parts(*status, hdrs);
        let head = response_head(&p, *eos, method, &Limits::default())
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(head.status, *status);
        assert_eq!(head.body, *body, "{status} {hdrs:?} eos={eos}");
        assert!(head.keep_alive);
    }
}

#[test]
fn bad_responses_are_502() {
    let cases: &[(u16, &[(&str, &str)], bool, &str)] = &[
        (101, &[], true, "status_101"),
        (
            200,
            &[("connection", "close")],
            true,
            "connection_specific_field",
        ),
        (
            200,
            &[("transfer-encoding", "chunked")],
            false,
            "connection_specific_field",
        ),
        (
            200,
            &[("content-length", "5")],
            true,
            "content_length_mismatch",
        ),
        (200, &[("content-length", "x")], false, "bad_content_length"),
    ];
    for (status, hdrs, eos, reason) in cases {
        let p = res_parts(*status, hdrs);
        let e = response_head(&p, *eos, &Method::Get, &Limits::default()).unwrap_err();
        assert_eq!(e.reason(), *reason, "{status} {hdrs:?}");
        assert_eq!(e.status(), 502);
    }
}

fn h1_response(input: &str, method: &Method) -> ResponseHead {
    let mut buf = BytesMut::from(input.as_bytes());
    spar_http::parse_response(&mut buf, &Limits::default(), method)
        .unwrap()
        .unwrap()
}

#[test]
fn h2_response_drops_framing_and_hop_by_hop() {
    let head = h1_response(
        concat!(
            "HTTP/1.1 200 OK\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Connection: X-Hop\r\n",
            "X-Hop: 1\r\n",
            "Set-Cookie: a=1\r\n",
            "Set-Cookie: b=2\r\n",
            "X-Remove: 1\r\n",
            "\r\n"
        ),
        &Method::Get,
    );
    let res = h2_response(&head, &[(b"x-extra", b"e")], &["x-remove"]).unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    for gone in [
        "transfer-encoding",
        "connection",
        "x-hop",
        "x-remove",
        "content-length",
    ] {
        assert!(h.get(gone).is_none(), "{gone} kept");
    }
    assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    assert_eq!(h["x-extra"], "e");

    let head = h1_response(
        "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
        &Method::Head,
    );
    let res = h2_response(&head, &[], &[]).unwrap();
    assert_eq!(
        res.headers()["content-length"],
        "42",
        "HEAD keeps the length"
    );

    let head = h1_response("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", &Method::Get);
    let res = h2_response(&head, &[], &[]).unwrap();
    assert_eq!(res.headers()["content-length"], "7");

    let head = h1_response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        &Method::Get,
    );
    assert_eq!(
        h2_response(&head, &[], &[]).unwrap_err().reason(),
        "status_101"
    );
}

#[test]
fn trailers_pass_grpc_status_untouched() {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_static("14"));
    map.insert(
        "grpc-message",
        HeaderValue::from_static("upstream%20unavailable"),
    );
    map.insert("content-length", HeaderValue::from_static("3"));
    let list = trailers_from_map(&map);
    assert_eq!(list.len(), 3);
    let back = trailers_to_map(&list).unwrap();
    assert_eq!(back["grpc-status"], "14");
    assert_eq!(back["grpc-message"], "upstream%20unavailable");
    assert!(back.get("content-length").is_none());

    let bad = [Header {
        name: Bytes::from_static(b"bad name"),
        value: Bytes::from_static(b"v"),
    }];
    assert!(trailers_to_map(&bad).is_err());
}
