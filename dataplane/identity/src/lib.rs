//! spar-identity: the workload's mesh identity for spar-proxy (pilot-agent's and
//! ztunnel's certificate job).
//!
//! What it does:
//! - Generates an ECDSA P-256 key in the process for every request (rcgen with ring) and a
//!   CSR whose only name is the SPIFFE URI `spiffe://<td>/ns/<ns>/sa/<sa>`. The private key
//!   goes straight into a rustls signing key: never written, never sent.
//! - Asks the mesh CA for a certificate with Istio's
//!   `istio.v1.auth.IstioCertificateService/CreateCertificate` over gRPC with TLS (tonic,
//!   ring), authenticated by `authorization: Bearer <token>`; the token and the CA root are
//!   read at each request, so rotated files are picked up ([`Config`], [`fetch`]).
//! - Checks the answer before using it (our public key, exactly our SPIFFE ID, a chain that
//!   verifies against the roots that came with it) and swaps it in atomically
//!   ([`Identity`], arc-swap): the current certificate, chain, trust bundle (the CA's roots
//!   plus configured extra roots), serial and validity.
//! - Hands rustls hooks that read the current state at each handshake, so
//!   `ServerConfig`/`ClientConfig` built once see every rotation: certificate resolvers for
//!   both sides, a client-certificate verifier (required, chained to the bundle) and a
//!   server verifier that also requires an expected SPIFFE ID.
//! - Runs the rotation ([`run`]): fetch at start with backoff (100 ms to 30 s, jittered)
//!   while the CA is down, renew at half-life with 1% jitter, keep the current certificate
//!   when a renewal fails, count outcomes by reason ([`Stats`]) and log with tracing.
//! - Describes the state for an admin `/certs` endpoint ([`Identity::describe`]).
//!
//! What it does not do: build TLS configs (ALPN, versions and suites are spar-tls's and the
//! listener's business), authorize peers (RBAC decides who may do what with the identity a
//! verifier established), serve SDS, read file-mounted certificates, refresh the trust
//! bundle between certificate fetches, or impersonate other identities as a node agent.
//! It runs on the control thread's tokio runtime; workers only call the rustls hooks.
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod identity;
mod key;
mod rotate;
mod secrets;
mod stats;
mod verify;

pub use config::{Config, DEFAULT_TTL, Source};
pub use error::{FailureReason, FetchError};
pub use identity::{CertView, CertsView, Current, Identity, TrustBundle};
pub use rotate::{fetch, run};
pub use stats::{Stats, StatsSnapshot};
