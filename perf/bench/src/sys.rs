//! The few places that talk to the OS directly: choosing and building a
//! monoio runtime, pinning a thread, and shutting a socket down from outside
//! the task that owns it.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

/// Which monoio driver a worker thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Io {
    #[serde(rename = "io_uring")]
    Uring,
    #[serde(rename = "epoll")]
    Epoll,
}

impl Io {
    pub fn name(self) -> &'static str {
        match self {
            Self::Uring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// Submission queue entries per io_uring instance. Each connection keeps one
/// operation in flight and monoio submits early when the ring is full, so this
/// only bounds batching; 1024 is monoio's own default.
const URING_ENTRIES: u32 = 1024;

/// Returns the driver to use: `wanted`, unless io_uring cannot be set up here
/// (old kernel, seccomp, `io_uring_disabled`), in which case it says so on
/// stderr once and returns epoll.
pub fn resolve_io(wanted: Io) -> Io {
    if wanted == Io::Epoll {
        return Io::Epoll;
    }
    match RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(URING_ENTRIES)
        .build()
    {
        Ok(_) => Io::Uring,
        Err(e) => {
            eprintln!("io_uring unavailable ({e}); falling back to epoll");
            Io::Epoll
        }
    }
}

/// Runs `fut` to completion on a fresh single-threaded runtime with timers.
pub fn block_on<F: Future>(io: Io, fut: F) -> io::Result<F::Output> {
    match io {
        Io::Uring => {
            // Kernels before 6.1 reject the tuned flags; run untuned there.
            let mut rt = match RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .uring_builder(tuned_uring())
                .enable_timer()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => RuntimeBuilder::<IoUringDriver>::new()
                    .with_entries(URING_ENTRIES)
                    .enable_timer()
                    .build()?,
            };
            Ok(rt.block_on(fut))
        }
        Io::Epoll => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(fut))
        }
    }
}

/// io_uring setup for one ring used by one thread.
///
/// Without these flags a completed recv runs as task work the moment the
/// peer's data lands, interrupting us, and on loopback it then spins on the
/// socket lock still held by the sending CPU (`perf record -g` on
/// `spar-bench load -t1 -c32` against nginx: 10% of client time in
/// `__pv_queued_spin_lock_slowpath` under `io_recv`). `DEFER_TASKRUN` (which
/// requires `SINGLE_ISSUER`) runs task work only when we ask for completions,
/// and `COOP_TASKRUN` + `TASKRUN_FLAG` stop the interrupting notifications.
/// Same command, 2 vCPUs: client CPU per request 14-16 us untuned, 9.3 us
/// tuned (wrk -t1: 12.3 us).
fn tuned_uring() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_single_issuer()
        .setup_defer_taskrun();
    b
}

/// Pins the calling thread to one CPU.
#[allow(unsafe_code)]
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpu >= bits {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} out of range"),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the set's bit count, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live, fully initialised cpu_set_t and the size passed
    // is its size; pid 0 means the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Shuts both directions of a connected socket, which wakes any read or write
/// pending on it (io_uring or epoll) with EOF or an error. Used to enforce
/// per-request timeouts and to cut requests still in flight when a run ends,
/// without a timer per request.
///
/// The caller guarantees `fd` is the socket it means: load workers clear a
/// slot's fd before the stream is dropped, on the same thread, so the number
/// cannot have been reused.
#[allow(unsafe_code)]
pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown(2) touches no memory of ours; on a stale or non-socket
    // fd it fails with EBADF/ENOTSOCK, which we ignore.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}
