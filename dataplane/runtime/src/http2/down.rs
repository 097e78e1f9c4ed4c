//! One downstream HTTP/2 stream seen as an HTTP/1.1 connection, so the connection manager
//! (`http1/`) routes, filters, retries and forwards it with the same code as HTTP/1.1.
//!
//! Reading gives the request body from DATA frames (chunk-encoded when the client sent no
//! `content-length`, as the head converted by spar-h2 says); flow-control credit is
//! returned as the bytes are taken. Writing takes the HTTP/1.1 response the connection
//! manager produces, parses its head back (spar-http) into a HEADERS frame and re-frames
//! its body as DATA frames, no faster than the client's windows allow.
//!
//! The cost is one extra parse of a response head this proxy encoded itself; the gain is
//! one implementation of everything between the two sides. Trailers are carried from
//! a chunked trailer section into a trailing HEADERS frame (gRPC status).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::SendStream;
use h2::server::SendResponse;
use spar_http::{
    CHUNK_END, Chunk, ChunkedDecoder, LAST_CHUNK, Limits, Method, ResponseBody,
    encode_chunk_header, parse_response,
};

/// Largest trailer section accepted from our own encoder (same bound as the parser's).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The request side: where body bytes come from.
pub(crate) struct RequestSide {
    body: Option<RecvStream>,
    /// Chunk-encode DATA for the connection manager (no `content-length` was sent).
    chunked: bool,
    /// Encoded bytes not handed out yet.
    pending: BytesMut,
    /// The end of the body was handed out (last chunk, or end of stream).
    ended: bool,
}

enum Out {
    /// Waiting for the response head.
    Head,
    Body {
        framing: ResponseBody,
        decoder: ChunkedDecoder,
        /// Bytes left of a `content-length` body.
        remaining: u64,
    },
    /// The stream was ended (END_STREAM sent, or reset).
    Done,
}

/// A downstream h2 stream dressed as a connection.
pub(crate) struct H2Down {
    req: RequestSide,
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    out: BytesMut,
    state: Out,
    method: Method,
    limits: Limits,
    pub(crate) tls: bool,
    pub(crate) local: SocketAddr,
}

impl H2Down {
    pub(crate) fn new(
        body: RecvStream,
        chunked: bool,
        respond: SendResponse<Bytes>,
        method: Method,
        tls: bool,
        local: SocketAddr,
    ) -> H2Down {
        let ended = body.is_end_stream();
        H2Down {
            req: RequestSide {
                body: (!ended).then_some(body),
                chunked,
                pending: BytesMut::new(),
                ended,
            },
            respond: Some(respond),
            send: None,
            out: BytesMut::new(),
            state: Out::Head,
            method,
            limits: Limits::default(),
            tls,
            local,
        }
    }

    /// Takes the request body out, for a pump straight to an HTTP/2 upstream; reads see
    /// the end of the body afterwards.
    pub(crate) fn take_body(&mut self) -> Option<RecvStream> {
        self.req.ended = true;
        self.req.body.take()
    }

