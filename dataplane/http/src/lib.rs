//! Sans-io HTTP/1.1 codec and header hygiene for spar-proxy.
//!
//! What it does:
//! - parses request and response heads from the front of a `BytesMut` read buffer
//!   ([`parse_request`], [`parse_response`]): the head is split off the buffer and frozen,
//!   and every parsed part (target, header names and values) is a `Bytes` slice of it, so
//!   nothing is copied and no per-header allocation happens;
//! - decides message framing strictly (RFC 9112 section 6.3 and 11.2, request smuggling):
//!   `Transfer-Encoding` with `Content-Length` is rejected, `Content-Length` is `1*DIGIT` and
//!   appears once, `chunked` is the only transfer coding accepted and must be final, bare LF,
//!   obs-fold, space before the colon and control bytes in values are rejected;
//! - decodes chunked bodies ([`ChunkedDecoder`]) without copying, validating chunk
//!   extensions and trailers (trailers are dropped, as Envoy does by default);
//! - encodes the heads the proxy sends: hop-by-hop headers removed, framing written once,
//!   `x-forwarded-for`, `x-forwarded-proto` and `x-request-id` applied
//!   ([`encode_request_head`], [`encode_response_head`]), and local replies
//!   ([`encode_local_reply`]).
//!
//! What it does not do: I/O, timers, clocks or any global state; HTTP/2; content codings
//! (a message with `gzip` or any coding other than `chunked` is refused, not decoded);
//! routing, header rewriting beyond hop-by-hop hygiene, or deciding when to close a
//! connection (the runtime does, from the `keep_alive` and `body` fields given here).
#![forbid(unsafe_code)]

mod chunked;
mod encode;
mod fields;
mod head;
mod request;
mod response;
mod target;

use bytes::Bytes;

pub use chunked::{
    CHUNK_END, Chunk, ChunkError, ChunkedDecoder, LAST_CHUNK, MAX_CHUNK_LINE_BYTES, Position,
    encode_chunk_header,
};
pub use encode::{
    ForwardOptions, encode_local_reply, encode_local_reply_with, encode_request_head,
    encode_response_head, reason_phrase, uuid_v4,
};
pub use request::{RequestBody, RequestError, RequestHead, parse_request};
pub use response::{ResponseBody, ResponseError, ResponseHead, parse_response};

/// Size limits applied while parsing. The defaults follow Envoy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, CRLF included, in bytes; longer is 414. Default 16 KiB.
    pub max_request_line_bytes: usize,
    /// Longest head (request or status line, header fields, final CRLF), in bytes; longer
    /// is 431. Default 60 KiB, Envoy's `max_request_headers_kb` default.
    pub max_head_bytes: usize,
    /// Most header fields in one head; more is 431. Default 100, Envoy's
    /// `max_headers_count` default.
    pub max_headers: usize,
    /// Longest chunked trailer section (its field lines with their CRLFs), in bytes.
    /// Default 16 KiB.
    pub max_trailer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line_bytes: 16 * 1024,
            max_head_bytes: 60 * 1024,
            max_headers: 100,
            max_trailer_bytes: 16 * 1024,
        }
    }
}

/// A request method. Methods are case-sensitive (RFC 9110 9.1): `get` is `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    /// Any other token, as sent.
    Other(Bytes),
}

impl Method {
    /// The method as it appears on the request line.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Get => b"GET",
            Method::Head => b"HEAD",
            Method::Post => b"POST",
            Method::Put => b"PUT",
            Method::Delete => b"DELETE",
            Method::Connect => b"CONNECT",
            Method::Options => b"OPTIONS",
            Method::Trace => b"TRACE",
            Method::Patch => b"PATCH",
            Method::Other(token) => token,
        }
    }

    /// Idempotent per RFC 9110 9.2.2: GET, HEAD, PUT, DELETE, OPTIONS and TRACE.
    /// Decides whether a request may be retried after it was sent.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// The method for a token; unknown tokens become `Other` holding `token`.
    /// The token is not validated here: the parsers do that.
    pub fn from_bytes(token: Bytes) -> Method {
        Method::known(&token).unwrap_or(Method::Other(token))
    }

    /// The standard method spelled exactly `token`, if any.
    pub(crate) fn known(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => return None,
        })
    }
}

/// The HTTP version of a message. HTTP/1.x only: anything else is refused by the parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// One header field as received: the name keeps its case, the value has its surrounding
/// whitespace removed. Both are slices of the frozen head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Bytes,
    pub value: Bytes,
}
