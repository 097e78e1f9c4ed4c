//! A reusable receive buffer for owned-buffer (io_uring style) reads.
//!
//! Unread bytes live in `buf[pos..]`. A read appends into the spare capacity;
//! consuming advances `pos`, and the buffer rewinds to the start for free when
//! everything has been consumed, which is the common case for one response
//! per request. Memory grows only when a head does not fit, up to a limit.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// Starting capacity, bytes. A typical response head plus a small body fits
/// in one read; wrk uses 8 KiB.
pub const INITIAL: usize = 16 * 1024;

/// Capacity used while skipping a large body: fewer, bigger reads. 256 KiB is
/// past the point where bigger reads stop paying for their memory (ztunnel's
/// copy buffers stop at the same size).
pub const LARGE: usize = 256 * 1024;

/// Largest head we accept, bytes; a peer sending more is broken or hostile.
pub const MAX_HEAD: usize = 1024 * 1024;

#[derive(Debug)]
pub struct RecvBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl RecvBuf {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(INITIAL),
            pos: 0,
        }
    }

    /// Unconsumed bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` bytes of `data()` as used.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Drops everything buffered (the connection is gone).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// Grows capacity to `LARGE` for bulk body reads; no-op once there.
    pub fn want_large(&mut self) {
        if self.buf.capacity() < LARGE {
            self.buf.reserve(LARGE - self.buf.len());
        }
    }

    /// Reads more bytes after the buffered ones. Returns the number read
    /// (0 on EOF). Fails with `InvalidData` if a head would exceed `MAX_HEAD`.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.buf.len() == self.buf.capacity() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos.., 0);
                self.buf.truncate(self.buf.len() - self.pos);
                self.pos = 0;
            } else if self.buf.capacity() >= MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
            } else {
                self.buf.reserve(self.buf.capacity());
            }
        }
        let len = self.buf.len();
        let cap = self.buf.capacity();
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }
}

impl Default for RecvBuf {
    fn default() -> Self {
        Self::new()
    }
}
