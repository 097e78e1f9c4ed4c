//! spar-config (being written)
