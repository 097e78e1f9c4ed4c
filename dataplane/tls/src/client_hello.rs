//! Sans-io peek at a TLS ClientHello: the server name (SNI), the ALPN protocols and the TLS
//! versions a client offers, read from the first bytes of a connection without consuming
//! them, so that a listener can pick a filter chain (by `server_names`, transport protocol or
//! ALPN) and then either terminate TLS or pass the bytes through untouched.
//!
//! [`peek`] takes every byte read so far and answers [`Peek::NeedMore`], [`Peek::NotTls`],
//! [`Peek::Hello`] or [`Peek::Invalid`]. Each answer other than `NeedMore` is final: more bytes
//! never change it (the fuzz target `tls_client_hello` checks this), so a caller reads until
//! the answer is final or its buffer holds [`MAX_PEEK_BYTES`].

use std::borrow::Cow;

/// A TLS record header: content type (1 byte), legacy version (2), length (2).
pub const RECORD_HEADER_BYTES: usize = 5;
/// Longest record payload a peer may send before encryption: 2^14 bytes (RFC 8446 5.1).
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 16 * 1024;
/// Longest ClientHello accepted, its 4-byte handshake header included: 16 KiB. Real hellos
/// are 200 to 2,000 bytes (a post-quantum key share adds about 1.2 KiB); a larger one is
/// refused, as Envoy's TLS inspector refuses hellos past its 16 KiB buffer.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;
/// Most records one ClientHello may span. A hello of at most [`MAX_HELLO_BYTES`] always fits
/// in two; clients that fragment further are refused.
pub const MAX_HELLO_RECORDS: usize = 2;
/// Most bytes [`peek`] ever needs to reach a final answer: a hello of [`MAX_HELLO_BYTES`] in
/// [`MAX_HELLO_RECORDS`] records. A caller's peek buffer of this size is always enough.
pub const MAX_PEEK_BYTES: usize = MAX_HELLO_RECORDS * RECORD_HEADER_BYTES + MAX_HELLO_BYTES;

/// TLS 1.0 on the wire (`legacy_version` of most hellos).
pub const TLS10: u16 = 0x0301;
/// TLS 1.1 on the wire.
pub const TLS11: u16 = 0x0302;
/// TLS 1.2 on the wire.
pub const TLS12: u16 = 0x0303;
/// TLS 1.3 on the wire.
pub const TLS13: u16 = 0x0304;

const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const SNI_HOST_NAME: u8 = 0;
/// Longest DNS name in presentation form (RFC 1035 3.1, without the trailing dot).
const MAX_HOST_NAME_BYTES: usize = 253;

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// The bytes so far are a valid start of a ClientHello: read more.
    NeedMore,
    /// The connection does not start with a TLS handshake record (plaintext, or another
    /// protocol): treat it as raw bytes.
    NotTls,
    /// A complete ClientHello.
    Hello(ClientHello),
    /// The connection starts as TLS but its ClientHello is malformed or too large. Envoy's
    /// TLS inspector closes such connections; a caller may also treat them as not TLS.
    Invalid(HelloError),
}

/// What a client offered in its ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension, lowercased (DNS names compare without
    /// case); `None` when the client sent none.
    pub sni: Option<String>,
    /// ALPN protocol names in the client's order; empty when it sent no ALPN extension.
    pub alpn: Vec<Vec<u8>>,
    /// TLS versions offered (wire values such as [`TLS12`], [`TLS13`]), in the client's
    /// order: the supported_versions extension without GREASE values, or `legacy_version`
    /// alone when the extension is absent.
    pub versions: Vec<u16>,
    /// Cipher suites offered (wire values, GREASE included), in the client's order.
    pub cipher_suites: Vec<u16>,
    /// Input bytes up to the end of the ClientHello message (record headers included). The
    /// peeked bytes are not consumed: a passthrough forwards all of them.
    pub len: usize,
}

impl ClientHello {
    /// Whether the client offers TLS 1.3.
    pub fn offers_tls13(&self) -> bool {
        self.versions.contains(&TLS13)
    }

    /// Whether the client offers the ALPN protocol `name` (such as `b"h2"`).
    pub fn offers_alpn(&self, name: &[u8]) -> bool {
        self.alpn.iter().any(|p| p == name)
    }
}

