//! The cache itself: current state, change log, latest generation.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use super::batch::{BatchBuilder, ChangeBatch};
use super::entry::{ByKey, CachedUpdate};
use super::generation::Generation;
use super::log::{Change, ChangeLog};
use super::subscription::Subscription;
use super::{CacheConfig, CacheStats, Counters, Shape};
use crate::checksum::StateChecksum;
use crate::codec::MAX_UPDATES_PER_MESSAGE;
use crate::message::{SerializedUpdate, SyncStatus};
use crate::metrics::{Histogram, KVS_PER_MESSAGE_BOUNDS};

/// The shared datastore a server fans out: see the [module docs](super).
///
/// Cloning gives another handle on the same cache.
#[derive(Debug, Clone)]
pub struct SnapshotCache {
    shared: Arc<Shared>,
}

/// What [`SnapshotCache::apply`] did with a batch of updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOutcome {
    /// Updates appended to the log.
    pub accepted: usize,
    /// Updates dropped as no-ops.
    pub skipped: usize,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: CacheConfig,
    pub(crate) counters: Counters,
    inner: Mutex<Inner>,
}

/// A subscription's place in the log, visible to the cache for trimming.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The next sequence number the subscription will send.
    pub(crate) next_seq: AtomicU64,
    /// When the subscription's new-client grace ends (`None`: too far off
    /// to represent). Until then the log keeps what it needs however old,
    /// since the fall-behind limit does not apply to it yet.
    pub(crate) grace_until: Option<Instant>,
}

impl Cursor {
    fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.is_none_or(|end| now < end)
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The current state, by key (snapshots send each entry with update
    /// type `New`, as upstream stores them).
    state: BTreeSet<ByKey>,
    status: SyncStatus,
    pub(crate) log: ChangeLog,
    generation: Arc<Generation>,
    cursors: Vec<Weak<Cursor>>,
    /// Trim again once the log is this long: trimming scans every
    /// subscription, so it is done in proportion to the log's growth rather
    /// than on every change.
    trim_at: usize,
    /// Updates logged so far (the log's entries are batches of them).
    updates_logged: u64,
    /// Updates per logged change batch.
    change_batch_sizes: Histogram,
    /// The current state's checksum, kept up to date with every change.
    checksum: StateChecksum,
}

impl SnapshotCache {
    /// An empty cache (status `WaitForDatastore`, as upstream starts).
    pub fn new(config: CacheConfig) -> SnapshotCache {
        let shape = shape(&config);
        let inner = Inner {
            state: BTreeSet::new(),
            status: SyncStatus::WaitForDatastore,
            log: ChangeLog::new(),
            generation: Arc::new(Generation::new(
                0,
                0,
                StateChecksum::default(),
                SyncStatus::WaitForDatastore,
                Vec::new(),
                shape,
            )),
            cursors: Vec::new(),
            trim_at: 0,
            updates_logged: 0,
            change_batch_sizes: Histogram::new(KVS_PER_MESSAGE_BOUNDS),
            checksum: StateChecksum::default(),
        };
        SnapshotCache {
            shared: Arc::new(Shared {
                config,
                counters: Counters::default(),
                inner: Mutex::new(inner),
            }),
        }
    }

    /// Applies one batch of datastore changes, in order: an update with a
    /// value sets its key; one without a value, or with an empty one,
    /// deletes it (an empty value is a deletion on every wire: see
    /// [`SerializedUpdate`]). Changes that would be no-ops for a client are
    /// dropped; everything else is logged for the attached connections as
    /// one change batch, split only past
    /// [`CacheConfig::batch_size`] updates or half the message limit. A
    /// client that keeps up gets each batch as one `KVs` message, as
    /// upstream sends each of its cache's batches. `now` timestamps the
    /// changes (for batching and the fall-behind limit). Wake the
    /// connections' drivers afterwards so they transmit.
    ///
    /// Values are cached as given: for v3 resources, call
    /// [`SerializedUpdate::move_resource_version_out`] first, as upstream's
    /// server does, so that writes changing only the resource version are
    /// dropped as no-ops.
    pub fn apply(
        &self,
        now: Instant,
        updates: impl IntoIterator<Item = SerializedUpdate>,
    ) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        let shape = shape(&self.shared.config);
        let mut batches = BatchBuilder::new(shape.batch_size, shape.max_message_len / 2);
        let mut inner = self.shared.lock();
        for update in updates {
            match inner.accept(update.normalized(), &self.shared.counters) {
                Some(entry) => {
                    outcome.accepted += 1;
                    if let Some(batch) = batches.push(entry) {
                        inner.log_batch(now, batch);
                    }
                }
                None => outcome.skipped += 1,
            }
        }
        if let Some(batch) = batches.finish() {
            inner.log_batch(now, batch);
        }
        inner.maintain(now, &self.shared, false);
        outcome
    }

