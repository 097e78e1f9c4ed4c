//! spar-route (being written)
