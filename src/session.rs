//! A client session across connections: the datastore as the application
//! holds it, kept continuous however often the connection underneath is
//! lost and made again. Sans-IO, like the machines: drivers feed it each
//! connection's [`ClientEvent`]s and tell it when a connection starts or is
//! lost; it hands back [`SessionEvent`]s and how long to wait before the
//! next attempt.
//!
//! Upstream's Felix restarts when it loses Typha and rebuilds everything
//! from the new snapshot. A session instead resyncs in place: after a new
//! connection's snapshot it reports the keys the snapshot did not resend as
//! deletions, and it never reports a change that changes nothing the
//! application holds (an update equal to what it has, a deletion of a key
//! it does not have), so an application sees one continuous stream of real
//! changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::client::{ChecksumReport, ClientEvent};
use crate::key::KeyError;
use crate::message::{ByteString, Revision, SerializedUpdate, SyncStatus, UpdateType};
use crate::rng::SplitMix64;

/// What a [`Session`] reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Changes to apply, in order; none of them is a no-op.
    Updates(Vec<SerializedUpdate>),
    /// The server's sync status changed.
    Status(SyncStatus),
    /// An update was dropped because its key did not parse.
    Dropped {
        /// The rejected key.
        key: ByteString,
        /// Why.
        reason: KeyError,
    },
    /// The server's snapshot checksum was compared with what the current
    /// connection received (see [`ClientEvent::Checksum`]). A mismatch that
    /// the [`ChecksumPolicy`] acts on is followed by a forced resync.
    Checksum(ChecksumReport),
    /// A reconnect's snapshot has ended: the view equals the server's state
    /// again (after the deletions just reported). Reported even when
    /// nothing changed meanwhile, so that an application that marked its
    /// data stale while the connection was down (a relay serving it on)
    /// knows it is current again; [`Session::status`] is the status now.
    Resynced,
    /// The connection was lost (or could not be made); the next attempt
    /// comes after `delay`. For logs: the data stream goes on unaffected.
    Reconnecting {
        /// What ended the connection, or why connecting failed.
        reason: String,
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// How long until the next attempt.
        delay: Duration,
    },
}

/// Exponential backoff with jitter between connection attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt number `attempt` (from 1): doubling from
    /// `initial` up to `max`, then scaled by a random factor in [0.5, 1]
    /// drawn from `random`, so that clients cut off together do not all
    /// return together.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = doubled.min(self.max);
        let factor = 0.5 + (random % 1000) as f64 / 2000.0;
        capped.mul_f64(factor)
    }
}

/// What a session does when a server's snapshot checksums disagree with
/// what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumPolicy {
    /// Report each comparison ([`SessionEvent::Checksum`]) and nothing
    /// more.
    ReportOnly,
    /// Report, and after `after` mismatches in a row on one connection
    /// drop it so that the next connection resyncs, at most once per
    /// `at_most_every` (a server that keeps disagreeing is not reconnected
    /// to in a loop).
    Resync {
        /// Consecutive mismatches that make a mismatch real.
        after: u32,
        /// The shortest time between two forced resyncs.
        at_most_every: Duration,
    },
}

impl Default for ChecksumPolicy {
    /// Upstream's defaults (DESIGN.md §1b): three mismatches in a row, at
    /// most one forced reconnect per ten minutes.
    fn default() -> ChecksumPolicy {
        ChecksumPolicy::Resync {
            after: 3,
            at_most_every: Duration::from_secs(600),
        }
    }
}

/// Where the current connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No connection.
    Down,
    /// Connected, handshake not done yet; `first` if the application has
    /// never been told anything (then nothing needs hiding).
    Starting { first: bool },
    /// Reconnected, receiving the new snapshot: the keys it sent so far.
    Resyncing(BTreeSet<ByteString>),
    /// Past the snapshot (or on the first connection).
    Live,
}

