//! A snapshot generation: the datastore as of one sequence number, frozen,
//! with its wire forms built once (on first use) and shared by every
//! connection that starts from it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use super::entry::{CachedUpdate, format_index};
use super::output::{Carries, MessageSize, Output};
use super::{Counters, Shape};
use crate::checksum::StateChecksum;
use crate::codec::WireFormat;
use crate::codec::prebuilt;
use crate::codec::snappy::STREAM_IDENTIFIER;
use crate::message::{CompressionAlgorithm, DecoderRestart, Message, MessageKind, SyncStatus};
use crate::server::END_OF_SNAPSHOT_MESSAGE;

/// One uncompressed snapshot `Kvs` frame and how many updates it holds.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotBatch {
    pub(crate) bytes: Bytes,
    pub(crate) count: usize,
}

/// The datastore at sequence number `seq`, in key order.
#[derive(Debug)]
pub(crate) struct Generation {
    pub(crate) seq: u64,
    /// How many updates the cache had logged when it was frozen.
    pub(crate) updates_logged: u64,
    /// The checksum of its entries.
    pub(crate) checksum: StateChecksum,
    pub(crate) status: SyncStatus,
    /// Whether any entry's key is a modern policy key.
    pub(crate) modern_policy_keys: bool,
    entries: Vec<Arc<CachedUpdate>>,
    shape: Shape,
    /// Uncompressed snapshot batches, per wire format.
    batches: [OnceLock<Vec<SnapshotBatch>>; 2],
    /// The compressed snapshot stream, per wire format: a fresh snappy
    /// stream holding a fresh stream of `Kvs` batches and the restart that
    /// ends it, as upstream sends it.
    compressed: [OnceLock<Output>; 2],
}

impl Generation {
    pub(crate) fn new(
        seq: u64,
        updates_logged: u64,
        checksum: StateChecksum,
        status: SyncStatus,
        entries: Vec<Arc<CachedUpdate>>,
        shape: Shape,
    ) -> Generation {
        Generation {
            seq,
            updates_logged,
            checksum,
            status,
            modern_policy_keys: entries.iter().any(|entry| entry.modern_policy_key),
            entries,
            shape,
            batches: Default::default(),
            compressed: Default::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The uncompressed snapshot as whole `Kvs` frames.
    pub(crate) fn batches(&self, format: WireFormat, counters: &Counters) -> &[SnapshotBatch] {
        self.batches[format_index(format)]
            .get_or_init(|| self.build_batches(format, self.shape.batch_size, counters))
    }

    /// The compressed snapshot stream, from its snappy stream identifier to
    /// the end-of-snapshot restart.
    pub(crate) fn compressed(&self, format: WireFormat, counters: &Counters) -> &Output {
        self.compressed[format_index(format)].get_or_init(|| {
            let mut blob = BytesMut::from(&STREAM_IDENTIFIER[..]);
            blob.extend_from_slice(&prebuilt::compress(&prebuilt::stream_header(format)));
            let end = Message::DecoderRestart(DecoderRestart {
                message: END_OF_SNAPSHOT_MESSAGE.to_owned(),
                compression_algorithm: Some(CompressionAlgorithm::Snappy),
            });
            let end = prebuilt::message_bytes(format, &end);
            let mut largest = MessageSize::of(format, MessageKind::DecoderRestart, &end);
            let mut counts = Vec::new();
            let mut raw_bytes = end.len();
            for batch in self.build_batches(format, self.shape.compressed_batch_size, counters) {
                largest = largest.max(MessageSize::of(format, MessageKind::Kvs, &batch.bytes));
                raw_bytes += batch.bytes.len();
                blob.extend_from_slice(&prebuilt::compress(&batch.bytes));
                counts.push(u32::try_from(batch.count).unwrap_or(u32::MAX));
            }
            blob.extend_from_slice(&prebuilt::compress(&end));
            counters.outputs_built.fetch_add(1, Ordering::Relaxed);
            counters
                .last_snapshot_raw_bytes
                .store(raw_bytes as u64, Ordering::Relaxed);
            counters
                .last_snapshot_compressed_bytes
                .store(blob.len() as u64, Ordering::Relaxed);
            Output {
                bytes: blob.freeze(),
                largest,
                modern_policy_keys: self.modern_policy_keys,
                carries: Carries::Snapshot(counts.into()),
            }
        })
    }

    /// Splits the entries into `Kvs` frames of at most `batch_size`
    /// updates and about half the message limit in bytes.
    fn build_batches(
        &self,
        format: WireFormat,
        batch_size: usize,
        counters: &Counters,
    ) -> Vec<SnapshotBatch> {
        let budget = self.shape.max_message_len / 2;
        let mut batches = Vec::new();
        let mut units: Vec<&[u8]> = Vec::new();
        let mut bytes = 0;
        let batch = |units: &[&[u8]]| SnapshotBatch {
            bytes: prebuilt::kvs_message(format, units),
            count: units.len(),
        };
        for entry in &self.entries {
            let unit = entry.snapshot_unit(format, counters);
            if !units.is_empty() && (units.len() >= batch_size || bytes + unit.len() > budget) {
                batches.push(batch(&units));
                units.clear();
                bytes = 0;
            }
            bytes += unit.len();
            units.push(unit);
        }
        if !units.is_empty() {
            batches.push(batch(&units));
        }
        counters
            .outputs_built
            .fetch_add(batches.len() as u64, Ordering::Relaxed);
        batches
    }
}
