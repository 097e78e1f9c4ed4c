//! TLS for spar-proxy: what a listener or a cluster needs before it touches a socket.
//!
//! What it does:
//! - [`client_hello::peek`]: a sans-io reader of a TLS ClientHello from the first bytes of a
//!   connection (server name, ALPN protocols, versions offered), for TLS passthrough by SNI
//!   and for filter-chain matching on transport protocol and ALPN. It never consumes or
//!   copies the bytes it peeks at, and never panics on hostile input.
//! - [`ServerTls`] and [`ClientTls`]: Envoy's `DownstreamTlsContext` and
//!   `UpstreamTlsContext` as plain data, which the config compiler fills and builds once per
//!   config load into an `Arc<rustls::ServerConfig>` or an [`UpstreamTls`]: rustls with the
//!   ring provider, TLS 1.2 and 1.3 only, ECDHE with AEAD suites only (a configured weak
//!   suite is an error naming it), session tickets on the server and a session cache on the
//!   client, several server certificates chosen by SNI, client certificates
//!   (`require_client_certificate`), subject alt name matchers on either side. Errors
//!   ([`TlsError`]) name the file and what is wrong with it; [`TlsWarning`]s (an expired
//!   certificate, a minimum version raised to 1.2, an upstream not verified) are for the
//!   caller to log.
//!
//! What it does not do: network I/O, timers or threads. The only I/O is reading PEM files
//! when a config is built (on the control thread). The runtime adapts rustls connections to
//! monoio: it feeds the bytes it reads to `rustls::ServerConnection` / `ClientConnection`
//! and writes what they produce. Certificates from SDS or the mesh CA (identity, rotation)
//! and SPIFFE-aware verification belong to other crates.
#![forbid(unsafe_code)]

mod client;
pub mod client_hello;
mod error;
mod params;
mod pem;
mod san;
mod secrets;
mod server;
mod x509;

pub use client::{ClientTls, DEFAULT_SESSION_CACHE, UpstreamTls};
pub use client_hello::{ClientHello, HelloError, Peek, peek};
pub use error::{TlsError, TlsVersion, TlsWarning};
pub use params::TlsParams;
pub use pem::{CertKey, Pem};
pub use san::{SanMatcher, SanType, StringMatch, first_uri_san};
pub use secrets::{ROOT_CA, Secrets, WORKLOAD_CERT};
pub use server::ServerTls;

/// A built TLS context and what is worth logging about it.
#[derive(Debug, Clone)]
pub struct Built<T> {
    pub value: T,
    pub warnings: Vec<TlsWarning>,
}
