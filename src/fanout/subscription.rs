//! One connection's view of the cache: the generation it started from,
//! then its position in the change log.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::Flavour;
use super::cache::{Cursor, Shared};
use super::frame::{Frame, MessageSize};
use super::generation::Generation;
use super::log::Change;
use crate::codec::frames;
use crate::message::{Message, MessageKind, SyncStatus};

/// What a subscription hands its connection next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pull {
    /// Bytes to send (check their largest message against the
    /// connection's limit first).
    Frame(Frame),
    /// The snapshot has been handed out (a compressed snapshot already
    /// ended with its restart); the snapshot's status comes next.
    EndOfSnapshot,
    /// Nothing new yet.
    Idle,
    /// The next change was trimmed from the log before it could be sent:
    /// the connection fell too far behind.
    Trimmed,
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
    generation: Arc<Generation>,
    phase: Phase,
    next_seq: u64,
    last_status: Option<SyncStatus>,
    joined_at: Instant,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("generation", &self.generation.seq)
            .field("phase", &self.phase)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cursor: Arc<Cursor>,
        generation: Arc<Generation>,
        now: Instant,
    ) -> Subscription {
        Subscription {
            next_seq: generation.seq + 1,
            shared,
            cursor,
            generation,
            phase: Phase::Snapshot { next: 0 },
            last_status: None,
            joined_at: now,
        }
    }

    /// The sequence number of the snapshot this subscription starts from.
    pub fn snapshot_sequence(&self) -> u64 {
        self.generation.seq
    }

    /// How many keys that snapshot holds.
    pub fn snapshot_len(&self) -> usize {
        self.generation.len()
    }

    /// The next sequence number to be sent.
    pub fn next_sequence(&self) -> u64 {
        self.next_seq
    }

    /// The next piece of output for a connection whose stream is currently
    /// in `flavour`. A compressed snapshot is handed out whole, as one
    /// frame that carries its own stream (from the snappy identifier to the
    /// restart that ends it).
    pub(crate) fn pull(&mut self, flavour: Flavour, compressed_snapshot: bool) -> Pull {
        let counters = &self.shared.counters;
        match self.phase {
            Phase::Snapshot { next } if compressed_snapshot => {
                if next > 0 {
                    self.phase = Phase::Status;
                    return Pull::EndOfSnapshot;
                }
                self.phase = Phase::Snapshot { next: 1 };
                Pull::Frame(self.generation.compressed(flavour.format, counters).clone())
            }
            Phase::Snapshot { next } => {
                match self.generation.batches(flavour.format, counters).get(next) {
                    Some(batch) => {
                        self.phase = Phase::Snapshot { next: next + 1 };
                        Pull::Frame(Frame::single(
                            flavour.format,
                            MessageKind::Kvs,
                            batch.clone(),
                        ))
                    }
                    None => {
                        self.phase = Phase::Status;
                        Pull::EndOfSnapshot
                    }
                }
            }
            Phase::Status => {
                self.phase = Phase::Log;
                let status = self.generation.status;
                self.last_status = Some(status);
                Pull::Frame(status_frame(flavour, status))
            }
            Phase::Log => self.pull_log(flavour),
        }
    }

    /// Takes the next run of changes off the log: consecutive updates
    /// batched into one message (one shared frame when it is a single
    /// update), or one status change.
    fn pull_log(&mut self, flavour: Flavour) -> Pull {
        let config = &self.shared.config;
        let counters = &self.shared.counters;
        let budget = config.max_message_len / 2;
        let mut updates = Vec::new();
        let mut bytes = 0;
        let mut status = None;
        {
            let inner = self.shared.lock();
            if self.next_seq < inner.log.first_seq() {
                return Pull::Trimmed;
            }
            while let Some(entry) = inner.log.get(self.next_seq) {
                match &entry.change {
                    Change::Status(_) if !updates.is_empty() => break,
                    Change::Status(new) => {
                        self.next_seq += 1;
                        if self.last_status != Some(*new) {
                            status = Some(*new);
                            break;
                        }
                    }
                    Change::Update(update) => {
                        let len = update.estimated_len();
                        if !updates.is_empty()
                            && (updates.len() >= config.batch_size || bytes + len > budget)
                        {
                            break;
                        }
                        bytes += len;
                        updates.push(Arc::clone(update));
                        self.next_seq += 1;
                    }
                }
            }
        }
        self.cursor.next_seq.store(self.next_seq, Ordering::Release);
        if let Some(status) = status {
            self.last_status = Some(status);
            return Pull::Frame(status_frame(flavour, status));
        }
        match updates.as_slice() {
            [] => Pull::Idle,
            [single] => Pull::Frame(single.frame(flavour, counters)),
            several if flavour.compressed => {
                // Splice the shared compressed frames (one message each)
                // rather than compress a batch for this client alone.
                let mut out = BytesMut::new();
                let mut largest = MessageSize {
                    kind: MessageKind::Kvs,
                    len: 0,
                };
                for update in several {
                    let frame = update.frame(flavour, counters);
                    out.extend_from_slice(&frame.bytes);
                    largest = largest.max(frame.largest);
                }
                Pull::Frame(Frame {
                    bytes: out.freeze(),
                    largest,
                })
            }
            several => {
                let units: Vec<&[u8]> = several
                    .iter()
                    .map(|u| &u.unit(flavour.format, counters)[..])
                    .collect();
                Pull::Frame(Frame::single(
                    flavour.format,
                    MessageKind::Kvs,
                    frames::kvs_frame(flavour.format, &units),
                ))
            }
        }
    }

    /// Whether the snapshot is out and every logged change has been handed
    /// out.
    pub(crate) fn is_caught_up(&self) -> bool {
        self.phase == Phase::Log && self.shared.lock().log.last_seq() < self.next_seq
    }

    /// How long the oldest change not yet sent has waited, if any is
    /// waiting; `Duration::MAX` when it was already trimmed from the log.
    pub(crate) fn lag(&self, now: Instant) -> Option<Duration> {
        let inner = self.shared.lock();
        if self.next_seq < inner.log.first_seq() {
            return Some(Duration::MAX);
        }
        inner
            .log
            .get(self.next_seq)
            .map(|entry| now.saturating_duration_since(entry.at))
    }

    /// When this subscription reaches the fall-behind limit if nothing
    /// more is sent (never during the new-client grace): the first instant
    /// at which [`fallen_behind`](Self::fallen_behind) reports it, so that
    /// a driver waking at this deadline always finds it expired. `None`
    /// when nothing waits, or when the deadline is too far off to
    /// represent.
    pub(crate) fn fall_behind_deadline(&self) -> Option<Instant> {
        let config = &self.shared.config;
        let inner = self.shared.lock();
        let oldest = inner.log.get(self.next_seq)?;
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

    /// The message limit the cache batches for
    /// ([`CacheConfig::max_message_len`](super::CacheConfig::max_message_len)).
    pub(crate) fn max_message_len(&self) -> usize {
        self.shared.config.max_message_len
    }
}

/// A status message in `flavour` (tiny; built per use).
fn status_frame(flavour: Flavour, status: SyncStatus) -> Frame {
    let plain = frames::message_frame(flavour.format, &Message::SyncStatus(status));
    let largest = MessageSize::of(flavour.format, MessageKind::SyncStatus, &plain);
    let bytes = match flavour.compressed {
        false => plain,
        true => frames::compress(&plain),
    };
    Frame { bytes, largest }
}
