//! The cache itself: current state, change log, latest generation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use super::entry::CachedUpdate;
use super::generation::Generation;
use super::log::{Change, ChangeLog};
use super::subscription::Subscription;
use super::{CacheConfig, CacheStats, Counters, Shape};
use crate::message::{SerializedUpdate, SyncStatus, UpdateType};

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
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The current state; entries carry update type `New`, as upstream
    /// stores them: to a client starting from a snapshot every key is new.
    state: BTreeMap<String, Arc<CachedUpdate>>,
    status: SyncStatus,
    pub(crate) log: ChangeLog,
    generation: Arc<Generation>,
    cursors: Vec<Weak<Cursor>>,
}

impl SnapshotCache {
    /// An empty cache (status `WaitForDatastore`, as upstream starts).
    pub fn new(config: CacheConfig) -> SnapshotCache {
        let shape = shape(&config);
        let inner = Inner {
            state: BTreeMap::new(),
            status: SyncStatus::WaitForDatastore,
            log: ChangeLog::new(),
            generation: Arc::new(Generation::new(
                0,
                SyncStatus::WaitForDatastore,
                Vec::new(),
                shape,
            )),
            cursors: Vec::new(),
        };
        SnapshotCache {
            shared: Arc::new(Shared {
                config,
                counters: Counters::default(),
                inner: Mutex::new(inner),
            }),
        }
    }

    /// Applies datastore changes in order: an update with a value sets its
    /// key, one without deletes it. Changes that would be no-ops for a
    /// client are dropped; everything else is logged for the attached
    /// connections. `now` timestamps the changes (for the fall-behind
    /// limit). Wake the connections' drivers afterwards so they transmit.
    pub fn apply(
        &self,
        now: Instant,
        updates: impl IntoIterator<Item = SerializedUpdate>,
    ) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        let mut inner = self.shared.lock();
        for update in updates {
            if inner.apply_one(now, update, &self.shared.counters) {
                outcome.accepted += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        inner.maintain(now, &self.shared);
        outcome
    }

    /// Records a sync status change; logged only if it differs from the
    /// current status.
    pub fn set_status(&self, now: Instant, status: SyncStatus) {
        let mut inner = self.shared.lock();
        if inner.status != status {
            inner.status = status;
            inner.log.append(now, Change::Status(status));
            inner.maintain(now, &self.shared);
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
        inner.maintain(now, &self.shared);
        let generation = Arc::clone(&inner.generation);
        let cursor = Arc::new(Cursor {
            next_seq: AtomicU64::new(generation.seq + 1),
        });
        inner.cursors.push(Arc::downgrade(&cursor));
        drop(inner);
        Subscription::new(Arc::clone(&self.shared), cursor, generation, now)
    }

    /// Trims the log of entries no connection needs and of entries older
    /// than the fall-behind limit. `apply` does this too; call it on a
    /// timer if changes can stop for long.
    pub fn trim(&self, now: Instant) {
        self.shared.lock().maintain(now, &self.shared);
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.shared.lock().status
    }

    /// The current state, in key order (for checks and tools; it copies).
    pub fn snapshot_updates(&self) -> Vec<SerializedUpdate> {
        self.shared
            .lock()
            .state
            .values()
            .map(|entry| entry.update.clone())
            .collect()
    }

    /// What the cache holds and the work it has done.
    pub fn stats(&self) -> CacheStats {
        let inner = self.shared.lock();
        let (updates_encoded, frames_built, generations_built, no_ops_skipped) =
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
            frames_built,
            generations_built,
            no_ops_skipped,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }
}

fn shape(config: &CacheConfig) -> Shape {
    Shape {
        batch_size: config.batch_size.max(1),
        compressed_batch_size: config.compressed_batch_size.max(1),
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
    /// Applies one update; `false` if it was dropped as a no-op.
    fn apply_one(&mut self, now: Instant, update: SerializedUpdate, counters: &Counters) -> bool {
        if update.value.is_none() {
            // Deletions always pass, even of absent keys: clients count them.
            self.state.remove(&update.key);
        } else {
            if let Some(existing) = self.state.get(&update.key)
                && update.would_be_no_op(&existing.update)
            {
                counters.no_ops_skipped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let stored = SerializedUpdate {
                update_type: UpdateType::New,
                ..update.clone()
            };
            let logged = Arc::new(CachedUpdate::new(update));
            let snapshot_entry = match logged.update.update_type {
                // Same bytes either way: share the encodings.
                UpdateType::New => Arc::clone(&logged),
                _ => Arc::new(CachedUpdate::new(stored)),
            };
            self.state
                .insert(snapshot_entry.update.key.clone(), snapshot_entry);
            self.log.append(now, Change::Update(logged));
            return true;
        }
        self.log
            .append(now, Change::Update(Arc::new(CachedUpdate::new(update))));
        true
    }

    /// Freezes the current state as the latest generation.
    fn freeze_generation(&mut self, shared: &Shared) {
        let entries = self.state.values().cloned().collect();
        self.generation = Arc::new(Generation::new(
            self.log.last_seq(),
            self.status,
            entries,
            shape(&shared.config),
        ));
        shared
            .counters
            .generations_built
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the log bounded: freezes a new generation when many (or old)
    /// changes have piled up since the last one, then drops entries that no
    /// live subscription and no joiner can need, and entries past the
    /// fall-behind limit.
    fn maintain(&mut self, now: Instant, shared: &Shared) {
        let config = &shared.config;
        let oldest_allowed = now.checked_sub(config.max_fall_behind);
        let since_generation = self.log.last_seq() - self.generation.seq;
        let stale = self
            .log
            .get(self.generation.seq + 1)
            .is_some_and(|entry| oldest_allowed.is_some_and(|limit| entry.at < limit));
        if since_generation > config.rebuild_after as u64 || stale {
            self.freeze_generation(shared);
        }
        self.cursors.retain(|cursor| cursor.strong_count() > 0);
        let needed_by_cursors = self
            .cursors
            .iter()
            .filter_map(Weak::upgrade)
            .map(|cursor| cursor.next_seq.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let keep_from = needed_by_cursors.min(self.generation.seq + 1);
        let generation_seq = self.generation.seq;
        self.log.trim_front(|seq, entry| {
            let unneeded = seq < keep_from;
            // Past the limit, an entry goes even if a lagging subscription
            // still needs it (that subscription has fallen too far behind),
            // but never one a joiner would need after the latest generation.
            let too_old =
                seq <= generation_seq && oldest_allowed.is_some_and(|limit| entry.at < limit);
            unneeded || too_old
        });
    }
}
