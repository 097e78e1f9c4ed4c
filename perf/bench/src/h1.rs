//! Sans-io HTTP/1.1 framing for the load generator and the echo server.
//!
//! Both sides need the same three things: parse a head with `httparse`, decide
//! how the body is framed (RFC 9112 §6), and skip the body without keeping it.
//! Everything here takes bytes and answers "done / need more / rejected"; the
//! async code in `load` and `echo` only fills buffers and calls it.
//!
//! This is deliberately separate from `spar-http`: a benchmark that frames
//! responses with the codec under test would hide that codec's bugs.

use std::fmt;

/// Headers looked at per message. A response or request with more is rejected
/// (`TooManyHeaders`); 64 covers real traffic and keeps the array on the stack.
const MAX_HEADERS: usize = 64;

/// Why a message could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H1Error {
    /// `httparse` rejected the head.
    Head(httparse::Error),
    /// Content-Length missing digits, repeated with different values, or too large.
    ContentLength,
    /// Transfer-Encoding other than a final `chunked`.
    TransferEncoding,
    /// Malformed chunk size line, chunk terminator or trailer.
    Chunked,
    /// The peer closed the connection in the middle of a message.
    UnexpectedEof,
}

impl fmt::Display for H1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(e) => write!(f, "bad head: {e}"),
            Self::ContentLength => f.write_str("bad content-length"),
            Self::TransferEncoding => f.write_str("unsupported transfer-encoding"),
            Self::Chunked => f.write_str("bad chunked encoding"),
            Self::UnexpectedEof => f.write_str("connection closed mid-message"),
        }
    }
}

impl std::error::Error for H1Error {}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD response, 1xx/204/304, request without length).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Response body runs until the server closes the connection.
    UntilClose,
}

/// What the framing-relevant headers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderFacts {
    content_length: Option<u64>,
    chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
}