    /// Records a sync status change; logged only if it differs from the
    /// current status.
    pub fn set_status(&self, now: Instant, status: SyncStatus) {
        let mut inner = self.shared.lock();
        if inner.status != status {
            inner.status = status;
            let checksum = inner.checksum;
            inner.log.append(now, Change::Status(status), checksum);
            inner.maintain(now, &self.shared, false);
        }
    }

    /// Starts a subscription for a new connection: the latest snapshot
    /// generation, then the log after it. Clients joining close together
    /// share one generation (and its encoded batches and compressed
    /// stream); a new one is frozen once more than
    /// [`CacheConfig::rebuild_after`] changes followed the last. Hand it to
    /// [`ServerConnection::follow`](crate::server::ServerConnection::follow).
    pub fn subscribe(&self, now: Instant) -> Subscription {
        let mut inner = self.shared.lock();
        inner.refresh_generation(now, &self.shared);
        let generation = Arc::clone(&inner.generation);
        let cursor = Arc::new(Cursor {
            next_seq: AtomicU64::new(generation.seq + 1),
            grace_until: now.checked_add(self.shared.config.new_client_grace),
        });
        inner.cursors.push(Arc::downgrade(&cursor));
        drop(inner);
        Subscription::new(Arc::clone(&self.shared), cursor, generation, now)
    }

    /// Trims the log of entries no connection needs and of entries older
    /// than the fall-behind limit (unless a connection still within its
    /// new-client grace needs them). `apply` does this too; call it on a
    /// timer if changes can stop for long.
    pub fn trim(&self, now: Instant) {
        self.shared.lock().maintain(now, &self.shared, true);
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.shared.lock().status
    }

    /// The current state's snapshot checksum (see [`crate::checksum`]),
    /// kept up to date with every accepted change: what a connection
    /// following the cache sends when its turn for a checksum comes.
    pub fn checksum(&self) -> StateChecksum {
        self.shared.lock().checksum
    }

    /// The current state, in key order (for checks and tools; it copies).
    pub fn snapshot_updates(&self) -> Vec<SerializedUpdate> {
        self.shared
            .lock()
            .state
            .iter()
            .map(|entry| entry.0.update.clone())
            .collect()
    }

