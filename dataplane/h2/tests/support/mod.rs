//! Test support: a monoio runtime, an in-test HTTP/2 server built from spar-h2's
//! settings with a few trivial handlers, and a raw frame writer/reader with just enough
//! HPACK (literals without Huffman, indexed references) to play a hostile client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    unreachable_pub,
    missing_debug_implementations
)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::IntoPollIo;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::{TcpListener, TcpStream};
use spar_h2::{FloodBudget, FloodReason, ServerConnection, ServerSettings, send_data};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Runs `fut` on a fresh monoio runtime (io_uring when available, else epoll) with timers.
pub fn run<F: Future>(fut: F) -> F::Output {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime");
    rt.block_on(fut)
}

/// Waits (bounded) until `cond` holds; panics with `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the handler does with each request.
#[derive(Clone, Copy, Debug)]
pub enum Handler {
    /// 200 with a short body, once the request body has ended.
    Ok,
    /// Keep the request open, never answer.
    Hold,
    /// 200 and `len` body bytes sent with `send_data`, given up after `timeout`
    /// (then RST_STREAM CANCEL).
    BigBody { len: usize, timeout: Duration },
}

/// What the server saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub accepted: Cell<usize>,
    pub paths: RefCell<Vec<String>>,
    pub bytes_read: Cell<u64>,
    pub bytes_written: Cell<u64>,
    pub connections: Cell<usize>,
    pub closed: Cell<usize>,
    pub flood: Cell<Option<FloodReason>>,
    /// Body bytes `BigBody` could not hand to h2 before its timeout.
    pub unsent: Cell<Option<usize>>,
    pub held: RefCell<Vec<Box<dyn std::any::Any>>>,
}

/// Starts an HTTP/2 server on 127.0.0.1 (ephemeral port) that serves every connection
/// with `settings`, `budget` and `handler`. A request to `/goaway` makes the server send
/// GOAWAY (graceful) on its connection.
pub fn serve(
    settings: ServerSettings,
    budget: FloodBudget,
    handler: Handler,
) -> (SocketAddr, Rc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    monoio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let io = Counted {
                io: stream.into_poll_io().unwrap(),
                seen: s.clone(),
            };
            s.connections.set(s.connections.get() + 1);
            monoio::spawn(connection(
                io,
                settings.clone(),
                budget.clone(),
                handler,
                s.clone(),
            ));
        }
    });
    (addr, seen)
}

/// Serves one connection over an in-memory pipe whose buffers hold `capacity` bytes each
/// way; returns the client's end.
pub fn serve_duplex(
    capacity: usize,
    settings: ServerSettings,
    budget: FloodBudget,
    handler: Handler,
) -> (tokio::io::DuplexStream, Rc<Seen>) {
    let (client, server) = tokio::io::duplex(capacity);
    let seen = Rc::new(Seen::default());
    let io = Counted {
        io: server,
        seen: seen.clone(),
    };
    seen.connections.set(1);
    monoio::spawn(connection(io, settings, budget, handler, seen.clone()));
    (client, seen)
}

async fn connection<T: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: Counted<T>,
    settings: ServerSettings,
    budget: FloodBudget,
    handler: Handler,
    seen: Rc<Seen>,
) {
    let Ok(mut conn) = ServerConnection::handshake(io, &settings, budget).await else {
        seen.closed.set(seen.closed.get() + 1);
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        seen.accepted.set(seen.accepted.get() + 1);
        let path = req.uri().path().to_owned();
        seen.paths.borrow_mut().push(path.clone());
        if path == "/goaway" {
            conn.graceful_shutdown();
        }
        let seen = seen.clone();
        monoio::spawn(respond_with(handler, req, respond, seen));
    }
    seen.flood.set(conn.flood());
    seen.closed.set(seen.closed.get() + 1);
}

