//! Flood limits h2 has no knob for: a frame-counting wrapper on the inbound side of a
//! connection's I/O.
//!
//! h2 bounds memory under PING and SETTINGS floods by itself (it holds one pending ACK and
//! stops reading until it is written), ignores empty DATA frames, and limits resets,
//! CONTINUATION frames and header list sizes (see the crate docs). What it does not bound
//! is the *work* a peer can make us do while reading our replies: a client that sends
//! thousands of PINGs, SETTINGS, empty DATA frames or RST_STREAMs per second (the last is
//! the rapid reset attack, CVE-2023-44487, against a server that accepts every stream at
//! once, as a proxy does) keeps a worker busy for nothing. [`FloodGuard`] reads the frame
//! headers h2 is about to read, counts those four kinds per time window against a
//! [`FloodBudget`], and once one is over budget stops passing bytes to h2 and reports a
//! [`FloodReason`]; [`crate::ServerConnection`] then ends the connection with GOAWAY
//! ENHANCE_YOUR_CALM.
//!
//! What it does not do: parse payloads, decode HPACK, or touch the outbound side. The
//! scanner ([`FrameScanner`]) and the meter ([`FloodMeter`]) are sans-io; only the wrapper
//! reads the clock (once per read).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 3.4), which precedes the first frame a server
/// reads.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header, bytes.
const FRAME_HEADER: usize = 9;

/// Frame types counted (RFC 9113 6).
const DATA: u8 = 0x0;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
/// Frame types the pool watches for.
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;

/// The header of one frame, as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Payload length, bytes.
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, reserved bit cleared.
    pub stream_id: u32,
}

impl FrameHead {
    /// Whether this is a GOAWAY frame.
    pub fn is_goaway(&self) -> bool {
        self.kind == GOAWAY
    }
}

/// Finds frame headers in a byte stream fed in arbitrary pieces. Never fails: a stream
/// that is not HTTP/2 gives meaningless headers, which h2 refuses anyway.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    /// Preface bytes still to skip.
    preface_left: usize,
    head: [u8; FRAME_HEADER],
    head_len: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: usize,
}

impl FrameScanner {
    /// For what a server reads: the preface, then frames.
    pub fn server() -> Self {
        FrameScanner {
            preface_left: PREFACE.len(),
            head: [0; FRAME_HEADER],
            head_len: 0,
            payload_left: 0,
        }
    }

    /// For what a client reads: frames from the first byte.
    pub fn client() -> Self {
        FrameScanner {
            preface_left: 0,
            ..FrameScanner::server()
        }
    }

    /// Scans `bytes`, calling `on_frame` for each frame header completed in them, with the
    /// offset just past that header. Stops early when `on_frame` returns false, returning
    /// that offset; else returns None.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(FrameHead) -> bool,
    ) -> Option<usize> {
        let total = bytes.len();
        let skip = self.preface_left.min(bytes.len());
        self.preface_left -= skip;
        bytes = bytes.get(skip..).unwrap_or_default();
        loop {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(bytes.len());
                self.payload_left -= skip;
                bytes = bytes.get(skip..).unwrap_or_default();
            }
            if bytes.is_empty() {
                return None;
            }
            let want = FRAME_HEADER - self.head_len;
            let take = want.min(bytes.len());
            let (part, rest) = bytes.split_at(take);
            self.head[self.head_len..self.head_len + take].copy_from_slice(part);
            self.head_len += take;
            bytes = rest;
            if self.head_len < FRAME_HEADER {
                return None;
            }
            self.head_len = 0;
            let h = self.head;
            let head = FrameHead {
                len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                kind: h[3],
                flags: h[4],
                stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            };
            self.payload_left = head.len as usize;
            if !on_frame(head) {
                return Some(total - bytes.len());
            }
        }
    }
}

