//! spar-control's library half: what the binary wires and what the scale benchmark
//! (`perf/xds_scale`) measures, so that both run the same code.
//!
//! - [`world`]: a configuration as loaded and validated ([`world::World`]), from a directory
//!   or from file texts.
//! - [`node`]: who is asking (Istio's node id and metadata) and [`node::Mesh`], the per-node
//!   snapshots kept current as the configuration changes: translated once per scope
//!   ([`spar_translate::ScopeKey`]), patched without translating again when only endpoints
//!   change.
//!
//! Not here: flags, the sources' loops, the CA and monitoring servers (the binary).

#![forbid(unsafe_code)]

pub mod node;
pub mod world;
