//! Server fan-out: one datastore, encoded once, streamed to many clients.
//!
//! The application feeds a [`SnapshotCache`] with datastore changes. The
//! cache keeps the current state in key order, drops changes that would
//! not change what a client holds
//! ([`SerializedUpdate::would_be_no_op`](crate::message::SerializedUpdate::would_be_no_op);
//! deletions always pass, as upstream), and appends every accepted change
//! to the change log (a chain of breadcrumbs), one entry per change batch,
//! with a sequence number. A
//! [`ServerConnection`](crate::server::ServerConnection) attached to the
//! cache with [`follow`](crate::server::ServerConnection::follow) sends a
//! consistent snapshot at some sequence number N, then the log from N+1.
//!
//! Each update is encoded once per wire format in use, into `Bytes` that
//! every connection sends as they are: a change batch is one shared `KVs`
//! message; snapshot batches and the compressed snapshot stream are built
//! once per snapshot *generation* and shared by every client that starts
//! from it. A connection that lags gets several change batches coalesced
//! into one message, assembled from the shared encodings by copying. So a
//! client costs roughly a reference count per message, and a memory copy
//! when it lags.
//!
//! # Memory
//!
//! The current state holds each update once (the chain shares it). Changes
//! form a chain of breadcrumbs, as upstream's snapshot cache
//! (`typha/pkg/snapcache/cache.go`): each accepted change batch links to
//! the next through an `Arc`, and each connection holds the last change it
//! sent. So the chain holds exactly the changes some connection has not
//! sent yet, and a change is freed as soon as the last connection sends it:
//! nothing needs trimming. A connection that stops reading holds the
//! changes after it until its driver closes it at its fall-behind deadline
//! ([`CacheConfig::max_fall_behind`], after
//! [`CacheConfig::new_client_grace`] for a new client).
//!
//! A new generation is frozen (sharing every update, so at the cost of a
//! vector of pointers) only for a joining client, and only when more than
//! [`CacheConfig::rebuild_after`] changes followed the last one or the
//! first of them is past the fall-behind limit: clients joining close
//! together share a generation and replay the few changes since. The cache
//! lets go of a generation it would no longer share, so it holds at most
//! that much of the chain itself. A connection lets go of its generation
//! once its snapshot is out, and holds at most one message of output.
//!
//! # Threads
//!
//! `SnapshotCache` is a cheap handle (`Clone`, `Send`, `Sync`) on shared
//! state. The writer ([`SnapshotCache::apply`], `set_status`, `subscribe`)
//! takes one mutex; readers never do: a connection follows the chain's
//! links (each set once, then immutable) and reads the newest change's time
//! from an atomic, so a thousand connections pulling on other threads
//! neither wait for the writer nor for each other. Encoding happens outside
//! the mutex, each encoding initialised exactly once however many threads
//! race for it. Frozen generations and encoded messages are immutable and
//! shared by `Arc`/`Bytes`. The same code serves a single-threaded poll
//! loop and a multi-threaded runtime.

mod batch;
mod cache;
mod checksums;
mod crumb;
mod entry;
mod generation;
mod output;
mod subscription;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use cache::{ApplyOutcome, SnapshotCache};
pub(crate) use output::{Carries, Output};
pub(crate) use subscription::Pull;
pub use subscription::Subscription;

use crate::codec::{DEFAULT_MAX_SERVER_MESSAGE_LEN, WireFormat};
use crate::metrics::Histogram;
use crate::server::{DEFAULT_COMPRESSED_SNAPSHOT_BATCH_SIZE, DEFAULT_SNAPSHOT_BATCH_SIZE};

/// Upstream's limit on how far behind the datastore a client may fall.
pub const DEFAULT_MAX_FALL_BEHIND: Duration = Duration::from_secs(300);
/// Upstream's extra allowance for a client that just connected (it has a
/// snapshot to read first).
pub const DEFAULT_NEW_CLIENT_GRACE: Duration = Duration::from_secs(300);

/// Upstream Typha's default for [`CacheConfig::min_batching_age`].
pub const DEFAULT_MIN_BATCHING_AGE: Duration = Duration::from_millis(10);

