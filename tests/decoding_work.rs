//! Decoding work stays linear in the bytes received, however a peer
//! slices its input: the decoders' own count of the bytes they parse
//! ([`GobDecoder::work`], [`NativeDecoder::work`], [`StreamDecoder::work`])
//! for a message trickled one byte at a time after a queued prefix as
//! large as the limits allow.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::BytesMut;
use common::gob_bytes::{ack_value_body, named_slice_of_string_definition, put_message};
use syncproto::Message;
use syncproto::codec::gob::{GobDecoder, GobEncoder, GobLimits};
use syncproto::codec::native::{NativeDecoder, NativeEncoder};
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::message::SerializedUpdate;

/// An `Ack` value split by definitions, as an attacker would queue it: a
/// first message ending in a type definition, then definitions filling
/// most of the definition budget, each its own message (the value is
/// incomplete throughout); then `tail_name`-long definition and the rest
/// of the value. Returns the stream up to the trickled definition, the
/// trickled definition's message, and the rest.
fn queued_then_trickled(tail_name: usize) -> (BytesMut, BytesMut, BytesMut) {
    let (body, name_end) = ack_value_body();
    let mut prefix = BytesMut::new();
    GobEncoder::for_server().start_stream(&mut prefix);
    let mut first = body[..name_end].to_vec();
    first.extend(named_slice_of_string_definition(200, &"q".repeat(2000)));
    put_message(&mut prefix, &first);
    // 28 more of about 2 KiB: the value spans 30 messages, 60 KiB queued.
    for id in 201..229 {
        put_message(
            &mut prefix,
            &named_slice_of_string_definition(id, &"q".repeat(2000)),
        );
    }
    let mut trickled = BytesMut::new();
    put_message(
        &mut trickled,
        &named_slice_of_string_definition(229, &"t".repeat(tail_name)),
    );
    let mut rest = BytesMut::new();
    put_message(&mut rest, &body[name_end..]);
    (prefix, trickled, rest)
}

/// Feeds `prefix` whole, `trickled` one byte per call, then `rest`; the
/// messages decoded and the decoder's work.
fn gob_work(prefix: &[u8], trickled: &[u8], rest: &[u8]) -> (Vec<Message>, u64) {
    let mut decoder = GobDecoder::new(GobLimits::default());
    let mut input = BytesMut::new();
    let mut decoded = Vec::new();
    let mut feed = |input: &mut BytesMut, bytes: &[u8]| {
        input.extend_from_slice(bytes);
        while let Some(message) = decoder.decode(input).unwrap() {
            decoded.push(message);
        }
    };
    feed(&mut input, prefix);
    for byte in trickled {
        feed(&mut input, std::slice::from_ref(byte));
    }
    feed(&mut input, rest);
    (decoded, decoder.work())
}

#[test]
fn a_gob_message_trickled_after_a_queued_value_costs_its_bytes_not_their_product() {
    let mut works = Vec::new();
    for tail in [2_000, 4_000] {
        let (prefix, trickled, rest) = queued_then_trickled(tail);
        let total = (prefix.len() + trickled.len() + rest.len()) as u64;
        let (decoded, work) = gob_work(&prefix, &trickled, &rest);
        assert_eq!(decoded, [Message::Ack]);
        // Each of the value's 31 messages re-parses what is queued once,
        // when it arrives; never once per byte (that was 2 000 × 60 KiB).
        assert!(work < 32 * total, "{work} for {total} bytes");
        eprintln!(
            "trickled {} bytes after 60 KiB queued: work {work} for {total} bytes",
            trickled.len()
        );
        works.push((trickled.len() as u64, work));
    }
    // Trickling 2 000 more bytes adds work in proportion to them (a look at
    // the length prefix per call, then a parse or two), not to them times
    // the 60 KiB queued (which was 120 million more).
    let (short, long) = (works[0], works[1]);
    let added_bytes = long.0 - short.0;
    let added_work = long.1 - short.1;
    assert!(
        added_work <= 16 * added_bytes,
        "{added_work} more work for {added_bytes} more bytes"
    );
}

/// The same shape for a native frame and a snappy-compressed gob stream:
/// a large frame trickled in costs its bytes.
#[test]
fn a_trickled_frame_costs_its_bytes_in_every_format() {
    let update = SerializedUpdate::upsert("/calico/v1/config/Big", "v".repeat(200_000), "1");
    let message = Message::Kvs(vec![update]);
    // Native, plain.
    let mut wire = BytesMut::new();
    NativeEncoder::new(usize::MAX)
        .encode(&message, &mut wire)
        .unwrap();
    let mut decoder = NativeDecoder::new(usize::MAX);
    let mut input = BytesMut::new();
    let mut decoded = 0;
    for byte in wire.iter() {
        input.extend_from_slice(std::slice::from_ref(byte));
        decoded += usize::from(decoder.decode(&mut input).unwrap().is_some());
    }
    assert_eq!(decoded, 1);
    assert!(
        decoder.work() <= 6 * wire.len() as u64,
        "native: {} for {}",
        decoder.work(),
        wire.len()
    );
    // Gob behind snappy, as a compressed stream after a restart.
    for format in [WireFormat::Gob, WireFormat::Native] {
        let mut encoder = StreamEncoder::new(format, usize::MAX);
        encoder.restart(true);
        let mut wire = BytesMut::new();
        encoder.encode(&message, &mut wire).unwrap();
        let mut decoder = StreamDecoder::new(format, usize::MAX, None);
        decoder
            .restart(Some(&syncproto::message::CompressionAlgorithm::Snappy))
            .unwrap();
        let mut input = BytesMut::new();
        let mut decoded = 0;
        for byte in wire.iter() {
            input.extend_from_slice(std::slice::from_ref(byte));
            decoded += usize::from(decoder.decode(&mut input).unwrap().is_some());
        }
        assert_eq!(decoded, 1, "{format:?}");
        // Compressed bytes looked at, plain bytes produced and parsed.
        let plain = 200_000 + 100;
        assert!(
            decoder.work() <= 8 * (wire.len() + plain) as u64,
            "{format:?}: {} for {} compressed, {plain} plain",
            decoder.work(),
            wire.len()
        );
    }
}
