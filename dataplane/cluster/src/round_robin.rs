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
mod tests {
    use super::*;
    use crate::Thresholds;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    fn cluster(weights: &[u32]) -> Cluster {
        let endpoints = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Endpoint {
                address: SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)),
                weight,
            })
            .collect();
        Cluster::new("c", endpoints)
    }

    fn picks(c: &Cluster, n: usize) -> Vec<u16> {
        let mut rr = RoundRobin::new();
        (0..n)
            .map(|_| rr.pick(c).map_or(0, |e| e.address.port() - 8000))
            .collect()
    }

    #[test]
    fn distribution_matches_weights() {
        // (weights, picks): over whole cycles each endpoint is chosen exactly weight times.
        let cases: &[&[u32]] = &[
            &[1],
            &[1, 1, 1],
            &[5, 1, 1],
            &[3, 2],
            &[1, 0, 1],
            &[7, 3, 0, 10],
        ];
        for weights in cases {
            let total: u32 = weights.iter().sum();
            let c = cluster(weights);
            let mut counts: HashMap<u16, u32> = HashMap::new();
            for p in picks(&c, total as usize * 4) {
                *counts.entry(p).or_default() += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                assert_eq!(
                    counts.get(&(i as u16)).copied().unwrap_or(0),
                    w * 4,
                    "{weights:?}"
                );
            }
        }
    }

    #[test]
    fn smooth_not_bursty() {
        assert_eq!(picks(&cluster(&[5, 1, 1]), 7), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(picks(&cluster(&[1, 1, 1]), 5), vec![0, 1, 2, 0, 1]);
    }

    #[test]
    fn no_endpoints_or_no_weight() {
        let mut rr = RoundRobin::new();
        assert!(rr.pick(&cluster(&[])).is_none());
        assert!(rr.pick(&cluster(&[0, 0])).is_none());
    }

    #[test]
    fn state_resets_on_new_endpoint_list() {
        let mut rr = RoundRobin::new();
        let a = cluster(&[1, 1]);
        assert_eq!(rr.pick(&a).map(|e| e.address.port()), Some(8000));
        let b = cluster(&[1, 1, 1, 1]);
        assert_eq!(rr.pick(&b).map(|e| e.address.port()), Some(8000));
        assert_eq!(rr.pick(&b).map(|e| e.address.port()), Some(8001));
    }

    #[test]
    fn defaults_are_envoys() {
        let t = Thresholds::default();
        assert_eq!(
            (
                t.max_connections,
                t.max_pending_requests,
                t.max_requests,
                t.max_retries
            ),
            (1024, 1024, 1024, 3)
        );
        let c = cluster(&[1]);
        assert_eq!(c.connect_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(c.buffer_limit_bytes, 1 << 20);
    }
}