    /// Whether the whole response went out.
    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, Out::Done)
    }

    /// Resets the stream when the response did not finish (the connection manager gave up
    /// mid-body): the client must not take a cut body for a whole one.
    pub(crate) fn reset_unfinished(&mut self) {
        if self.finished() {
            return;
        }
        if let Some(send) = &mut self.send {
            send.send_reset(h2::Reason::INTERNAL_ERROR);
        } else if let Some(respond) = &mut self.respond {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
        }
        self.state = Out::Done;
    }

    /// The request body, at most `max` bytes appended to `buf`; 0 at its end.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let r = &mut self.req;
        // An empty DATA frame (the END_STREAM marker) yields nothing: read on, since 0
        // here means the end of the body.
        while r.pending.is_empty() && !r.ended {
            let next = match &mut r.body {
                Some(body) => poll_fn(|cx| body.poll_data(cx)).await,
                None => None,
            };
            match next {
                Some(Ok(data)) => {
                    if let Some(body) = &mut r.body {
                        let _ = body.flow_control().release_capacity(data.len());
                    }
                    if r.chunked {
                        if !data.is_empty() {
                            encode_chunk_header(&mut r.pending, data.len());
                            r.pending.extend_from_slice(&data);
                            r.pending.extend_from_slice(CHUNK_END);
                        }
                    } else {
                        r.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => {
                    r.ended = true;
                    r.body = None;
                    if r.chunked {
                        r.pending.extend_from_slice(LAST_CHUNK);
                    }
                }
            }
        }
        let n = r.pending.len().min(max);
        buf.extend_from_slice(&r.pending.split_to(n));
        Ok(n)
    }

    /// Takes response bytes from the connection manager and sends what they complete.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        loop {
            match &mut self.state {
                Out::Done => {
                    self.out.clear();
                    return Ok(());
                }
                Out::Head => {
                    let resp = match parse_response(&mut self.out, &self.limits, &self.method) {
                        Ok(Some(resp)) => resp,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    };
                    if (100..200).contains(&resp.status) {
                        continue; // 100 Continue: HTTP/2 clients need none
                    }
                    let h2resp = spar_h2::h2_response(&resp, &[], &[])
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    let framing = resp.body;
                    let empty =
                        framing == ResponseBody::None || matches!(framing, ResponseBody::Length(0));
                    let Some(respond) = &mut self.respond else {
                        return Err(io::Error::other("response already sent"));
                    };
                    let send = respond
                        .send_response(h2resp, empty)
                        .map_err(io::Error::other)?;
                    self.respond = None;
                    if empty {
                        self.state = Out::Done;
                    } else {
                        self.send = Some(send);
                        let remaining = match framing {
                            ResponseBody::Length(n) => n,
                            _ => 0,
                        };
                        self.state = Out::Body {
                            framing,
                            decoder: ChunkedDecoder::new(MAX_TRAILER_BYTES),
                            remaining,
                        };
                    }
                }
                Out::Body {
                    framing,
                    decoder,
                    remaining,
                } => {
                    let Some(send) = &mut self.send else {
                        return Err(io::Error::other("no stream"));
                    };
                    match framing {
                        ResponseBody::Length(_) => {
                            let take = usize::try_from(*remaining)
                                .unwrap_or(usize::MAX)
                                .min(self.out.len());
                            if take == 0 {
                                return Ok(());
                            }
                            let mut data = self.out.split_to(take).freeze();
                            *remaining -= take as u64;
                            let end = *remaining == 0;
                            spar_h2::send_data(send, &mut data, end)
                                .await
                                .map_err(io::Error::other)?;
                            if end {
                                self.state = Out::Done;
                            }
                        }
                        ResponseBody::Chunked => match decoder.decode(&mut self.out) {
                            Ok(Chunk::Data(mut data)) => {
                                spar_h2::send_data(send, &mut data, false)
                                    .await
                                    .map_err(io::Error::other)?;
                            }
                            Ok(Chunk::NeedMore) => return Ok(()),
                            Ok(Chunk::End) => {
                                let trailers = decoder.take_trailers();
                                if trailers.is_empty() {
                                    spar_h2::send_data(send, &mut Bytes::new(), true)
                                        .await
                                        .map_err(io::Error::other)?;
                                } else {
                                    let map = spar_h2::trailers_to_map(&trailers)
                                        .map_err(|e| io::Error::other(e.to_string()))?;
                                    send.send_trailers(map).map_err(io::Error::other)?;
                                }
                                self.state = Out::Done;
                            }
                            Err(e) => return Err(io::Error::other(e.to_string())),
                        },
                        // Until close: every byte is body; the end is `shutdown`.
                        ResponseBody::UntilClose | ResponseBody::None => {
                            if self.out.is_empty() {
                                return Ok(());
                            }
                            let mut data = self.out.split().freeze();
                            spar_h2::send_data(send, &mut data, false)
                                .await
                                .map_err(io::Error::other)?;
                        }
                    }
                }
            }
        }
    }

    /// The connection manager closes the "connection": a body that runs until close ends
    /// here.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        if let (Out::Body { framing, .. }, Some(send)) = (&self.state, &mut self.send)
            && *framing == ResponseBody::UntilClose
        {
            spar_h2::send_data(send, &mut Bytes::new(), true)
                .await
                .map_err(io::Error::other)?;
            self.state = Out::Done;
        }
        Ok(())
    }
}
