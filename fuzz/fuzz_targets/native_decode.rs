//! Raw bytes into the native stream decoder: it must never panic, never
//! loop, and never buffer a frame beyond its limit, however the input is
//! split; and a twin fed the same pieces through the borrowing API
//! (`decode_borrowed`) must give the same messages and errors and leave
//! the same bytes after every call.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::codec::native::{NativeDecoder, NativeEncoder};

/// Small enough that the fuzzer reaches the limit check often.
const MAX_FRAME_LEN: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, so splits are explored too.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let mut decoder = NativeDecoder::new(MAX_FRAME_LEN);
    let mut buffer = BytesMut::new();
    let mut twin = NativeDecoder::new(MAX_FRAME_LEN);
    let mut twin_buffer = BytesMut::new();
    let mut decoded = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        twin_buffer.extend_from_slice(piece);
        loop {
            let outcome = decoder.decode(&mut buffer);
            let borrowed = twin.decode_borrowed(&mut twin_buffer, |message| message.to_message());
            assert_eq!(borrowed, outcome, "the borrowing API decoded otherwise");
            assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
            match outcome {
                Ok(Some(message)) => decoded.push(message),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buffer.len() <= MAX_FRAME_LEN + 16,
            "decoder left {} bytes buffered",
            buffer.len()
        );
    }
    let outcome = decoder.decode_eof(&mut buffer);
    let borrowed = twin.decode_eof_borrowed(&mut twin_buffer, |message| message.to_message());
    assert_eq!(
        borrowed, outcome,
        "the borrowing API decoded the end otherwise"
    );
    assert_eq!(twin_buffer, buffer, "the borrowing API left other bytes");
    match outcome {
        Ok(Some(message)) => decoded.push(message),
        Ok(None) => {}
        Err(_) => return,
    }
    // Whatever decoded must re-encode, and that encoding must decode to the
    // same messages.
    let mut encoder = NativeEncoder::new(usize::MAX);
    let mut reencoded = BytesMut::new();
    for message in &decoded {
        encoder.encode(message, &mut reencoded).expect("re-encode");
    }
    let mut again = NativeDecoder::new(usize::MAX);
    for message in &decoded {
        assert_eq!(
            again
                .decode(&mut reencoded)
                .expect("decode re-encoding")
                .as_ref(),
            Some(message)
        );
    }
});
