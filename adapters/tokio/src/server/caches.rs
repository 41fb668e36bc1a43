//! Where a server's connections get their data: one cache for every client
//! ([`Server::bind`](super::Server::bind)), or one per syncer type from a
//! [`CacheSource`] ([`Server::bind_by_syncer`](super::Server::bind_by_syncer)),
//! chosen once the client's hello says which syncer it wants.

use std::fmt;
use std::sync::Arc;

use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SyncStatus, SyncerType};

/// The caches of a server that serves each syncer type from its own (a
/// relay: one upstream connection per syncer type). Called from the
/// connection tasks: keep `cache_for` quick (open what is missing, return).
pub trait CacheSource: Send + Sync + 'static {
    /// The cache serving `syncer`, opened on first demand; `None` refuses
    /// the client (it is closed after its handshake).
    fn cache_for(&self, syncer: &SyncerType) -> Option<SnapshotCache>;

    /// The caches opened so far, by syncer type (for metrics and
    /// readiness).
    fn open_caches(&self) -> Vec<(SyncerType, SnapshotCache)>;

    /// The configuration every cache it opens uses (checked against the
    /// connections' message limit when the server binds).
    fn cache_config(&self) -> CacheConfig;
}

/// A server's data.
#[derive(Clone)]
pub(super) enum Data {
    /// One cache for every client, followed from accept.
    One(SnapshotCache),
    /// A cache per syncer type, followed from the handshake.
    BySyncer(Arc<dyn CacheSource>),
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::One(cache) => f.debug_tuple("One").field(&cache.stats().keys).finish(),
            Data::BySyncer(source) => f
                .debug_tuple("BySyncer")
                .field(&source.open_caches().len())
                .finish(),
        }
    }
}

impl Data {
    /// The configuration of the caches connections follow.
    pub(super) fn cache_config(&self) -> CacheConfig {
        match self {
            Data::One(cache) => cache.config().clone(),
            Data::BySyncer(source) => source.cache_config(),
        }
    }

    /// Every cache served now: the one (no syncer type), or each opened
    /// one by syncer type.
    pub(super) fn caches(&self) -> Vec<(Option<SyncerType>, SnapshotCache)> {
        match self {
            Data::One(cache) => vec![(None, cache.clone())],
            Data::BySyncer(source) => source
                .open_caches()
                .into_iter()
                .map(|(syncer, cache)| (Some(syncer), cache))
                .collect(),
        }
    }

    /// Whether every cache served is in sync (vacuously, when a server by
    /// syncer type has opened none yet).
    pub(super) fn in_sync(&self) -> bool {
        self.caches()
            .iter()
            .all(|(_, cache)| cache.status() == SyncStatus::InSync)
    }
}
