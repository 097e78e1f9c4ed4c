//! Heads the proxy writes: requests to upstreams, responses and local replies to clients.
//! Hop-by-hop fields are removed, the framing field is written once from the body the
//! proxy will actually send, and the forwarding fields are applied.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::BytesMut;

use crate::fields::{ConnectionOption, Field, list_items};
use crate::{Header, RequestBody, RequestHead, ResponseBody, ResponseHead, Version};

#[cfg(test)]
mod tests;

/// How [`encode_request_head`] rewrites a request for the upstream.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions<'a> {
    /// Append this client address to `x-forwarded-for` (creating it when absent).
    pub append_xff: Option<IpAddr>,
    /// Set `x-forwarded-proto` to this when the request has none.
    pub set_xfp: Option<&'a [u8]>,
    /// Add `x-request-id` with this value when the request has none.
    pub request_id: Option<&'a [u8]>,
    /// Write this request-target (path and query) instead of the request's. Written as
    /// given: it must be a valid origin-form target (no SP, CR, LF), checked when the route
    /// that produces it is configured.
    pub path_override: Option<&'a [u8]>,
    /// Fields appended as given, after all others. Written as given: names must be tokens
    /// and values free of CR and LF, checked when the config that produces them is loaded.
    pub extra_headers: &'a [(&'a [u8], &'a [u8])],
    /// Forward the upgrade: keep `Upgrade` and send `connection: upgrade`.
    pub upgrade: bool,
    /// Received fields dropped by name (lower-case; a route's `request_headers_to_remove`
    /// and the fields its `request_headers_to_add` overwrite). Host is never dropped here:
    /// use `authority_override`.
    pub remove_headers: &'a [&'a str],
    /// Write this authority as `host` instead of the received one (host rewrite).
    pub authority_override: Option<&'a [u8]>,
}

