//! A small blocking HTTP/1.1 client for tests: raw bytes out, a parsed
//! response back (content-length, chunked or until-close bodies).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `s`, with `buf` holding bytes already read (and
/// keeping bytes past this response, for pipelining).
pub fn read_response(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_request: bool,
) -> anyhow::Result<Response> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = r.parse(buf)? {
            let status = r.code.unwrap_or(0);
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            buf.drain(..n);
            if status < 200 {
                continue; // interim response
            }
            let find = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let body = if head_request || status == 204 || status == 304 {
                Vec::new()
            } else if let Some(cl) = find("content-length") {
                let len: usize = cl.trim().parse()?;
                fill(s, buf, len)?;
                buf.drain(..len).collect()
            } else if find("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                read_chunked(s, buf)?
            } else {
                s.read_to_end(buf)?;
                std::mem::take(buf)
            };
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let mut chunk = [0u8; 16384];
        let n = read_retry(s, &mut chunk)?;
        anyhow::ensure!(
            n > 0,
            "connection closed before a complete response head ({} bytes)",
            buf.len()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
    let mut chunk = [0u8; 65536];
    while buf.len() < len {
        let n = read_retry(s, &mut chunk)?;
        anyhow::ensure!(
            n > 0,
            "connection closed with {} of {len} body bytes",
            buf.len()
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

fn read_line(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<String> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        let mut chunk = [0u8; 4096];
        let n = read_retry(s, &mut chunk)?;
        anyhow::ensure!(n > 0, "connection closed inside chunked framing");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
        if size == 0 {
            loop {
                if read_line(s, buf)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        fill(s, buf, size + 2)?;
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// A read that retries when a signal interrupts it.
pub fn read_retry(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

pub fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends raw request bytes on a new connection and reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Response> {
    let mut s = connect(addr)?;
    s.write_all(request)?;
    let head = request.starts_with(b"HEAD ");
    read_response(&mut s, &mut Vec::new(), head)
}

/// GET `path` with `connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
}

/// GET `path` with a given Host.
pub fn get_host(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<Response> {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
}

/// True when the peer closed the connection (EOF or reset) within 5 s.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}
