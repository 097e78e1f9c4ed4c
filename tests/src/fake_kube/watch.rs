//! The fake API server's watch responses: chunked newline-delimited events after the
//! requested resourceVersion, bookmarks, 410 Gone for compacted history, and an end on a
//! break, a timeout or the client leaving.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Shared, WatchRequest, status_object};

fn chunk(conn: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    let line = format!("{event}\n");
    conn.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
}

/// Streams events of `w` on `conn` until the timeout, a break, or the client leaves.
pub(super) fn stream(shared: &Shared, mut conn: TcpStream, w: WatchRequest) {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let api_version = if w.served.group.is_empty() {
        w.version.clone()
    } else {
        format!("{}/{}", w.served.group, w.version)
    };
    let event = |kind: &str, o: &Value| {
        let mut o = o.clone();
        o["apiVersion"] = json!(api_version);
        json!({"type": kind, "object": o})
    };
    let mut st = shared.lock();
    let generation = st.generation;
    let Ok(clone) = conn.try_clone() else { return };
    let id = st.next_conn;
    st.next_conn += 1;
    st.open.push((id, clone));
    let matches = |group: &str, plural: &str, ns: &str| {
        group == w.served.group
            && plural == w.served.plural
            && w.namespace.as_deref().is_none_or(|n| n == ns)
    };
    let mut pending: Vec<Value> = Vec::new();
    let mut pos = match w.from {
        Some(from) if from < st.compacted => {
            let gone = status_object(
                410,
                "Expired",
                &format!("too old resource version: {from} ({})", st.compacted),
            );
            pending.push(json!({"type": "ERROR", "object": gone}));
            u64::MAX
        }
        Some(from) => from,
        None => {
            for ((g, p, ns, _), o) in &st.objects {
                if matches(g, p, ns) {
                    pending.push(event("ADDED", o));
                }
            }
            st.rv
        }
    };
    drop(st);
    let deadline = Instant::now() + w.timeout;
    let mut bookmarked = pos;
    loop {
        let sent = pending.drain(..).all(|e| chunk(&mut conn, &e).is_ok());
        if !sent {
            break;
        }
        if pos == u64::MAX || Instant::now() >= deadline {
            let _ = conn.write_all(b"0\r\n\r\n");
            break;
        }
        // The lock is held only inside this block: never while writing.
        let mut st = shared.lock();
        if st.generation != generation || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if st.rv <= pos {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            st = shared
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if st.generation != generation {
                break;
            }
        }
        if pos < st.compacted {
            // History this watch still needed is gone.
            let gone = status_object(410, "Expired", "too old resource version");
            pending.push(json!({"type": "ERROR", "object": gone}));
            pos = u64::MAX;
            continue;
        }
        for e in st.events.iter().filter(|e| e.rv > pos) {
            if matches(&e.group, &e.plural, &e.namespace) {
                pending.push(event(e.kind, &e.object));
            }
        }
        pos = pos.max(st.rv);
        // A bookmark when the server moved on without anything for this watch.
        if w.bookmarks && pending.is_empty() && pos > bookmarked {
            pending.push(json!({"type": "BOOKMARK", "object": {
                "apiVersion": api_version, "kind": w.served.kind,
                "metadata": {"resourceVersion": pos.to_string()}}}));
        }
        bookmarked = pos;
    }
    let mut st = shared.lock();
    st.open.retain(|(i, _)| *i != id);
}
