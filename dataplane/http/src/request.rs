//! Request heads: parsing, framing and the checks that keep a request unambiguous to every
//! hop that reads it.

use bytes::{Bytes, BytesMut};

use crate::fields::{Field, Framing, FramingError, TransferCoding, is_tchar, is_valid_authority};
use crate::head::{self, HeaderSpan, Span};
use crate::target::{self, Form};
use crate::{Header, Limits, Method, Version};

#[cfg(test)]
mod tests;

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// `Content-Length: n`. `Length(0)` is kept apart from `None` so it is forwarded as sent
    /// (some servers answer a bodiless POST without it with 411).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head. Every `Bytes` is a slice of the head split off the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request-target as sent.
    pub target: Bytes,
    pub version: Version,
    /// All header fields, in order, as received.
    pub headers: Vec<Header>,
    pub body: RequestBody,
    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: only with `keep-alive` (and no
    /// `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 10.1.1: ignored on 1.0).
    pub expect_continue: bool,
    /// The first `Upgrade` value, when `Connection` has the `upgrade` option and the request
    /// is HTTP/1.1 (RFC 9110 7.8: ignored on 1.0).
    pub upgrade: Option<Bytes>,
    /// The target's authority for absolute-form and authority-form (it overrides Host,
    /// RFC 9112 3.2.2), else the Host value (possibly empty), else None.
    pub authority: Option<Bytes>,
}

impl RequestHead {
    /// The path, without the query: absolute-form reduced to its path (`/` when empty).
    /// Asterisk-form is `*`; authority-form (CONNECT) is the whole target.
    pub fn path(&self) -> &[u8] {
        target::path(self.path_and_query())
    }

    /// The target as forwarded in origin-form: origin-form as sent, absolute-form reduced to
    /// path and query (`/`, or `*` for OPTIONS, when the path is empty). Asterisk-form is
    /// `*`; authority-form (CONNECT) is the whole target.
    pub fn path_and_query(&self) -> &[u8] {
        target::path_and_query(
            self.method == Method::Connect,
            self.method == Method::Options,
            &self.target,
        )
    }

    /// The value of the first field named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        let name = name.as_bytes();
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &h.value)
    }
}

/// Why a request head was refused. Each maps to the status the proxy answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request line too long")]
    UriTooLong,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    /// The detail is a short snake_case label (`bad_target`, `bare_lf`, `obs_fold`, ...).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("invalid or repeated content-length")]
    BadContentLength,
    #[error("invalid transfer-encoding")]
    BadTransferEncoding,
    #[error("missing host header")]
    MissingHost,
    #[error("more than one host header")]
    DuplicateHost,
    #[error("unsupported http version")]
    UnsupportedVersion,
}

impl RequestError {
    /// The status code of the reply to send before closing the connection.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::UriTooLong => 414,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UnsupportedVersion => 505,
            RequestError::Malformed(_)
            | RequestError::BadContentLength
            | RequestError::BadTransferEncoding
            | RequestError::MissingHost
            | RequestError::DuplicateHost => 400,
        }
    }

    /// A short snake_case label for metrics; `Malformed` gives its detail.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::UriTooLong => "uri_too_long",
            RequestError::HeadTooLarge => "head_too_large",
            RequestError::TooManyHeaders => "too_many_headers",
            RequestError::Malformed(detail) => detail,
            RequestError::BadContentLength => "bad_content_length",
            RequestError::BadTransferEncoding => "bad_transfer_encoding",
            RequestError::MissingHost => "missing_host",
            RequestError::DuplicateHost => "duplicate_host",
            RequestError::UnsupportedVersion => "unsupported_version",
        }
    }
}

impl From<FramingError> for RequestError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::ContentLength => RequestError::BadContentLength,
            FramingError::TransferEncoding => RequestError::BadTransferEncoding,
        }
    }
}

/// "SP SP HTTP/1.x CRLF" around method and target on a request line.
const REQUEST_LINE_OVERHEAD: usize = 12;

