//! spar-runtime (being written)
