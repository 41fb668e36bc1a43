//! Distributions for metrics, kept as plain counts so that the machines can
//! record them without an exporter: a driver reads them (or adds them into
//! its own shared totals) and hands them to whatever exporter it uses.
//!
//! Values are integers in a stated unit (updates, nanoseconds), so that
//! sums add exactly and a driver can keep shared totals in atomics.

use std::time::Duration;

/// Bucket bounds for updates per `KVs` message.
pub const KVS_PER_MESSAGE_BOUNDS: &[u64] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
];

const MS: u64 = 1_000_000;

/// Bucket bounds, in nanoseconds, for round trips (pings): 1 ms to 10 s.
pub const LATENCY_BOUNDS_NANOS: &[u64] = &[
    MS,
    5 * MS / 2,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    1_000 * MS,
    2_500 * MS,
    5_000 * MS,
    10_000 * MS,
];

/// Bucket bounds, in nanoseconds, for sending a snapshot: 10 ms to 5 min.
pub const SNAPSHOT_BOUNDS_NANOS: &[u64] = &[
    10 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    1_000 * MS,
    2_500 * MS,
    5_000 * MS,
    10_000 * MS,
    30_000 * MS,
    60_000 * MS,
    120_000 * MS,
    300_000 * MS,
];

/// A histogram with fixed bucket bounds: how many observations fell at or
/// below each bound (and above the last), their sum and their count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Per bucket, not cumulative; one more than `bounds` (the overflow).
    counts: Box<[u64]>,
    sum: u64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0,
            count: 0,
        }
    }

    /// A histogram over `bounds` holding `counts` (per bucket, not
    /// cumulative: one per bound and the overflow), `sum` and `count`, as a
    /// driver keeping shared totals reads them back; `None` when there is
    /// not one count per bucket.
    pub fn from_counts(
        bounds: &'static [u64],
        counts: Vec<u64>,
        sum: u64,
        count: u64,
    ) -> Option<Histogram> {
        (counts.len() == bounds.len() + 1).then(|| Histogram {
            bounds,
            counts: counts.into_boxed_slice(),
            sum,
            count,
        })
    }

    /// Records one observation of `value`.
    pub fn observe(&mut self, value: u64) {
        self.observe_many(value, 1);
    }

    /// Records `times` observations of `value`.
    pub fn observe_many(&mut self, value: u64, times: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket] = self.counts[bucket].saturating_add(times);
        self.sum = self.sum.saturating_add(value.saturating_mul(times));
        self.count = self.count.saturating_add(times);
    }

    /// Records a duration, in nanoseconds.
    pub fn observe_duration(&mut self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds `other`'s observations (over the same bounds; buckets past the
    /// shorter of the two are added to the overflow).
    pub fn merge(&mut self, other: &Histogram) {
        let last = self.counts.len() - 1;
        for (index, count) in other.counts.iter().enumerate() {
            let bucket = index.min(last);
            self.counts[bucket] = self.counts[bucket].saturating_add(*count);
        }
        self.sum = self.sum.saturating_add(other.sum);
        self.count = self.count.saturating_add(other.count);
    }

    /// The bucket bounds.
    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Observations per bucket (not cumulative): one per bound, then the
    /// ones above the last bound.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The sum of the observations.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets every observation, keeping the bounds.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|count| *count = 0);
        self.sum = 0;
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_at_or_below_their_bound() {
        let mut histogram = Histogram::new(&[1, 10, 100]);
        for value in [0, 1, 2, 10, 11, 100, 101, 5_000] {
            histogram.observe(value);
        }
        histogram.observe_many(5, 3);
        assert_eq!(histogram.counts(), [2, 5, 2, 2]);
        assert_eq!(histogram.count(), 11);
        assert_eq!(histogram.sum(), 5_225 + 15);
        let mut total = Histogram::new(&[1, 10, 100]);
        total.merge(&histogram);
        total.merge(&histogram);
        assert_eq!(total.counts(), [4, 10, 4, 4]);
        assert_eq!(total.sum(), 2 * histogram.sum());
        total.clear();
        assert!(total.is_empty() && total.counts().iter().all(|count| *count == 0));
    }
}