    /// What the cache holds and the work it has done.
    pub fn stats(&self) -> CacheStats {
        let inner = self.shared.lock();
        let (updates_encoded, outputs_built, generations_built, no_ops_skipped) =
            self.shared.counters.snapshot();
        CacheStats {
            sequence: inner.log.last_seq(),
            keys: inner.state.len(),
            log_len: inner.log.len(),
            subscriptions: inner
                .cursors
                .iter()
                .filter(|cursor| cursor.strong_count() > 0)
                .count(),
            updates_encoded,
            outputs_built,
            generations_built,
            no_ops_skipped,
            updates_logged: inner.updates_logged,
            change_batch_sizes: inner.change_batch_sizes.clone(),
            last_snapshot_raw_bytes: self
                .shared
                .counters
                .last_snapshot_raw_bytes
                .load(Ordering::Relaxed),
            last_snapshot_compressed_bytes: self
                .shared
                .counters
                .last_snapshot_compressed_bytes
                .load(Ordering::Relaxed),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }
}

/// Batch sizes out of range are clamped rather than refused: a batch of
/// none could not be sent, and one over [`MAX_UPDATES_PER_MESSAGE`] no
/// client would accept.
fn shape(config: &CacheConfig) -> Shape {
    Shape {
        batch_size: config.batch_size.clamp(1, MAX_UPDATES_PER_MESSAGE),
        compressed_batch_size: config
            .compressed_batch_size
            .clamp(1, MAX_UPDATES_PER_MESSAGE),
        max_message_len: config.max_message_len,
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half
        // updated in a way later readers could misread, so carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Applies one (normalised) update to the state; the entry to log,
    /// `None` if it was dropped as a no-op.
    fn accept(
        &mut self,
        update: SerializedUpdate,
        counters: &Counters,
    ) -> Option<Arc<CachedUpdate>> {
        let entry = Arc::new(CachedUpdate::new(update));
        let replaced = if entry.update.value.is_none() {
            // Deletions always pass, even of absent keys, as upstream's
            // (clients count them).
            self.state.take(&*entry.update.key)
        } else {
            if let Some(existing) = self.state.get(&*entry.update.key)
                && entry.update.would_be_no_op(&existing.0.update)
            {
                counters.no_ops_skipped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.state.replace(ByKey(Arc::clone(&entry)))
        };
        self.checksum
            .replace(replaced.and_then(|old| old.0.digest), entry.digest);
        Some(entry)
    }

    fn log_batch(&mut self, now: Instant, batch: ChangeBatch) {
        self.updates_logged += batch.len() as u64;
        self.change_batch_sizes.observe(batch.len() as u64);
        let checksum = self.checksum;
        self.log
            .append(now, Change::Batch(Arc::new(batch)), checksum);
    }

    /// Freezes the current state as the latest generation.
    fn freeze_generation(&mut self, shared: &Shared) {
        let entries = self
            .state
            .iter()
            .map(|entry| Arc::clone(&entry.0))
            .collect();
        self.generation = Arc::new(Generation::new(
            self.log.last_seq(),
            self.updates_logged,
            self.checksum,
            self.status,
            entries,
            shape(&shared.config),
        ));
        shared
            .counters
            .generations_built
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Freezes a new generation for a joiner when many changes have piled
    /// up since the last one, when the changes after it are no longer all
    /// in the log (so a joiner could not replay them), or when the oldest of
    /// them is past the fall-behind limit. The last keeps the log's age
    /// bounded: such an entry is still held only for a client within its
    /// grace, and a joiner replaying it would hold it for another grace
    /// period, and the next joiner for another.
    fn refresh_generation(&mut self, now: Instant, shared: &Shared) {
        let since_generation = self.updates_logged - self.generation.updates_logged;
        let first_replayed = self.generation.seq + 1;
        let replayable = self.log.first_seq() <= first_replayed;
        let oldest_allowed = now.checked_sub(shared.config.max_fall_behind);
        let stale = self
            .log
            .get(first_replayed)
            .is_some_and(|entry| oldest_allowed.is_some_and(|limit| entry.at < limit));
        if since_generation > shared.config.rebuild_after as u64 || !replayable || stale {
            self.freeze_generation(shared);
        }
    }

    /// Keeps the log bounded: when forced, or once the log has grown
    /// enough since the last trim, drops entries every live subscription
    /// has passed, and entries past the fall-behind limit that no
    /// subscription within its new-client grace still needs (one past its
    /// grace that still needs such an entry has fallen too far behind).
    /// Sparing the entries of clients in their grace matters for joiners:
    /// one may start from a generation whose replay is already nearly
    /// `max_fall_behind` old, and must not be cut off for it while the
    /// grace lasts.
    fn maintain(&mut self, now: Instant, shared: &Shared, force_trim: bool) {
        if !force_trim && self.log.len() < self.trim_at {
            return;
        }
        let oldest_allowed = now.checked_sub(shared.config.max_fall_behind);
        self.cursors.retain(|cursor| cursor.strong_count() > 0);
        // The oldest entry any subscription needs, and the oldest any
        // subscription within its grace needs.
        let mut keep_from = u64::MAX;
        let mut keep_aged_from = u64::MAX;
        for cursor in self.cursors.iter().filter_map(Weak::upgrade) {
            let next_seq = cursor.next_seq.load(Ordering::Acquire);
            keep_from = keep_from.min(next_seq);
            if cursor.in_grace(now) {
                keep_aged_from = keep_aged_from.min(next_seq);
            }
        }
        self.log.trim_front(|seq, entry| {
            let aged = oldest_allowed.is_some_and(|limit| entry.at < limit);
            seq < keep_from || (aged && seq < keep_aged_from)
        });
        // Scan again after as many changes as are held now (at least 64):
        // the scans cost in proportion to the changes they follow.
        self.trim_at = self.log.len() * 2 + 64;
    }
}