/// Parses one request head from the front of `buf`.
///
/// `Ok(Some(head))`: the head bytes were split off `buf`; body bytes and pipelined requests
/// stay in it. `Ok(None)`: more bytes are needed; the limits are checked on partial input
/// too (no LF within `max_request_line_bytes` is `UriTooLong`, no complete head within
/// `max_head_bytes` is `HeadTooLarge`). Empty lines before the request line are skipped
/// (RFC 9112 2.2). Call again only after more bytes arrived: each call looks at the whole
/// buffered head.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<RequestHead>, RequestError> {
    if buf.len() > head::EAGER_PARSE_BYTES && !head::may_be_complete(buf) {
        check_method(buf)?;
        return partial(buf, limits).map(|()| None);
    }
    let mut spans = head::SpanStore::new();
    let scanned = head::with_slots(limits.max_headers, |slots| {
        scan(&buf[..], limits, slots, &mut spans)
    })?;
    let Some(scan) = scanned else {
        return Ok(None);
    };
    // scan.len <= buf.len(): it is httparse's count of the buffer's bytes that make the
    // head, so split_to cannot panic.
    let head = buf.split_to(scan.len).freeze();
    let method = match scan.method {
        Some(method) => method,
        None => Method::Other(scan.method_span.slice(&head)),
    };
    Ok(Some(RequestHead {
        method,
        target: scan.target.slice(&head),
        version: scan.version,
        headers: head::headers(&head, spans.filled(scan.count)),
        body: scan.body,
        keep_alive: scan.keep_alive,
        expect_continue: scan.expect_continue,
        upgrade: scan.upgrade.map(|span| span.slice(&head)),
        authority: scan.authority.map(|span| span.slice(&head)),
    }))
}

/// What the pass over the borrowed buffer learnt, as offsets into the head.
struct Scan {
    len: usize,
    count: usize,
    /// None for a method outside the standard set, sliced from `method_span` later.
    method: Option<Method>,
    method_span: Span,
    target: Span,
    version: Version,
    body: RequestBody,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Span>,
    authority: Option<Span>,
}

fn scan<'b>(
    data: &'b [u8],
    limits: &Limits,
    slots: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
    spans: &mut head::SpanStore,
) -> Result<Option<Scan>, RequestError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(data, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(data, limits).map(|()| None),
        Err(e) => return Err(syntax_error(e, req.method.is_some(), data)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed("bad_request_line"));
    };
    let (method, target) = (method.as_bytes(), target.as_bytes());
    if method.len() + target.len() + REQUEST_LINE_OVERHEAD > limits.max_request_line_bytes {
        return Err(RequestError::UriTooLong);
    }
    if len > limits.max_head_bytes || u32::try_from(len).is_err() {
        return Err(RequestError::HeadTooLarge);
    }
    let head = data.get(..len).unwrap_or_default();
    if head::has_bare_lf(head) {
        return Err(RequestError::Malformed("bare_lf"));
    }
    let version = Version::from_minor(minor);
    let http11 = version == Version::Http11;
    let form = target::classify(method, target).ok_or(RequestError::Malformed("bad_target"))?;
    let target_span = Span::of(head, target);

    let mut framing = Framing::default();
    let mut host: Option<Span> = None;
    let mut upgrade: Option<Span> = None;
    let mut expect_continue = false;
    let fields = &*req.headers;
    for (field, span) in fields.iter().zip(spans.room(fields.len())) {
        *span = HeaderSpan::of(head, field);
        match Field::of(field.name.as_bytes()) {
            Field::Host => {
                if host.is_some() {
                    return Err(RequestError::DuplicateHost);
                }
                if !is_valid_authority(field.value) {
                    return Err(RequestError::Malformed("bad_host"));
                }
                host = Some(span.value);
            }
            Field::ContentLength => framing.content_length(field.value)?,
            Field::TransferEncoding => framing.transfer_encoding(field.value)?,
            Field::Connection => framing.connection(field.value),
            Field::Upgrade if upgrade.is_none() => upgrade = Some(span.value),
            Field::Expect => expect_continue |= field.value.eq_ignore_ascii_case(b"100-continue"),
            _ => {}
        }
    }

    let body = match (framing.transfer_coding, framing.content_length) {
        (TransferCoding::Absent, None) => RequestBody::None,
        (TransferCoding::Absent, Some(n)) => RequestBody::Length(n),
        // RFC 9112 6.1: chunked needs HTTP/1.1; with Content-Length too it is an attack.
        (TransferCoding::Chunked, None) if http11 => RequestBody::Chunked,
        _ => return Err(RequestError::BadTransferEncoding),
    };
    let authority = match form {
        Form::Absolute { authority } => Some(Span::new(
            target_span.start() + authority.start,
            target_span.start() + authority.end,
        )),
        Form::Authority => Some(target_span),
        Form::Origin | Form::Asterisk => {
            if host.is_none() && http11 {
                return Err(RequestError::MissingHost);
            }
            host
        }
    };
    Ok(Some(Scan {
        len,
        count: fields.len(),
        method: Method::known(method),
        method_span: Span::of(head, method),
        target: target_span,
        version,
        body,
        keep_alive: framing.persistent(http11),
        expect_continue: expect_continue && http11,
        upgrade: upgrade.filter(|_| framing.upgrade && http11),
        authority,
    }))
}

