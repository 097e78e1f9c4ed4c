//! The fake's HTTP/1.1 plumbing: request targets, request heads with their
//! content-length bodies, JSON responses.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use serde_json::Value;

/// A parsed request target.
pub(super) struct Target {
    pub(super) path: String,
    pub(super) query: BTreeMap<String, String>,
}

pub(super) fn parse_target(target: &str) -> Target {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    Target {
        path: path.trim_end_matches('/').to_owned(),
        query,
    }
}

/// A request: method, target and its body (by content-length; GETs have none).
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) body: Vec<u8>,
}

/// Reads one request head and its content-length body.
pub(super) fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    let mut head: Option<(Head, usize)> = None;
    loop {
        if head.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut words = text.split_whitespace();
            let method = words.next()?.to_owned();
            let target = words.next()?.to_owned();
            let length = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            head = Some((
                Head {
                    method,
                    target,
                    body: Vec::new(),
                },
                length,
            ));
        }
        if let Some((h, length)) = &mut head
            && buf.len() >= *length
        {
            h.body = buf.drain(..*length).collect();
            return head.map(|(h, _)| h);
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

pub(super) fn respond(
    conn: &mut TcpStream,
    code: u16,
    body: &Value,
    close: bool,
) -> std::io::Result<()> {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        _ => "Service Unavailable",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let reply = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{text}",
        text.len()
    );
    conn.write_all(reply.as_bytes())
}
