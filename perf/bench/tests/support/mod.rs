//! Test upstreams with behaviour the echo server does not have (stalls,
//! chunked responses, silence), written with blocking std sockets so they
//! share no code with what they test.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spar_bench::{EchoConfig, EchoServer, Io, LoadConfig, Target};

/// What the scripted server does with the n-th request (0-based, over all
/// connections).
pub type Script = dyn Fn(u64) -> Reply + Send + Sync;

#[derive(Debug, Clone)]
pub enum Reply {
    /// Write these bytes.
    Bytes(Vec<u8>),
    /// Sleep, then write these bytes.
    After(Duration, Vec<u8>),
    /// Write these bytes, then close the connection.
    ThenClose(Vec<u8>),
    /// Never answer (the connection stays open).
    Silence,
}

#[derive(Debug)]
pub struct Scripted {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
}

/// Starts a thread-per-connection server that answers GET-style requests
/// (no body) as the script says. Threads are detached; they end with the
/// test process.
pub fn scripted(script: Arc<Script>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let (script, r) = (script.clone(), r.clone());
            std::thread::spawn(move || serve(stream, &*script, &r));
        }
    });
    Scripted {
        addr,
        connections,
        requests,
    }
}

fn serve(mut s: TcpStream, script: &Script, count: &AtomicU64) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let n = count.fetch_add(1, Ordering::SeqCst);
            match script(n) {
                Reply::Bytes(b) => {
                    if s.write_all(&b).is_err() {
                        return;
                    }
                }
                Reply::After(d, b) => {
                    std::thread::sleep(d);
                    if s.write_all(&b).is_err() {
                        return;
                    }
                }
                Reply::ThenClose(b) => {
                    let _ = s.write_all(&b);
                    return;
                }
                Reply::Silence => {
                    // Hold the connection open until the client goes away.
                    let _ = s.read_to_end(&mut Vec::new());
                    return;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn ok_response() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
}

pub fn echo() -> EchoServer {
    EchoServer::start(&EchoConfig::default()).unwrap()
}

/// A short closed-loop config against `addr`; tests change what they need.
pub fn config(addr: SocketAddr) -> LoadConfig {
    let url = format!("http://{addr}/");
    LoadConfig {
        target: Target::parse(&url).unwrap(),
        url,
        method: "GET".to_owned(),
        headers: Vec::new(),
        body_size: 0,
        connections: 2,
        threads: 1,
        duration: Some(Duration::from_secs(1)),
        requests: None,
        warmup: Duration::ZERO,
        rate: None,
        new_conn: false,
        timeout: Duration::from_secs(2),
        io: Io::Uring,
        pin: Vec::new(),
        progress: false,
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
