//! Buffer-owning I/O helpers, in the shape the HTTP/1.1 code calls them; the work is in
//! [`Stream`] (plain TCP through monoio's rent-style API, TLS through rustls).
//!
//! monoio (like io_uring itself) takes ownership of a buffer for the length of an
//! operation. These helpers move a connection's `BytesMut` in and out, so callers keep
//! `&mut BytesMut` fields. If a future is dropped mid-read (a timeout), the buffer is lost
//! with the operation and the field is left empty: callers close the connection in that
//! case anyway.

use std::io;

use bytes::{Bytes, BytesMut};

use crate::stream::Stream;

/// First allocation of a connection's read buffer: most request and response
/// heads are well under 4 KiB; 16 KiB also holds a pipelined burst.
pub(crate) const READ_BUF: usize = 16 * 1024;
/// Most bytes buffered per body read: bounds memory per stream (a 1 GiB
/// upload streams through at most this much at a time).
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// Reads once, appending to `buf` at most `max` new bytes (at least 1).
/// Returns the number read; 0 is end of stream.
pub(crate) async fn read_some(
    io: &mut Stream,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    io.read_some(buf, max).await
}

/// Writes all of `buf` and clears it, keeping its allocation.
pub(crate) async fn write_buf(io: &mut Stream, buf: &mut BytesMut) -> io::Result<()> {
    io.write_buf(buf).await
}

/// Writes a frozen slice (body bytes straight from a read buffer, no copy).
pub(crate) async fn write_bytes(io: &mut Stream, bytes: Bytes) -> io::Result<()> {
    io.write_bytes(bytes).await
}