/// A large partial head skips httparse (see `EAGER_PARSE_BYTES`), yet a peer speaking
/// something else (a TLS ClientHello with post-quantum key shares is over 2 KiB) must be
/// refused at once, not left waiting for a reply to a head that never completes: its
/// method must be a token.
fn check_method(data: &[u8]) -> Result<(), RequestError> {
    let start = data
        .get(head::leading_empty_lines(data)..)
        .unwrap_or_default();
    if start
        .iter()
        .take_while(|&&b| b != b' ')
        .all(|&b| is_tchar(b))
    {
        Ok(())
    } else {
        Err(RequestError::Malformed("bad_method"))
    }
}

/// The limits on a head that is not complete yet.
fn partial(data: &[u8], limits: &Limits) -> Result<(), RequestError> {
    let line = data
        .get(head::leading_empty_lines(data)..)
        .unwrap_or_default();
    let window = line.get(..limits.max_request_line_bytes).unwrap_or(line);
    if line.len() >= limits.max_request_line_bytes && memchr::memchr(b'\n', window).is_none() {
        return Err(RequestError::UriTooLong);
    }
    if data.len() >= limits.max_head_bytes {
        return Err(RequestError::HeadTooLarge);
    }
    Ok(())
}

/// Names what httparse refused.
fn syntax_error(e: httparse::Error, method_parsed: bool, data: &[u8]) -> RequestError {
    RequestError::Malformed(match e {
        httparse::Error::TooManyHeaders => return RequestError::TooManyHeaders,
        httparse::Error::Version => return version_error(data),
        httparse::Error::Token if method_parsed => "bad_target",
        httparse::Error::Token => "bad_method",
        httparse::Error::HeaderName if head::has_obs_fold(data) => "obs_fold",
        httparse::Error::HeaderName => "bad_header_name",
        httparse::Error::HeaderValue => "bad_header_value",
        httparse::Error::NewLine => "bad_request_line",
        _ => "bad_syntax",
    })
}

/// httparse knows HTTP/1.0 and HTTP/1.1 only. A well-formed other version (HTTP/2.0,
/// HTTP/1.2, HTTP/0.9, or its beginning on partial input) is 505; anything else is 400.
fn version_error(data: &[u8]) -> RequestError {
    let line = head::start_line(data);
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', digit, ..] if digit.is_ascii_digit() => {
            RequestError::UnsupportedVersion
        }
        _ => RequestError::Malformed("bad_version"),
    }
}