/// How a [`SnapshotCache`] batches, and how long it keeps history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Updates per uncompressed snapshot message and per change batch
    /// (upstream: 100 each); a lagging client's coalesced messages stop
    /// growing once they hold this many.
    /// Clamped to `1..=`[`MAX_UPDATES_PER_MESSAGE`](crate::codec::MAX_UPDATES_PER_MESSAGE).
    pub batch_size: usize,
    /// Updates per message in the compressed snapshot (upstream: 1000).
    /// Clamped like `batch_size`.
    pub compressed_batch_size: usize,
    /// The largest message clients accept; batches stay under half of it.
    pub max_message_len: usize,
    /// A client whose oldest unsent change has waited this long is
    /// disconnected (by its driver, at the deadline its connection's
    /// `poll_timeout` gives), releasing the changes it held.
    pub max_fall_behind: Duration,
    /// How long after connecting a client is exempt from the fall-behind
    /// limit.
    pub new_client_grace: Duration,
    /// A joining client starts from the latest snapshot generation and
    /// replays the changes since, unless more than this many updates: then
    /// a new generation is frozen for it.
    pub rebuild_after: usize,
    /// A client counts as lagging when the change batch it is sent next is
    /// at least this much older than the newest change; a lagging client
    /// gets the batches waiting for it coalesced into one `KVs` message of
    /// up to about twice `batch_size` updates (never splitting a batch),
    /// as upstream's server does. Upstream's Typha ships with 10 ms
    /// (`typha/pkg/config/config_params.go`,
    /// `ServerMinBatchingAgeThresholdSecs`).
    pub min_batching_age: Duration,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            batch_size: DEFAULT_SNAPSHOT_BATCH_SIZE,
            compressed_batch_size: DEFAULT_COMPRESSED_SNAPSHOT_BATCH_SIZE,
            max_message_len: DEFAULT_MAX_SERVER_MESSAGE_LEN,
            max_fall_behind: DEFAULT_MAX_FALL_BEHIND,
            new_client_grace: DEFAULT_NEW_CLIENT_GRACE,
            rebuild_after: 1000,
            min_batching_age: DEFAULT_MIN_BATCHING_AGE,
        }
    }
}

/// The batching parameters a generation needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) batch_size: usize,
    pub(crate) compressed_batch_size: usize,
    pub(crate) max_message_len: usize,
}

/// How bytes go on the wire after a stream's header: the wire format, and
/// whether the stream is snappy-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Flavour {
    pub(crate) format: WireFormat,
    pub(crate) compressed: bool,
}

impl Flavour {
    pub(crate) fn index(self) -> usize {
        entry::format_index(self.format) * 2 + usize::from(self.compressed)
    }
}

/// Work counters, shared by the cache and its subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) updates_encoded: AtomicU64,
    pub(crate) outputs_built: AtomicU64,
    pub(crate) generations_built: AtomicU64,
    pub(crate) no_ops_skipped: AtomicU64,
    /// The sizes of the compressed snapshot built last (any format).
    pub(crate) last_snapshot_raw_bytes: AtomicU64,
    pub(crate) last_snapshot_compressed_bytes: AtomicU64,
}

/// What a [`SnapshotCache`] holds and how much work it has done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// The sequence number of the newest change.
    pub sequence: u64,
    /// Keys in the current state.
    pub keys: usize,
    /// Changes some connection has not sent yet, or the latest generation
    /// still holds for joiners to replay: those after the oldest position
    /// held in the change chain.
    pub log_len: usize,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Times an update was encoded (once per update per wire format, for
    /// the log and again for a snapshot when its type differs): this does
    /// not grow with the number of clients.
    pub updates_encoded: u64,
    /// Shared outputs built from encoded updates (change batch messages,
    /// snapshot batches, compressed snapshot streams).
    pub outputs_built: u64,
    /// Snapshot generations frozen.
    pub generations_built: u64,
    /// Changes dropped because they would have been no-ops.
    pub no_ops_skipped: u64,
    /// Updates accepted into the log (no-ops excluded; deletions of absent
    /// keys included, as upstream counts them).
    pub updates_logged: u64,
    /// Updates per change batch logged (upstream's breadcrumb size).
    pub change_batch_sizes: Histogram,
    /// The size of the compressed snapshot built last, before compression
    /// (its messages as plain frames) and after (the snappy stream); 0
    /// before any was built.
    pub last_snapshot_raw_bytes: u64,
    /// See [`last_snapshot_raw_bytes`](Self::last_snapshot_raw_bytes).
    pub last_snapshot_compressed_bytes: u64,
}

impl Counters {
    fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.updates_encoded.load(Ordering::Relaxed),
            self.outputs_built.load(Ordering::Relaxed),
            self.generations_built.load(Ordering::Relaxed),
            self.no_ops_skipped.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests;
