//! TLS for spar-proxy.
//!
//! What it does:
//! - [`client_hello::peek`]: a sans-io reader of a TLS ClientHello from the first bytes of a
//!   connection (server name, ALPN protocols, versions offered), for TLS passthrough by SNI
//!   and for filter-chain matching on transport protocol and ALPN. It never consumes or
//!   copies the bytes it peeks at, and never panics on hostile input.
//!
//! What it does not do: any I/O. The runtime reads the socket and feeds the bytes here.
#![forbid(unsafe_code)]

pub mod client_hello;

pub use client_hello::{ClientHello, HelloError, Peek, peek};
