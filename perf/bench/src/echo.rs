//! A fast HTTP/1.1 upstream for tests and demos.
//!
//! Every request gets `200` with a fixed body of `body_size` bytes and a
//! content-length. Keep-alive and pipelining work (answers go out in request
//! order, batched into one write per read); request bodies, content-length or
//! chunked, are read and discarded so the connection stays in sync;
//! `Connection: close` and HTTP/1.0 are honoured; HEAD gets the head only.
//! With `echo_path`, responses carry `x-echo-path: <request target>`.
//!
//! Each thread runs one monoio runtime with its own `SO_REUSEPORT` listener on
//! the same port, so the kernel spreads connections over threads.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

use crate::h1::{self, BodySkipper};
use crate::rbuf::RecvBuf;
use crate::sys::{self, Io};

/// Pause after a failed accept (EMFILE and the like), so a full fd table
/// does not turn the accept loop into a busy loop.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Echo server settings.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Port 0 picks a free port; see [`EchoServer::addr`].
    pub listen: SocketAddr,
    /// Response body size, bytes.
    pub body_size: usize,
    pub threads: usize,
    pub io: Io,
    /// Add `x-echo-path` to responses.
    pub echo_path: bool,
    /// Answer with `x-served-by: NAME` and the body `NAME\n`.
    pub name: Option<String>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_size: 100,
            threads: 1,
            io: Io::Uring,
            echo_path: false,
            name: None,
        }
    }
}

/// A running echo server. Its threads serve until the process exits.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    io: Io,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Binds on every thread and returns once all listeners are up.
    pub fn start(cfg: &EchoConfig) -> io::Result<Self> {
        let io = sys::resolve_io(cfg.io);
        let resp = Responses::new(cfg.body_size, cfg.echo_path, cfg.name.as_deref());
        let mut addr = cfg.listen;
        let mut threads = Vec::with_capacity(cfg.threads.max(1));
        for i in 0..cfg.threads.max(1) {
            // The first thread resolves port 0; the others bind the real port.
            let (tx, rx) = mpsc::channel();
            let resp = resp.clone();
            let h = std::thread::Builder::new()
                .name(format!("spar-echo-{i}"))
                .spawn(move || {
                    let served = sys::block_on(io, serve(addr, resp, tx.clone()));
                    if let Err(e) = served.and_then(|r| r) {
                        // Before binding this reaches `start`; after, nobody
                        // listens on the channel, so say it here.
                        if let Err(mpsc::SendError(Err(e))) = tx.send(Err(e)) {
                            eprintln!("spar-bench echo thread {i}: {e}");
                        }
                    }
                })?;
            addr = match rx.recv() {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::other("echo thread exited before binding")),
            };
            threads.push(h);
        }
        Ok(Self { addr, io, threads })
    }

    /// The bound address, with the real port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The driver in use after any fallback.
    pub fn io(&self) -> Io {
        self.io
    }

    /// Blocks until the server threads exit (they do not, unless they fail).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Prebuilt response bytes shared by all connections of a thread.
#[derive(Debug, Clone)]
struct Responses {
    /// Status line and content-length, without the final CRLF.
    head: Vec<u8>,
    body: Vec<u8>,
    echo_path: bool,
}

impl Responses {
    fn new(body_size: usize, echo_path: bool, name: Option<&str>) -> Self {
        let body = match name {
            Some(n) => format!("{n}\n").into_bytes(),
            None => vec![b'e'; body_size],
        };
        let mut head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len());
        if let Some(n) = name {
            head.push_str(&format!("x-served-by: {n}\r\n"));
        }
        Self {
            head: head.into_bytes(),
            body,
            echo_path,
        }
    }

    /// Appends the response to one request.
    fn write(&self, out: &mut Vec<u8>, req: &h1::RequestHead, path: &[u8]) {
        out.extend_from_slice(&self.head);
        if self.echo_path {
            out.extend_from_slice(b"x-echo-path: ");
            out.extend_from_slice(path);
            out.extend_from_slice(b"\r\n");
        }
        if !req.keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !req.is_head {
            out.extend_from_slice(&self.body);
        }
    }
}

async fn serve(
    addr: SocketAddr,
    resp: Responses,
    bound: mpsc::Sender<io::Result<SocketAddr>>,
) -> io::Result<()> {
    let listener = TcpListener::bind_with_config(addr, &ListenerOpts::new().backlog(4096))?;
    let _ = bound.send(listener.local_addr());
    let resp = std::rc::Rc::new(resp);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(connection(stream, resp.clone()));
            }
            // Out of fds or a connection reset before accept: keep serving,
            // but do not spin while the condition lasts.
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                monoio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Where the parser stands between reads.
#[derive(Debug)]
enum State {
    Head,
    /// Discarding the body of a request already answered in `out`.
    Body {
        skip: BodySkipper,
        close: bool,
    },
}

async fn connection(mut stream: TcpStream, resp: std::rc::Rc<Responses>) {
    let mut buf = RecvBuf::new();
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut state = State::Head;
    'conn: loop {
        // Answer every complete request already buffered, in order.
        let mut close = false;
        loop {
            match &mut state {
                State::Head => match h1::parse_request_head(buf.data()) {
                    Ok(Some(req)) => {
                        let path = &buf.data()[req.path.0..req.path.1];
                        resp.write(&mut out, &req, path);
                        buf.consume(req.len);
                        state = State::Body {
                            skip: BodySkipper::new(req.body),
                            close: !req.keep_alive,
                        };
                    }
                    Ok(None) => break,
                    Err(_) => {
                        out.extend_from_slice(
                            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\
                              connection: close\r\n\r\n",
                        );
                        close = true;
                        break;
                    }
                },
                State::Body { skip, close: c } => {
                    let c = *c;
                    match skip.skip(buf.data()) {
                        Ok(n) => buf.consume(n),
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                    if !skip.is_done() {
                        break;
                    }
                    state = State::Head;
                    if c {
                        close = true;
                        break;
                    }
                }
            }
        }
        if !out.is_empty() {
            let (res, back) = stream.write_all(std::mem::take(&mut out)).await;
            out = back;
            out.clear();
            if res.is_err() {
                break 'conn;
            }
        }
        if close {
            break;
        }
        match buf.fill(&mut stream).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
