//! When to ping, and whether the client is still answering.
//!
//! As upstream's server (`typha/pkg/syncserver/sync_server.go`, the loop
//! after the snapshot): pings start once the snapshot has been sent, any
//! pong is accepted, and the connection times out when no pong at all has
//! arrived for the pong timeout, counted from the last pong (or from the
//! start of pinging). Pongs are still matched to the pings they echo, for
//! round-trip times and for the count of pings left unanswered.

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

/// Schedules pings with jitter and watches for pongs.
#[derive(Debug, Clone)]
pub(crate) struct Pinger {
    interval: Duration,
    jitter: Duration,
    pong_timeout: Duration,
    rng: SplitMix64,
    next_ping: Option<Instant>,
    /// When the pong timeout runs out (set once pinging starts).
    pong_deadline: Option<Instant>,
    /// Pings not answered yet, oldest first. A pong answering one also
    /// settles every older one (clients answer in order, so those will
    /// never be answered), which bounds this by the pings sent within one
    /// pong timeout.
    outstanding: VecDeque<Outstanding>,
    pings_sent: u64,
    pongs_received: u64,
}

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
            pong_deadline: None,
            outstanding: VecDeque::new(),
            pings_sent: 0,
            pongs_received: 0,
        }
    }

    /// Starts the schedule: the first ping is one (jittered) interval away,
    /// and the pong timeout starts running. Later calls change nothing.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.next_ping.is_none() {
            self.next_ping = Some(now + self.jittered_interval());
            self.pong_deadline = Some(now + self.pong_timeout);
        }
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
        self.pings_sent += 1;
        self.next_ping = Some(now + self.jittered_interval());
    }

    /// Records a pong received at `now`, whatever it echoes: the pong
    /// timeout starts again. Returns the round trip of the ping it answers,
    /// `None` if it answers none still outstanding.
    pub(crate) fn pong_received(&mut self, now: Instant, echoed: &Timestamp) -> Option<Duration> {
        self.pongs_received += 1;
        if self.pong_deadline.is_some() {
            self.pong_deadline = Some(now + self.pong_timeout);
        }
        let answered = self
            .outstanding
            .iter()
            .position(|ping| ping.timestamp == *echoed)?;
        let round_trip = now.saturating_duration_since(self.outstanding[answered].sent_at);
        self.outstanding.drain(..=answered);
        Some(round_trip)
    }

    /// When the pong timeout runs out, once pinging has started.
    pub(crate) fn pong_deadline(&self) -> Option<Instant> {
        self.pong_deadline
    }

    /// The earliest instant this pinger needs attention.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (self.next_ping, self.pong_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many pings are waiting for a pong.
    pub(crate) fn unanswered(&self) -> usize {
        self.outstanding.len()
    }

    /// Pings sent so far.
    pub(crate) fn pings_sent(&self) -> u64 {
        self.pings_sent
    }

    /// Pongs received so far, matching a ping or not.
    pub(crate) fn pongs_received(&self) -> u64 {
        self.pongs_received
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
    fn any_pong_restarts_the_timeout_and_matched_ones_time_the_round_trip() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let mut pinger = Pinger::new(secs(10), Duration::ZERO, secs(60), 0);
        assert_eq!(pinger.deadline(), None, "nothing before pinging starts");
        pinger.start(start);
        assert_eq!(pinger.pong_deadline(), Some(start + secs(60)));
        let first = Timestamp::from_unix(1, 0).unwrap();
        let second = Timestamp::from_unix(2, 0).unwrap();
        let stray = Timestamp::from_unix(3, 0).unwrap();
        pinger.ping_sent(start, first);
        pinger.ping_sent(start + secs(10), second);
        assert_eq!(pinger.pong_received(start + secs(11), &stray), None);
        assert_eq!(pinger.pong_deadline(), Some(start + secs(71)));
        assert_eq!(pinger.unanswered(), 2);
        // Answering the second settles the first too.
        assert_eq!(
            pinger.pong_received(start + secs(12), &second),
            Some(secs(2))
        );
        assert_eq!(pinger.unanswered(), 0);
        assert_eq!(pinger.pong_received(start + secs(13), &first), None);
        assert_eq!((pinger.pings_sent(), pinger.pongs_received()), (2, 3));
        assert_eq!(pinger.pong_deadline(), Some(start + secs(73)));
    }
}
