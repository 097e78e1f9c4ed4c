//! Response heads from upstreams: parsing and framing (RFC 9112 6.3), refusing anything
//! whose length two readers could disagree on.

use bytes::{Bytes, BytesMut};

use crate::fields::{Field, Framing, FramingError, TransferCoding};
use crate::head::{self, HeaderSpan, Span};
use crate::{Header, Limits, Method, Version};

#[cfg(test)]
mod tests;

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body whatever the headers say: a response to HEAD, 1xx, 204, 304, or a 2xx to
    /// CONNECT (the connection becomes a tunnel).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body runs until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head. Every `Bytes` is a slice of the head split off the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase as sent (possibly empty).
    pub reason: Bytes,
    pub version: Version,
    /// All header fields, in order, as received.
    pub headers: Vec<Header>,
    pub body: ResponseBody,
    /// Whether the upstream connection can be reused after this response: by version and
    /// `Connection`, and never when the body runs until close.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// The value of the first field named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        let name = name.as_bytes();
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &h.value)
    }
}

/// Why an upstream response head was refused. All of them mean 502 to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The detail is a short snake_case label (`bad_status`, `bare_lf`, ...).
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("invalid or repeated content-length")]
    BadContentLength,
    #[error("invalid transfer-encoding")]
    BadTransferEncoding,
    #[error("response head too large")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
}

impl ResponseError {
    /// The status code to answer the client with: always 502.
    pub fn status(&self) -> u16 {
        502
    }

    /// A short snake_case label for metrics; `Malformed` gives its detail.
    pub fn reason(&self) -> &'static str {
        match self {
            ResponseError::Malformed(detail) => detail,
            ResponseError::BadContentLength => "bad_content_length",
            ResponseError::BadTransferEncoding => "bad_transfer_encoding",
            ResponseError::HeadTooLarge => "head_too_large",
            ResponseError::TooManyHeaders => "too_many_headers",
        }
    }
}

impl From<FramingError> for ResponseError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::ContentLength => ResponseError::BadContentLength,
            FramingError::TransferEncoding => ResponseError::BadTransferEncoding,
        }
    }
}

/// "HTTP/1.x NNN": the status line before the optional " reason".
const STATUS_LINE_PREFIX: usize = 12;

/// Parses one response head from the front of `buf`; `request_method` is the method of
/// the request it answers (HEAD and CONNECT change the framing).
///
/// `Ok(Some(head))`: the head bytes were split off `buf`. `Ok(None)`: more bytes are
/// needed (`max_head_bytes` is checked on partial input too). 1xx heads are returned like
/// the others, with body None: the caller skips 100 and handles 101.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &Limits,
    request_method: &Method,
) -> Result<Option<ResponseHead>, ResponseError> {
    if buf.len() > head::EAGER_PARSE_BYTES && !head::may_be_complete(buf) {
        check_start(buf)?;
        return partial(buf, limits).map(|()| None);
    }
    let mut spans = head::SpanStore::new();
    let scanned = head::with_slots(limits.max_headers, |slots| {
        scan(&buf[..], limits, request_method, slots, &mut spans)
    })?;
    let Some(scan) = scanned else {
        return Ok(None);
    };
    // scan.len <= buf.len(): it is httparse's count of the buffer's bytes that make the
    // head, so split_to cannot panic.
    let head = buf.split_to(scan.len).freeze();
    Ok(Some(ResponseHead {
        status: scan.status,
        reason: scan.reason.slice(&head),
        version: scan.version,
        headers: head::headers(&head, spans.filled(scan.count)),
        body: scan.body,
        keep_alive: scan.keep_alive,
    }))
}

struct Scan {
    len: usize,
    count: usize,
    status: u16,
    reason: Span,
    version: Version,
    body: ResponseBody,
    keep_alive: bool,
}

