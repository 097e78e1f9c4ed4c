//! Chunked transfer coding (RFC 9112 7.1): a decoder that hands out chunk data without
//! copying, and the framing bytes an encoder writes around data.

use crate::Header;
use bytes::{Buf, Bytes, BytesMut};

use crate::fields::{is_field_vchar, is_tchar};

#[cfg(test)]
mod tests;

/// Written after each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with an empty trailer section: ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest chunk-size line, extensions and CRLF included, in bytes. Real senders use a few
/// bytes; the cap bounds buffering on a peer that streams an endless extension (Node.js
/// caps extensions at 16 KiB since CVE-2024-22019; we need far less).
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;

/// Most hex digits in a chunk size: 16 fill a u64, so no size can overflow.
const MAX_SIZE_DIGITS: usize = 16;

/// What [`ChunkedDecoder::decode`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes, split off the buffer (at most what is buffered of the current chunk).
    Data(Bytes),
    /// The buffer holds no further complete element: read more, then call again.
    NeedMore,
    /// The last chunk and the trailer section were consumed; bytes after them (a pipelined
    /// message) stay in the buffer.
    End,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Not hex, empty, leading or trailing whitespace, more than 16 hex digits.
    #[error("invalid chunk size")]
    BadSize,
    #[error("invalid chunk extension")]
    BadExtension,
    /// Chunk data not followed by CRLF, or a line ended by a bare LF.
    #[error("invalid chunk line ending")]
    BadTerminator,
    #[error("trailer section too large")]
    TrailersTooLarge,
    #[error("invalid trailer field")]
    BadTrailer,
}

impl ChunkError {
    /// A short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkError::BadSize => "bad_chunk_size",
            ChunkError::BadExtension => "bad_chunk_extension",
            ChunkError::BadTerminator => "bad_chunk_terminator",
            ChunkError::TrailersTooLarge => "trailers_too_large",
            ChunkError::BadTrailer => "bad_trailer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer field lines until an empty line.
    Trailers,
    Done,
    Failed(ChunkError),
}

/// See [`ChunkedDecoder::position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A chunk-size line comes next.
    BetweenChunks,
    /// This many bytes of the current chunk's data come next, then its CRLF.
    InChunk(u64),
    /// The current chunk's CRLF comes next.
    AfterChunkData,
    /// The last chunk was read (trailers, or the end), or the body failed.
    Ended,
}

/// Decodes one chunked body, incrementally: a state machine over chunk-size line, data,
/// CRLF, and trailers. Trailers are validated and kept for [`ChunkedDecoder::take_trailers`]
/// (an HTTP/1.1 relay drops them, Envoy's default; an HTTP/2 one forwards them: gRPC).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    max_trailer_bytes: usize,
    trailer_bytes: usize,
    trailers: Vec<Header>,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body; the trailer section (its field lines with their
    /// CRLFs) may hold at most `max_trailer_bytes`.
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            max_trailer_bytes,
            trailer_bytes: 0,
            trailers: Vec::new(),
        }
    }

    /// Where in the framing the decoder stands: what the next input bytes are. Lets a
    /// caller that decoded part of a body hand the rest of the stream on as chunked again.
    pub fn position(&self) -> Position {
        match self.state {
            State::Size => Position::BetweenChunks,
            State::Data(left) => Position::InChunk(left),
            State::DataEnd => Position::AfterChunkData,
            State::Trailers | State::Done | State::Failed(_) => Position::Ended,
        }
    }

    /// The trailer fields read so far (all of them once `decode` returned `End`), names as
    /// sent, values without surrounding whitespace. Takes them out of the decoder.
    pub fn take_trailers(&mut self) -> Vec<Header> {
        std::mem::take(&mut self.trailers)
    }

    /// Whether the whole body, trailers included, has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing from the front of `buf` and returns the next piece of body. After
    /// an error the decoder keeps returning it; after `End` it keeps returning `End`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        match self.step(buf) {
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let window = buf.get(..MAX_CHUNK_LINE_BYTES).unwrap_or(&buf[..]);
                    let Some(lf) = memchr::memchr(b'\n', window) else {
                        check_size_prefix(window)?;
                        return Ok(Chunk::NeedMore);
                    };
                    let size = parse_size_line(&buf[..lf])?;
                    buf.advance(lf + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    // `take` fits usize: it is at most buf.len().
                    let take = left.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    self.state = match left - take {
                        0 => State::DataEnd,
                        left => State::Data(left),
                    };
                    return Ok(Chunk::Data(data));
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(ChunkError::BadTerminator),
                    None if buf.first().is_some_and(|&b| b != b'\r') => {
                        return Err(ChunkError::BadTerminator);
                    }
                    None => return Ok(Chunk::NeedMore),
                },
                State::Trailers => {
                    let Some(lf) = memchr::memchr(b'\n', buf) else {
                        // A pending field line counts with the LF it still needs; only
                        // the final empty line does not count.
                        if !matches!(&buf[..], b"" | b"\r")
                            && self.trailer_bytes + buf.len() + 1 > self.max_trailer_bytes
                        {
                            return Err(ChunkError::TrailersTooLarge);
                        }
                        return Ok(Chunk::NeedMore);
                    };
                    let Some(line) = buf[..lf].strip_suffix(b"\r") else {
                        return Err(ChunkError::BadTerminator);
                    };
                    if line.is_empty() {
                        buf.advance(lf + 1);
                        self.state = State::Done;
                        return Ok(Chunk::End);
                    }
                    self.trailer_bytes += lf + 1;
                    if self.trailer_bytes > self.max_trailer_bytes {
                        return Err(ChunkError::TrailersTooLarge);
                    }
                    if !is_trailer_field(line) {
                        return Err(ChunkError::BadTrailer);
                    }
                    let field = buf.split_to(lf + 1).freeze();
                    if let Some(colon) = memchr::memchr(b':', &field) {
                        let value = field.slice(colon + 1..lf + 1 - 2);
                        let start = value
                            .iter()
                            .position(|b| !matches!(b, b' ' | b'\t'))
                            .unwrap_or(value.len());
                        let end = value
                            .iter()
                            .rposition(|b| !matches!(b, b' ' | b'\t'))
                            .map_or(start, |e| e + 1);
                        self.trailers.push(Header {
                            name: field.slice(..colon),
                            value: value.slice(start..end.max(start)),
                        });
                    }
                }
                State::Done => return Ok(Chunk::End),
                State::Failed(e) => return Err(e),
            }
        }
    }
}

