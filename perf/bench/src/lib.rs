//! spar-bench
