//! The monitoring port (Istio: 15014): `GET /metrics` (Prometheus text: connected proxies,
//! push latency, NACKs) and `GET /debug/syncz` (JSON: each connected proxy's sync state per
//! resource type, what `sparctl proxy-status` prints). The config source may add its own
//! metrics (the Kubernetes source's request counters). A minimal HTTP/1.1 responder: one
//! request per connection, nothing else on this port.

use std::sync::Arc;

use serde_json::{Value, json};
use spar_xds::Cache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

/// More Prometheus text to append to `/metrics`.
pub(crate) type Extra = Arc<dyn Fn() -> String + Send + Sync>;

/// Both sources of extra metrics as one.
pub(crate) fn join(a: Option<Extra>, b: Option<Extra>) -> Option<Extra> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Arc::new(move || a() + &b())),
        (a, b) => a.or(b),
    }
}

/// Serves until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, cache: Arc<Cache>, extra: Option<Extra>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let cache = cache.clone();
        let extra = extra.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // Read the request head (bounded); the body, if any, is ignored.
            while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let (status, kind, body) = route(target, &cache, extra.as_deref());
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(reply.as_bytes()).await {
                debug!(error = %e, "monitoring reply not sent");
            }
        });
    }
}

fn route(
    target: &str,
    cache: &Cache,
    extra: Option<&(dyn Fn() -> String + Send + Sync)>,
) -> (&'static str, &'static str, String) {
    match target.split('?').next().unwrap_or("") {
        "/metrics" => {
            let mut text = cache.render_metrics();
            if let Some(extra) = extra {
                text.push_str(&extra());
            }
            ("200 OK", "text/plain; version=0.0.4", text)
        }
        "/debug/syncz" => ("200 OK", "application/json", syncz(cache).to_string()),
        _ => (
            "404 Not Found",
            "text/plain",
            "endpoints: /metrics /debug/syncz\n".to_owned(),
        ),
    }
}

/// `{"proxies": [{"id", "streams", "types": {TYPE_URL: {"sent", "acked", "nack"}}}]}`.
pub(crate) fn syncz(cache: &Cache) -> Value {
    let proxies: Vec<Value> = cache
        .status()
        .into_iter()
        .map(|(id, node)| {
            let types: serde_json::Map<String, Value> = node
                .types
                .into_iter()
                .map(|(type_url, t)| {
                    let nack = t
                        .nack
                        .as_ref()
                        .map(|n| json!({ "version": n.version, "error": n.error }));
                    (
                        type_url,
                        json!({
                            "sent": t.sent_version,
                            "acked": t.acked_version,
                            "synced": t.synced(),
                            "nack": nack,
                        }),
                    )
                })
                .collect();
            json!({ "id": id, "streams": node.streams, "types": types })
        })
        .collect();
    json!({ "proxies": proxies })
}