/// Writes the head to send upstream, always as HTTP/1.1.
///
/// - The target is written in origin-form ([`RequestHead::path_and_query`], or
///   `opts.path_override`). When the request had an absolute-form (or CONNECT's
///   authority-form) target, `host` is written first from its authority and any received
///   Host is dropped (RFC 9112 3.2.2). An HTTP/1.0 request without any authority gets no
///   Host: pass one in `extra_headers`.
/// - Removed: `Connection` and every field it names (except Host, which the upstream needs,
///   and the framing fields, which are rewritten anyway), `Keep-Alive`, `Proxy-Connection`,
///   `TE`, `Trailer`, `Transfer-Encoding`, `Content-Length`, `Upgrade` (unless
///   `opts.upgrade`), and `Expect: 100-continue` (the proxy answers 100 itself).
/// - Then: the framing field for `head.body`, `upgrade` and `connection: upgrade` when
///   upgrading, `x-forwarded-for` (the client address appended to the last received one
///   with ", "), `x-forwarded-proto` and `x-request-id` when absent, `opts.extra_headers`.
pub fn encode_request_head(out: &mut BytesMut, head: &RequestHead, opts: &ForwardOptions<'_>) {
    let mut last_xff = None;
    let mut has_xfp = false;
    let mut has_request_id = false;
    let mut nominated = Nominated::new(&head.headers);
    let mut size = 64 + head.target.len();
    for (i, field) in head.headers.iter().enumerate() {
        size += field.name.len() + field.value.len() + 4;
        match Field::of(&field.name) {
            Field::XForwardedFor => last_xff = Some(i),
            Field::XForwardedProto => has_xfp = true,
            Field::XRequestId => has_request_id = true,
            Field::Connection => nominated.add(&field.value),
            _ => {}
        }
    }
    if nominated.any() {
        last_xff = last_xff.filter(|_| !nominated.contains(b"x-forwarded-for"));
        has_xfp &= !nominated.contains(b"x-forwarded-proto");
        has_request_id &= !nominated.contains(b"x-request-id");
    }
    out.reserve(size + extra_size(opts.extra_headers));

    out.extend_from_slice(head.method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(opts.path_override.unwrap_or(head.path_and_query()));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Origin-form and asterisk-form keep the received Host; the others carry the authority.
    let host_from_target = !matches!(head.target.first(), Some(b'/' | b'*'));
    let authority = opts
        .authority_override
        .or_else(|| head.authority.as_deref().filter(|_| host_from_target));
    let host_written = authority.is_some();
    if let Some(authority) = authority {
        put_field(out, b"host", authority);
    }

    for (i, field) in head.headers.iter().enumerate() {
        let keep = match Field::of(&field.name) {
            Field::Host => !host_written,
            _ if removed(opts.remove_headers, &field.name) => false,
            Field::ContentLength | Field::Upgrade => false,
            Field::Expect if field.value.eq_ignore_ascii_case(b"100-continue") => false,
            f if f.is_hop_by_hop() => false,
            _ => !(nominated.any() && nominated.contains(&field.name)),
        };
        if !keep {
            continue;
        }
        out.extend_from_slice(&field.name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&field.value);
        if let (Some(ip), true) = (opts.append_xff, last_xff == Some(i)) {
            if !field.value.is_empty() {
                out.extend_from_slice(b", ");
            }
            put_ip(out, ip);
        }
        out.extend_from_slice(b"\r\n");
    }

    match head.body {
        RequestBody::None => {}
        RequestBody::Length(n) => put_content_length(out, n),
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if let (true, Some(upgrade)) = (opts.upgrade, &head.upgrade) {
        put_field(out, b"upgrade", upgrade);
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    if let (Some(ip), None) = (opts.append_xff, last_xff) {
        out.extend_from_slice(b"x-forwarded-for: ");
        put_ip(out, ip);
        out.extend_from_slice(b"\r\n");
    }
    if let (Some(proto), false) = (opts.set_xfp, has_xfp) {
        put_field(out, b"x-forwarded-proto", proto);
    }
    if let (Some(id), false) = (opts.request_id, has_request_id) {
        put_field(out, b"x-request-id", id);
    }
    put_extra(out, opts.extra_headers);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head to send to the client for an upstream response.
///
/// The status line is HTTP/1.1, or HTTP/1.0 when the client spoke 1.0 (then the caller
/// passes `UntilClose` rather than `Chunked`). Hop-by-hop fields and the framing fields are
/// removed as for requests, then the framing field for `body` is written: `Length` and
/// `Chunked` as such, nothing for `UntilClose`; for `None` the received `Content-Length` is
/// kept (it describes the resource in answers to HEAD and in 304s) except on 1xx and 204,
/// which must not have one (RFC 9110 8.6). A 101 keeps `Upgrade` and gets
/// `connection: upgrade`; otherwise `connection: close` is written when `close` (or the body
/// runs until close), and `connection: keep-alive` to a 1.0 client that stays connected.
/// `extra_headers` come last.
pub fn encode_response_head(
    out: &mut BytesMut,
    head: &ResponseHead,
    body: &ResponseBody,
    close: bool,
    client_version: Version,
    extra_headers: &[(&[u8], &[u8])],
    remove_headers: &[&str],
) {
    let mut nominated = Nominated::new(&head.headers);
    let mut size = 64 + head.reason.len();
    for field in &head.headers {
        size += field.name.len() + field.value.len() + 4;
        if Field::of(&field.name) == Field::Connection {
            nominated.add(&field.value);
        }
    }
    out.reserve(size + extra_size(extra_headers));

    out.extend_from_slice(client_version.as_bytes());
    out.extend_from_slice(b" ");
    put_decimal(out, u64::from(head.status));
    out.extend_from_slice(b" ");
    out.extend_from_slice(&head.reason);
    out.extend_from_slice(b"\r\n");

    let switching = head.status == 101;
    let informational = (100..200).contains(&head.status);
    let keep_length = *body == ResponseBody::None && !informational && head.status != 204;
    for field in &head.headers {
        let keep = match Field::of(&field.name) {
            Field::ContentLength => keep_length,
            Field::Upgrade => switching,
            f if f.is_hop_by_hop() => false,
            _ if removed(remove_headers, &field.name) => false,
            _ => !(nominated.any() && nominated.contains(&field.name)),
        };
        if keep {
            put_field(out, &field.name, &field.value);
        }
    }

    match body {
        ResponseBody::Length(n) => put_content_length(out, *n),
        ResponseBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseBody::None | ResponseBody::UntilClose => {}
    }
    if switching {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if close || *body == ResponseBody::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    put_extra(out, extra_headers);
    out.extend_from_slice(b"\r\n");
}

/// Writes a reply the proxy makes up itself (Envoy's local reply): HTTP/1.1 status line,
/// `content-type: text/plain`, `content-length`, `connection: close` when `close`, then
/// `body`. No Date: the codec has no clock.
pub fn encode_local_reply(out: &mut BytesMut, status: u16, body: &[u8], close: bool) {
    encode_local_reply_with(out, status, body, close, &[]);
}

/// [`encode_local_reply`] with more fields (a redirect's `location`, CORS fields, a
/// route's response headers) written after the fixed ones. `content-type` is written only
/// when there is a body and `extra_headers` has none.
pub fn encode_local_reply_with(
    out: &mut BytesMut,
    status: u16,
    body: &[u8],
    close: bool,
    extra_headers: &[(&[u8], &[u8])],
) {
    out.reserve(96 + body.len() + extra_size(extra_headers));
    out.extend_from_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(status));
    out.extend_from_slice(b" ");
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    let typed = extra_headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"content-type"));
    if !body.is_empty() && !typed {
        out.extend_from_slice(b"content-type: text/plain\r\n");
    }
    put_content_length(out, body.len() as u64);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    put_extra(out, extra_headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Whether `name` is in `remove` (lower-case names), compared case-insensitively.
fn removed(remove: &[&str], name: &[u8]) -> bool {
    remove
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
}

/// The reason phrase registered for `status` (RFC 9110 15, plus 429 and 431 from RFC
/// 6585), or "Unknown" as Envoy writes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// Formats 16 random bytes as a UUID version 4 (RFC 9562 5.4): lowercase hex in
/// 8-4-4-4-12 groups, version nibble 4, variant bits 10. The caller supplies the randomness.
pub fn uuid_v4(random: [u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = random;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1; // leave the dash
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    out
}

/// The field names a message's `Connection` fields nominate for removal. The first few are
/// kept at hand; beyond that, lookups re-read the `Connection` fields (never seen in
/// practice, and still correct).
struct Nominated<'h> {
    headers: &'h [Header],
    names: [&'h [u8]; NOMINATED_AT_HAND],
    len: usize,
    overflow: bool,
}

/// Browsers and load tools send only `close`, `keep-alive` or `upgrade`, which nominate
/// nothing; 4 covers anything plausible.
const NOMINATED_AT_HAND: usize = 4;

impl<'h> Nominated<'h> {
    fn new(headers: &'h [Header]) -> Self {
        Nominated {
            headers,
            names: [&[]; NOMINATED_AT_HAND],
            len: 0,
            overflow: false,
        }
    }

    fn add(&mut self, connection: &'h [u8]) {
        for name in list_items(connection) {
            if ConnectionOption::of(name) != ConnectionOption::Field {
                continue;
            }
            match self.names.get_mut(self.len) {
                Some(slot) => {
                    *slot = name;
                    self.len += 1;
                }
                None => self.overflow = true,
            }
        }
    }

    fn any(&self) -> bool {
        self.len > 0
    }

    fn contains(&self, name: &[u8]) -> bool {
        if self.overflow {
            return self
                .headers
                .iter()
                .filter(|h| Field::of(&h.name) == Field::Connection)
                .any(|h| list_items(&h.value).any(|n| n.eq_ignore_ascii_case(name)));
        }
        self.names
            .iter()
            .take(self.len)
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the caller's extra fields, except any that would change the message's framing
/// or connection handling (`content-length`, `transfer-encoding`, `connection` and the other
/// hop-by-hop fields, `upgrade`): those are the codec's to write, and config that sets them is
/// refused when loaded. This is the second line of defence against a desynchronised
/// stream.
fn put_extra(out: &mut BytesMut, extra: &[(&[u8], &[u8])]) {
    for (name, value) in extra {
        let field = Field::of(name);
        let reserved =
            field.is_hop_by_hop() || matches!(field, Field::ContentLength | Field::Upgrade);
        if !reserved {
            put_field(out, name, value);
        }
    }
}

fn extra_size(extra: &[(&[u8], &[u8])]) -> usize {
    extra.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
}

fn put_content_length(out: &mut BytesMut, n: u64) {
    out.extend_from_slice(b"content-length: ");
    put_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn put_ip(out: &mut BytesMut, ip: IpAddr) {
    // BytesMut's fmt::Write grows the buffer and never fails.
    let _ = write!(out, "{ip}");
}
