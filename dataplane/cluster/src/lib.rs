//! spar-cluster (being written)
