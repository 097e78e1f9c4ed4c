//! One check of one endpoint: connect, ask, read the answer, all within the check's timeout.

use std::net::SocketAddr;

use spar_cluster::health::{
    CheckResult, HealthCheck, HealthCheckKind, StatusLine, http_status, tcp_receive_matches,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes read from a TCP check's answer before it counts as a mismatch (64 KiB: far
/// above any sane health answer, small enough to bound a misbehaving peer).
const MAX_TCP_ANSWER: usize = 64 * 1024;
/// Read size per call (bytes).
const READ_CHUNK: usize = 4096;

/// Runs one check; a timeout, a connect or I/O error counts as `Failed`.
pub(crate) async fn check(addr: SocketAddr, hc: &HealthCheck, cluster: &str) -> CheckResult {
    tokio::time::timeout(hc.timeout, attempt(addr, &hc.kind, cluster))
        .await
        .unwrap_or(CheckResult::Failed)
}

async fn attempt(addr: SocketAddr, kind: &HealthCheckKind, cluster: &str) -> CheckResult {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return CheckResult::Failed;
    };
    match kind {
        HealthCheckKind::Http { path, host, .. } => {
            let host = host.as_deref().unwrap_or(cluster);
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: spar-health\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).await.is_err() {
                return CheckResult::Failed;
            }
            let mut buf = Vec::with_capacity(READ_CHUNK);
            loop {
                match http_status(&buf) {
                    StatusLine::Status(s) if kind.status_ok(s) => return CheckResult::Healthy,
                    StatusLine::Status(_) => return CheckResult::FailedNow,
                    StatusLine::Invalid => return CheckResult::Failed,
                    StatusLine::Incomplete => {}
                }
                if !read_more(&mut stream, &mut buf).await {
                    return CheckResult::Failed;
                }
            }
        }
        HealthCheckKind::Tcp { send, receive } => {
            if let Some(send) = send
                && stream.write_all(send).await.is_err()
            {
                return CheckResult::Failed;
            }
            let mut buf = Vec::new();
            loop {
                if tcp_receive_matches(receive, &buf) {
                    return CheckResult::Healthy;
                }
                if buf.len() > MAX_TCP_ANSWER || !read_more(&mut stream, &mut buf).await {
                    return CheckResult::Failed;
                }
            }
        }
    }
}

/// Appends what the peer sends next; false at EOF or on an error.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; READ_CHUNK];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
