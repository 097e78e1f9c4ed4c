//! Downstream HTTP/2 connections: an h2 server connection built from [`ServerSettings`]
//! behind a [`FloodGuard`], and a body sender that respects flow control.
//!
//! What it does: [`ServerConnection::handshake`] reads the preface and exchanges SETTINGS;
//! [`ServerConnection::accept`] yields requests and drives the connection, ending it with
//! GOAWAY ENHANCE_YOUR_CALM when the guard trips; [`send_data`] hands a body chunk to h2
//! no faster than the peer's windows and `max_send_buffer_size` allow.
//!
//! What it does not do: timers. A peer that stops reading (a zero window, or never
//! reading our GOAWAY) stalls [`send_data`] and the connection's close; the caller bounds
//! both with its own timeouts (the stream idle timeout, a drain deadline) and then drops.

use std::future::poll_fn;

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::guard::{FloodBudget, FloodGuard, FloodReason, FloodSignal};
use crate::settings::{ServerSettings, server_builder};

/// One accepted request: its head (body `RecvStream`) and where the response goes.
pub type Accepted = (http::Request<RecvStream>, SendResponse<Bytes>);

/// A downstream HTTP/2 connection.
pub struct ServerConnection<T> {
    conn: Connection<FloodGuard<T>, Bytes>,
    signal: FloodSignal,
    /// GOAWAY ENHANCE_YOUR_CALM already queued.
    calmed: bool,
}

impl<T> std::fmt::Debug for ServerConnection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("flood", &self.signal.tripped())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> ServerConnection<T> {
    /// Runs the HTTP/2 handshake on `io` (after ALPN h2 or with the h2c preface next in
    /// it): the preface must come first. Needs its own timeout from the caller.
    pub async fn handshake(
        io: T,
        settings: &ServerSettings,
        budget: FloodBudget,
    ) -> Result<Self, h2::Error> {
        let guard = FloodGuard::new(io, budget);
        let signal = guard.signal();
        let conn = server_builder(settings).handshake(guard).await?;
        Ok(ServerConnection {
            conn,
            signal,
            calmed: false,
        })
    }

    /// The next request, driving the connection meanwhile. None once the connection has
    /// closed cleanly; an error when it failed (a protocol error, an I/O error, or a
    /// flood: then [`Self::flood`] says which). Keep calling it after
    /// [`Self::graceful_shutdown`] until None so that in-flight streams finish.
    pub async fn accept(&mut self) -> Option<Result<Accepted, h2::Error>> {
        poll_fn(|cx| {
            if !self.calmed && self.signal.tripped().is_some() {
                self.calmed = true;
                tracing::debug!(
                    reason = self.signal.tripped().map(FloodReason::as_str),
                    "http/2 flood"
                );
                self.conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            }
            self.conn.poll_accept(cx)
        })
        .await
    }

    /// Sends GOAWAY: no new streams, in-flight ones finish.
    pub fn graceful_shutdown(&mut self) {
        self.conn.graceful_shutdown();
    }

    /// The flood budget the peer exceeded, if any (then the connection ends).
    pub fn flood(&self) -> Option<FloodReason> {
        self.signal.tripped()
    }

    /// The h2 connection, for what this type does not wrap (ping_pong, window sizes).
    pub fn h2(&mut self) -> &mut Connection<FloodGuard<T>, Bytes> {
        &mut self.conn
    }
}

/// Hands `data` to h2 in chunks no bigger than the capacity h2 grants, which is bounded
/// by the peer's stream and connection windows and by `max_send_buffer_size`: a peer that
/// never opens its window makes this wait, never makes h2 buffer the whole body. `data`
/// is advanced as chunks are handed over, so a caller that gives up (its timeout) knows
/// what was not sent. With `end_of_stream`, the last chunk (or an empty DATA frame) ends
/// the stream. Fails when the stream is reset or the connection ends.
pub async fn send_data(
    stream: &mut SendStream<Bytes>,
    data: &mut Bytes,
    end_of_stream: bool,
) -> Result<(), h2::Error> {
    let mut ended = false;
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            // The stream can no longer send: it was reset or the connection closed.
            None => return Err(h2::Error::from(Reason::STREAM_CLOSED)),
        };
        if granted == 0 {
            continue;
        }
        let chunk = data.split_to(granted.min(data.len()));
        ended = end_of_stream && data.is_empty();
        stream.send_data(chunk, ended)?;
    }
    if end_of_stream && !ended {
        // An empty DATA frame carries no flow-controlled bytes: allowed at zero window.
        stream.send_data(Bytes::new(), true)?;
    }
    Ok(())
}
