//! The CA's counters over plain HTTP: `GET /metrics` (also `/stats/prometheus`) answers
//! [`Stats::prometheus`]; anything else is 404. One request per connection, then close:
//! this is for a Prometheus scraper every few seconds, not for traffic, so a minimal
//! HTTP/1.1 responder does, with no HTTP server crate.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::authority::Ca;

/// A request head longer than this is not a scrape: the connection is closed.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A scraper that has not sent its request head in this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until the task is dropped; each connection on its
/// own task.
pub async fn serve_metrics(listener: TcpListener, ca: Arc<Ca>) {
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            continue;
        };
        let ca = ca.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(conn, &ca).await {
                debug!(%peer, error = %e, "metrics request failed");
            }
        });
    }
}

async fn answer(mut conn: TcpStream, ca: &Ca) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await?;
            if n == 0 || head.len() + n > MAX_HEAD_BYTES {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (words.next(), words.next());
    let path = path.map(|p| p.split(|b| *b == b'?').next().unwrap_or_default());
    let (status, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics" | b"/stats/prometheus")) => {
            ("200 OK", ca.stats().prometheus())
        }
        _ => ("404 Not Found", "not found: try /metrics\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