/// Why a connection that starts as TLS has no usable ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("TLS record of {len} bytes, longer than the 16384 allowed")]
    RecordTooLarge { len: usize },
    #[error("empty TLS handshake record")]
    EmptyRecord,
    #[error("TLS record with version {major}.{minor} inside a ClientHello")]
    RecordVersion { major: u8, minor: u8 },
    #[error("record of content type {0} inside a ClientHello")]
    UnexpectedRecord(u8),
    #[error("first handshake message has type {0}, not ClientHello (1)")]
    NotClientHello(u8),
    #[error("ClientHello of {len} bytes, longer than the {MAX_HELLO_BYTES} accepted")]
    TooLarge { len: usize },
    #[error("ClientHello spans more than {MAX_HELLO_RECORDS} records")]
    TooManyRecords,
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("ClientHello repeats extension {0}")]
    DuplicateExtension(u16),
    #[error("ClientHello server name is not a host name")]
    BadServerName,
}

/// Reads a ClientHello from `input`, every byte of the connection read so far. Never
/// panics, whatever the input; looks at no more than [`MAX_PEEK_BYTES`] bytes.
pub fn peek(input: &[u8]) -> Peek {
    match hello_message(input) {
        Ok(Some((message, len))) => match parse_hello(&message, len) {
            Ok(hello) => Peek::Hello(hello),
            Err(e) => Peek::Invalid(e),
        },
        Ok(None) => Peek::NeedMore,
        Err(Stop::NotTls) => Peek::NotTls,
        Err(Stop::Invalid(e)) => Peek::Invalid(e),
    }
}

enum Stop {
    NotTls,
    Invalid(HelloError),
}

impl From<HelloError> for Stop {
    fn from(e: HelloError) -> Self {
        Stop::Invalid(e)
    }
}

/// A whole ClientHello handshake message and the input offset just past it.
type Message<'a> = (Cow<'a, [u8]>, usize);

/// Collects the ClientHello handshake message (header included) from the records at the
/// start of `input`, with the input offset just past its last byte; `None` until all of it
/// has arrived. Every decision uses only the bytes before the point it is made at, so an
/// answer other than `None` holds for every longer input.
fn hello_message(input: &[u8]) -> Result<Option<Message<'_>>, Stop> {
    let mut message: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0;
    for record in 0..MAX_HELLO_RECORDS {
        let first = record == 0;
        let header = &input[pos.min(input.len())..];
        let header = &header[..header.len().min(RECORD_HEADER_BYTES)];
        // The first record decides whether this is TLS at all; a later one that is not a
        // handshake record breaks a hello that has started.
        if let Some(&content_type) = header.first()
            && content_type != CONTENT_TYPE_HANDSHAKE
        {
            return Err(if first {
                Stop::NotTls
            } else {
                HelloError::UnexpectedRecord(content_type).into()
            });
        }
        // Record versions 3.0 to 3.4; a first record with another version is not TLS.
        let version_ok = |major: u8, minor: u8| major == 3 && minor <= 4;
        if first {
            if header.get(1).is_some_and(|&major| major != 3)
                || header.get(2).is_some_and(|&minor| minor > 4)
            {
                return Err(Stop::NotTls);
            }
        } else if let Some(&[major, minor]) = header.get(1..3).and_then(|v| v.as_array())
            && !version_ok(major, minor)
        {
            return Err(HelloError::RecordVersion { major, minor }.into());
        }
        let [_, _, _, hi, lo] = *header else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(HelloError::EmptyRecord.into());
        }
        if len > MAX_RECORD_PAYLOAD_BYTES {
            return Err(HelloError::RecordTooLarge { len }.into());
        }
        let start = pos + RECORD_HEADER_BYTES;
        let end = start + len;
        let payload = &input[start..end.min(input.len())];
        let available = if message.is_empty() {
            Cow::Borrowed(payload)
        } else {
            let mut joined = message.into_owned();
            joined.extend_from_slice(payload);
            Cow::Owned(joined)
        };
        message = available;
        if let Some(&kind) = message.first()
            && kind != HANDSHAKE_CLIENT_HELLO
        {
            return Err(HelloError::NotClientHello(kind).into());
        }
        if let [_, a, b, c, ..] = *message {
            let total = 4 + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
            if total > MAX_HELLO_BYTES {
                return Err(HelloError::TooLarge { len: total }.into());
            }
            if message.len() >= total {
                // The end of the message within the input: `message` holds the payload
                // bytes of every record so far, this record's last.
                let end_in_input = start + (total - (message.len() - payload.len()));
                let whole = match message {
                    Cow::Borrowed(b) => Cow::Borrowed(&b[..total]),
                    Cow::Owned(mut v) => {
                        v.truncate(total);
                        Cow::Owned(v)
                    }
                };
                return Ok(Some((whole, end_in_input)));
            }
        }
        if payload.len() < len {
            return Ok(None);
        }
        pos = end;
    }
    // Every record allowed is complete and the message is not: refused before the next
    // record's header arrives, so the answer is the same for any longer input.
    Err(HelloError::TooManyRecords.into())
}

