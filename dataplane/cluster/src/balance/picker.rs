//! One load-balancing policy over one fixed list of hosts. [`super::Balancer`] keeps one
//! picker per (host set, priority, health state, locality) and rebuilds them when health
//! changes, so a pick never allocates.

use std::net::SocketAddr;

use crate::{Cluster, LbPolicy, mix};

/// Marks an empty maglev slot while the table fills.
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(super) struct Picker {
    /// Endpoint indices (into `Cluster::endpoints`), weight-0 hosts left out.
    hosts: Vec<usize>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Smooth weighted round robin; plain rotation when `uniform`.
    RoundRobin {
        weights: Vec<u32>,
        scores: Vec<i64>,
        total: i64,
        uniform: bool,
        next: usize,
    },
    /// Weighted random over cumulative weights; `cumulative` empty when uniform.
    Random { cumulative: Vec<u64> },
    /// Best of `choices` weighted-random samples by active requests per unit of weight.
    LeastRequest {
        weights: Vec<u32>,
        cumulative: Vec<u64>,
        choices: u32,
    },
    /// (hash, position in `hosts`), sorted by hash.
    Ring { ring: Vec<(u64, u32)> },
    /// Position in `hosts` per slot; length is the (prime) table size.
    Maglev { table: Vec<u32> },
}

impl Picker {
    pub(super) fn new(policy: LbPolicy, cluster: &Cluster, hosts: &[usize], seed: u64) -> Self {
        let hosts: Vec<usize> = hosts
            .iter()
            .copied()
            .filter(|&i| cluster.endpoints.get(i).is_some_and(|e| e.weight > 0))
            .collect();
        let weights: Vec<u32> = hosts
            .iter()
            .map(|&i| cluster.endpoints.get(i).map_or(1, |e| e.weight))
            .collect();
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let cumulative = || -> Vec<u64> {
            if uniform {
                return Vec::new();
            }
            weights
                .iter()
                .scan(0u64, |acc, w| {
                    *acc += u64::from(*w);
                    Some(*acc)
                })
                .collect()
        };
        let kind = match policy {
            LbPolicy::RoundRobin => Kind::RoundRobin {
                scores: vec![0; hosts.len()],
                total: weights.iter().map(|w| i64::from(*w)).sum(),
                next: if hosts.is_empty() {
                    0
                } else {
                    (seed % hosts.len() as u64) as usize
                },
                weights,
                uniform,
            },
            LbPolicy::Random => Kind::Random {
                cumulative: cumulative(),
            },
            LbPolicy::LeastRequest { choice_count } => Kind::LeastRequest {
                cumulative: cumulative(),
                weights,
                choices: choice_count.max(1),
            },
            LbPolicy::RingHash { min_ring, max_ring } => Kind::Ring {
                ring: build_ring(cluster, &hosts, &weights, min_ring, max_ring),
            },
            LbPolicy::Maglev { table_size } => Kind::Maglev {
                table: build_maglev(cluster, &hosts, &weights, table_size),
            },
        };
        Self { hosts, kind }
    }

    pub(super) fn hosts(&self) -> &[usize] {
        &self.hosts
    }

    pub(super) fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// An endpoint index. `hash` feeds the hashing policies (the random value stands in when
    /// there is none); `active` holds least-request counts by endpoint index.
    pub(super) fn pick(&mut self, random: u64, hash: Option<u64>, active: &[u32]) -> Option<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let pos = match &mut self.kind {
            Kind::RoundRobin {
                weights,
                scores,
                total,
                uniform,
                next,
            } => {
                if *uniform {
                    let i = *next % n;
                    *next = (i + 1) % n;
                    i
                } else {
                    let mut best = 0;
                    let mut best_score = i64::MIN;
                    for (i, (score, w)) in scores.iter_mut().zip(weights.iter()).enumerate() {
                        *score += i64::from(*w);
                        if *score > best_score {
                            best = i;
                            best_score = *score;
                        }
                    }
                    if let Some(s) = scores.get_mut(best) {
                        *s -= *total;
                    }
                    best
                }
            }
            Kind::Random { cumulative } => weighted(cumulative, n, random),
            Kind::LeastRequest {
                weights,
                cumulative,
                choices,
            } => {
                let mut best = weighted(cumulative, n, random);
                let load = |pos: usize| {
                    let host = self.hosts.get(pos).copied().unwrap_or(0);
                    u64::from(active.get(host).copied().unwrap_or(0))
                };
                let weight = |pos: usize| u64::from(weights.get(pos).copied().unwrap_or(1));
                let mut r = random;
                for _ in 1..*choices {
                    r = mix(r);
                    let cand = weighted(cumulative, n, r);
                    // Fewer active requests per unit of weight wins; ties keep the earlier sample,
                    // so with no load the pick follows the weights exactly.
                    if load(cand) * weight(best) < load(best) * weight(cand) {
                        best = cand;
                    }
                }
                best
            }
            Kind::Ring { ring } => {
                let h = hash.unwrap_or(random);
                let at = ring.partition_point(|(k, _)| *k < h);
                let (_, pos) = ring.get(at).or(ring.first())?;
                *pos as usize
            }
            Kind::Maglev { table } => {
                let h = hash.unwrap_or(random);
                let slot = (h % table.len().max(1) as u64) as usize;
                *table.get(slot)? as usize
            }
        };
        self.hosts.get(pos).copied()
    }
}

