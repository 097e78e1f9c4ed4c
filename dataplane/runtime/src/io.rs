//! Buffer-owning I/O helpers over monoio's rent-style API.
//!
//! monoio (like io_uring itself) takes ownership of a buffer for the length
//! of an operation. These helpers move a connection's `BytesMut` in and out,
//! so callers keep `&mut BytesMut` fields. If a future is dropped mid-read
//! (a timeout), the buffer is lost with the operation and the field is left
//! empty: callers close the connection in that case anyway.

use std::io;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// First allocation of a connection's read buffer: most request and response
/// heads are well under 4 KiB; 16 KiB also holds a pipelined burst.
pub(crate) const READ_BUF: usize = 16 * 1024;
/// Read at least this much per read call, so a nearly full buffer grows
/// instead of issuing tiny reads.
const MIN_READ: usize = 4 * 1024;
/// Most bytes buffered per body read: bounds memory per stream (a 1 GiB
/// upload streams through at most this much at a time).
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// Reads once, appending to `buf` at most `max` new bytes (at least 1).
/// Returns the number read; 0 is end of stream.
pub(crate) async fn read_some(
    io: &mut TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    let max = max.max(1);
    if buf.capacity() - buf.len() < MIN_READ.min(max) {
        buf.reserve(max.max(MIN_READ));
    }
    let owned = std::mem::take(buf);
    let start = owned.len();
    let end = owned.capacity().min(start + max);
    let (res, slice) = io.read(owned.slice_mut(start..end)).await;
    *buf = slice.into_inner();
    res
}

/// Writes all of `buf` and clears it, keeping its allocation.
pub(crate) async fn write_buf(io: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, mut back) = io.write_all(owned).await;
    back.clear();
    *buf = back;
    res.map(|_| ())
}

/// Writes a frozen slice (body bytes straight from a read buffer, no copy).
pub(crate) async fn write_bytes(io: &mut TcpStream, bytes: Bytes) -> io::Result<()> {
    let (res, _) = io.write_all(bytes).await;
    res.map(|_| ())
}