/// How many frames of each watched kind a peer may send per `window`. Defaults are far
/// above what well-behaved clients send (browsers and gRPC libraries send one SETTINGS
/// per connection and a few PINGs per second for keepalive and BDP probing) and far below
/// what an attack needs to matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodBudget {
    /// Counting window. Default 1 s.
    pub window: Duration,
    /// PING frames (not ACKs) per window. Default 500.
    pub ping: u32,
    /// SETTINGS frames (not ACKs) per window. Default 50.
    pub settings: u32,
    /// RST_STREAM frames per window. Default 200: the rapid reset attack needs thousands
    /// to be worth it; a page navigation cancels tens.
    pub rst_stream: u32,
    /// DATA frames with no payload and no END_STREAM per window (they mean nothing;
    /// CVE-2019-9518). Default 100.
    pub empty_data: u32,
}

impl Default for FloodBudget {
    fn default() -> Self {
        FloodBudget {
            window: Duration::from_secs(1),
            ping: 500,
            settings: 50,
            rst_stream: 200,
            empty_data: 100,
        }
    }
}

/// Which budget a peer exceeded: the label for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloodReason {
    Ping,
    Settings,
    RstStream,
    EmptyData,
}

impl FloodReason {
    /// A snake_case label (`ping_flood`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FloodReason::Ping => "ping_flood",
            FloodReason::Settings => "settings_flood",
            FloodReason::RstStream => "rst_stream_flood",
            FloodReason::EmptyData => "empty_data_flood",
        }
    }
}

/// Counts frames against a [`FloodBudget`] in fixed windows.
#[derive(Debug, Clone)]
pub struct FloodMeter {
    budget: FloodBudget,
    window_start: Option<Instant>,
    ping: u32,
    settings: u32,
    rst_stream: u32,
    empty_data: u32,
}

impl FloodMeter {
    pub fn new(budget: FloodBudget) -> Self {
        FloodMeter {
            budget,
            window_start: None,
            ping: 0,
            settings: 0,
            rst_stream: 0,
            empty_data: 0,
        }
    }

    /// Counts `head`, seen at `now`; the reason when it puts its kind over budget.
    pub fn observe(&mut self, head: &FrameHead, now: Instant) -> Option<FloodReason> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= self.budget.window {
            self.window_start = Some(now);
            self.ping = 0;
            self.settings = 0;
            self.rst_stream = 0;
            self.empty_data = 0;
        }
        let (count, limit, reason) = match head.kind {
            PING if head.flags & ACK == 0 => (&mut self.ping, self.budget.ping, FloodReason::Ping),
            SETTINGS if head.flags & ACK == 0 => (
                &mut self.settings,
                self.budget.settings,
                FloodReason::Settings,
            ),
            RST_STREAM => (
                &mut self.rst_stream,
                self.budget.rst_stream,
                FloodReason::RstStream,
            ),
            DATA if head.len == 0 && head.flags & END_STREAM == 0 => (
                &mut self.empty_data,
                self.budget.empty_data,
                FloodReason::EmptyData,
            ),
            _ => return None,
        };
        *count = count.saturating_add(1);
        (*count > limit).then_some(reason)
    }
}

/// What the owner of a [`FloodGuard`] reads: the reason, once tripped.
#[derive(Debug, Clone, Default)]
pub struct FloodSignal(Rc<Cell<Option<FloodReason>>>);

impl FloodSignal {
    /// The budget the peer exceeded, if it did.
    pub fn tripped(&self) -> Option<FloodReason> {
        self.0.get()
    }
}

/// Server-side I/O wrapper that meters the frames read through it (see the module docs).
///
/// Once a budget is exceeded, the read that exceeded it is withheld from h2 (the bytes
/// of that read are dropped), the reason is set on the [`FloodSignal`], and the read
/// returns Pending after waking the task once so that the owner can send GOAWAY; any
/// later read fails with `ConnectionAborted`, so an owner that does not look at the
/// signal still sees the connection end. Writes pass through.
#[derive(Debug)]
pub struct FloodGuard<T> {
    io: T,
    scanner: FrameScanner,
    meter: FloodMeter,
    signal: FloodSignal,
    woken: bool,
}