/// A cursor over a handshake message; every read checks its bounds.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.buf.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u8(what)?);
        Ok(Reader {
            buf: self.take(n, what)?,
        })
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self, what: &'static str) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u16(what)?);
        Ok(Reader {
            buf: self.take(n, what)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Parses a whole ClientHello message (RFC 8446 4.1.2; the TLS 1.2 form is the same with
/// optional extensions).
fn parse_hello(message: &[u8], len: usize) -> Result<ClientHello, HelloError> {
    let mut r = Reader {
        buf: message.get(4..).unwrap_or_default(),
    };
    let legacy_version = r.u16("legacy_version")?;
    r.take(32, "random")?;
    if r.vec8("legacy_session_id")?.len() > 32 {
        return Err(HelloError::Malformed(
            "legacy_session_id longer than 32 bytes",
        ));
    }
    let mut suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher_suites length"));
    }
    let mut cipher_suites = Vec::with_capacity(suites.len() / 2);
    while !suites.is_empty() {
        cipher_suites.push(suites.u16("cipher_suites")?);
    }
    if r.vec8("legacy_compression_methods")?.is_empty() {
        return Err(HelloError::Malformed("no compression method"));
    }
    let mut hello = ClientHello {
        sni: None,
        alpn: Vec::new(),
        versions: Vec::new(),
        cipher_suites,
        len,
    };
    let mut supported_versions = None;
    // A TLS 1.2 hello may end here, without an extensions block.
    if !r.is_empty() {
        let mut extensions = r.vec16("extensions")?;
        if !r.is_empty() {
            return Err(HelloError::Malformed("bytes after the extensions"));
        }
        let mut seen = Vec::new();
        while !extensions.is_empty() {
            let kind = extensions.u16("extension type")?;
            let mut data = extensions.vec16("extension data")?;
            seen.push(kind);
            match kind {
                EXT_SERVER_NAME => hello.sni = server_name(&mut data)?,
                EXT_ALPN => hello.alpn = alpn(&mut data)?,
                EXT_SUPPORTED_VERSIONS => supported_versions = Some(versions(&mut data)?),
                _ => {}
            }
        }
        // RFC 8446 4.2: an extension type appears at most once.
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(HelloError::DuplicateExtension(w[0]));
        }
    }
    hello.versions = supported_versions.unwrap_or_else(|| vec![legacy_version]);
    Ok(hello)
}

/// The server_name extension (RFC 6066 3): the first `host_name` entry, validated and
/// lowercased. Entries of other name types are skipped; a second `host_name` is refused.
fn server_name(data: &mut Reader<'_>) -> Result<Option<String>, HelloError> {
    let mut list = data.vec16("server_name list")?;
    if !data.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("server_name extension length"));
    }
    let mut found = None;
    while !list.is_empty() {
        let kind = list.u8("server_name type")?;
        let name = list.vec16("server_name")?.buf;
        if kind != SNI_HOST_NAME {
            continue;
        }
        if found.is_some() {
            return Err(HelloError::Malformed("two host names in server_name"));
        }
        if name.is_empty()
            || name.len() > MAX_HOST_NAME_BYTES
            || !name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._*".contains(&b))
        {
            return Err(HelloError::BadServerName);
        }
        found = Some(
            name.iter()
                .map(|&b| char::from(b.to_ascii_lowercase()))
                .collect(),
        );
    }
    Ok(found)
}

/// The application_layer_protocol_negotiation extension (RFC 7301 3.1).
fn alpn(data: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut list = data.vec16("ALPN list")?;
    if !data.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("ALPN extension length"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec8("ALPN protocol")?.buf;
        if name.is_empty() {
            return Err(HelloError::Malformed("empty ALPN protocol name"));
        }
        protocols.push(name.to_vec());
    }
    Ok(protocols)
}

/// The supported_versions extension of a ClientHello (RFC 8446 4.2.1), GREASE values
/// (RFC 8701: 0x?A?A with equal bytes) left out.
fn versions(data: &mut Reader<'_>) -> Result<Vec<u16>, HelloError> {
    let mut list = data.vec8("supported_versions")?;
    if !data.is_empty() || list.is_empty() || list.len() % 2 != 0 {
        return Err(HelloError::Malformed("supported_versions length"));
    }
    let mut versions = Vec::with_capacity(list.len() / 2);
    while !list.is_empty() {
        let v = list.u16("supported_versions")?;
        let [hi, lo] = v.to_be_bytes();
        if !(hi == lo && hi & 0x0f == 0x0a) {
            versions.push(v);
        }
    }
    Ok(versions)
}

#[cfg(test)]
mod tests;
