//! One upstream HTTP/2 stream seen as an HTTP/1.1 connection, so the forwarding code
//! (`http1/forward.rs`) sends requests to HTTP/2 clusters (gRPC services) with the same
//! attempts, retries, timeouts and relays as to HTTP/1.1 ones.
//!
//! Writing takes the HTTP/1.1 request the forwarder encodes: its head is parsed back
//! (spar-http) and sent as a HEADERS frame on a stream leased from the worker's
//! multiplexed pool (spar-h2), its body re-framed as DATA frames within flow control.
//! Reading gives the response as HTTP/1.1 bytes: a head (`content-length` when the
//! upstream sent one, else chunked), the DATA frames (flow-control credit returned as they
//! are taken), and the trailers as a chunked trailer section (gRPC status).

use std::future::poll_fn;
use std::io;

use bytes::{Bytes, BytesMut};
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use spar_h2::{Lease, Scheme};
use spar_http::{
    CHUNK_END, Chunk, ChunkedDecoder, LAST_CHUNK, Limits, RequestBody, encode_chunk_header,
    parse_request, reason_phrase,
};

/// Largest trailer section accepted from our own encoder.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

enum Send {
    /// Waiting for the request head.
    Head,
    /// Sending the body.
    Body {
        stream: SendStream<Bytes>,
        framing: RequestBody,
        decoder: ChunkedDecoder,
        remaining: u64,
    },
    /// The request is complete (END_STREAM sent).
    Done,
}

enum Recv {
    /// The request is not sent yet.
    NotYet,
    /// Waiting for the response head.
    Head(ResponseFuture),
    /// Reading the body.
    Body {
        body: RecvStream,
        chunked: bool,
    },
    Done,
}

/// An upstream h2 stream dressed as a connection.
pub(crate) struct H2Up {
    lease: Lease,
    scheme: Scheme,
    send: Send,
    recv: Recv,
    inbuf: BytesMut,
    pending: BytesMut,
    limits: Limits,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl H2Up {
    pub(crate) fn new(lease: Lease, tls: bool) -> H2Up {
        H2Up {
            lease,
            scheme: if tls { Scheme::Https } else { Scheme::Http },
            send: Send::Head,
            recv: Recv::NotYet,
            inbuf: BytesMut::new(),
            pending: BytesMut::new(),
            limits: Limits::default(),
        }
    }

    /// Takes the request body's sending half out (the head is sent), for a pump straight
    /// from an HTTP/2 client; later writes are ignored.
    pub(crate) fn take_send(&mut self) -> Option<SendStream<Bytes>> {
        match std::mem::replace(&mut self.send, Send::Done) {
            Send::Body { stream, .. } => Some(stream),
            other => {
                self.send = other;
                None
            }
        }
    }

    /// Takes request bytes from the forwarder and sends what they complete.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inbuf.extend_from_slice(bytes);
        loop {
            match &mut self.send {
                Send::Done => {
                    self.inbuf.clear();
                    return Ok(());
                }
                Send::Head => {
                    let Some(head) = parse_request(&mut self.inbuf, &self.limits).map_err(err)?
                    else {
                        return Ok(());
                    };
                    let mut req = spar_h2::h2_request(
                        &head,
                        self.scheme,
                        &spar_http::ForwardOptions::default(),
                    )
                    .map_err(err)?;
                    // gRPC servers require `te: trailers`, which the HTTP/1.1 leg of the
                    // bridge cannot carry (it is hop-by-hop there): put it back.
                    let grpc = head
                        .header("content-type")
                        .is_some_and(|v| v.starts_with(b"application/grpc"));
                    if grpc {
                        req.headers_mut()
                            .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
                    }
                    let framing = head.body;
                    let end = matches!(framing, RequestBody::None | RequestBody::Length(0));
                    let (response, stream) = self.lease.send_request(req, end).map_err(err)?;
                    self.recv = Recv::Head(response);
                    self.send = if end {
                        Send::Done
                    } else {
                        Send::Body {
                            stream,
                            framing,
                            decoder: ChunkedDecoder::new(MAX_TRAILER_BYTES),
                            remaining: match framing {
                                RequestBody::Length(n) => n,
                                _ => 0,
                            },
                        }
                    };
                }
                Send::Body {
                    stream,
                    framing,
                    decoder,
                    remaining,
                } => match framing {
                    RequestBody::Chunked => match decoder.decode(&mut self.inbuf).map_err(err)? {
                        Chunk::Data(mut data) => {
                            spar_h2::send_data(stream, &mut data, false)
                                .await
                                .map_err(err)?;
                        }
                        Chunk::NeedMore => return Ok(()),
                        Chunk::End => {
                            let trailers = decoder.take_trailers();
                            if trailers.is_empty() {
                                spar_h2::send_data(stream, &mut Bytes::new(), true)
                                    .await
                                    .map_err(err)?;
                            } else {
                                let map = spar_h2::trailers_to_map(&trailers).map_err(err)?;
                                stream.send_trailers(map).map_err(err)?;
                            }
                            self.send = Send::Done;
                        }
                    },
                    _ => {
                        let take = usize::try_from(*remaining)
                            .unwrap_or(usize::MAX)
                            .min(self.inbuf.len());
                        if take == 0 {
                            return Ok(());
                        }
                        let mut data = self.inbuf.split_to(take).freeze();
                        *remaining -= take as u64;
                        let end = *remaining == 0;
                        spar_h2::send_data(stream, &mut data, end)
                            .await
                            .map_err(err)?;
                        if end {
                            self.send = Send::Done;
                        }
                    }
                },
            }
        }
    }

