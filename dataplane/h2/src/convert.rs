//! Heads between h2's `http` types and spar-http's `RequestHead` / `ResponseHead`, so that
//! routing, authorization and the HTTP/1.1 codec see one type whatever the protocol.
//!
//! What it does, sans-io:
//! - [`request_head`]: an h2 request into the `RequestHead` the HTTP/1.1 parser produces.
//!   It writes the equivalent HTTP/1.1 head into one buffer and runs
//!   `spar_http::parse_request` on it, so every check and limit of the HTTP/1.1 path
//!   applies unchanged (one copy of the head per request, the price of one type). RFC 9113
//!   8.2.2 and 8.3 are enforced on top (h2 enforces them too; this is the second line).
//! - [`h2_request`]: a `RequestHead` (from either protocol) into the `http::Request` sent
//!   to an h2 upstream, with the same [`ForwardOptions`] the HTTP/1.1 encoder takes.
//! - [`response_head`] and [`h2_response`]: the same for responses.
//! - [`trailers_from_map`] and [`trailers_to_map`]: trailer sections as an owned list.
//!
//! What it does not do: bodies, flow control, I/O; extended CONNECT (RFC 8441, refused with
//! [`ConvertError::ExtendedConnect`]); HTTP/1.1 upgrades (h2 has none).

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use spar_http::{
    ForwardOptions, Header, Limits, Method, RequestBody, RequestError, RequestHead, ResponseBody,
    ResponseError, ResponseHead, parse_request, parse_response, reason_phrase,
};

#[cfg(test)]
mod tests;

/// Fields that describe one connection, never forwarded, and that make an HTTP/2 message
/// malformed (RFC 9113 8.2.2), plus `te` and `trailer`, which the HTTP/1.1 encoder of
/// spar-http drops too. `te: trailers` is the one `te` an HTTP/2 message may carry; it is
/// kept towards h2 upstreams (gRPC needs it).
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The connection-specific fields whose presence makes an HTTP/2 request malformed.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Fields never allowed in a trailer section we forward (RFC 9110 6.5.1: framing,
/// routing and connection fields).
const NOT_IN_TRAILERS: [&str; 4] = ["content-length", "host", "expect", "authorization"];

/// The request's scheme, from `:scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An HTTP/2 request head as the rest of the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Request {
    /// The head, as `spar_http::parse_request` would give it for the equivalent HTTP/1.1
    /// request: version `Http11`, `body` `Length` when the client sent `content-length`,
    /// `None` when the HEADERS frame ended the stream, else `Chunked` (length unknown:
    /// DATA frames follow).
    pub head: RequestHead,
    /// `:scheme`, when known. None for CONNECT, and when the client sent no `:authority`
    /// (h2 drops `:scheme` then): use the connection's (TLS or not).
    pub scheme: Option<Scheme>,
}

/// Why a message could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A malformed request (RFC 9113 8.1.1): 400. The detail is a snake_case label.
    #[error("malformed http/2 request: {0}")]
    Malformed(&'static str),
    /// An extended CONNECT (`:protocol`, RFC 8441), which spar-proxy does not support yet.
    #[error("extended CONNECT (:protocol {0}) is not supported")]
    ExtendedConnect(String),
    /// The equivalent HTTP/1.1 request was refused by spar-http.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// An upstream response that cannot be forwarded: 502. The detail is a label.
    #[error("bad http/2 response: {0}")]
    BadResponse(&'static str),
    /// The equivalent HTTP/1.1 response was refused by spar-http: 502.
    #[error(transparent)]
    Response(#[from] ResponseError),
}

impl ConvertError {
    /// The status to answer the client with.
    pub fn status(&self) -> u16 {
        match self {
            ConvertError::Malformed(_) => 400,
            ConvertError::ExtendedConnect(_) => 501,
            ConvertError::Request(e) => e.status(),
            ConvertError::BadResponse(_) | ConvertError::Response(_) => 502,
        }
    }

    /// A short snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConvertError::Malformed(detail) | ConvertError::BadResponse(detail) => detail,
            ConvertError::ExtendedConnect(_) => "extended_connect",
            ConvertError::Request(e) => e.reason(),
            ConvertError::Response(e) => e.reason(),
        }
    }
}