/// Refuses a chunk-size line early, before its LF arrived: when it is already too long, or
/// its size cannot be valid whatever follows.
fn check_size_prefix(window: &[u8]) -> Result<(), ChunkError> {
    let digits = window.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > MAX_SIZE_DIGITS || (digits == 0 && !window.is_empty()) {
        return Err(ChunkError::BadSize);
    }
    if window.len() >= MAX_CHUNK_LINE_BYTES {
        return Err(if digits == window.len() {
            ChunkError::BadSize
        } else {
            ChunkError::BadExtension
        });
    }
    Ok(())
}

/// `chunk-size [ chunk-ext ] CRLF` (the LF already stripped): the size.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let Some(line) = line.strip_suffix(b"\r") else {
        return Err(ChunkError::BadTerminator);
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_SIZE_DIGITS {
        return Err(ChunkError::BadSize);
    }
    let (hex, ext) = line.split_at(digits);
    // At most 16 hex digits: the shifts cannot overflow.
    let size = hex
        .iter()
        .fold(0u64, |n, &b| (n << 4) | u64::from(hex_value(b)));
    if !ext.is_empty() {
        check_extensions(ext)?;
    }
    Ok(size)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )` with ext-val a token or a
/// quoted-string (RFC 9112 7.1.1), `ext` being what follows the hex digits. Anything but
/// whitespace and `;` right after the digits (`5 `, `5x`, `0x5`) is a bad size.
fn check_extensions(ext: &[u8]) -> Result<(), ChunkError> {
    let mut at = skip_ws(ext, 0);
    if ext.get(at) != Some(&b';') {
        return Err(ChunkError::BadSize);
    }
    loop {
        // `at` is on a `;`.
        let name = skip_ws(ext, at + 1);
        at = skip_token(ext, name).ok_or(ChunkError::BadExtension)?;
        let mut next = skip_ws(ext, at);
        if ext.get(next) == Some(&b'=') {
            let value = skip_ws(ext, next + 1);
            at = if ext.get(value) == Some(&b'"') {
                skip_quoted(ext, value + 1)
            } else {
                skip_token(ext, value)
            }
            .ok_or(ChunkError::BadExtension)?;
            next = skip_ws(ext, at);
        }
        match ext.get(next) {
            // The line ends right after a name or value: no trailing whitespace.
            None if next == at => return Ok(()),
            Some(b';') => at = next,
            _ => return Err(ChunkError::BadExtension),
        }
    }
}

fn skip_ws(s: &[u8], mut at: usize) -> usize {
    while matches!(s.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

/// Past a non-empty token starting at `at`.
fn skip_token(s: &[u8], at: usize) -> Option<usize> {
    let len = s.get(at..)?.iter().take_while(|&&b| is_tchar(b)).count();
    (len > 0).then_some(at + len)
}

/// Past the rest of a quoted-string whose opening quote is just before `at`.
fn skip_quoted(s: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match *s.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => {
                let escaped = *s.get(at + 1)?;
                if !is_field_vchar(escaped) {
                    return None;
                }
                at += 2;
            }
            b if is_field_vchar(b) => at += 1,
            _ => return None,
        }
    }
}

/// `field-name ":" OWS field-value OWS`, with no whitespace before the colon, no obs-fold
/// (a line starting with whitespace) and no control bytes but HTAB in the value.
fn is_trailer_field(line: &[u8]) -> bool {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    name > 0 && line.get(name) == Some(&b':') && line[name + 1..].iter().all(|&b| is_field_vchar(b))
}

/// Writes the size line of a chunk of `len` data bytes: `<hex>\r\n`. The caller then writes
/// the data and [`CHUNK_END`], and ends the body with [`LAST_CHUNK`]. `len` must not be 0,
/// which would be the last chunk.
pub fn encode_chunk_header(out: &mut BytesMut, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len as u64;
    loop {
        at -= 1;
        digits[at] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.reserve(digits.len() - at + 2);
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}
