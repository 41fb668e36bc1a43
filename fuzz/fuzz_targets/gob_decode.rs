//! Raw bytes into the gob stream decoder, with small limits: it must never
//! panic, never loop, never hold a message over its limit, and whatever it
//! decodes must survive a round trip through this crate's encoder.

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
    let mut decoded = Vec::new();
    'feed: for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => decoded.push(message),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = decoder.decode_eof(&mut buffer);
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
