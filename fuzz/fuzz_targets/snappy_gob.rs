//! Raw bytes as a snappy-compressed gob stream (the stream after upstream's
//! compressed-snapshot restart), read through the stream decoder that
//! follows further restarts: no panic, no loop, bounded buffering.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::codec::{StreamDecoder, WireFormat};
use syncproto::message::CompressionAlgorithm;

fuzz_target!(|data: &[u8]| {
    let mut decoder = StreamDecoder::new(WireFormat::Gob, 64 * 1024, None).following_restarts();
    decoder
        .restart(Some(&CompressionAlgorithm::Snappy))
        .expect("a fresh decoder can restart");
    let mut buffer = BytesMut::from(data);
    loop {
        match decoder.decode(&mut buffer) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
