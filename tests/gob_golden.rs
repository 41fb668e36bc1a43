//! The gob codec against streams Go's encoding/gob wrote (golden vectors
//! from the Go reference peer, both protocol generations).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::BytesMut;
use common::golden::{assert_matches_golden, load};
use syncproto::Message;
use syncproto::codec::gob::{GobDecoder, GobEncoder, GobLimits};

/// Decodes a whole stream fed in pieces of `chunk` bytes.
fn decode(stream: &[u8], chunk: usize) -> Vec<Message> {
    let mut decoder = GobDecoder::new(GobLimits::default());
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        while let Some(message) = decoder.decode(&mut buffer).unwrap() {
            out.push(message);
        }
    }
    assert_eq!(decoder.decode_eof(&mut buffer), Ok(None));
    out
}

const PLAIN_VECTORS: [&str; 10] = [
    "first_ping.new",
    "first_ping.v325",
    "server_session.new",
    "server_session.v325",
    "client_session.new",
    "client_session.v325",
    "large_value.new",
    "large_value.v325",
    "checksum_session.new",
    "checksum_alone.new",
];

#[test]
fn every_plain_golden_vector_decodes_to_what_go_encoded() {
    for name in PLAIN_VECTORS {
        let (stream, expected) = load(name);
        let decoded = decode(&stream, stream.len());
        assert_eq!(decoded.len(), expected.len(), "{name}: message count");
        for (i, (message, golden)) in decoded.iter().zip(&expected).enumerate() {
            assert_matches_golden(message, golden, &format!("{name} message {i}"));
        }
    }
}

#[test]
fn golden_vectors_decode_the_same_however_they_are_split() {
    for name in PLAIN_VECTORS {
        let (stream, _) = load(name);
        let whole = decode(&stream, stream.len());
        for chunk in [1, 2, 3, 7, 64, 1000] {
            if stream.len() > 20_000 && chunk < 64 {
                continue; // the large vector byte by byte is slow in debug builds
            }
            assert_eq!(
                decode(&stream, chunk),
                whole,
                "{name} in {chunk}-byte pieces"
            );
        }
    }
}

#[test]
fn reencoded_golden_messages_decode_to_the_same_values() {
    for name in PLAIN_VECTORS {
        let (stream, _) = load(name);
        let decoded = decode(&stream, stream.len());
        let mut encoder = GobEncoder::new(usize::MAX);
        let mut ours = BytesMut::new();
        for message in &decoded {
            encoder.encode(message, &mut ours).unwrap();
        }
        assert_eq!(decode(&ours, ours.len()), decoded, "{name}");
    }
}

#[test]
fn zone_offset_seconds_are_read_signed() {
    // server_session.new holds a ping in FixedZone("", -50): version 2 with
    // offset-seconds byte 0xce (-50), which go1.19 misreads as +206.
    let (stream, _) = load("server_session.new");
    let zones: Vec<_> = decode(&stream, stream.len())
        .into_iter()
        .filter_map(|m| match m {
            Message::Ping(p) => Some(p.timestamp.zone()),
            _ => None,
        })
        .collect();
    assert!(
        zones.contains(&syncproto::message::Zone::fixed(-50).unwrap()),
        "{zones:?}"
    );
}

#[test]
fn compressed_golden_session_decodes_across_both_restarts() {
    use syncproto::codec::{StreamDecoder, WireFormat};
    let (stream, expected) = load("compressed_session.new");
    for chunk in [stream.len(), 4096, 333] {
        let mut decoder =
            StreamDecoder::new(WireFormat::Gob, usize::MAX, None).following_restarts();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in stream.chunks(chunk) {
            buffer.extend_from_slice(piece);
            while let Some(message) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
        }
        assert_eq!(decoder.decode_eof(&mut buffer), Ok(None));
        assert_eq!(
            decoded.len(),
            expected.len(),
            "message count, {chunk}-byte pieces"
        );
        for (i, (message, golden)) in decoded.iter().zip(&expected).enumerate() {
            assert_matches_golden(message, golden, &format!("compressed_session message {i}"));
        }
    }
}
