//! A connection's byte stream, downstream or upstream: plain TCP on monoio's completion
//! I/O (the fast path, zero copies through owned buffers), or TLS and HTTP/2 sockets in
//! readiness style (monoio's `poll-io`), which tokio-rustls and h2 drive.
//!
//! Why two styles: rustls and h2 are written against tokio's `AsyncRead`/`AsyncWrite`;
//! monoio turns a socket into that form (on io_uring through a poll registration, on epoll
//! directly). Plain HTTP/1.1 and TCP keep the completion path, which measured faster.
//!
//! [`Prefixed`] replays bytes read before a stream changed hands (a peeked ClientHello, an
//! HTTP/2 preface), so inspection never loses data.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Read at least this much per read call, so a nearly full buffer grows instead of issuing
/// tiny reads.
const MIN_READ: usize = 4 * 1024;

/// A downstream TLS connection: rustls over the socket in readiness style, with the bytes
/// the listener read while choosing a filter chain replayed first.
pub(crate) type ServerTls = tokio_rustls::server::TlsStream<Prefixed<TcpStreamPoll>>;
/// An upstream TLS connection.
pub(crate) type ClientTls = tokio_rustls::client::TlsStream<TcpStreamPoll>;

/// One connection's bytes.
pub(crate) enum Stream {
    /// Plain TCP, completion style.
    Plain(TcpStream),
    /// Plain TCP in readiness style (after a tunnel or an h2c hand-off needed it).
    Poll(Prefixed<TcpStreamPoll>),
    /// TLS terminated here.
    Server(Box<ServerTls>),
    /// TLS originated here.
    Client(Box<ClientTls>),
    /// One stream of a downstream HTTP/2 connection, as the HTTP/1.1 code sees it.
    H2Down(Box<crate::http2::H2Down>),
    /// One stream to an HTTP/2 upstream, as the HTTP/1.1 forwarding code sees it.
    H2Up(Box<crate::http2::H2Up>),
    /// Moved out (a stream taken for a conversion); every operation fails.
    Gone,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Poll(_) => "Stream::Poll",
            Stream::Server(_) => "Stream::Server",
            Stream::Client(_) => "Stream::Client",
            Stream::H2Down(_) => "Stream::H2Down",
            Stream::H2Up(_) => "Stream::H2Up",
            Stream::Gone => "Stream::Gone",
        })
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream moved out")
}

