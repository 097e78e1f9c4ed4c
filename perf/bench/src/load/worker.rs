//! One load thread: a control task and one task per connection, sharing
//! per-thread state through `Rc` and `Cell` (no locks, no atomics per request).
//!
//! Timeouts and the end of a run do not need a timer per request: the control
//! task wakes a few times a second, and when a request has overstayed its
//! deadline (or the run is over) it shuts that socket down, which wakes the
//! pending read or write with EOF or an error.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::{Outcome, Progress};
use crate::h1::{self, BodySkipper};
use crate::rbuf::{self, RecvBuf};
use crate::report::{ErrorKind, Stats};
use crate::sys;

/// monoio's timer wheel fires at 1 ms granularity, never early. An open-loop
/// connection wakes this much before a request's intended time and sends
/// right away; latency is then counted from the actual (earlier) send, so the
/// timer's lateness never shows up as server latency.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Longest single sleep of an idle open-loop connection, so it notices the
/// end of the run promptly even at very low per-connection rates.
const MAX_NAP: Duration = Duration::from_millis(50);

/// Upper bound on the control task's period. It checks deadlines, publishes
/// progress and ends the run; timeouts are enforced within this much.
const MAX_TICK: Duration = Duration::from_millis(100);

/// After the end, how long in-flight connections get to notice the cut and
/// close their sockets before the runtime is dropped under them.
const DRAIN: Duration = Duration::from_secs(1);

/// A worker's share of the run.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) request: &'static [u8],
    pub(super) head_request: bool,
    pub(super) addr: SocketAddr,
    pub(super) new_conn: bool,
    pub(super) timeout: Duration,
    pub(super) warmup: Duration,
    pub(super) duration: Option<Duration>,
    pub(super) rate: Option<f64>,
    pub(super) total_conns: usize,
    pub(super) first_conn: usize,
    pub(super) conns: usize,
    pub(super) budget: Option<u64>,
}

/// What the control task can see of one connection.
#[derive(Debug)]
struct Slot {
    /// Socket of the request in flight, or -1.
    fd: Cell<RawFd>,
    /// When the request in flight times out.
    deadline: Cell<Option<Instant>>,
    /// Set by the control task when it shut the socket for a timeout.
    timed_out: Cell<bool>,
}

#[derive(Debug)]
struct Shared {
    spec: Spec,
    measure_start: Instant,
    end: Option<Instant>,
    stats: RefCell<Stats>,
    /// Measured requests still to send, if there is a budget.
    budget: Cell<Option<u64>>,
    /// Responses seen, warmup included, for the progress line.
    seen: Cell<u64>,
    errors_seen: Cell<u64>,
    last_done: Cell<Option<Instant>>,
    /// Connection tasks still running.
    active: Cell<usize>,
    stop: Cell<bool>,
    slots: Box<[Slot]>,
}

impl Shared {
    /// Takes one request from the budget; false when it is spent.
    #[inline]
    fn take_budget(&self) -> bool {
        match self.budget.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.budget.set(Some(n - 1));
                true
            }
        }
    }

    #[inline]
    fn in_window(&self, done: Instant) -> bool {
        self.end.is_none_or(|e| done <= e)
    }
}

/// Runs the worker until its part of the run is over.
pub(super) async fn run(spec: Spec, t0: Instant, progress: &Progress) -> Outcome {
    let measure_start = t0 + spec.warmup;
    let slots = (0..spec.conns)
        .map(|_| Slot {
            fd: Cell::new(-1),
            deadline: Cell::new(None),
            timed_out: Cell::new(false),
        })
        .collect();
    let sh = Rc::new(Shared {
        measure_start,
        end: spec.duration.map(|d| measure_start + d),
        stats: RefCell::new(Stats::new()),
        budget: Cell::new(spec.budget),
        seen: Cell::new(0),
        errors_seen: Cell::new(0),
        last_done: Cell::new(None),
        active: Cell::new(spec.conns),
        stop: Cell::new(false),
        slots,
        spec,
    });
    for i in 0..sh.spec.conns {
        let schedule = sh.spec.rate.map(|rate| {
            // Connection k of C sends at t0 + k/R + i*C/R: the R requests per
            // second are spread evenly over time and over connections.
            let k = (sh.spec.first_conn + i) as f64;
            let interval = Duration::from_secs_f64(sh.spec.total_conns as f64 / rate);
            (t0 + Duration::from_secs_f64(k / rate), interval)
        });
        monoio::spawn(connection(sh.clone(), i, schedule));
    }
    let drained = control(&sh, progress).await;
    let stats = std::mem::take(&mut *sh.stats.borrow_mut());
    Outcome {
        stats,
        last_done: sh.last_done.get(),
        drained,
    }
}

