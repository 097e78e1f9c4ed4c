//! HTTP/2 glue for spar-proxy: the h2 crate, configured and checked, in a worker's monoio
//! runtime.
//!
//! What it does:
//! - [`ServerSettings`] / [`ClientSettings`]: Envoy's `Http2ProtocolOptions` as plain data
//!   with bounded defaults, validated against Envoy's ranges, turned into h2 builders
//!   ([`server_builder`], [`client_builder`]);
//! - [`request_head`], [`h2_request`], [`response_head`], [`h2_response`] and the trailer
//!   functions: sans-io conversion between h2's `http` types and spar-http's heads, so
//!   routing sees one `RequestHead` whatever the protocol;
//! - [`ServerConnection`]: a downstream connection behind a [`FloodGuard`], which ends
//!   PING, SETTINGS, RST_STREAM (rapid reset) and empty DATA floods with GOAWAY
//!   ENHANCE_YOUR_CALM; [`send_data`]: bodies sent no faster than flow control allows;
//! - [`Pool`]: the per-worker multiplexed upstream pool, which opens another connection
//!   when the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached, moves new streams off
//!   connections that received GOAWAY, caps connections per endpoint and closes idle ones.
//!
//! What h2 bounds by itself (and the tests in `tests/attacks.rs` check): streams over
//! `max_concurrent_streams` (RST_STREAM REFUSED_STREAM); streams reset before being
//! accepted (`max_pending_accept_reset_streams`, then GOAWAY ENHANCE_YOUR_CALM); header
//! lists over the limit (431) and over four times it, HPACK bombs included (GOAWAY
//! ENHANCE_YOUR_CALM); CONTINUATION floods (GOAWAY ENHANCE_YOUR_CALM); memory under PING
//! and SETTINGS floods (one pending ACK; it stops reading while it cannot write);
//! upper-case field names and connection-specific fields (malformed).
//!
//! What it does not do: HTTP/2 framing (h2 does), HTTP/1.1 (spar-http), routing,
//! forwarding or timers (spar-runtime), TLS (spar-tls), extended CONNECT, server push.
#![forbid(unsafe_code)]

mod convert;
pub mod guard;
mod pool;
mod server;
mod settings;

pub use convert::{
    ConvertError, H2Request, HOP_BY_HOP, Scheme, h2_request, h2_response, request_head,
    response_head, trailers_from_map, trailers_to_map,
};
pub use guard::{FloodBudget, FloodGuard, FloodReason, FloodSignal};
pub use pool::{Lease, Pool, PoolError, PoolSettings, PoolStats};
pub use server::{Accepted, ServerConnection, send_data};
pub use settings::{
    ClientSettings, DEFAULT_CONNECTION_WINDOW, DEFAULT_STREAM_WINDOW, MAX_FRAME_SIZE,
    MAX_HEADER_LIST_KB, MAX_WINDOW, MIN_FRAME_SIZE, MIN_WINDOW, ServerSettings, client_builder,
    server_builder,
};