/// A position in `0..n` by weight (`cumulative` empty: uniform).
fn weighted(cumulative: &[u64], n: usize, random: u64) -> usize {
    match cumulative.last() {
        None | Some(0) => (random % n as u64) as usize,
        Some(total) => {
            let r = random % total;
            cumulative.partition_point(|c| *c <= r)
        }
    }
}

/// Stable 64-bit hash of bytes (FNV-1a, then splitmix's finalizer for avalanche). Spar's
/// rings are stable across restarts and workers; they are not the same rings as Envoy's
/// (which hashes with xxHash), so a key maps to a different host than under Envoy.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn host_key(address: SocketAddr, n: u64) -> u64 {
    let mut key = address.to_string().into_bytes();
    key.push(b'_');
    key.extend_from_slice(n.to_string().as_bytes());
    hash_bytes(&key)
}

fn address(cluster: &Cluster, host: usize) -> SocketAddr {
    cluster
        .endpoints
        .get(host)
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |e| e.address)
}

/// Ketama-style ring: each host gets entries in proportion to its weight, the lightest at
/// least `min_ring * its share` (so small rings still spread), the whole ring at most
/// `max_ring` entries (Envoy's sizing rule).
fn build_ring(
    cluster: &Cluster,
    hosts: &[usize],
    weights: &[u32],
    min_ring: u64,
    max_ring: u64,
) -> Vec<(u64, u32)> {
    let sum: f64 = weights.iter().map(|w| f64::from(*w)).sum();
    if hosts.is_empty() || sum <= 0.0 {
        return Vec::new();
    }
    let min_share = weights
        .iter()
        .map(|w| f64::from(*w) / sum)
        .fold(1.0, f64::min);
    let scale = ((min_share * min_ring as f64).ceil() / min_share).min(max_ring.max(1) as f64);
    let mut ring = Vec::with_capacity(scale as usize + hosts.len());
    let mut target = 0.0;
    let mut count = 0.0;
    for (pos, (&host, w)) in hosts.iter().zip(weights).enumerate() {
        target += scale * f64::from(*w) / sum;
        let mut n = 0u64;
        while count < target {
            ring.push((host_key(address(cluster, host), n), pos as u32));
            n += 1;
            count += 1.0;
        }
    }
    ring.sort_unstable();
    ring
}

/// Maglev lookup table of `size` slots (a prime, so every host's permutation visits every
/// slot). Each round, a host adds its weight to a running credit and claims its next free
/// preferred slot for every whole `max weight` of credit, so slots follow weights.
fn build_maglev(cluster: &Cluster, hosts: &[usize], weights: &[u32], size: u64) -> Vec<u32> {
    let Some(max_w) = weights.iter().copied().max().filter(|w| *w > 0) else {
        return Vec::new();
    };
    let m = size.max(1);
    let n = hosts.len();
    let (offsets, skips): (Vec<u64>, Vec<u64>) = hosts
        .iter()
        .map(|&h| {
            let key = hash_bytes(address(cluster, h).to_string().as_bytes());
            let offset = key % m;
            let skip = if m > 1 {
                mix(key ^ 0x5bd1_e995) % (m - 1) + 1
            } else {
                1
            };
            (offset, skip)
        })
        .unzip();
    let mut table = vec![EMPTY; m as usize];
    let mut next = vec![0u64; n];
    let mut credit = vec![0u64; n];
    let mut filled = 0u64;
    while filled < m {
        for i in 0..n {
            credit[i] += u64::from(weights[i]);
            if credit[i] < u64::from(max_w) {
                continue;
            }
            credit[i] -= u64::from(max_w);
            let mut claimed = false;
            // With a prime size this finds a free slot within `m` steps.
            for _ in 0..m {
                let slot = ((offsets[i] + next[i] * skips[i]) % m) as usize;
                next[i] += 1;
                if table[slot] == EMPTY {
                    table[slot] = i as u32;
                    claimed = true;
                    break;
                }
            }
            if !claimed {
                // Not a prime size (spar-config refuses those): take the first free slot.
                if let Some(slot) = table.iter_mut().find(|s| **s == EMPTY) {
                    *slot = i as u32;
                }
            }
            filled += 1;
            if filled == m {
                break;
            }
        }
    }
    table
}