/// Enforces timeouts, publishes progress, and ends the run. Returns true when
/// the connections finished on their own (budget spent) before any end time.
async fn control(sh: &Shared, progress: &Progress) -> bool {
    let tick = (sh.spec.timeout / 4).clamp(Duration::from_millis(1), MAX_TICK);
    let drained = loop {
        let now = Instant::now();
        if sh.active.get() == 0 {
            break true;
        }
        if sh.end.is_some_and(|e| now >= e) {
            break false;
        }
        for slot in sh.slots.iter() {
            if slot.deadline.get().is_some_and(|d| d <= now) && slot.fd.get() >= 0 {
                slot.deadline.set(None);
                slot.timed_out.set(true);
                sys::shutdown(slot.fd.get());
            }
        }
        progress.responses.store(sh.seen.get(), Ordering::Relaxed);
        progress
            .errors
            .store(sh.errors_seen.get(), Ordering::Relaxed);
        let next = sh.end.map_or(now + tick, |e| e.min(now + tick));
        monoio::time::sleep_until(monoio::time::Instant::from_std(next)).await;
    };
    sh.stop.set(true);
    for slot in sh.slots.iter() {
        if slot.fd.get() >= 0 && slot.deadline.get().is_some() {
            sys::shutdown(slot.fd.get());
        }
    }
    progress.responses.store(sh.seen.get(), Ordering::Relaxed);
    progress
        .errors
        .store(sh.errors_seen.get(), Ordering::Relaxed);
    let give_up = Instant::now() + DRAIN;
    while sh.active.get() > 0 && Instant::now() < give_up {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    drained
}

/// Decrements the active count however the connection task ends.
struct ActiveGuard<'a>(&'a Cell<usize>);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// One connection's request loop.
async fn connection(sh: Rc<Shared>, idx: usize, schedule: Option<(Instant, Duration)>) {
    let _active = ActiveGuard(&sh.active);
    let slot = &sh.slots[idx];
    let spec = &sh.spec;
    let mut conn: Option<TcpStream> = None;
    let mut buf = RecvBuf::new();
    let mut sent: u32 = 0;
    loop {
        if sh.stop.get() {
            break;
        }
        // When this request should go out (open loop) and whether it counts.
        let intended = match schedule {
            Some((first, interval)) => {
                let at = first + interval * sent;
                sent = sent.wrapping_add(1);
                if sh.end.is_some_and(|e| at >= e) {
                    break;
                }
                if !nap_until(&sh, at).await {
                    break;
                }
                Some(at)
            }
            None => None,
        };
        let now = Instant::now();
        if sh.end.is_some_and(|e| now >= e) {
            break;
        }
        let measured = intended.unwrap_or(now) >= sh.measure_start;
        if measured && !sh.take_budget() {
            break;
        }

        let mut t_send = now;
        if conn.is_none() {
            match connect(spec).await {
                Ok(s) => conn = Some(s),
                Err(kind) => {
                    if sh.stop.get() {
                        break;
                    }
                    record_error(&sh, measured, kind);
                    continue;
                }
            }
            if !spec.new_conn {
                // Keep-alive: a reconnect is not part of the next request.
                t_send = Instant::now();
            }
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        slot.fd.set(stream.as_raw_fd());
        slot.timed_out.set(false);
        slot.deadline.set(Some(t_send + spec.timeout));

        let result = exchange(stream, &mut buf, spec).await;

        slot.deadline.set(None);
        let done = Instant::now();
        if sh.stop.get() {
            break;
        }
        let keep = match result {
            Ok(r) => {
                // Open loop: from the intended time if we sent late (the
                // server or this loop stalled), else from the actual send.
                let start = intended.map_or(t_send, |at| at.min(t_send));
                sh.seen.set(sh.seen.get() + 1);
                if measured && sh.in_window(done) {
                    let mut st = sh.stats.borrow_mut();
                    st.response(r.status, done.saturating_duration_since(start));
                    st.bytes_read += r.bytes_read;
                    st.bytes_written += spec.request.len() as u64;
                    drop(st);
                    sh.last_done.set(Some(done));
                }
                r.keep_alive && !spec.new_conn
            }
            Err(kind) => {
                let kind = if slot.timed_out.get() {
                    ErrorKind::Timeout
                } else {
                    kind
                };
                if sh.in_window(done) {
                    record_error(&sh, measured, kind);
                }
                false
            }
        };
        if !keep {
            slot.fd.set(-1);
            conn = None;
            buf.clear();
        }
    }
    slot.fd.set(-1);
}

/// Sleeps until `TIMER_SLACK` before `at`, in naps so that the end of the run
/// is noticed. Returns false if the run stopped meanwhile.
async fn nap_until(sh: &Shared, at: Instant) -> bool {
    loop {
        if sh.stop.get() {
            return false;
        }
        let now = Instant::now();
        let Some(wait) = at.checked_duration_since(now + TIMER_SLACK) else {
            return true;
        };
        let wake = now + wait.min(MAX_NAP);
        monoio::time::sleep_until(monoio::time::Instant::from_std(wake)).await;
    }
}

fn record_error(sh: &Shared, measured: bool, kind: ErrorKind) {
    sh.errors_seen.set(sh.errors_seen.get() + 1);
    if measured {
        sh.stats.borrow_mut().error(kind);
        sh.last_done.set(Some(Instant::now()));
    }
}

async fn connect(spec: &Spec) -> Result<TcpStream, ErrorKind> {
    // A connect that hangs (filtered port) is bounded by the request timeout.
    // This is the one place with a timer per attempt; it only matters when
    // every request opens a connection, where the handshake dominates anyway.
    let attempt = TcpStream::connect_addr(spec.addr);
    match monoio::time::timeout(spec.timeout, attempt).await {
        Ok(Ok(s)) => {
            // Requests are single small writes; do not let Nagle hold them.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(_)) => Err(ErrorKind::Connect),
        Err(_) => Err(ErrorKind::Timeout),
    }
}

/// A complete response.
#[derive(Debug, Clone, Copy)]
struct Response {
    status: u16,
    keep_alive: bool,
    bytes_read: u64,
}

/// Sends the request and reads one complete response.
async fn exchange(
    stream: &mut TcpStream,
    buf: &mut RecvBuf,
    spec: &Spec,
) -> Result<Response, ErrorKind> {
    let (res, _) = stream.write_all(spec.request).await;
    res.map_err(|_| ErrorKind::Write)?;
    let mut bytes_read = 0u64;
    // Head, skipping interim 1xx responses.
    let head = loop {
        match h1::parse_response_head(buf.data(), spec.head_request) {
            Ok(Some(head)) => {
                buf.consume(head.len);
                if (100..200).contains(&head.status) && head.status != 101 {
                    continue;
                }
                break head;
            }
            Ok(None) => {}
            Err(_) => return Err(ErrorKind::Parse),
        }
        match buf.fill(stream).await {
            Ok(0) => return Err(ErrorKind::Read),
            Ok(n) => bytes_read += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(ErrorKind::Parse);
            }
            Err(_) => return Err(ErrorKind::Read),
        }
    };
    let mut body = BodySkipper::new(head.body);
    if matches!(body, BodySkipper::Length(n) if n > rbuf::INITIAL as u64)
        || matches!(body, BodySkipper::UntilClose)
    {
        buf.want_large();
    }
    loop {
        let n = body.skip(buf.data()).map_err(|_| ErrorKind::Parse)?;
        buf.consume(n);
        if body.is_done() {
            break;
        }
        match buf.fill(stream).await {
            Ok(0) => {
                body.eof().map_err(|_| ErrorKind::Read)?;
                break;
            }
            Ok(n) => bytes_read += n as u64,
            Err(_) => return Err(ErrorKind::Read),
        }
    }
    Ok(Response {
        status: head.status,
        keep_alive: head.keep_alive && head.status != 101,
        bytes_read,
    })
}
