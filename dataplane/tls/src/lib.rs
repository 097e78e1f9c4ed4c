//! TLS for spar-proxy.
#![forbid(unsafe_code)]

pub mod client_hello;

pub use client_hello::{ClientHello, HelloError, Peek, peek};