    /// The response as HTTP/1.1 bytes, at most `max` appended to `buf`; 0 at its end.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        while self.pending.is_empty() {
            match &mut self.recv {
                Recv::NotYet => return Err(err("response read before the request was sent")),
                Recv::Done => return Ok(0),
                Recv::Head(response) => {
                    let resp = response.await.map_err(err)?;
                    let (parts, body) = resp.into_parts();
                    let chunked = self.head(&parts, body.is_end_stream());
                    self.recv = if body.is_end_stream() {
                        Recv::Done
                    } else {
                        Recv::Body { body, chunked }
                    };
                }
                Recv::Body { body, chunked } => {
                    let chunked = *chunked;
                    match poll_fn(|cx| body.poll_data(cx)).await {
                        Some(Ok(data)) => {
                            let _ = body.flow_control().release_capacity(data.len());
                            if data.is_empty() {
                                continue;
                            }
                            if chunked {
                                encode_chunk_header(&mut self.pending, data.len());
                                self.pending.extend_from_slice(&data);
                                self.pending.extend_from_slice(CHUNK_END);
                            } else {
                                self.pending.extend_from_slice(&data);
                            }
                        }
                        Some(Err(e)) => return Err(err(e)),
                        None => {
                            let trailers =
                                poll_fn(|cx| body.poll_trailers(cx)).await.map_err(err)?;
                            if chunked {
                                match trailers {
                                    Some(map) if !map.is_empty() => {
                                        self.pending.extend_from_slice(b"0\r\n");
                                        for (name, value) in &map {
                                            self.pending
                                                .extend_from_slice(name.as_str().as_bytes());
                                            self.pending.extend_from_slice(b": ");
                                            self.pending.extend_from_slice(value.as_bytes());
                                            self.pending.extend_from_slice(b"\r\n");
                                        }
                                        self.pending.extend_from_slice(b"\r\n");
                                    }
                                    _ => self.pending.extend_from_slice(LAST_CHUNK),
                                }
                            }
                            self.recv = Recv::Done;
                        }
                    }
                }
            }
        }
        let n = self.pending.len().min(max.max(1));
        buf.extend_from_slice(&self.pending.split_to(n));
        Ok(n)
    }

    /// Writes the response head as HTTP/1.1 into `pending`; true when the body is chunked.
    fn head(&mut self, parts: &http::response::Parts, end_of_stream: bool) -> bool {
        let status = parts.status.as_u16();
        let out = &mut self.pending;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.to_string().as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut has_length = false;
        for (name, value) in &parts.headers {
            let n = name.as_str();
            if spar_h2::HOP_BY_HOP.contains(&n) {
                continue;
            }
            has_length |= n == "content-length";
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let bodyless = status == 204 || status == 304 || (100..200).contains(&status);
        let chunked = !has_length && !end_of_stream && !bodyless;
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        } else if !has_length && !bodyless {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        out.extend_from_slice(b"\r\n");
        chunked
    }
}