async fn respond_with(
    handler: Handler,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Rc<Seen>,
) {
    match handler {
        Handler::Hold => {
            seen.held.borrow_mut().push(Box::new((req, respond)));
        }
        Handler::Ok => {
            let mut body = req.into_body();
            while let Some(chunk) = body.data().await {
                let Ok(chunk) = chunk else { return };
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let res = http::Response::builder().status(200).body(()).unwrap();
            if let Ok(mut stream) = respond.send_response(res, false) {
                let _ = stream.send_data(Bytes::from_static(b"ok"), true);
            }
        }
        Handler::BigBody { len, timeout } => {
            let res = http::Response::builder().status(200).body(()).unwrap();
            let Ok(mut stream) = respond.send_response(res, false) else {
                return;
            };
            let mut body = Bytes::from(vec![b'x'; len]);
            let sent =
                monoio::time::timeout(timeout, send_data(&mut stream, &mut body, true)).await;
            if sent.is_err() {
                stream.send_reset(h2::Reason::CANCEL);
            }
            seen.unsent.set(Some(body.len()));
            // Keep the stream alive until the reset is written.
            seen.held.borrow_mut().push(Box::new(stream));
        }
    }
}

/// Counts the bytes the server reads and writes.
pub struct Counted<T> {
    io: T,
    seen: Rc<Seen>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        this.seen.bytes_read.set(this.seen.bytes_read.get() + n);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.seen
                .bytes_written
                .set(this.seen.bytes_written.get() + n as u64);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

// ----- raw frames -----

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut v = Vec::with_capacity(9 + payload.len());
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, value) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(n: u64) -> Vec<u8> {
    frame(PING, 0, 0, &n.to_be_bytes())
}

/// HPACK integer with an `n`-bit prefix, `flags` in the first byte's high bits.
pub fn hpack_int(flags: u8, n: u32, mut value: usize) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if value < max {
        return vec![flags | value as u8];
    }
    let mut v = vec![flags | max as u8];
    value -= max;
    while value >= 128 {
        v.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    v.push(value as u8);
    v
}

fn hpack_string(s: &[u8]) -> Vec<u8> {
    let mut v = hpack_int(0, 7, s.len());
    v.extend_from_slice(s);
    v
}

/// Literal header field without indexing, new name (RFC 7541 6.2.2).
pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend(hpack_string(name.as_bytes()));
    v.extend(hpack_string(value));
    v
}

/// Literal header field with incremental indexing, new name: enters the dynamic table.
pub fn literal_indexed(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x40];
    v.extend(hpack_string(name.as_bytes()));
    v.extend(hpack_string(value));
    v
}

/// Indexed header field (RFC 7541 6.1).
pub fn indexed(index: usize) -> Vec<u8> {
    hpack_int(0x80, 7, index)
}

/// The pseudo-headers of a GET request, as literals.
pub fn request_block(path: &str) -> Vec<u8> {
    let mut v = literal(":method", b"GET");
    v.extend(literal(":scheme", b"http"));
    v.extend(literal(":path", path.as_bytes()));
    v.extend(literal(":authority", b"attack.test"));
    v
}

pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// RST_STREAM's or GOAWAY's error code.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    pub fn goaway_debug(&self) -> String {
        String::from_utf8_lossy(&self.payload[8..]).into_owned()
    }
}

/// A raw HTTP/2 client over TCP.
pub struct Raw {
    pub io: TcpStreamPoll,
}

impl Raw {
    /// Connects and sends the preface and an empty SETTINGS frame.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_with(addr, &[]).await
    }

    pub async fn connect_with(addr: SocketAddr, settings_pairs: &[(u16, u32)]) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut raw = Raw {
            io: stream.into_poll_io().unwrap(),
        };
        let mut hello = spar_h2::guard::PREFACE.to_vec();
        hello.extend(settings(settings_pairs));
        raw.send(&hello).await.unwrap();
        raw
    }

    /// Reads the server's SETTINGS, ACKs it, and waits for the ACK of ours.
    pub async fn handshake(&mut self) {
        let mut acked = false;
        let mut got = false;
        while !(acked && got) {
            let f = self
                .next(Duration::from_secs(5))
                .await
                .expect("handshake frame");
            if f.kind == SETTINGS && f.flags & ACK != 0 {
                acked = true;
            } else if f.kind == SETTINGS {
                got = true;
                self.send(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// The next frame, or None on EOF, error, or `within` passing.
    pub async fn next(&mut self, within: Duration) -> Option<Frame> {
        match monoio::time::timeout(within, read_frame(&mut self.io)).await {
            Ok(Ok(f)) => Some(f),
            _ => None,
        }
    }

    /// Reads until a GOAWAY (returned) or the end; all frames read are kept in `log`.
    pub async fn until_goaway(&mut self, within: Duration, log: &mut Vec<Frame>) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.next(left).await?;
            log.push(f.clone());
            if f.kind == GOAWAY {
                return Some(f);
            }
        }
    }

    /// Whether the server closed the connection (EOF or reset) within `within`,
    /// reading and discarding frames meanwhile.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match monoio::time::timeout(left, self.io.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Frame> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}
