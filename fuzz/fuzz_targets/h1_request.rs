//! Request heads from arbitrary bytes, arriving in two reads split at a point the input
//! chooses, pipelined until the bytes run out. Every head that parses is re-encoded for
//! an upstream, and the re-encoding must parse back to the same request.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use bytes::{Buf, BytesMut};
use libfuzzer_sys::fuzz_target;
use spar_http::{
    Chunk, ChunkedDecoder, ForwardOptions, Limits, RequestBody, RequestHead, encode_request_head,
    parse_request,
};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    // Small limits, so the fuzzer reaches them; or larger ones, past the size where a
    // partial head is only scanned for its end rather than parsed.
    let limits = if split & 1 == 0 {
        Limits {
            max_request_line_bytes: 512,
            max_head_bytes: 2048,
            max_headers: 16,
            max_trailer_bytes: 64,
        }
    } else {
        Limits {
            max_request_line_bytes: 4096,
            max_head_bytes: 8192,
            max_headers: 64,
            max_trailer_bytes: 256,
        }
    };
    let mut whole = Connection::default();
    whole.pump(&mut BytesMut::from(data), &limits);

    let (first, second) = data.split_at(usize::from(split).min(data.len()));
    let mut parts = Connection::default();
    let mut buf = BytesMut::from(first);
    if parts.pump(&mut buf, &limits) {
        buf.extend_from_slice(second);
        parts.pump(&mut buf, &limits);
    }
    // How the bytes were cut does not change which requests they hold. Two reads may find
    // an error sooner: a large partial head in one read is only scanned for its end, so the
    // one read may still be waiting on the head where two reads failed.
    assert_eq!(whole.seen, parts.seen);
    if whole.failed {
        assert!(parts.failed);
    } else if parts.failed {
        assert!(whole.waiting_for_head);
    }
});

#[derive(Default)]
struct Connection {
    body: Option<Body>,
    /// Method and target of each request parsed.
    seen: Vec<(Vec<u8>, Vec<u8>)>,
    failed: bool,
    /// The bytes ran out inside a head.
    waiting_for_head: bool,
}

enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
}

impl Connection {
    /// Parses requests and skips their bodies until the bytes run out; false once the
    /// connection is finished (an error).
    fn pump(&mut self, buf: &mut BytesMut, limits: &Limits) -> bool {
        loop {
            match self.body.take() {
                Some(Body::Length(left)) => {
                    let take = left.min(buf.len() as u64);
                    buf.advance(take as usize);
                    if take < left {
                        self.body = Some(Body::Length(left - take));
                        return true;
                    }
                }
                Some(Body::Chunked(mut decoder)) => loop {
                    match decoder.decode(buf) {
                        Ok(Chunk::Data(_)) => {}
                        Ok(Chunk::End) => break,
                        Ok(Chunk::NeedMore) => {
                            self.body = Some(Body::Chunked(decoder));
                            return true;
                        }
                        Err(_) => {
                            self.failed = true;
                            return false;
                        }
                    }
                },
                None => {}
            }
            let before = buf.len();
            self.waiting_for_head = false;
            match parse_request(buf, limits) {
                Ok(Some(head)) => {
                    assert!(buf.len() < before);
                    check_reencoding(&head);
                    self.seen
                        .push((head.method.as_bytes().to_vec(), head.target.to_vec()));
                    self.body = match head.body {
                        RequestBody::None => None,
                        RequestBody::Length(n) => Some(Body::Length(n)),
                        RequestBody::Chunked => {
                            Some(Body::Chunked(ChunkedDecoder::new(limits.max_trailer_bytes)))
                        }
                    };
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    self.waiting_for_head = true;
                    return true;
                }
                Err(e) => {
                    assert!(matches!(e.status(), 400 | 414 | 431 | 505));
                    self.failed = true;
                    return false;
                }
            }
        }
    }
}

fn check_reencoding(head: &RequestHead) {
    // HTTP/1.0 may come without any authority; HTTP/1.1 upstream needs one.
    let fallback_host: &[(&[u8], &[u8])] = if head.authority.is_none() {
        &[(b"host", b"fuzz.example")]
    } else {
        &[]
    };
    let opts = ForwardOptions {
        append_xff: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        set_xfp: Some(b"http"),
        request_id: Some(b"fuzz-id"),
        path_override: None,
        extra_headers: fallback_host,
        upgrade: head.upgrade.is_some(),
        remove_headers: &["x-fuzz-remove"],
        authority_override: None,
    };
    let mut out = BytesMut::new();
    encode_request_head(&mut out, head, &opts);
    let roomy = Limits {
        max_request_line_bytes: 1 << 20,
        max_head_bytes: 1 << 20,
        max_headers: 1024,
        max_trailer_bytes: 0,
    };
    let again = match parse_request(&mut out, &roomy) {
        Ok(Some(again)) => again,
        other => panic!("re-encoded {head:?} gave {other:?}"),
    };
    assert!(out.is_empty());
    assert_eq!(again.method, head.method);
    assert_eq!(again.path_and_query(), head.path_and_query());
    assert_eq!(again.body, head.body);
    assert_eq!(again.upgrade, head.upgrade);
    assert!(!again.expect_continue);
    if head.authority.is_some() {
        assert_eq!(again.authority, head.authority);
    }
}
