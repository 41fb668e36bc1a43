//! Whole frames built outside a stream encoder, so that they can be encoded
//! once and spliced into many streams: the fan-out cache's raw material.
//!
//! Every frame here is valid after the stream's header (the native preamble
//! or this crate's gob type definitions, which use fixed ids) and depends on
//! nothing else, so the same bytes serve every connection. A `Kvs` frame is
//! assembled from per-update units encoded once; compressed frames are bare
//! snappy chunks, valid inside any snappy framing stream.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};

use super::WireFormat;
use super::gob::encoder as gob;
use super::gob::schema::put_all_definitions;
use super::native::PREAMBLE;
use super::native::body as native;
use super::snappy::ChunkEncoder;
use crate::message::{Message, SerializedUpdate};

/// What must open a stream before any frame: the native preamble, or the
/// gob type definitions.
pub(crate) fn stream_header(format: WireFormat) -> Bytes {
    match format {
        WireFormat::Native => Bytes::from_static(&PREAMBLE),
        WireFormat::Gob => {
            let mut out = BytesMut::new();
            put_all_definitions(&mut out);
            out.freeze()
        }
    }
}

/// The start of a compressed stream: the snappy stream identifier, then
/// [`stream_header`] as chunks. The same bytes for every connection, built
/// once: a gob server compresses its 1 KB of type definitions for each
/// client after the compressed snapshot otherwise (chunks are compressed
/// independently, so these are exactly what a fresh `ChunkEncoder` writes).
pub(crate) fn compressed_stream_start(format: WireFormat) -> &'static [u8] {
    static STARTS: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    let index = match format {
        WireFormat::Native => 0,
        WireFormat::Gob => 1,
    };
    STARTS[index].get_or_init(|| {
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(&stream_header(format), &mut out);
        out.to_vec()
    })
}

/// One message as a whole frame.
pub(crate) fn message_bytes(format: WireFormat, message: &Message) -> Bytes {
    let mut out = BytesMut::new();
    match format {
        WireFormat::Native => native::put_frame(&mut out, message),
        WireFormat::Gob => gob::put_message(&mut out, message),
    }
    out.freeze()
}

/// One update's encoding as an element of a `Kvs` message.
pub(crate) fn update_element(format: WireFormat, update: &SerializedUpdate) -> Bytes {
    let mut out = BytesMut::new();
    match format {
        WireFormat::Native => native::encode_update(update, &mut out),
        WireFormat::Gob => gob::put_update(&mut out, update),
    }
    out.freeze()
}

/// A `Kvs` frame of already encoded units (one copy of each).
pub(crate) fn kvs_message(format: WireFormat, units: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    match format {
        WireFormat::Native => native::put_kvs_frame(&mut out, units),
        WireFormat::Gob => gob::put_kvs_message(&mut out, units),
    }
    out.freeze()
}

/// `data` as bare snappy chunks (no stream identifier).
pub(crate) fn compress(data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    ChunkEncoder::continuing().encode(data, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StreamDecoder;
    use crate::message::SyncStatus;

    fn updates() -> Vec<SerializedUpdate> {
        vec![
            SerializedUpdate::upsert("/calico/v1/config/A", "1", "1"),
            SerializedUpdate::deletion("/calico/v1/config/B", crate::message::Revision::Int64(2)),
        ]
    }

    fn decode(format: WireFormat, stream: &[u8]) -> Vec<Message> {
        let mut decoder = StreamDecoder::new(format, usize::MAX, None).following_restarts();
        let mut buffer = BytesMut::from(stream);
        std::iter::from_fn(|| decoder.decode(&mut buffer).unwrap()).collect()
    }

    #[test]
    fn assembled_kvs_frames_equal_encoder_output() {
        for format in [WireFormat::Native, WireFormat::Gob] {
            let units: Vec<Bytes> = updates()
                .iter()
                .map(|u| update_element(format, u))
                .collect();
            let unit_refs: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
            for count in 0..=units.len() {
                let assembled = kvs_message(format, &unit_refs[..count]);
                let whole = message_bytes(format, &Message::Kvs(updates()[..count].to_vec()));
                assert_eq!(assembled, whole, "{format:?}, {count} updates");
            }
        }
    }

    #[test]
    fn compressed_stream_start_is_what_a_fresh_compressor_writes() {
        for format in [WireFormat::Native, WireFormat::Gob] {
            let mut fresh = BytesMut::new();
            ChunkEncoder::new().encode(&stream_header(format), &mut fresh);
            assert_eq!(compressed_stream_start(format), &fresh[..], "{format:?}");
            // And a stream encoder that starts with it writes what one
            // compressing everything itself writes.
            let mut encoder = crate::codec::StreamEncoder::new(format, usize::MAX);
            encoder.restart(true);
            let mut spliced = BytesMut::new();
            encoder.start_stream(&mut spliced);
            encoder
                .encode(&Message::Kvs(updates()), &mut spliced)
                .unwrap();
            let mut plain = BytesMut::from(&stream_header(format)[..]);
            plain.extend_from_slice(&message_bytes(format, &Message::Kvs(updates())));
            let mut whole = BytesMut::new();
            let mut compressor = ChunkEncoder::new();
            compressor.encode(&stream_header(format), &mut whole);
            compressor.encode(&message_bytes(format, &Message::Kvs(updates())), &mut whole);
            assert_eq!(spliced, whole, "{format:?}");
        }
    }

    #[test]
    fn frames_spliced_after_a_header_decode() {
        for format in [WireFormat::Native, WireFormat::Gob] {
            let mut stream = BytesMut::from(&stream_header(format)[..]);
            stream.extend_from_slice(&message_bytes(
                format,
                &Message::SyncStatus(SyncStatus::InSync),
            ));
            stream.extend_from_slice(&message_bytes(format, &Message::Kvs(updates())));
            assert_eq!(
                decode(format, &stream),
                [
                    Message::SyncStatus(SyncStatus::InSync),
                    Message::Kvs(updates())
                ]
            );
        }
    }
}
