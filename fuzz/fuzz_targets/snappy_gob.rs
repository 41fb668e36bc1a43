//! A gob stream behind snappy's framing (the stream after upstream's
//! compressed-snapshot restart), read through the stream decoder that
//! follows further restarts. The fuzzer chooses the plain bytes and how
//! they are chunked (compressed or not); this target frames them with
//! valid checksums, as a sender does, so every input takes the production
//! path through the checksum check, and may then damage one chunk, which
//! must be refused. No panic, no loop, bounded buffering and work. A twin
//! fed the same pieces through the borrowing API (`decode_borrowed`) must
//! give the same messages and errors and leave the same bytes after every
//! call.

#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::codec::{StreamDecoder, WireFormat};
use syncproto::message::CompressionAlgorithm;

const MAX_MESSAGE_LEN: usize = 64 * 1024;

#[derive(Arbitrary, Debug)]
struct Chunk {
    compressed: bool,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Script {
    chunks: Vec<Chunk>,
    /// Damage one chunk: (which, at which byte, xor with).
    damage: Option<(u8, u16, u8)>,
    /// Feed in pieces of this many bytes (plus one).
    piece: u16,
}

/// One chunk of snappy's framing format around `data`.
fn frame(chunk: &Chunk, out: &mut Vec<u8>) {
    let data = &chunk.data[..chunk.data.len().min(65_536)];
    let crc = crc32c::crc32c(data);
    let masked = (crc.rotate_right(15)).wrapping_add(0xa282_ead8);
    let (kind, body) = match chunk.compressed {
        true => (
            0x00,
            snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("a chunk compresses"),
        ),
        false => (0x01, data.to_vec()),
    };
    let len = body.len() + 4;
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    out.extend_from_slice(&masked.to_le_bytes());
    out.extend_from_slice(&body);
}

fuzz_target!(|script: Script| {
    let mut wire = b"\xff\x06\x00\x00sNaPpY".to_vec();
    let mut starts = Vec::new();
    for chunk in &script.chunks {
        starts.push(wire.len());
        frame(chunk, &mut wire);
    }
    let mut damaged = false;
    if let Some((which, at, xor)) = script.damage
        && xor != 0
        && let Some(&start) = starts.get(usize::from(which) % starts.len().max(1))
    {
        // Past the chunk's header: the checksum or the data.
        let end = starts
            .iter()
            .find(|&&next| next > start)
            .copied()
            .unwrap_or(wire.len());
        let span = end - start - 4;
        if span > 0 {
            wire[start + 4 + usize::from(at) % span] ^= xor;
            damaged = true;
        }
    }
    let mut decoder =
        StreamDecoder::new(WireFormat::Gob, MAX_MESSAGE_LEN, None).following_restarts();
    decoder
        .restart(Some(&CompressionAlgorithm::Snappy))
        .expect("a fresh decoder can restart");
    let mut twin = decoder.clone();
    let mut buffer = BytesMut::new();
    let mut twin_buffer = BytesMut::new();
    let plain: u64 = script
        .chunks
        .iter()
        .map(|chunk| chunk.data.len().min(65_536) as u64)
        .sum();
    let chunks = script.chunks.len() as u64 + 1;
    let mut fed = 0u64;
    let mut calls = 0u64;
    let mut failed = false;
    let mut restarted = false;
    'feed: for piece in wire.chunks(usize::from(script.piece) + 1) {
        buffer.extend_from_slice(piece);
        twin_buffer.extend_from_slice(piece);
        fed += piece.len() as u64;
        loop {
            calls += 1;
            let outcome = decoder.decode(&mut buffer);
            let borrowed = twin.decode_borrowed(&mut twin_buffer, |message| message.to_message());
            assert_eq!(borrowed, outcome, "the borrowing API decoded otherwise");
            assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
            // Decompressed bytes waiting (at most a chunk past an incomplete
            // message) and a gob value's queued messages.
            assert!(decoder.buffered() <= 2 * MAX_MESSAGE_LEN + 64 * 1024 + 65_536 + 16);
            // Each chunk is decompressed once, when whole, and the plain
            // bytes are parsed at most once per message of a value (32).
            assert!(
                decoder.work() <= 40 * (fed + plain) + 16 * (calls + chunks),
                "work {} for {fed} bytes fed, {plain} plain",
                decoder.work()
            );
            match outcome {
                Ok(Some(message)) => {
                    restarted |= matches!(message, syncproto::Message::DecoderRestart(_));
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    if !failed {
        let outcome = decoder.decode_eof(&mut buffer);
        let borrowed = twin.decode_eof_borrowed(&mut twin_buffer, |message| message.to_message());
        assert_eq!(
            borrowed, outcome,
            "the borrowing API decoded the end otherwise"
        );
        assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
        failed = outcome.is_err();
    }
    // A damaged chunk is refused (its checksum), unless something else
    // stopped the stream first or a restart left the snappy stream.
    assert!(
        !damaged || failed || restarted,
        "a damaged chunk went unnoticed"
    );
});
