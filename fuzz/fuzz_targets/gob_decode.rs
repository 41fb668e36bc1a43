//! Raw bytes into the gob stream decoder, with small limits: it must never
//! panic, never loop, never hold more than its limits allow (asserted after
//! every call), never work more than linearly in what it was fed (asserted
//! with its own count of the bytes it parses), and whatever it decodes
//! must survive a round trip through this crate's encoder. A twin fed the
//! same pieces through the borrowing API (`decode_borrowed`) must give the
//! same messages and errors and leave the same bytes after every call.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::codec::gob::{GobDecoder, GobEncoder, GobLimits};

const LIMITS: GobLimits = GobLimits {
    max_message_len: 64 * 1024,
    max_types: 64,
    max_depth: 16,
    max_definition_bytes: 16 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) * 16 + 1;
    let mut decoder = GobDecoder::new(LIMITS);
    let mut buffer = BytesMut::new();
    let mut twin = GobDecoder::new(LIMITS);
    let mut twin_buffer = BytesMut::new();
    let mut decoded = Vec::new();
    let mut fed = 0u64;
    let mut calls = 0u64;
    'feed: for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        twin_buffer.extend_from_slice(piece);
        fed += piece.len() as u64;
        loop {
            calls += 1;
            let outcome = decoder.decode(&mut buffer);
            let borrowed = twin.decode_borrowed(&mut twin_buffer, |message| message.to_message());
            assert_eq!(borrowed, outcome, "the borrowing API decoded otherwise");
            assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
            assert_eq!(twin.buffered(), decoder.buffered());
            // A value's queued messages stay within its span limit, and
            // what is left of an incomplete message within the message limit.
            assert!(decoder.buffered() <= LIMITS.max_message_len + LIMITS.max_definition_bytes);
            assert!(buffer.len() <= LIMITS.max_message_len + 9 + chunk);
            // Each message of a value (at most 32) re-parses what is queued
            // once; each call looks at a length prefix.
            assert!(
                decoder.work() <= 33 * fed + 9 * calls,
                "work {} for {fed} bytes in {calls} calls",
                decoder.work()
            );
            match outcome {
                Ok(Some(message)) => decoded.push(message),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let outcome = decoder.decode_eof(&mut buffer);
    let borrowed = twin.decode_eof_borrowed(&mut twin_buffer, |message| message.to_message());
    assert_eq!(
        borrowed, outcome,
        "the borrowing API decoded the end otherwise"
    );
    assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
    if let Ok(Some(message)) = outcome {
        decoded.push(message);
    }
    let mut encoder = GobEncoder::new(usize::MAX);
    let mut reencoded = BytesMut::new();
    for message in &decoded {
        encoder.encode(message, &mut reencoded).expect("re-encode");
    }
    let mut again = GobDecoder::new(GobLimits::default());
    for message in &decoded {
        let round_trip = again.decode(&mut reencoded).expect("decode re-encoding");
        assert_eq!(round_trip.as_ref(), Some(message));
    }
});