/// Converts an h2 request head (`end_of_stream`: its HEADERS frame ended the stream).
///
/// - The request line is `METHOD target HTTP/1.1`: the path (`:path`) in origin-form (or
///   `*`), or for CONNECT (no `:path`, no `:scheme`) the `:authority` in authority-form.
/// - `host` is `:authority` when there is one; a received `host` is then dropped, matching
///   or not (RFC 9113 8.3.1: `:authority` wins). Without `:authority` the `host` field is
///   kept, and neither is a 400 (`MissingHost`).
/// - Malformed (400): a connection-specific field (`connection`, `keep-alive`,
///   `proxy-connection`, `transfer-encoding`, `upgrade`), `te` other than `trailers`, an
///   upper-case field name, a pseudo-header among the fields, a scheme other than http
///   and https, `end_of_stream` with a non-zero `content-length`.
/// - `cookie` fields, which HTTP/2 splits (RFC 9113 8.2.3), are joined with `; `.
/// - Framing: `content-length` as sent; else `transfer-encoding: chunked` unless
///   `end_of_stream`.
pub fn request_head(
    parts: &http::request::Parts,
    end_of_stream: bool,
    limits: &Limits,
) -> Result<H2Request, ConvertError> {
    if let Some(protocol) = parts.extensions.get::<h2::ext::Protocol>() {
        return Err(ConvertError::ExtendedConnect(protocol.as_str().to_owned()));
    }
    let connect = parts.method == http::Method::CONNECT;
    let authority = parts.uri.authority().map(|a| a.as_str());
    let scheme = match parts.uri.scheme_str() {
        None => None,
        Some(_) if connect => return Err(ConvertError::Malformed("scheme_in_connect")),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(Scheme::Http),
        Some(s) if s.eq_ignore_ascii_case("https") => Some(Scheme::Https),
        Some(_) => return Err(ConvertError::Malformed("bad_scheme")),
    };

    let mut size = 64 + parts.uri.path().len() + parts.uri.query().map_or(0, str::len);
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut out = BytesMut::with_capacity(size + authority.map_or(0, str::len));
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    if connect {
        let Some(authority) = authority else {
            return Err(ConvertError::Malformed("connect_without_authority"));
        };
        if parts
            .uri
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/")
        {
            return Err(ConvertError::Malformed("path_in_connect"));
        }
        out.extend_from_slice(authority.as_bytes());
    } else {
        match parts.uri.path_and_query() {
            Some(p) if !p.as_str().is_empty() => out.extend_from_slice(p.as_str().as_bytes()),
            _ => return Err(ConvertError::Malformed("missing_path")),
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = authority {
        put_field(&mut out, b"host", authority.as_bytes());
    }

    let mut content_length = false;
    let mut cookies = 0;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        check_request_field(n, value.as_bytes())?;
        match n {
            "host" if authority.is_some() => continue,
            "cookie" => {
                cookies += 1;
                continue;
            }
            "content-length" => content_length = true,
            _ => {}
        }
        put_field(&mut out, n.as_bytes(), value.as_bytes());
    }
    if cookies > 0 {
        out.extend_from_slice(b"cookie: ");
        let mut first = true;
        for value in parts.headers.get_all(http::header::COOKIE) {
            if !first {
                out.extend_from_slice(b"; ");
            }
            first = false;
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if !content_length && !end_of_stream {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");

    // None is unreachable: the buffer ends with an empty line and has no LF anywhere but
    // at line ends (http's types refuse CR and LF in values).
    let head =
        parse_request(&mut out, limits)?.ok_or(ConvertError::Malformed("incomplete_head"))?;
    if end_of_stream && matches!(head.body, RequestBody::Length(n) if n > 0) {
        return Err(ConvertError::Malformed("content_length_mismatch"));
    }
    Ok(H2Request { head, scheme })
}

fn check_request_field(name: &str, value: &[u8]) -> Result<(), ConvertError> {
    if name.starts_with(':') {
        return Err(ConvertError::Malformed("pseudo_header_in_fields"));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ConvertError::Malformed("uppercase_field_name"));
    }
    if CONNECTION_SPECIFIC.contains(&name) {
        return Err(ConvertError::Malformed("connection_specific_field"));
    }
    if name == "te" && !value.eq_ignore_ascii_case(b"trailers") {
        return Err(ConvertError::Malformed("bad_te"));
    }
    Ok(())
}

/// Builds the request to send to an h2 upstream for `head` (received over HTTP/1.1 or
/// HTTP/2), with `scheme` as `:scheme`.
///
/// - `:authority` is `opts.authority_override`, else the request's authority (Host, or
///   the target's authority); `host` is not sent. A request with neither is refused.
///   CONNECT gets `:authority` only (RFC 9113 8.5).
/// - `:path` is `opts.path_override`, else [`RequestHead::path_and_query`].
/// - Dropped: [`HOP_BY_HOP`] fields except `te: trailers`, the fields `connection`
///   nominates, `content-length` (written back from `head.body` when it is `Length`),
///   `expect: 100-continue`, and `opts.remove_headers`. Names are lower-cased.
/// - Then, as for HTTP/1.1: `x-forwarded-for` (client address appended),
///   `x-forwarded-proto` and `x-request-id` when absent, `opts.extra_headers`.
///   `opts.upgrade` is ignored: HTTP/2 has no upgrade.
pub fn h2_request(
    head: &RequestHead,
    scheme: Scheme,
    opts: &ForwardOptions<'_>,
) -> Result<http::Request<()>, ConvertError> {
    let method = http::Method::from_bytes(head.method.as_bytes())
        .map_err(|_| ConvertError::Malformed("bad_method"))?;
    let authority = opts
        .authority_override
        .or(head.authority.as_deref())
        .filter(|a| !a.is_empty())
        .ok_or(ConvertError::Malformed("missing_authority"))?;
    let authority = http::uri::Authority::try_from(authority)
        .map_err(|_| ConvertError::Malformed("bad_authority"))?;
    let uri = if head.method == Method::Connect {
        http::Uri::builder().authority(authority).build()
    } else {
        let path = opts.path_override.unwrap_or(head.path_and_query());
        let path = http::uri::PathAndQuery::try_from(path)
            .map_err(|_| ConvertError::Malformed("bad_path"))?;
        http::Uri::builder()
            .scheme(scheme.as_str())
            .authority(authority)
            .path_and_query(path)
            .build()
    }
    .map_err(|_| ConvertError::Malformed("bad_uri"))?;

    let nominated = nominated(&head.headers);
    let mut map = HeaderMap::with_capacity(head.headers.len() + 4);
    let mut xff = None;
    let mut has_xfp = false;
    let mut has_request_id = false;
    for field in &head.headers {
        let name = header_name(&field.name)?;
        let n = name.as_str();
        let keep = match n {
            "host" | "content-length" => false,
            "te" => field.value.eq_ignore_ascii_case(b"trailers"),
            "expect" => !field.value.eq_ignore_ascii_case(b"100-continue"),
            _ if HOP_BY_HOP.contains(&n) => false,
            _ if removed(opts.remove_headers, n) => false,
            _ => !nominated
                .iter()
                .any(|x| x.eq_ignore_ascii_case(n.as_bytes())),
        };
        if !keep {
            continue;
        }
        match n {
            "x-forwarded-for" => {
                // The last one gets the client address appended, as the h1 encoder does.
                xff = Some(field.value.clone());
                continue;
            }
            "x-forwarded-proto" => has_xfp = true,
            "x-request-id" => has_request_id = true,
            _ => {}
        }
        map.append(name, header_value(&field.value)?);
    }
    if let RequestBody::Length(n) = head.body {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    match (xff, opts.append_xff) {
        (Some(v), Some(ip)) => {
            map.append("x-forwarded-for", appended(&v, ip)?);
        }
        (Some(v), None) => {
            map.append("x-forwarded-for", header_value(&v)?);
        }
        (None, Some(ip)) => {
            map.append("x-forwarded-for", appended(b"", ip)?);
        }
        (None, None) => {}
    }
    if let (Some(proto), false) = (opts.set_xfp, has_xfp) {
        map.append("x-forwarded-proto", header_value(proto)?);
    }
    if let (Some(id), false) = (opts.request_id, has_request_id) {
        map.append("x-request-id", header_value(id)?);
    }
    for (name, value) in opts.extra_headers {
        map.append(header_name(name)?, header_value(value)?);
    }

    let mut req = http::Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_2;
    *req.headers_mut() = map;
    Ok(req)
}

/// `value, ip` (or `ip` alone when `value` is empty).
fn appended(value: &[u8], ip: IpAddr) -> Result<HeaderValue, ConvertError> {
    let mut s = BytesMut::with_capacity(value.len() + 48);
    s.extend_from_slice(value);
    if !value.is_empty() {
        s.extend_from_slice(b", ");
    }
    let mut ip_text = String::with_capacity(40);
    let _ = write!(ip_text, "{ip}");
    s.extend_from_slice(ip_text.as_bytes());
    HeaderValue::from_maybe_shared(s.freeze()).map_err(|_| ConvertError::Malformed("bad_xff"))
}

/// The field names a `connection` field nominates (lower-case compare at use).
fn nominated(headers: &[Header]) -> Vec<&[u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|item| item.trim_ascii())
        .filter(|item| {
            !item.is_empty()
                && !item.eq_ignore_ascii_case(b"close")
                && !item.eq_ignore_ascii_case(b"keep-alive")
                && !item.eq_ignore_ascii_case(b"upgrade")
                && !item.eq_ignore_ascii_case(b"host")
        })
        .collect()
}

fn removed(remove: &[&str], name: &str) -> bool {
    remove.iter().any(|r| r.eq_ignore_ascii_case(name))
}

fn header_name(name: &[u8]) -> Result<HeaderName, ConvertError> {
    HeaderName::from_bytes(name).map_err(|_| ConvertError::Malformed("bad_field_name"))
}

fn header_value(value: &[u8]) -> Result<HeaderValue, ConvertError> {
    HeaderValue::from_bytes(value).map_err(|_| ConvertError::Malformed("bad_field_value"))
}

/// Converts an h2 upstream response head to the `ResponseHead` the HTTP/1.1 parser would
/// give for it; `request_method` is the request's (HEAD and CONNECT change the framing).
///
/// The reason phrase is the registered one (HTTP/2 has none). Framing: `content-length` as
/// sent; else `Chunked` (length unknown: DATA frames follow) unless `end_of_stream`, which
/// is `None`. 1xx heads (100, 102, 103) come back with body `None`. Refused (502): status
/// 101 (RFC 9113 8.6), connection-specific fields, pseudo-headers among the fields, and
/// anything spar-http refuses.
pub fn response_head(
    parts: &http::response::Parts,
    end_of_stream: bool,
    request_method: &Method,
    limits: &Limits,
) -> Result<ResponseHead, ConvertError> {
    let status = parts.status.as_u16();
    if status == 101 {
        return Err(ConvertError::BadResponse("status_101"));
    }
    let mut size = 64;
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    let mut out = BytesMut::with_capacity(size);
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut digits = String::with_capacity(3);
    let _ = write!(digits, "{status}");
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_length = false;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n.starts_with(':') || n.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ConvertError::BadResponse("bad_field_name"));
        }
        if CONNECTION_SPECIFIC.contains(&n) {
            return Err(ConvertError::BadResponse("connection_specific_field"));
        }
        has_length |= n == "content-length";
        put_field(&mut out, n.as_bytes(), value.as_bytes());
    }
    let informational = (100..200).contains(&status);
    if !has_length && !end_of_stream && !informational {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let mut head = parse_response(&mut out, limits, request_method)?
        .ok_or(ConvertError::BadResponse("incomplete_head"))?;
    if end_of_stream {
        head.body = match head.body {
            ResponseBody::Length(n) if n > 0 => {
                return Err(ConvertError::BadResponse("content_length_mismatch"));
            }
            ResponseBody::Length(0) => ResponseBody::Length(0),
            _ => ResponseBody::None,
        };
    }
    head.keep_alive = true;
    Ok(head)
}

/// Builds the response to send to an h2 client for `head` (from either protocol).
///
/// Dropped: [`HOP_BY_HOP`] fields, the fields `connection` nominates, `remove_headers`,
/// and `content-length`, written back from `head.body` when it is `Length`, or kept as
/// received when the body is `None` for a reason other than 1xx and 204 (an answer to
/// HEAD, a 304), as the HTTP/1.1 encoder does. `extra_headers` are appended. A 1xx head
/// is for `SendResponse::send_informational`; 101 is refused (RFC 9113 8.6).
pub fn h2_response(
    head: &ResponseHead,
    extra_headers: &[(&[u8], &[u8])],
    remove_headers: &[&str],
) -> Result<http::Response<()>, ConvertError> {
    if head.status == 101 {
        return Err(ConvertError::BadResponse("status_101"));
    }
    let status = http::StatusCode::from_u16(head.status)
        .map_err(|_| ConvertError::BadResponse("bad_status"))?;
    let informational = (100..200).contains(&head.status);
    let keep_length = head.body == ResponseBody::None && !informational && head.status != 204;
    let nominated = nominated(&head.headers);
    let mut map = HeaderMap::with_capacity(head.headers.len() + extra_headers.len() + 1);
    for field in &head.headers {
        let name = header_name(&field.name).map_err(|_| ConvertError::BadResponse("bad_name"))?;
        let n = name.as_str();
        let keep = match n {
            "content-length" => keep_length,
            _ if HOP_BY_HOP.contains(&n) => false,
            _ if removed(remove_headers, n) => false,
            _ => !nominated
                .iter()
                .any(|x| x.eq_ignore_ascii_case(n.as_bytes())),
        };
        if keep {
            let value =
                header_value(&field.value).map_err(|_| ConvertError::BadResponse("bad_value"))?;
            map.append(name, value);
        }
    }
    if let ResponseBody::Length(n) = head.body {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    for (name, value) in extra_headers {
        let name = header_name(name).map_err(|_| ConvertError::BadResponse("bad_name"))?;
        let value = header_value(value).map_err(|_| ConvertError::BadResponse("bad_value"))?;
        map.append(name, value);
    }
    let mut res = http::Response::new(());
    *res.status_mut() = status;
    *res.version_mut() = http::Version::HTTP_2;
    *res.headers_mut() = map;
    Ok(res)
}

/// A trailer section as an owned list, in order, names lower-case. `grpc-status` and
/// `grpc-message` are ordinary entries, passed byte for byte.
pub fn trailers_from_map(map: &HeaderMap) -> Vec<Header> {
    map.iter()
        .map(|(name, value)| Header {
            name: Bytes::copy_from_slice(name.as_str().as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
        })
        .collect()
}

/// A trailer section for h2's `send_trailers`. Dropped: [`HOP_BY_HOP`] fields and those
/// that must not be trailers (`content-length`, `host`, `expect`, `authorization`).
/// Refused: names or values that HTTP/2 cannot carry.
pub fn trailers_to_map(trailers: &[Header]) -> Result<HeaderMap, ConvertError> {
    let mut map = HeaderMap::with_capacity(trailers.len());
    for field in trailers {
        let name = header_name(&field.name)?;
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || NOT_IN_TRAILERS.contains(&n) {
            continue;
        }
        map.append(name, header_value(&field.value)?);
    }
    Ok(map)
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
