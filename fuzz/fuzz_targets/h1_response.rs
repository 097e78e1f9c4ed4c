//! Response heads from arbitrary bytes, for a request method and client version the input
//! chooses, arriving in two reads. Every head that parses is re-encoded for the client, and
//! the re-encoding must parse back with the same status and framing.
#![no_main]

use bytes::{Buf, BytesMut};
use libfuzzer_sys::fuzz_target;
use spar_http::{
    Chunk, ChunkedDecoder, Limits, Method, ResponseBody, ResponseHead, Version,
    encode_response_head, parse_response,
};

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, split], data)) = data.split_first_chunk::<2>() else {
        return;
    };
    let method = match selector & 3 {
        0 => Method::Get,
        1 => Method::Head,
        2 => Method::Connect,
        _ => Method::Post,
    };
    let client = if selector & 4 == 0 {
        Version::Http11
    } else {
        Version::Http10
    };
    let limits = Limits {
        max_request_line_bytes: 512,
        max_head_bytes: 2048,
        max_headers: 16,
        max_trailer_bytes: 64,
    };
    let (first, second) = data.split_at(usize::from(split).min(data.len()));
    let mut buf = BytesMut::from(first);
    let mut body = None;
    if pump(&mut buf, &limits, &method, client, &mut body) {
        buf.extend_from_slice(second);
        pump(&mut buf, &limits, &method, client, &mut body);
    }
});

enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Parses responses and skips their bodies until the bytes run out; false once the
/// connection is finished (an error, or a body that runs until close).
fn pump(
    buf: &mut BytesMut,
    limits: &Limits,
    method: &Method,
    client: Version,
    body: &mut Option<Body>,
) -> bool {
    loop {
        match body.take() {
            Some(Body::Length(left)) => {
                let take = left.min(buf.len() as u64);
                buf.advance(take as usize);
                if take < left {
                    *body = Some(Body::Length(left - take));
                    return true;
                }
            }
            Some(Body::Chunked(mut decoder)) => loop {
                match decoder.decode(buf) {
                    Ok(Chunk::Data(_)) => {}
                    Ok(Chunk::End) => break,
                    Ok(Chunk::NeedMore) => {
                        *body = Some(Body::Chunked(decoder));
                        return true;
                    }
                    Err(_) => return false,
                }
            },
            None => {}
        }
        let before = buf.len();
        match parse_response(buf, limits, method) {
            Ok(Some(head)) => {
                assert!(buf.len() < before);
                check_reencoding(&head, method, client);
                *body = match head.body {
                    ResponseBody::None => None,
                    ResponseBody::Length(n) => Some(Body::Length(n)),
                    ResponseBody::Chunked => {
                        Some(Body::Chunked(ChunkedDecoder::new(limits.max_trailer_bytes)))
                    }
                    ResponseBody::UntilClose => {
                        assert!(!head.keep_alive);
                        return false;
                    }
                };
            }
            Ok(None) => {
                assert_eq!(buf.len(), before);
                return true;
            }
            Err(e) => {
                assert_eq!(e.status(), 502);
                return false;
            }
        }
    }
}

fn check_reencoding(head: &ResponseHead, method: &Method, client: Version) {
    // A 1.0 client cannot take chunks: the caller sends until close instead.
    let body = match (head.body, client) {
        (ResponseBody::Chunked, Version::Http10) => ResponseBody::UntilClose,
        (body, _) => body,
    };
    let mut out = BytesMut::new();
    encode_response_head(&mut out, head, &body, !head.keep_alive, client, &[], &[]);
    let roomy = Limits {
        max_request_line_bytes: 1 << 20,
        max_head_bytes: 1 << 20,
        max_headers: 1024,
        max_trailer_bytes: 0,
    };
    let again = match parse_response(&mut out, &roomy, method) {
        Ok(Some(again)) => again,
        other => panic!("re-encoded {head:?} gave {other:?}"),
    };
    assert!(out.is_empty());
    assert_eq!(again.status, head.status);
    assert_eq!(again.reason, head.reason);
    assert_eq!(again.version, client);
    assert_eq!(again.body, body);
}