fn scan<'b>(
    data: &'b [u8],
    limits: &Limits,
    request_method: &Method,
    slots: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
    spans: &mut head::SpanStore,
) -> Result<Option<Scan>, ResponseError> {
    let mut res = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut res, data, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(data, limits).map(|()| None),
        Err(e) => return Err(syntax_error(e, data)),
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(ResponseError::Malformed("bad_status"));
    };
    if status < 100 {
        return Err(ResponseError::Malformed("bad_status"));
    }
    if len > limits.max_head_bytes || u32::try_from(len).is_err() {
        return Err(ResponseError::HeadTooLarge);
    }
    let head = data.get(..len).unwrap_or_default();
    if head::has_bare_lf(head) {
        return Err(ResponseError::Malformed("bare_lf"));
    }
    let version = Version::from_minor(minor);
    let http11 = version == Version::Http11;

    let mut framing = Framing::default();
    let fields = &*res.headers;
    for (field, span) in fields.iter().zip(spans.room(fields.len())) {
        *span = HeaderSpan::of(head, field);
        match Field::of(field.name.as_bytes()) {
            Field::ContentLength => framing.content_length(field.value)?,
            Field::TransferEncoding => framing.transfer_encoding(field.value)?,
            Field::Connection => framing.connection(field.value),
            _ => {}
        }
    }

    // Framing is validated whatever the status, then applied (RFC 9112 6.3).
    let declared = match (framing.transfer_coding, framing.content_length) {
        (TransferCoding::Absent, None) => ResponseBody::UntilClose,
        (TransferCoding::Absent, Some(n)) => ResponseBody::Length(n),
        // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        (TransferCoding::Chunked, None) if http11 => ResponseBody::Chunked,
        _ => return Err(ResponseError::BadTransferEncoding),
    };
    let tunnel = *request_method == Method::Connect && (200..300).contains(&status);
    let body = if *request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || tunnel
    {
        ResponseBody::None
    } else {
        declared
    };
    Ok(Some(Scan {
        len,
        count: fields.len(),
        status,
        reason: reason_span(head),
        version,
        body,
        keep_alive: body != ResponseBody::UntilClose && framing.persistent(http11),
    }))
}

/// The reason phrase as sent, taken from the status line itself: httparse gives an empty
/// reason when it holds obs-text, and the proxy forwards it unchanged.
fn reason_span(head: &[u8]) -> Span {
    let start = head::leading_empty_lines(head);
    let line = head::start_line(head);
    match line.get(STATUS_LINE_PREFIX..) {
        Some([b' ', reason @ ..]) if !reason.is_empty() => {
            let at = start + STATUS_LINE_PREFIX + 1;
            Span::new(at, at + reason.len())
        }
        _ => Span::EMPTY,
    }
}

/// A large partial head skips httparse (see `EAGER_PARSE_BYTES`): it must at least start
/// like a response, or the upstream speaks something else.
fn check_start(data: &[u8]) -> Result<(), ResponseError> {
    const START: &[u8] = b"HTTP/1.";
    let start = data
        .get(head::leading_empty_lines(data)..)
        .unwrap_or_default();
    let n = start.len().min(START.len());
    if start.get(..n) == START.get(..n) {
        Ok(())
    } else {
        Err(ResponseError::Malformed("bad_version"))
    }
}

/// The limit on a head that is not complete yet.
fn partial(data: &[u8], limits: &Limits) -> Result<(), ResponseError> {
    if data.len() >= limits.max_head_bytes {
        return Err(ResponseError::HeadTooLarge);
    }
    Ok(())
}

fn syntax_error(e: httparse::Error, data: &[u8]) -> ResponseError {
    ResponseError::Malformed(match e {
        httparse::Error::TooManyHeaders => return ResponseError::TooManyHeaders,
        httparse::Error::Version => "bad_version",
        httparse::Error::Status => "bad_status",
        httparse::Error::HeaderName if head::has_obs_fold(data) => "obs_fold",
        httparse::Error::HeaderName => "bad_header_name",
        httparse::Error::HeaderValue => "bad_header_value",
        httparse::Error::NewLine => "bad_status_line",
        _ => "bad_syntax",
    })
}
