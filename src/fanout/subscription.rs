//! One connection's view of the cache: the generation it started from,
//! then its position in the change chain. The reader side: nothing here
//! takes the cache's mutex; a subscription follows the chain's links and
//! reads the newest change's time from an atomic.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Flavour;
use super::batch::{ChangeBatch, coalesced_message};
use super::cache::{Cursor, Shared};
use super::checksums::ChecksumSchedule;
use super::crumb::{Change, Crumb};
use super::generation::Generation;
use super::output::{Carries, MessageSize, Output};
use crate::checksum::StateChecksum;
use crate::codec::{MAX_UPDATES_PER_MESSAGE, prebuilt};
use crate::message::{Message, SyncStatus};

/// What a subscription hands its connection next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pull {
    /// Bytes to send (check their largest message against the
    /// connection's limit first).
    Output(Output),
    /// The snapshot has been handed out (a compressed snapshot already
    /// ended with its restart); the snapshot's status comes next.
    EndOfSnapshot,
    /// Nothing new yet.
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending snapshot batch `next` (uncompressed), or the compressed
    /// stream when `next` is 0.
    Snapshot { next: usize },
    /// The snapshot is out; its status is next.
    Status,
    /// Following the log.
    Log,
}

/// A connection's subscription to a [`SnapshotCache`](super::SnapshotCache):
/// a consistent snapshot at some sequence number, then every change after
/// it. Made by [`SnapshotCache::subscribe`](super::SnapshotCache::subscribe),
/// consumed by
/// [`ServerConnection::follow`](crate::server::ServerConnection::follow).
/// Dropping it releases its hold on the log.
pub struct Subscription {
    shared: Arc<Shared>,
    cursor: Arc<Cursor>,
    /// The snapshot being sent; let go once it is out (with its status),
    /// so that a long-lived connection does not keep an old generation.
    generation: Option<Arc<Generation>>,
    snapshot_sequence: u64,
    snapshot_len: usize,
    /// The last change handed out (the snapshot's, to begin with): the
    /// next is its link. Holding it holds every change after it.
    last: Arc<Crumb>,
    phase: Phase,
    /// The last status sent; upstream's server starts from
    /// WaitForDatastore, so that status is never sent.
    last_status: SyncStatus,
    joined_at: Instant,
    /// When to send snapshot checksums, once the connection negotiated them.
    checksums: Option<ChecksumSchedule>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("generation", &self.snapshot_sequence)
            .field("phase", &self.phase)
            .field("next_seq", &self.next_sequence())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cursor: Arc<Cursor>,
        generation: Arc<Generation>,
        anchor: Arc<Crumb>,
        now: Instant,
    ) -> Subscription {
        debug_assert_eq!(generation.seq, anchor.seq);
        Subscription {
            snapshot_sequence: generation.seq,
            snapshot_len: generation.len(),
            last: anchor,
            shared,
            cursor,
            generation: Some(generation),
            phase: Phase::Snapshot { next: 0 },
            last_status: SyncStatus::WaitForDatastore,
            joined_at: now,
            checksums: None,
        }
    }

    /// The sequence number of the snapshot this subscription starts from.
    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot_sequence
    }

    /// How many keys that snapshot holds.
    pub fn snapshot_len(&self) -> usize {
        self.snapshot_len
    }

    /// The next sequence number to be sent.
    pub fn next_sequence(&self) -> u64 {
        self.last.seq + 1
    }

    /// Sends snapshot checksums from now on (the connection negotiated
    /// them), after changes at most once per `interval`.
    pub(crate) fn send_checksums(&mut self, interval: Duration) {
        self.checksums
            .get_or_insert_with(|| ChecksumSchedule::new(interval));
    }

    /// The next piece of output for a connection whose stream is currently
    /// in `flavour`, at `now`. A compressed snapshot is handed out whole, as
    /// one output that carries its own stream (from the snappy identifier
    /// to the restart that ends it).
    pub(crate) fn pull(
        &mut self,
        flavour: Flavour,
        compressed_snapshot: bool,
        now: Instant,
    ) -> Pull {
        let counters = &self.shared.counters;
        if let Some(checksum) = self.checksums.as_mut().and_then(ChecksumSchedule::take_due) {
            return Pull::Output(checksum_message(flavour, checksum));
        }
        let Some(generation) = self
            .generation
            .as_ref()
            .filter(|_| self.phase != Phase::Log)
        else {
            return self.pull_log(flavour, now);
        };
        match self.phase {
            Phase::Snapshot { next } if compressed_snapshot => {
                if next > 0 {
                    self.phase = Phase::Status;
                    return Pull::EndOfSnapshot;
                }
                self.phase = Phase::Snapshot { next: 1 };
                Pull::Output(generation.compressed(flavour.format, counters).clone())
            }
            Phase::Snapshot { next } => {
                match generation.batches(flavour.format, counters).get(next) {
                    Some(batch) => {
                        self.phase = Phase::Snapshot { next: next + 1 };
                        let mut output =
                            Output::kvs(flavour.format, batch.bytes.clone(), batch.count);
                        // Flagged for the whole snapshot when it holds one
                        // anywhere: a client that cannot take it is closed
                        // before its snapshot starts.
                        output.modern_policy_keys = generation.modern_policy_keys;
                        Pull::Output(output)
                    }
                    None => {
                        self.phase = Phase::Status;
                        Pull::EndOfSnapshot
                    }
                }
            }
            Phase::Status | Phase::Log => {
                // The snapshot is out: its generation is no longer needed.
                let (status, checksum) = (generation.status, generation.checksum);
                self.generation = None;
                self.phase = Phase::Log;
                // Sent like any status, only if it differs from the last
                // one sent (WaitForDatastore, to begin with), as upstream.
                if status == self.last_status {
                    return self.pull_log(flavour, now);
                }
                self.last_status = status;
                if let Some(checksums) = self.checksums.as_mut() {
                    checksums.status_sent(status, checksum, now);
                }
                Pull::Output(status_message(flavour, status))
            }
        }
    }

    /// Takes the next change off the log: a status change, or a change
    /// batch as one message — with the batches after it coalesced in, as
    /// upstream's server does (`sendDeltaUpdatesToClient`), while the client
    /// lags: while the batch just taken is at least
    /// [`min_batching_age`](super::CacheConfig::min_batching_age) older than
    /// the newest change, and the message holds fewer than `batch_size`
    /// updates. A batch is never split; coalescing also stops at a status
    /// change (sent next, in its own message) and at the byte budget.
    fn pull_log(&mut self, flavour: Flavour, now: Instant) -> Pull {
        let config = &self.shared.config;
        let counters = &self.shared.counters;
        let budget = config.max_message_len / 2;
        let newest_at = self.shared.newest_at();
        let mut batches: Vec<Arc<ChangeBatch>> = Vec::new();
        let (mut count, mut bytes) = (0, 0);
        let mut status = None;
        // The last change taken.
        let mut taken: Option<&Arc<Crumb>> = None;
        let mut position = &self.last;
        while let Some(crumb) = position.next() {
            match &crumb.change {
                Some(Change::Status(_)) if !batches.is_empty() => break,
                Some(Change::Status(new)) => {
                    taken = Some(crumb);
                    if self.last_status != *new {
                        status = Some(*new);
                        break;
                    }
                }
                Some(Change::Batch(batch)) => {
                    let full = count >= config.batch_size
                        || bytes + batch.bytes() > budget
                        || count + batch.len() > MAX_UPDATES_PER_MESSAGE;
                    if !batches.is_empty() && full {
                        break;
                    }
                    count += batch.len();
                    bytes += batch.bytes();
                    batches.push(Arc::clone(batch));
                    taken = Some(crumb);
                    let lagging = newest_at.is_some_and(|newest| {
                        newest.saturating_duration_since(crumb.at) >= config.min_batching_age
                    });
                    if !lagging {
                        break;
                    }
                }
                // Only the chain's origin has no change, and nothing
                // links to it.
                None => taken = Some(crumb),
            }
            position = crumb;
        }
        let Some(taken) = taken.cloned() else {
            return Pull::Idle;
        };
        // The state after the last change taken.
        let checksum = taken.checksum;
        self.cursor.position.store(taken.seq, Ordering::Relaxed);
        self.last = taken;
        if let Some(checksums) = self.checksums.as_mut() {
            match status {
                Some(status) => checksums.status_sent(status, checksum, now),
                None if !batches.is_empty() => checksums.changes_sent(checksum, now),
                None => {}
            }
        }
        if let Some(status) = status {
            self.last_status = status;
            return Pull::Output(status_message(flavour, status));
        }
        match batches.as_slice() {
            [] => Pull::Idle,
            [single] => Pull::Output(single.message(flavour, counters)),
            several => Pull::Output(coalesced_message(several, flavour, counters)),
        }
    }

    /// Whether the snapshot is out and every logged change has been handed
    /// out.
    pub(crate) fn is_caught_up(&self) -> bool {
        self.phase == Phase::Log && self.last.next().is_none()
    }

    /// How long the oldest change not yet sent has waited, if any is
    /// waiting.
    pub(crate) fn lag(&self, now: Instant) -> Option<Duration> {
        self.last
            .next()
            .map(|oldest| now.saturating_duration_since(oldest.at))
    }

    /// When this subscription reaches the fall-behind limit if nothing
    /// more is sent (never during the new-client grace): the first instant
    /// at which [`fallen_behind`](Self::fallen_behind) reports it, so that
    /// a driver waking at this deadline always finds it expired. `None`
    /// when nothing waits, or when the deadline is too far off to
    /// represent.
    pub(crate) fn fall_behind_deadline(&self) -> Option<Instant> {
        let config = &self.shared.config;
        let oldest = self.last.next()?;
        let deadline = oldest.at.checked_add(config.max_fall_behind)?;
        let grace_end = self.joined_at.checked_add(config.new_client_grace)?;
        Some(deadline.max(grace_end))
    }

    /// Whether, at `now`, this subscription's oldest unsent change has
    /// waited as long as the limit allows (after the grace for new
    /// clients): the lag if so.
    pub(crate) fn fallen_behind(&self, now: Instant) -> Option<Duration> {
        let config = &self.shared.config;
        if now.saturating_duration_since(self.joined_at) < config.new_client_grace {
            return None;
        }
        // `>=`, not `>`: at exactly `fall_behind_deadline` this must fire,
        // or a driver that wakes at that deadline finds nothing to do and
        // is handed the same deadline again, for ever.
        self.lag(now).filter(|lag| *lag >= config.max_fall_behind)
    }

    /// The fall-behind limit in force.
    pub(crate) fn max_fall_behind(&self) -> Duration {
        self.shared.config.max_fall_behind
    }

    /// The configuration of the cache it follows.
    pub(crate) fn cache_config(&self) -> &super::CacheConfig {
        &self.shared.config
    }
}

/// A checksum message in `flavour` (tiny; built per use).
fn checksum_message(flavour: Flavour, checksum: StateChecksum) -> Output {
    small_message(flavour, &Message::Checksum(checksum.into()))
}

/// A status message in `flavour` (tiny; built per use).
fn status_message(flavour: Flavour, status: SyncStatus) -> Output {
    small_message(flavour, &Message::SyncStatus(status))
}

/// One small message in `flavour`, encoded and (for a compressed stream)
/// compressed on the spot: not worth caching.
fn small_message(flavour: Flavour, message: &Message) -> Output {
    let plain = prebuilt::message_bytes(flavour.format, message);
    let largest = MessageSize::of(flavour.format, message.kind(), &plain);
    let bytes = match flavour.compressed {
        false => plain,
        true => prebuilt::compress(&plain),
    };
    Output {
        bytes,
        largest,
        modern_policy_keys: false,
        carries: Carries::Other(message.kind()),
    }
}
