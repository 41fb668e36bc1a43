//! One cached update and its encodings, each made at most once, on first
//! use, then shared by every connection that sends it.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Counters;
use super::Flavour;
use crate::codec::WireFormat;
use crate::codec::frames;
use crate::message::SerializedUpdate;

/// An update plus its wire encodings, filled in lazily per format.
#[derive(Debug)]
pub(crate) struct CachedUpdate {
    pub(crate) update: SerializedUpdate,
    /// The update as a `Kvs` element, per wire format.
    units: [OnceLock<Bytes>; 2],
    /// A whole `Kvs` frame holding just this update, per flavour.
    frames: [OnceLock<Bytes>; 4],
}

impl CachedUpdate {
    pub(crate) fn new(update: SerializedUpdate) -> CachedUpdate {
        CachedUpdate {
            update,
            units: Default::default(),
            frames: Default::default(),
        }
    }

    /// This update's element encoding in `format`, encoding it the first
    /// time any connection needs it.
    pub(crate) fn unit(&self, format: WireFormat, counters: &Counters) -> &Bytes {
        self.units[format_index(format)].get_or_init(|| {
            counters.updates_encoded.fetch_add(1, Ordering::Relaxed);
            frames::update_unit(format, &self.update)
        })
    }

    /// A whole `Kvs` frame holding only this update, in `flavour`.
    pub(crate) fn frame(&self, flavour: Flavour, counters: &Counters) -> &Bytes {
        self.frames[flavour.index()].get_or_init(|| {
            counters.frames_built.fetch_add(1, Ordering::Relaxed);
            let plain = frames::kvs_frame(flavour.format, &[self.unit(flavour.format, counters)]);
            match flavour.compressed {
                false => plain,
                true => frames::compress(&plain),
            }
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
