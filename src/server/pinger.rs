//! When to ping, and which pings are still waiting for their pong.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::Timestamp;
use crate::rng::SplitMix64;

/// A ping still waiting for its pong.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    timestamp: Timestamp,
    sent_at: Instant,
}

/// Schedules pings with jitter and matches pongs to them in order.
#[derive(Debug, Clone)]
pub(crate) struct Pinger {
    interval: Duration,
    jitter: Duration,
    pong_timeout: Duration,
    rng: SplitMix64,
    next_ping: Option<Instant>,
    outstanding: VecDeque<Outstanding>,
}

/// A pong that answers no ping this server is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnmatchedPong;

impl Pinger {
    pub(crate) fn new(
        interval: Duration,
        jitter: Duration,
        pong_timeout: Duration,
        seed: u64,
    ) -> Pinger {
        Pinger {
            interval,
            jitter,
            pong_timeout,
            rng: SplitMix64::new(seed),
            next_ping: None,
            outstanding: VecDeque::new(),
        }
    }

    /// Starts the schedule: the first ping is one (jittered) interval away.
    pub(crate) fn start(&mut self, now: Instant) {
        self.next_ping = Some(now + self.jittered_interval());
    }

    fn jittered_interval(&mut self) -> Duration {
        let jitter = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        let span = jitter.saturating_mul(2).saturating_add(1);
        let offset = self.rng.next() % span;
        // interval - jitter + offset, in [interval - jitter, interval + jitter].
        (self.interval + Duration::from_nanos(offset)).saturating_sub(self.jitter)
    }

    /// Whether a ping is due at `now`.
    pub(crate) fn ping_due(&self, now: Instant) -> bool {
        self.next_ping.is_some_and(|due| now >= due)
    }

    /// Records a ping sent at `now` and schedules the next one.
    pub(crate) fn ping_sent(&mut self, now: Instant, timestamp: Timestamp) {
        self.outstanding.push_back(Outstanding {
            timestamp,
            sent_at: now,
        });
        self.next_ping = Some(now + self.jittered_interval());
    }

    /// Matches a pong to the oldest unanswered ping (clients answer in
    /// order); returns the round-trip time.
    pub(crate) fn pong_received(
        &mut self,
        now: Instant,
        echoed: &Timestamp,
    ) -> Result<Duration, UnmatchedPong> {
        match self.outstanding.front() {
            Some(oldest) if oldest.timestamp == *echoed => {
                let round_trip = now.saturating_duration_since(oldest.sent_at);
                self.outstanding.pop_front();
                Ok(round_trip)
            }
            _ => Err(UnmatchedPong),
        }
    }

    /// When the oldest unanswered ping times out, if any is unanswered.
    pub(crate) fn pong_deadline(&self) -> Option<Instant> {
        self.outstanding
            .front()
            .map(|oldest| oldest.sent_at + self.pong_timeout)
    }

    /// The earliest instant this pinger needs attention.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (self.next_ping, self.pong_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many pings are waiting for a pong.
    pub(crate) fn unanswered(&self) -> usize {
        self.outstanding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_within_the_jitter_and_depend_only_on_the_seed() {
        let draw = |seed| {
            let mut pinger = Pinger::new(
                Duration::from_secs(10),
                Duration::from_secs(1),
                Duration::from_secs(60),
                seed,
            );
            (0..1000)
                .map(|_| pinger.jittered_interval())
                .collect::<Vec<_>>()
        };
        let first = draw(7);
        assert_eq!(first, draw(7));
        assert_ne!(first, draw(8));
        assert!(
            first
                .iter()
                .all(|d| (Duration::from_secs(9)..=Duration::from_secs(11)).contains(d))
        );
        let spread = first
            .iter()
            .max()
            .unwrap()
            .saturating_sub(*first.iter().min().unwrap());
        assert!(
            spread > Duration::from_millis(1500),
            "jitter barely varies: {spread:?}"
        );
    }

    #[test]
    fn pongs_match_pings_in_order() {
        let start = Instant::now();
        let mut pinger = Pinger::new(
            Duration::from_secs(10),
            Duration::ZERO,
            Duration::from_secs(60),
            0,
        );
        let first = Timestamp::from_unix(1, 0).unwrap();
        let second = Timestamp::from_unix(2, 0).unwrap();
        pinger.ping_sent(start, first);
        pinger.ping_sent(start + Duration::from_secs(10), second);
        assert_eq!(
            pinger.pong_deadline(),
            Some(start + Duration::from_secs(60))
        );
        assert_eq!(pinger.pong_received(start, &second), Err(UnmatchedPong));
        assert_eq!(
            pinger.pong_received(start + Duration::from_secs(1), &first),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            pinger.pong_deadline(),
            Some(start + Duration::from_secs(70))
        );
        assert!(pinger.pong_received(start, &second).is_ok());
        assert_eq!(pinger.unanswered(), 0);
        assert_eq!(pinger.pong_deadline(), None);
    }
}