/// One application's datastore across connections: see the
/// [module docs](self).
///
/// Drive it like this, whatever the runtime:
///
/// 1. Before each connection attempt (the first too),
///    [`connection_started`](Self::connection_started).
/// 2. Feed it every event of that connection's
///    [`ClientConnection`](crate::client::ClientConnection) with
///    [`handle_event`](Self::handle_event), the final `Closed` included.
/// 3. If the attempt fails before there is a machine, or the socket fails,
///    [`connection_lost`](Self::connection_lost).
/// 4. Drain [`poll_event`](Self::poll_event) after each call. After a
///    `Closed` event or `connection_lost`, wait
///    [`retry_delay`](Self::retry_delay) before the next attempt.
///
/// The end of a reconnect's snapshot is the first status that follows it,
/// as upstream marks it: a server whose datastore is not in sync yet sends
/// no status after the snapshot (WaitForDatastore is never sent), so the
/// keys that vanished meanwhile are reported deleted at the next status it
/// does send.
#[derive(Debug)]
pub struct Session {
    backoff: Backoff,
    rng: SplitMix64,
    phase: Phase,
    view: BTreeMap<ByteString, SerializedUpdate>,
    last_status: Option<SyncStatus>,
    events: VecDeque<SessionEvent>,
    failures: u32,
    retry_delay: Duration,
    checksum_policy: ChecksumPolicy,
    /// Why the current connection is to be dropped, once the checksum
    /// policy decided so (taken by the driver, then kept for the report).
    forced_resync: Option<ForcedResync>,
    last_forced_resync: Option<Instant>,
    forced_resyncs: u64,
    checksums_verified: u64,
    checksum_mismatches: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ForcedResync {
    reason: String,
    /// The driver has been told to close the connection.
    taken: bool,
}

impl Session {
    /// A session that waits between attempts as `backoff` says, its jitter
    /// drawn from a generator seeded with `seed`.
    pub fn new(backoff: Backoff, seed: u64) -> Session {
        Session {
            backoff,
            rng: SplitMix64::new(seed),
            phase: Phase::Down,
            view: BTreeMap::new(),
            last_status: None,
            events: VecDeque::new(),
            failures: 0,
            retry_delay: Duration::ZERO,
            checksum_policy: ChecksumPolicy::default(),
            forced_resync: None,
            last_forced_resync: None,
            forced_resyncs: 0,
            checksums_verified: 0,
            checksum_mismatches: 0,
        }
    }

    /// Sets what a checksum mismatch does (by default,
    /// [`ChecksumPolicy::default`]). Checksums are only compared when the
    /// client's [`ClientConfig::checksums`](crate::client::ClientConfig::checksums)
    /// asks for them.
    pub fn set_checksum_policy(&mut self, policy: ChecksumPolicy) {
        self.checksum_policy = policy;
    }

    /// Whether the checksum policy wants the current connection dropped,
    /// so that the next one resyncs. Call after
    /// [`handle_event`](Self::handle_event); when it returns `true` (once
    /// per decision), close the connection
    /// ([`ClientConnection::close`](crate::client::ClientConnection::close))
    /// and feed its `Closed` event as usual.
    pub fn take_forced_resync(&mut self) -> bool {
        match &mut self.forced_resync {
            Some(forced) if !forced.taken => {
                forced.taken = true;
                true
            }
            _ => false,
        }
    }

    /// How many connections the checksum policy has dropped.
    pub fn forced_resyncs(&self) -> u64 {
        self.forced_resyncs
    }

    /// How many of the servers' snapshot checksums matched what was
    /// received, across connections.
    pub fn checksums_verified(&self) -> u64 {
        self.checksums_verified
    }

    /// How many did not.
    pub fn checksum_mismatches(&self) -> u64 {
        self.checksum_mismatches
    }

    /// The datastore as the application has been told it, by key.
    pub fn view(&self) -> &BTreeMap<ByteString, SerializedUpdate> {
        &self.view
    }

    /// The last status the application was told.
    pub fn status(&self) -> Option<SyncStatus> {
        self.last_status
    }

    /// Whether a reconnect's snapshot is still arriving (the view may hold
    /// keys the server no longer has until it ends).
    pub fn is_resyncing(&self) -> bool {
        matches!(self.phase, Phase::Resyncing(_))
    }

    /// Whether a connection is up and past its handshake.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Resyncing(_) | Phase::Live)
    }

    /// Call before each connection attempt.
    pub fn connection_started(&mut self) {
        self.forced_resync = None;
        self.phase = Phase::Starting {
            first: self.last_status.is_none(),
        };
    }

    /// Call when an attempt failed before its machine existed, or the
    /// socket failed: schedules the next attempt (see
    /// [`retry_delay`](Self::retry_delay)) and reports
    /// [`SessionEvent::Reconnecting`].
    pub fn connection_lost(&mut self, reason: impl Into<String>) {
        self.phase = Phase::Down;
        self.failures = self.failures.saturating_add(1);
        self.retry_delay = self.backoff.delay(self.failures, self.rng.next());
        self.events.push_back(SessionEvent::Reconnecting {
            reason: reason.into(),
            attempt: self.failures,
            delay: self.retry_delay,
        });
    }

