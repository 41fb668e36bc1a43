//! Upstream's connection limit: a server over it drops one connection,
//! chosen at random, per interval until it is back at the limit
//! (`typha/pkg/syncserver/sync_server.go`, `governNumberOfConnections`).
//! Drivers keep the connections and the ticker; this chooses.

use crate::rng::SplitMix64;

/// Chooses which connection a server over its limit drops next.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    max: usize,
    rng: SplitMix64,
}

impl ConnectionLimit {
    /// A limit of `max` connections, its choices drawn from a generator
    /// seeded with `seed`.
    pub fn new(max: usize, seed: u64) -> ConnectionLimit {
        ConnectionLimit {
            max,
            rng: SplitMix64::new(seed),
        }
    }

    /// The most connections allowed.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Call once per shedding interval with the number of connections
    /// open: the index (below `open`) of the one to drop now, if over the
    /// limit.
    pub fn choose_victim(&mut self, open: usize) -> Option<usize> {
        (open > self.max).then(|| self.rng.below(open))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_over_the_limit_and_spread_over_the_connections() {
        let mut limit = ConnectionLimit::new(10, 3);
        assert_eq!(limit.choose_victim(10), None);
        let victims: std::collections::BTreeSet<usize> =
            (0..200).filter_map(|_| limit.choose_victim(20)).collect();
        assert!(victims.iter().all(|victim| *victim < 20));
        assert!(victims.len() > 15, "{victims:?}");
    }
}
