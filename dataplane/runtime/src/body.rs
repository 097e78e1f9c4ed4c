//! Streaming one HTTP/1.1 body from a source socket to a destination socket,
//! re-framing it as the destination needs, with bounded memory.
//!
//! Copies: body bytes are split off the read buffer without copying. Pieces
//! that fit, together with what is already queued (the head, chunk framing),
//! in [`COALESCE`] bytes are copied into the write buffer so that head and
//! body leave in one write; larger pieces are written as they are. One small
//! memcpy is cheaper than a second syscall (see README benchmarks).

use std::io;
use std::time::{Duration, Instant};

use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use spar_http::{CHUNK_END, Chunk, ChunkedDecoder, LAST_CHUNK, encode_chunk_header};

use crate::io::{BODY_CHUNK, read_some, write_buf, write_bytes};

/// Most bytes gathered into one write before flushing.
pub(crate) const COALESCE: usize = 16 * 1024;

/// How a body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Why forwarding a body stopped early.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The source closed before the body was complete.
    SrcEof,
    SrcIo,
    /// The source's chunked framing was invalid.
    SrcFraming,
    /// The deadline passed while waiting for the source.
    SrcTimeout,
    DstIo,
}

/// How long one stream may take: an overall deadline (the route timeout)
/// and an idle limit that each read or write starts afresh
/// (`stream_idle_timeout`). Either may be absent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) deadline: Option<Instant>,
    pub(crate) idle: Option<Duration>,
}

impl Limit {
    /// When the next single operation must have finished.
    pub(crate) fn next(&self) -> Option<Instant> {
        let idle = self.idle.map(|t| Instant::now() + t);
        match (self.deadline, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs `fut` until `limit`'s next deadline; None when it passed.
pub(crate) async fn within<F: std::future::Future>(limit: &Limit, fut: F) -> Option<F::Output> {
    match limit.next() {
        None => Some(fut.await),
        Some(at) => monoio::time::timeout_at(at.into(), fut).await.ok(),
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")
}

/// The destination side: a socket and the write buffer queued for it.
pub(crate) struct Out<'a> {
    pub(crate) io: &'a mut Stream,
    pub(crate) buf: &'a mut BytesMut,
    pub(crate) chunked: bool,
    /// Carry a chunked trailer section across (to an HTTP/2 client: gRPC status); an
    /// HTTP/1.1 client gets none, as from Envoy by default.
    pub(crate) trailers: bool,
    /// Bounds each write: a peer that stops reading cannot hold the stream.
    pub(crate) limit: Limit,
}

impl Out<'_> {
    async fn data(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            encode_chunk_header(self.buf, data.len());
        }
        if self.buf.len() + data.len() <= COALESCE {
            self.buf.extend_from_slice(&data);
        } else {
            self.flush().await?;
            within(&self.limit, write_bytes(self.io, data))
                .await
                .ok_or_else(timed_out)??;
        }
        if self.chunked {
            self.buf.extend_from_slice(CHUNK_END);
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        within(&self.limit, write_buf(self.io, self.buf))
            .await
            .ok_or_else(timed_out)?
    }

    async fn finish(&mut self, trailers: &[spar_http::Header]) -> io::Result<()> {
        if self.chunked {
            if trailers.is_empty() {
                self.buf.extend_from_slice(LAST_CHUNK);
            } else {
                self.buf.extend_from_slice(b"0\r\n");
                for t in trailers {
                    self.buf.extend_from_slice(&t.name);
                    self.buf.extend_from_slice(b": ");
                    self.buf.extend_from_slice(&t.value);
                    self.buf.extend_from_slice(b"\r\n");
                }
                self.buf.extend_from_slice(b"\r\n");
            }
        }
        self.flush().await
    }
}

async fn read_src(
    src: &mut Stream,
    sbuf: &mut BytesMut,
    max: usize,
    limit: &Limit,
) -> Result<usize, BodyError> {
    match within(limit, read_some(src, sbuf, max)).await {
        None => Err(BodyError::SrcTimeout),
        Some(n) => n.map_err(|_| BodyError::SrcIo),
    }
}

/// Forwards a body framed as `input` from `src` (bytes already read are in
/// `sbuf`; bytes past the body stay there) to `out`, then flushes `out`
/// (which may hold a head queued before the body). Returns bytes of body.
pub(crate) async fn forward(
    src: &mut Stream,
    sbuf: &mut BytesMut,
    input: Framing,
    out: &mut Out<'_>,
    limit: Limit,
    max_trailer_bytes: usize,
) -> Result<u64, BodyError> {
    let mut total = 0u64;
    let mut trailers = Vec::new();
    match input {
        Framing::None => {}
        Framing::Length(mut remaining) => {
            while remaining > 0 {
                if sbuf.is_empty() {
                    out.flush().await.map_err(|_| BodyError::DstIo)?;
                    let max = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(BODY_CHUNK);
                    if read_src(src, sbuf, max, &limit).await? == 0 {
                        return Err(BodyError::SrcEof);
                    }
                }
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(sbuf.len());
                let data = sbuf.split_to(take).freeze();
                remaining -= take as u64;
                total += take as u64;
                out.data(data).await.map_err(|_| BodyError::DstIo)?;
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(max_trailer_bytes);
            loop {
                match decoder.decode(sbuf).map_err(|_| BodyError::SrcFraming)? {
                    Chunk::Data(data) => {
                        total += data.len() as u64;
                        out.data(data).await.map_err(|_| BodyError::DstIo)?;
                    }
                    Chunk::End => {
                        if out.trailers {
                            trailers = decoder.take_trailers();
                        }
                        break;
                    }
                    Chunk::NeedMore => {
                        out.flush().await.map_err(|_| BodyError::DstIo)?;
                        if read_src(src, sbuf, BODY_CHUNK, &limit).await? == 0 {
                            return Err(BodyError::SrcEof);
                        }
                    }
                }
            }
        }
        Framing::UntilClose => loop {
            if !sbuf.is_empty() {
                let data = sbuf.split().freeze();
                total += data.len() as u64;
                out.data(data).await.map_err(|_| BodyError::DstIo)?;
            }
            out.flush().await.map_err(|_| BodyError::DstIo)?;
            if read_src(src, sbuf, BODY_CHUNK, &limit).await? == 0 {
                break;
            }
        },
    }
    out.finish(&trailers).await.map_err(|_| BodyError::DstIo)?;
    Ok(total)
}