    /// How long to wait before the next attempt, once a connection was
    /// lost (zero before any loss).
    pub fn retry_delay(&self) -> Duration {
        self.retry_delay
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Feeds one event of the current connection.
    pub fn handle_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connected(_) => {
                self.failures = 0;
                self.phase = match self.phase {
                    Phase::Starting { first: false } => Phase::Resyncing(BTreeSet::new()),
                    _ => Phase::Live,
                };
            }
            ClientEvent::Dropped { key, reason } => {
                self.events.push_back(SessionEvent::Dropped { key, reason })
            }
            ClientEvent::Updates(updates) => {
                let changes = self.apply(updates);
                if !changes.is_empty() {
                    self.events.push_back(SessionEvent::Updates(changes));
                }
            }
            ClientEvent::Status(status) => self.status_changed(status),
            ClientEvent::Ignored(_) => {}
            ClientEvent::Checksum(report) => self.checksum_compared(report),
            ClientEvent::Closed(reason) => match self.forced_resync.take() {
                Some(forced) => self.connection_lost(forced.reason),
                None => self.connection_lost(reason.to_string()),
            },
        }
    }

    /// Reports a checksum comparison and applies the policy to a mismatch.
    fn checksum_compared(&mut self, report: ChecksumReport) {
        match report.verified {
            true => self.checksums_verified += 1,
            false => self.checksum_mismatches += 1,
        }
        self.events.push_back(SessionEvent::Checksum(report));
        let ChecksumPolicy::Resync {
            after,
            at_most_every,
        } = self.checksum_policy
        else {
            return;
        };
        let rested = self
            .last_forced_resync
            .is_none_or(|last| report.received_at.saturating_duration_since(last) >= at_most_every);
        if report.verified
            || report.consecutive_mismatches < after
            || !rested
            || self.forced_resync.is_some()
        {
            return;
        }
        self.last_forced_resync = Some(report.received_at);
        self.forced_resyncs += 1;
        self.forced_resync = Some(ForcedResync {
            reason: format!(
                "resyncing after {} snapshot checksum mismatches in a row \
                 (server {:#018x}/{} entries, received {:#018x}/{})",
                report.consecutive_mismatches,
                report.server.checksum,
                report.server.kv_count,
                report.local.checksum,
                report.local.kv_count
            ),
            taken: false,
        });
    }

    /// Applies updates to the view, keeping only those that change it;
    /// while resyncing, remembers which keys the snapshot resent.
    fn apply(&mut self, updates: Vec<SerializedUpdate>) -> Vec<SerializedUpdate> {
        let mut changes = Vec::with_capacity(updates.len());
        for update in updates {
            if let Phase::Resyncing(resent) = &mut self.phase {
                resent.insert(update.key.clone());
            }
            let held = self.view.get(&update.key);
            let changes_nothing = match (update.effective_value(), held) {
                (None, None) => true,
                (Some(_), Some(held)) => unchanged(&update, held),
                _ => false,
            };
            if changes_nothing {
                continue;
            }
            match update.effective_value() {
                Some(_) => {
                    self.view.insert(update.key.clone(), update.clone());
                }
                None => {
                    self.view.remove(&update.key);
                }
            }
            changes.push(update);
        }
        changes
    }

    /// Handles a status. A new connection's own initial status is hidden
    /// on reconnects; the first status after a reconnect's snapshot ends
    /// it, so the keys the snapshot did not resend are reported deleted.
    fn status_changed(&mut self, status: SyncStatus) {
        match std::mem::replace(&mut self.phase, Phase::Live) {
            Phase::Starting { first } => {
                self.phase = Phase::Starting { first };
                if !first {
                    return;
                }
            }
            Phase::Resyncing(resent) => {
                self.end_resync(&resent);
                // The status event below, if any, comes after this one:
                // the application hears the view is current, then what
                // the status now is.
                self.events.push_back(SessionEvent::Resynced);
            }
            Phase::Down | Phase::Live => {}
        }
        if self.last_status != Some(status) {
            self.last_status = Some(status);
            self.events.push_back(SessionEvent::Status(status));
        }
    }

    /// Reports the keys a reconnect's snapshot did not resend as deleted.
    fn end_resync(&mut self, resent: &BTreeSet<ByteString>) {
        let gone: Vec<ByteString> = self
            .view
            .keys()
            .filter(|key| !resent.contains(*key))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let deletions = gone
            .into_iter()
            .map(|key| {
                self.view.remove(&key);
                SerializedUpdate::deletion(key, Revision::Nil)
            })
            .collect();
        self.events.push_back(SessionEvent::Updates(deletions));
    }
}

