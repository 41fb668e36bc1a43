//! A change batch: consecutive updates one `apply` accepted, logged as one
//! entry and sent to a client that keeps up as one `KVs` message, as
//! upstream sends each of its snapshot cache's breadcrumbs
//! (`typha/pkg/snapcache/cache.go`, `publishBreadcrumb`, ≤ 100 updates;
//! `typha/pkg/syncserver/sync_server.go`, `sendDeltaUpdatesToClient`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::entry::CachedUpdate;
use super::output::{Carries, MessageSize, Output};
use super::{Counters, Flavour};
use crate::codec::{WireFormat, prebuilt};
use crate::message::MessageKind;

/// Updates sent together, with their message encoded once per flavour.
#[derive(Debug)]
pub(crate) struct ChangeBatch {
    updates: Vec<Arc<CachedUpdate>>,
    bytes: usize,
    modern_policy_keys: bool,
    /// The batch as one whole `Kvs` message, per flavour.
    messages: [OnceLock<Output>; 4],
}

impl ChangeBatch {
    fn new(updates: Vec<Arc<CachedUpdate>>, bytes: usize) -> ChangeBatch {
        ChangeBatch {
            modern_policy_keys: updates.iter().any(|update| update.modern_policy_key),
            updates,
            bytes,
            messages: Default::default(),
        }
    }

    /// How many updates it holds (at least one).
    pub(crate) fn len(&self) -> usize {
        self.updates.len()
    }

    /// Its estimated encoded size, for batching.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The batch as one `Kvs` message in `flavour`, built the first time
    /// any connection needs it and shared after that.
    pub(crate) fn message(&self, flavour: Flavour, counters: &Counters) -> Output {
        self.messages[flavour.index()]
            .get_or_init(|| {
                counters.outputs_built.fetch_add(1, Ordering::Relaxed);
                coalesced_message(std::slice::from_ref(&self), flavour, counters)
            })
            .clone()
    }

    fn units<'a>(
        &'a self,
        format: WireFormat,
        counters: &'a Counters,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.updates
            .iter()
            .map(move |update| &update.unit(format, counters)[..])
    }
}

/// Several batches as one `Kvs` message in `flavour`, assembled from the
/// updates' shared encodings (for a client that lags: built for it alone).
pub(crate) fn coalesced_message(
    batches: &[impl AsRef<ChangeBatch>],
    flavour: Flavour,
    counters: &Counters,
) -> Output {
    let units: Vec<&[u8]> = batches
        .iter()
        .flat_map(|batch| batch.as_ref().units(flavour.format, counters))
        .collect();
    let plain = prebuilt::kvs_message(flavour.format, &units);
    let largest = MessageSize::of(flavour.format, MessageKind::Kvs, &plain);
    let bytes: Bytes = match flavour.compressed {
        false => plain,
        true => prebuilt::compress(&plain),
    };
    Output {
        bytes,
        largest,
        modern_policy_keys: batches
            .iter()
            .any(|batch| batch.as_ref().modern_policy_keys),
        carries: Carries::Kvs(u32::try_from(units.len()).unwrap_or(u32::MAX)),
    }
}

impl AsRef<ChangeBatch> for ChangeBatch {
    fn as_ref(&self) -> &ChangeBatch {
        self
    }
}

/// Splits a stream of accepted updates into batches of at most
/// `max_count` updates and about `max_bytes` bytes (a batch always takes
/// one update, however large).
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    max_count: usize,
    max_bytes: usize,
    updates: Vec<Arc<CachedUpdate>>,
    bytes: usize,
}

impl BatchBuilder {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            max_count: max_count.max(1),
            max_bytes,
            updates: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds an update; returns the batch it completed, if adding it would
    /// have overfilled the one being built.
    pub(crate) fn push(&mut self, update: Arc<CachedUpdate>) -> Option<ChangeBatch> {
        let len = update.estimated_len();
        let full = !self.updates.is_empty()
            && (self.updates.len() >= self.max_count || self.bytes + len > self.max_bytes);
        let completed = full.then(|| self.take());
        self.bytes += len;
        self.updates.push(update);
        completed
    }

    /// The batch being built, if it holds anything.
    pub(crate) fn finish(mut self) -> Option<ChangeBatch> {
        (!self.updates.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> ChangeBatch {
        let bytes = std::mem::take(&mut self.bytes);
        ChangeBatch::new(std::mem::take(&mut self.updates), bytes)
    }
}
