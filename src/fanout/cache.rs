//! The cache itself: current state, the end of the change chain, latest
//! generation. The writer side: everything here runs under the cache's
//! mutex, which readers ([`Subscription`]s) never take on their hot path.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::batch::{BatchBuilder, ChangeBatch};
use super::crumb::{Change, Crumb};
use super::entry::{ByKey, CachedUpdate};
use super::generation::Generation;
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
    /// When the chain started (the first call that passed a time): the
    /// base of `newest_after_epoch`.
    epoch: OnceLock<Instant>,
    /// When the newest change was applied, as nanoseconds after `epoch`
    /// (saturating): what readers compare their position with to tell
    /// whether they lag, without the mutex. `u64::MAX` before any change.
    newest_after_epoch: AtomicU64,
}

/// Where a subscription is in the chain, visible to [`SnapshotCache::stats`].
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The sequence number of the last change the subscription handed
    /// out (its snapshot's, to begin with): it holds every change after.
    pub(crate) position: AtomicU64,
}

/// The latest snapshot generation and the change it was frozen at, from
/// which its joiners follow the chain.
///
/// The cache holds the anchor weakly: it is shared with joiners only while
/// a connection still holds it (one that joined from it and has not
/// started on the changes since, or one further behind). So clients
/// joining close together, as in a connect storm, share one generation and
/// replay the few changes since, while a client joining a quiet cache gets
/// the current state as its snapshot, and the cache itself never keeps a
/// change alive.
#[derive(Debug)]
struct Frozen {
    generation: Arc<Generation>,
    anchor: Weak<Crumb>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The current state, by key (snapshots send each entry with update
    /// type `New`, as upstream stores them).
    state: BTreeSet<ByKey>,
    status: SyncStatus,
    /// The newest change, the end of the chain; `None` until the cache is
    /// first used (the chain's origin needs a time).
    newest: Option<Arc<Crumb>>,
    /// What a joiner starts from, if still worth sharing: dropped (and
    /// frozen anew on the next join) once it is not.
    latest: Option<Frozen>,
    cursors: Vec<Weak<Cursor>>,
    /// Drop the cursors of ended subscriptions once there are this many:
    /// in proportion to their growth, not on every join.
    prune_cursors_at: usize,
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
        let inner = Inner {
            state: BTreeSet::new(),
            status: SyncStatus::WaitForDatastore,
            newest: None,
            latest: None,
            cursors: Vec::new(),
            prune_cursors_at: 64,
            updates_logged: 0,
            change_batch_sizes: Histogram::new(KVS_PER_MESSAGE_BOUNDS),
            checksum: StateChecksum::default(),
        };
        SnapshotCache {
            shared: Arc::new(Shared {
                config,
                counters: Counters::default(),
                inner: Mutex::new(inner),
                epoch: OnceLock::new(),
                newest_after_epoch: AtomicU64::new(u64::MAX),
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
        inner.start(now, &self.shared);
        for update in updates {
            match inner.accept(update.normalized(), &self.shared.counters) {
                Some(entry) => {
                    outcome.accepted += 1;
                    if let Some(batch) = batches.push(entry) {
                        inner.log_batch(now, batch, &self.shared);
                    }
                }
                None => outcome.skipped += 1,
            }
        }
        if let Some(batch) = batches.finish() {
            inner.log_batch(now, batch, &self.shared);
        }
        inner.maintain(now, &self.shared);
        outcome
    }

    /// Records a sync status change; logged only if it differs from the
    /// current status.
    pub fn set_status(&self, now: Instant, status: SyncStatus) {
        let mut inner = self.shared.lock();
        inner.start(now, &self.shared);
        if inner.status != status {
            inner.status = status;
            inner.append(now, Change::Status(status), &self.shared);
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
        inner.start(now, &self.shared);
        let (generation, anchor) = inner.refresh_generation(now, &self.shared);
        let cursor = Arc::new(Cursor {
            position: AtomicU64::new(anchor.seq),
        });
        inner.track(&cursor);
        drop(inner);
        Subscription::new(Arc::clone(&self.shared), cursor, generation, anchor, now)
    }

    /// Lets go of the latest snapshot generation if joiners would no
    /// longer start from it (too many changes followed it, or the first of
    /// them is past the fall-behind limit), releasing the changes it held
    /// for them. `apply` and `set_status` do this too; call it on a timer
    /// if changes can stop for long.
    ///
    /// Nothing else needs trimming: a change is freed as soon as every
    /// connection has sent it, and a connection that stops reading is
    /// disconnected at its fall-behind deadline
    /// ([`ServerConnection::poll_timeout`](crate::server::ServerConnection::poll_timeout)),
    /// releasing what it held.
    pub fn trim(&self, now: Instant) {
        self.shared.lock().maintain(now, &self.shared);
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
            sequence: inner.last_seq(),
            keys: inner.state.len(),
            log_len: inner.changes_held(),
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
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half
        // updated in a way later readers could misread, so carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When the newest change was applied, `None` before any: read by
    /// subscriptions without the mutex.
    pub(crate) fn newest_at(&self) -> Option<Instant> {
        let after = self.newest_after_epoch.load(Ordering::Acquire);
        if after == u64::MAX {
            return None;
        }
        self.epoch.get()?.checked_add(Duration::from_nanos(after))
    }

    /// Publishes `at` as the newest change's time (writer only).
    fn publish_newest_at(&self, at: Instant) {
        let Some(epoch) = self.epoch.get() else {
            return;
        };
        let after = at.saturating_duration_since(*epoch).as_nanos();
        let after = u64::try_from(after)
            .unwrap_or(u64::MAX - 1)
            .min(u64::MAX - 1);
        self.newest_after_epoch.store(after, Ordering::Release);
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

    /// The end of the chain, starting the chain on first use: its origin
    /// (the empty datastore) and the empty generation joiners start from
    /// until changes arrive. The chain waits for a first call because its
    /// origin is timestamped, and time is only passed in.
    fn start(&mut self, now: Instant, shared: &Shared) -> &Arc<Crumb> {
        self.newest.get_or_insert_with(|| {
            let origin = Crumb::origin(now);
            let _ = shared.epoch.set(now);
            self.latest = Some(Frozen {
                generation: Arc::new(Generation::new(
                    0,
                    0,
                    StateChecksum::default(),
                    SyncStatus::WaitForDatastore,
                    Vec::new(),
                    shape(&shared.config),
                )),
                anchor: Arc::downgrade(&origin),
            });
            origin
        })
    }

    /// The sequence number of the newest change (0 before any).
    fn last_seq(&self) -> u64 {
        self.newest.as_ref().map_or(0, |newest| newest.seq)
    }

    /// Appends a change to the chain, where subscriptions find it.
    fn append(&mut self, now: Instant, change: Change, shared: &Shared) {
        let checksum = self.checksum;
        let appended = self.start(now, shared).append(now, change, checksum);
        self.newest = Some(appended);
        shared.publish_newest_at(now);
    }

    fn log_batch(&mut self, now: Instant, batch: ChangeBatch, shared: &Shared) {
        self.updates_logged += batch.len() as u64;
        self.change_batch_sizes.observe(batch.len() as u64);
        self.append(now, Change::Batch(Arc::new(batch)), shared);
    }

    /// Freezes the current state as the latest generation.
    fn freeze_generation(&mut self, anchor: &Arc<Crumb>, shared: &Shared) -> Frozen {
        let entries = self
            .state
            .iter()
            .map(|entry| Arc::clone(&entry.0))
            .collect();
        shared
            .counters
            .generations_built
            .fetch_add(1, Ordering::Relaxed);
        Frozen {
            generation: Arc::new(Generation::new(
                anchor.seq,
                self.updates_logged,
                self.checksum,
                self.status,
                entries,
                shape(&shared.config),
            )),
            anchor: Arc::downgrade(anchor),
        }
    }

    /// Remembers a new subscription's cursor (for stats), dropping those of
    /// ended subscriptions now and then.
    fn track(&mut self, cursor: &Arc<Cursor>) {
        if self.cursors.len() >= self.prune_cursors_at {
            self.cursors.retain(|cursor| cursor.strong_count() > 0);
            self.prune_cursors_at = (self.cursors.len() * 2).max(64);
        }
        self.cursors.push(Arc::downgrade(cursor));
    }

    /// How many changes some subscription or the latest generation still
    /// holds: those after the oldest position held.
    fn changes_held(&self) -> usize {
        let generation = self
            .latest
            .as_ref()
            .and_then(|latest| latest.anchor.upgrade())
            .map(|anchor| anchor.seq);
        let oldest = self
            .cursors
            .iter()
            .filter_map(Weak::upgrade)
            .map(|cursor| cursor.position.load(Ordering::Relaxed))
            .chain(generation)
            .min();
        oldest.map_or(0, |oldest| {
            usize::try_from(self.last_seq().saturating_sub(oldest)).unwrap_or(usize::MAX)
        })
    }

    /// The generation a joiner starts from and the change it was frozen
    /// at: the latest, unless it is no longer worth sharing
    /// ([`shareable`](Self::shareable)) — then the current state, frozen
    /// anew.
    fn refresh_generation(
        &mut self,
        now: Instant,
        shared: &Shared,
    ) -> (Arc<Generation>, Arc<Crumb>) {
        if let Some(latest) = &self.latest
            && let Some(anchor) = self.shareable(latest, now, shared)
        {
            return (Arc::clone(&latest.generation), anchor);
        }
        let newest = Arc::clone(self.start(now, shared));
        let latest = self.freeze_generation(&newest, shared);
        let handed = (Arc::clone(&latest.generation), newest);
        self.latest = Some(latest);
        handed
    }

    /// The anchor a joiner would start from with `latest`, if it should
    /// still share it and replay the changes since: while some connection
    /// still holds the anchor (see [`Frozen`]), unless more than
    /// [`rebuild_after`](CacheConfig::rebuild_after) updates followed it, or
    /// the first of them is past the fall-behind limit. The latter keeps
    /// what the chain holds bounded in age: a joiner replaying such a change
    /// would hold it for another grace period, and the next joiner for
    /// another.
    fn shareable(&self, latest: &Frozen, now: Instant, shared: &Shared) -> Option<Arc<Crumb>> {
        let anchor = latest.anchor.upgrade()?;
        let since_generation = self.updates_logged - latest.generation.updates_logged;
        let oldest_allowed = now.checked_sub(shared.config.max_fall_behind);
        let stale = anchor
            .next()
            .is_some_and(|first| oldest_allowed.is_some_and(|limit| first.at < limit));
        (since_generation <= shared.config.rebuild_after as u64 && !stale).then_some(anchor)
    }

    /// Lets go of the latest generation (its frozen state and encodings)
    /// once joiners would no longer start from it. O(1).
    fn maintain(&mut self, now: Instant, shared: &Shared) {
        if let Some(latest) = &self.latest
            && self.shareable(latest, now, shared).is_none()
        {
            self.latest = None;
        }
    }
}