/// Whether `update` would change nothing for an application holding
/// `held`: the same value and TTL (revisions and update types may differ:
/// a snapshot resends every key as new).
fn unchanged(update: &SerializedUpdate, held: &SerializedUpdate) -> bool {
    let as_update = |u: &SerializedUpdate| SerializedUpdate {
        update_type: UpdateType::Updated,
        ..u.clone()
    };
    as_update(update).would_be_no_op(&as_update(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let backoff = Backoff::default();
        for (attempt, nominal) in [(1, 500), (2, 1000), (3, 2000), (10, 30_000), (40, 30_000)] {
            for random in [0, 499, 999] {
                let delay = backoff.delay(attempt, random).as_millis() as u64;
                assert!(
                    (nominal / 2..=nominal).contains(&delay),
                    "attempt {attempt}: {delay} ms"
                );
            }
        }
    }

    #[test]
    fn retry_delays_grow_and_reset_once_connected() {
        let mut session = Session::new(Backoff::default(), 7);
        session.connection_started();
        session.connection_lost("refused");
        let first = session.retry_delay();
        session.connection_started();
        session.connection_lost("refused");
        assert!(session.retry_delay() > first);
        session.connection_started();
        session.handle_event(ClientEvent::Connected(Default::default()));
        session.handle_event(ClientEvent::Closed(crate::CloseReason::PeerClosed));
        assert!(session.retry_delay() <= Duration::from_millis(500));
        let attempts: Vec<u32> = std::iter::from_fn(|| session.poll_event())
            .filter_map(|event| match event {
                SessionEvent::Reconnecting { attempt, .. } => Some(attempt),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, [1, 2, 1]);
    }

    fn mismatch(at: Instant, consecutive: u32) -> ClientEvent {
        let server = crate::checksum::StateChecksum {
            checksum: 1,
            kv_count: 1,
        };
        ClientEvent::Checksum(ChecksumReport {
            server,
            local: Default::default(),
            verified: false,
            consecutive_mismatches: consecutive,
            received_at: at,
        })
    }

    /// Runs one connection that reports `mismatches` in a row starting at
    /// `at`; returns whether the session asked for it to be dropped.
    fn connection_with_mismatches(session: &mut Session, at: Instant, mismatches: u32) -> bool {
        session.connection_started();
        session.handle_event(ClientEvent::Connected(Default::default()));
        let mut forced = false;
        for n in 1..=mismatches {
            session.handle_event(mismatch(at + Duration::from_secs(30 * u64::from(n)), n));
            forced |= session.take_forced_resync();
        }
        session.handle_event(ClientEvent::Closed(crate::CloseReason::Local));
        forced
    }

    #[test]
    fn checksum_mismatches_force_a_resync_after_three_at_most_every_ten_minutes() {
        let start = Instant::now();
        let mut session = Session::new(Backoff::default(), 7);
        assert!(!connection_with_mismatches(&mut session, start, 2));
        assert!(connection_with_mismatches(&mut session, start, 3));
        let reasons: Vec<String> = std::iter::from_fn(|| session.poll_event())
            .filter_map(|event| match event {
                SessionEvent::Reconnecting { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert!(
            reasons[1].contains("3 snapshot checksum mismatches"),
            "{reasons:?}"
        );
        // Within ten minutes of the last forced resync: reported only.
        let soon = start + Duration::from_secs(300);
        assert!(!connection_with_mismatches(&mut session, soon, 5));
        let later = start + Duration::from_secs(700);
        assert!(connection_with_mismatches(&mut session, later, 3));
        assert_eq!(session.forced_resyncs(), 2);
        assert_eq!(session.checksum_mismatches(), 2 + 3 + 5 + 3);
        assert_eq!(session.checksums_verified(), 0);
        session.set_checksum_policy(ChecksumPolicy::ReportOnly);
        let much_later = start + Duration::from_secs(7000);
        assert!(!connection_with_mismatches(&mut session, much_later, 10));
    }
}