impl<T> FloodGuard<T> {
    /// Wraps the I/O of a server connection (the preface is expected first).
    pub fn new(io: T, budget: FloodBudget) -> Self {
        FloodGuard {
            io,
            scanner: FrameScanner::server(),
            meter: FloodMeter::new(budget),
            signal: FloodSignal::default(),
            woken: false,
        }
    }

    /// A handle on the trip reason.
    pub fn signal(&self) -> FloodSignal {
        self.signal.clone()
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FloodGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.signal.tripped().is_some() {
            if this.woken {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "http/2 flood",
                )));
            }
            this.woken = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let now = Instant::now();
        let meter = &mut this.meter;
        let mut reason = None;
        let read = buf.filled().get(before..).unwrap_or_default();
        this.scanner.feed(read, |head| {
            reason = meter.observe(&head, now);
            reason.is_none()
        });
        if let Some(reason) = reason {
            this.signal.0.set(Some(reason));
            buf.set_filled(before);
            this.woken = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FloodGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut v = len.to_be_bytes()[1..].to_vec();
        v.push(kind);
        v.push(flags);
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn scanner_finds_heads_across_any_split() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(SETTINGS, 0, 0, &[0; 6]));
        wire.extend(frame(PING, 0, 0, &[7; 8]));
        wire.extend(frame(DATA, END_STREAM, 1, b"hello"));
        wire.extend(frame(GOAWAY, 0, 0, &[0; 8]));
        let want = vec![(SETTINGS, 6), (PING, 8), (DATA, 5), (GOAWAY, 8)];
        for step in 1..wire.len() {
            let mut scanner = FrameScanner::server();
            let mut seen = Vec::new();
            for piece in wire.chunks(step) {
                assert_eq!(
                    scanner.feed(piece, |h| {
                        seen.push((h.kind, h.len));
                        true
                    }),
                    None
                );
            }
            assert_eq!(seen, want, "pieces of {step}");
        }
    }

    #[test]
    fn scanner_stops_where_asked() {
        let mut wire = frame(PING, 0, 0, &[0; 8]);
        wire.extend(frame(PING, 0, 0, &[0; 8]));
        let mut scanner = FrameScanner::client();
        let mut n = 0;
        let at = scanner.feed(&wire, |_| {
            n += 1;
            n < 2
        });
        assert_eq!(at, Some(17 + 9));
    }

    #[test]
    fn meter_trips_over_budget_and_resets_per_window() {
        let budget = FloodBudget {
            ping: 3,
            ..FloodBudget::default()
        };
        let mut meter = FloodMeter::new(budget);
        let ping = FrameHead {
            len: 8,
            kind: PING,
            flags: 0,
            stream_id: 0,
        };
        let ack = FrameHead { flags: ACK, ..ping };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(meter.observe(&ping, t0), None);
        }
        for _ in 0..10 {
            assert_eq!(meter.observe(&ack, t0), None, "ACKs are not counted");
        }
        assert_eq!(meter.observe(&ping, t0), Some(FloodReason::Ping));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(meter.observe(&ping, t1), None, "a new window");
    }

    #[test]
    fn meter_counts_each_kind() {
        let t = Instant::now();
        let cases = [
            (RST_STREAM, 0, 4, FloodReason::RstStream),
            (SETTINGS, 0, 6, FloodReason::Settings),
            (DATA, 0, 0, FloodReason::EmptyData),
        ];
        for (kind, flags, len, reason) in cases {
            let mut meter = FloodMeter::new(FloodBudget {
                rst_stream: 1,
                settings: 1,
                empty_data: 1,
                ..FloodBudget::default()
            });
            let head = FrameHead {
                len,
                kind,
                flags,
                stream_id: 1,
            };
            assert_eq!(meter.observe(&head, t), None);
            assert_eq!(meter.observe(&head, t), Some(reason));
        }
        let mut meter = FloodMeter::new(FloodBudget {
            empty_data: 0,
            ..FloodBudget::default()
        });
        let end = FrameHead {
            len: 0,
            kind: DATA,
            flags: END_STREAM,
            stream_id: 1,
        };
        assert_eq!(meter.observe(&end, t), None, "an empty END_STREAM is fine");
    }
}
