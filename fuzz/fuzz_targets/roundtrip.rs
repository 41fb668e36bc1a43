//! encode(decode(x)) is stable: whatever a decoder accepts (either wire
//! format, told from the first byte), re-encoding it and decoding that
//! gives the same messages, and encoding those again gives the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::Message;
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};

fn decode_all(format: WireFormat, bytes: &[u8]) -> Vec<Message> {
    let mut decoder = StreamDecoder::new(format, 64 * 1024, None);
    let mut input = BytesMut::from(bytes);
    let mut messages = Vec::new();
    // Stop at the first error: only what was accepted matters.
    while let Ok(Some(message)) = decoder.decode(&mut input) {
        if matches!(message, Message::DecoderRestart(_)) {
            break;
        }
        messages.push(message);
    }
    messages
}

fn encode_all(format: WireFormat, messages: &[Message]) -> BytesMut {
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut out = BytesMut::new();
    for message in messages {
        encoder.encode(message, &mut out).expect("encodes");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(format) = WireFormat::detect(data) else {
        return;
    };
    let decoded = decode_all(format, data);
    let first = encode_all(format, &decoded);
    let again = decode_all(format, &first);
    assert_eq!(again, decoded, "re-encoding changed the messages");
    assert_eq!(encode_all(format, &again), first, "encoding is not stable");
});
