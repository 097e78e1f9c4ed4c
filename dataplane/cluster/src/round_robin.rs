//! Smooth weighted round robin (the algorithm nginx uses): every pick adds each endpoint's
//! weight to its running score, takes the highest score, and subtracts the total weight from
//! the winner. Over `total` picks each endpoint is chosen exactly `weight` times, spread out
//! rather than in bursts (weights 5,1,1 give a a b a c a a, not a a a a a b c).

use crate::{Cluster, Endpoint};

/// Per-worker round-robin state for one cluster. Not shared between threads: each worker
/// keeps its own, so a pick is a few additions on memory no other core writes.
///
/// The state follows the cluster's endpoint list: when a different list is passed (another
/// length or another allocation, as after a config update) it starts over.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    /// Running scores, one per endpoint (smooth weighted mode).
    current: Vec<i64>,
    /// Next index in uniform mode (all weights equal).
    next: usize,
    /// Identity of the endpoint list the state belongs to: (address, length).
    key: (usize, usize),
    /// All weights equal and non-zero: plain rotation, O(1) per pick.
    uniform: bool,
    /// Sum of weights.
    total: i64,
}

impl RoundRobin {
    /// Empty state; the first pick sizes it for the cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next endpoint of `cluster`, or `None` when it has no endpoint with a weight.
    pub fn pick<'c>(&mut self, cluster: &'c Cluster) -> Option<&'c Endpoint> {
        let endpoints = &cluster.endpoints;
        let key = (endpoints.as_ptr() as usize, endpoints.len());
        if key != self.key {
            self.reset(endpoints, key);
        }
        if self.total == 0 {
            return None;
        }
        if self.uniform {
            let i = self.next % endpoints.len();
            self.next = (i + 1) % endpoints.len();
            return endpoints.get(i);
        }
        let mut best = 0;
        let mut best_score = i64::MIN;
        for (i, (score, ep)) in self.current.iter_mut().zip(endpoints).enumerate() {
            *score += i64::from(ep.weight);
            if ep.weight > 0 && *score > best_score {
                best = i;
                best_score = *score;
            }
        }
        if let Some(score) = self.current.get_mut(best) {
            *score -= self.total;
        }
        endpoints.get(best)
    }

    fn reset(&mut self, endpoints: &[Endpoint], key: (usize, usize)) {
        self.key = key;
        self.next = 0;
        self.current.clear();
        self.current.resize(endpoints.len(), 0);
        self.total = endpoints.iter().map(|e| i64::from(e.weight)).sum();
        self.uniform = match endpoints.first() {
            Some(first) => first.weight > 0 && endpoints.iter().all(|e| e.weight == first.weight),
            None => false,
        };
    }
}

#[cfg(test)]
mod tests;
