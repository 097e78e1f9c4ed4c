//! spar-telemetry (being written)
