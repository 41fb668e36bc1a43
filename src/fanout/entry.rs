//! One cached update and its encodings, each made at most once, on first
//! use, then shared by every connection that sends it.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Counters;
use crate::codec::WireFormat;
use crate::codec::prebuilt;
use crate::message::{SerializedUpdate, UpdateType};

/// An update plus its wire encodings, filled in lazily per format.
#[derive(Debug)]
pub(crate) struct CachedUpdate {
    pub(crate) update: SerializedUpdate,
    /// The update as a `Kvs` element, per wire format.
    units: [OnceLock<Bytes>; 2],
    /// The same with update type `New`, as snapshots carry it (upstream
    /// stores snapshot entries so: to a client starting from a snapshot
    /// every key is new); only made for updates of another type.
    snapshot_units: [OnceLock<Bytes>; 2],
    /// Whether the key is a modern policy key, which a client without
    /// modern policy key support would drop.
    pub(crate) modern_policy_key: bool,
    /// The entry's checksum digest while it is live (`None`: a deletion).
    pub(crate) digest: Option<u64>,
}

/// A state entry: a cached update ordered and looked up by its key, so the
/// key is stored once.
#[derive(Debug, Clone)]
pub(crate) struct ByKey(pub(crate) std::sync::Arc<CachedUpdate>);

impl std::borrow::Borrow<str> for ByKey {
    fn borrow(&self) -> &str {
        &self.0.update.key
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &ByKey) -> bool {
        self.0.update.key == other.0.update.key
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &ByKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &ByKey) -> std::cmp::Ordering {
        self.0.update.key.cmp(&other.0.update.key)
    }
}

impl CachedUpdate {
    pub(crate) fn new(update: SerializedUpdate) -> CachedUpdate {
        CachedUpdate {
            modern_policy_key: crate::rewrite::is_modern_policy_key(&update.key),
            digest: update
                .effective_value()
                .map(|value| crate::checksum::entry_digest(update.key.as_bytes(), value)),
            update,
            units: Default::default(),
            snapshot_units: Default::default(),
        }
    }

    /// This update's element encoding in `format`, encoding it the first
    /// time any connection needs it.
    pub(crate) fn unit(&self, format: WireFormat, counters: &Counters) -> &Bytes {
        self.units[format_index(format)].get_or_init(|| {
            counters.updates_encoded.fetch_add(1, Ordering::Relaxed);
            prebuilt::update_element(format, &self.update)
        })
    }

    /// This update's element encoding as a snapshot carries it: with update
    /// type `New`.
    pub(crate) fn snapshot_unit(&self, format: WireFormat, counters: &Counters) -> &Bytes {
        if self.update.update_type == UpdateType::New {
            return self.unit(format, counters);
        }
        self.snapshot_units[format_index(format)].get_or_init(|| {
            counters.updates_encoded.fetch_add(1, Ordering::Relaxed);
            let as_new = SerializedUpdate {
                update_type: UpdateType::New,
                ..self.update.clone()
            };
            prebuilt::update_element(format, &as_new)
        })
    }

    /// A rough size, for batching.
    pub(crate) fn estimated_len(&self) -> usize {
        self.update.estimated_encoded_len()
    }
}

pub(crate) fn format_index(format: WireFormat) -> usize {
    match format {
        WireFormat::Native => 0,
        WireFormat::Gob => 1,
    }
}