fn header_facts(headers: &[httparse::Header<'_>]) -> Result<HeaderFacts, H1Error> {
    let mut facts = HeaderFacts {
        content_length: None,
        chunked: false,
        conn_close: false,
        conn_keep_alive: false,
    };
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if facts.content_length.is_some_and(|prev| prev != n) {
                return Err(H1Error::ContentLength);
            }
            facts.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` as the final coding frames the message; anything
            // else (gzip alone, chunked followed by more) we cannot delimit.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(h.value);
            if trim(last).eq_ignore_ascii_case(b"chunked") {
                facts.chunked = true;
            } else {
                return Err(H1Error::TransferEncoding);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    facts.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    facts.conn_keep_alive = true;
                }
            }
        }
    }
    Ok(facts)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_content_length(value: &[u8]) -> Result<u64, H1Error> {
    let digits = trim(value);
    if digits.is_empty() {
        return Err(H1Error::ContentLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(H1Error::ContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(H1Error::ContentLength)?;
    }
    Ok(n)
}

/// A parsed request head: what the echo server needs to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, including the blank line.
    pub len: usize,
    pub is_head: bool,
    pub keep_alive: bool,
    pub body: Framing,
    /// Byte range of the request target inside the parsed buffer.
    pub path: (usize, usize),
}

/// Parses a request head at the start of `buf`; `Ok(None)` means incomplete.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(H1Error::Head)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let facts = header_facts(req.headers)?;
    let version = req.version.unwrap_or(1);
    let keep_alive = if version == 0 {
        facts.conn_keep_alive && !facts.conn_close
    } else {
        !facts.conn_close
    };
    // RFC 9112 §6.3: chunked wins over content-length; a request with neither
    // has no body.
    let body = if facts.chunked {
        Framing::Chunked
    } else {
        match facts.content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let path = req.path.unwrap_or("");
    let start = path.as_ptr() as usize - buf.as_ptr() as usize;
    Ok(Some(RequestHead {
        len,
        is_head: req.method == Some("HEAD"),
        keep_alive,
        body,
        path: (start, start + path.len()),
    }))
}

/// A parsed final response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head, including the blank line.
    pub len: usize,
    pub status: u16,
    pub keep_alive: bool,
    pub body: Framing,
}

/// Parses a response head at the start of `buf`; `Ok(None)` means incomplete.
/// `head_request` says the request was HEAD, so no body follows whatever the
/// headers say. Interim (1xx) responses are returned as such; the caller
/// skips them.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<ResponseHead>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf).map_err(H1Error::Head)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    // httparse sets code on Complete; 0 never passes as a valid status.
    let status = res.code.unwrap_or(0);
    let facts = header_facts(res.headers)?;
    let version = res.version.unwrap_or(1);
    let mut keep_alive = if version == 0 {
        facts.conn_keep_alive && !facts.conn_close
    } else {
        !facts.conn_close
    };
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if facts.chunked {
        Framing::Chunked
    } else if let Some(n) = facts.content_length {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok(Some(ResponseHead {
        len,
        status,
        keep_alive,
        body,
    }))
}

/// Skips a body of known framing, counting nothing but bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySkipper {
    Done,
    Length(u64),
    Chunked(ChunkedSkipper),
    UntilClose,
}

impl BodySkipper {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(ChunkedSkipper::new()),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// Consumes body bytes from `buf`; returns how many were body. The body is
    /// complete when `is_done()` turns true.
    pub fn skip(&mut self, buf: &[u8]) -> Result<usize, H1Error> {
        match self {
            Self::Done => Ok(0),
            Self::Length(rem) => {
                let n = usize::try_from(*rem).map_or(buf.len(), |r| r.min(buf.len()));
                *rem -= n as u64;
                if *rem == 0 {
                    *self = Self::Done;
                }
                Ok(n)
            }
            Self::Chunked(c) => {
                let n = c.skip(buf)?;
                if c.is_done() {
                    *self = Self::Done;
                }
                Ok(n)
            }
            Self::UntilClose => Ok(buf.len()),
        }
    }

    /// The peer closed the connection: fine only for close-delimited bodies.
    pub fn eof(&mut self) -> Result<(), H1Error> {
        match self {
            Self::Done | Self::UntilClose => {
                *self = Self::Done;
                Ok(())
            }
            _ => Err(H1Error::UnexpectedEof),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }
}

/// Where a chunked decoder stands (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size; `digits` counts them.
    Size {
        size: u64,
        digits: u8,
    },
    /// Inside a chunk extension, until CR.
    Ext {
        size: u64,
    },
    /// CR of the size line seen; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Discards a chunked body, validating its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedSkipper {
    state: Chunk,
}

impl Default for ChunkedSkipper {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedSkipper {
    pub fn new() -> Self {
        Self {
            state: Chunk::Size { size: 0, digits: 0 },
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Consumes bytes up to the end of the body; returns how many.
    pub fn skip(&mut self, buf: &[u8]) -> Result<usize, H1Error> {
        if self.is_done() {
            return Ok(0);
        }
        let mut i = 0;
        while i < buf.len() {
            if let Chunk::Data(rem) = self.state {
                let n = usize::try_from(rem).map_or(buf.len() - i, |r| r.min(buf.len() - i));
                i += n;
                let rem = rem - n as u64;
                self.state = if rem == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(rem)
                };
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match (self.state, b) {
                (Chunk::Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                    // 16 hex digits fill a u64; more is an attack, not a body.
                    if digits >= 16 {
                        return Err(H1Error::Chunked);
                    }
                    let d = u64::from(match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        _ => b - b'A' + 10,
                    });
                    Chunk::Size {
                        size: (size << 4) | d,
                        digits: digits + 1,
                    }
                }
                (Chunk::Size { size, digits }, b';' | b' ' | b'\t') if digits > 0 => {
                    Chunk::Ext { size }
                }
                (Chunk::Size { size, digits }, b'\r') if digits > 0 => Chunk::SizeLf { size },
                (Chunk::Ext { size }, b'\r') => Chunk::SizeLf { size },
                (Chunk::Ext { .. }, b'\n') => return Err(H1Error::Chunked),
                (s @ Chunk::Ext { .. }, _) => s,
                (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart,
                (Chunk::SizeLf { size }, b'\n') => Chunk::Data(size),
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
                (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
                (Chunk::TrailerStart | Chunk::TrailerLine, b'\n') => return Err(H1Error::Chunked),
                (Chunk::TrailerLine, b'\r') => Chunk::TrailerLf,
                (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
                (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
                (Chunk::EndLf, b'\n') => {
                    self.state = Chunk::Done;
                    return Ok(i);
                }
                _ => return Err(H1Error::Chunked),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
