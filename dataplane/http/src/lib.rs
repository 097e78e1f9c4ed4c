//! spar-http (being written)