impl Stream {
    /// Whether bytes are encrypted on the wire (TLS terminated or originated here).
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            Stream::Server(_) | Stream::Client(_) => true,
            Stream::H2Down(d) => d.tls,
            _ => false,
        }
    }

    /// Whether this is a stream to an HTTP/2 upstream.
    pub(crate) fn is_h2_up(&self) -> bool {
        matches!(self, Stream::H2Up(_))
    }

    /// Whether this is a downstream HTTP/2 stream (trailers are carried to it).
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self, Stream::H2Down(_))
    }

    /// The socket's descriptor, for peeks and socket options.
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            Stream::Poll(s) => Some(s.inner.as_raw_fd()),
            Stream::Server(s) => Some(s.get_ref().0.inner.as_raw_fd()),
            Stream::Client(s) => Some(s.get_ref().0.as_raw_fd()),
            Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => None,
        }
    }

    /// The local address of the socket.
    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        if let Stream::H2Down(d) = self {
            return Ok(d.local);
        }
        let fd = self.raw_fd().ok_or_else(gone)?;
        local_addr_of(fd)
    }

    /// The plain socket, in readiness style, with `prefix` replayed first. TLS streams are
    /// returned as they are.
    pub(crate) fn into_poll(self, prefix: Bytes) -> io::Result<Stream> {
        match self {
            Stream::Plain(s) => s
                .try_into_poll_io()
                .map(|p| Stream::Poll(Prefixed::new(p, prefix)))
                .map_err(|(e, _)| e),
            Stream::Poll(mut p) if !prefix.is_empty() => {
                p.push_front(prefix);
                Ok(Stream::Poll(p))
            }
            other if prefix.is_empty() => Ok(other),
            _ => Err(io::Error::other("cannot replay bytes on a TLS stream")),
        }
    }

    /// Reads once, appending to `buf` at most `max` new bytes (at least 1). Returns the
    /// number read; 0 is end of stream.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let max = max.max(1);
        if buf.capacity() - buf.len() < MIN_READ.min(max) {
            buf.reserve(max.max(MIN_READ));
        }
        match self {
            Stream::Plain(s) => {
                let owned = std::mem::take(buf);
                let start = owned.len();
                let end = owned.capacity().min(start + max);
                let (res, slice) = s.read(owned.slice_mut(start..end)).await;
                *buf = slice.into_inner();
                res
            }
            Stream::Gone => Err(gone()),
            Stream::H2Down(d) => d.read_some(buf, max).await,
            Stream::H2Up(u) => u.read_some(buf, max).await,
            _ => std::future::poll_fn(|cx| self.poll_read_into(cx, buf, max)).await,
        }
    }

    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        let mut rb = ReadBuf::uninit(&mut spare[..len]);
        match Pin::new(&mut *self).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                advance(buf, n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes all of `buf` and clears it, keeping its allocation.
    pub(crate) async fn write_buf(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                let owned = std::mem::take(buf);
                let (res, mut back) = s.write_all(owned).await;
                back.clear();
                *buf = back;
                res.map(|_| ())
            }
            Stream::H2Down(d) => {
                let res = d.write(buf).await;
                buf.clear();
                res
            }
            Stream::H2Up(u) => {
                let res = u.write(buf).await;
                buf.clear();
                res
            }
            _ => {
                let res = self.write_flush(buf).await;
                buf.clear();
                res
            }
        }
    }

    /// Writes a frozen slice (body bytes straight from a read buffer, no copy).
    pub(crate) async fn write_bytes(&mut self, bytes: Bytes) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await.0.map(|_| ()),
            Stream::H2Down(d) => d.write(&bytes).await,
            Stream::H2Up(u) => u.write(&bytes).await,
            _ => self.write_flush(&bytes).await,
        }
    }

    async fn write_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, bytes).await?;
        AsyncWriteExt::flush(self).await
    }

    /// Ends our sending side (TLS: close_notify first).
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => AsyncWriteRent::shutdown(s).await,
            Stream::H2Down(d) => d.shutdown().await,
            Stream::H2Up(_) => Ok(()),
            _ => AsyncWriteExt::shutdown(self).await,
        }
    }
}

/// Grows `buf` over `n` bytes a read just initialised in its spare capacity.
#[allow(unsafe_code)]
fn advance(buf: &mut BytesMut, n: usize) {
    use bytes::BufMut;
    // SAFETY: the read initialised the first `n` bytes of the spare capacity (tokio's
    // ReadBuf reports exactly what was filled), and `n` never exceeds that capacity.
    unsafe { buf.advance_mut(n) };
}

#[allow(unsafe_code)]
fn local_addr_of(fd: RawFd) -> io::Result<std::net::SocketAddr> {
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` belongs to a stream the caller holds for the length of this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&borrowed);
    sock.local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Poll(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Plain(_) | Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => {
                Poll::Ready(Err(gone()))
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Poll(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Plain(_) | Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => {
                Poll::Ready(Err(gone()))
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Poll(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Plain(_) | Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => {
                Poll::Ready(Err(gone()))
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Poll(s) => Pin::new(s).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Plain(_) | Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => {
                Poll::Ready(Err(gone()))
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Poll(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Plain(_) | Stream::H2Down(_) | Stream::H2Up(_) | Stream::Gone => {
                Poll::Ready(Err(gone()))
            }
        }
    }
}

/// A readiness-style stream with bytes to replay before its own.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    pub(crate) inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(inner: S, prefix: Bytes) -> Self {
        Prefixed { prefix, inner }
    }

    fn push_front(&mut self, more: Bytes) {
        if self.prefix.is_empty() {
            self.prefix = more;
        } else {
            let mut joined = BytesMut::with_capacity(more.len() + self.prefix.len());
            joined.extend_from_slice(&more);
            joined.extend_from_slice(&self.prefix);
            self.prefix = joined.freeze();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
