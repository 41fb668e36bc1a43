//! Encodes a small server-to-client exchange in the native format, prints
//! each frame's bytes, and decodes the stream back fed one byte at a time.
//!
//! Run with `cargo run --example native_frame`.

use bytes::BytesMut;
use syncproto::codec::native::{NativeDecoder, NativeEncoder};
use syncproto::message::{Message, Ping, SerializedUpdate, SyncStatus, Timestamp};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages = [
        Message::Kvs(vec![
            SerializedUpdate::upsert("/calico/v1/config/LogSeverityScreen", "Info", "17"),
            SerializedUpdate::deletion("/calico/v1/host/node-1/config/Foo", "18"),
        ]),
        Message::SyncStatus(SyncStatus::InSync),
        Message::Ping(Ping {
            timestamp: Timestamp::from_unix(1_517_495_400, 0).ok_or("timestamp out of range")?,
        }),
    ];

    let mut encoder = NativeEncoder::for_server();
    let mut stream = BytesMut::new();
    for message in &messages {
        let before = stream.len();
        encoder.encode(message, &mut stream)?;
        println!(
            "{:<10} {}",
            format!("{:?}", message.kind()),
            hex(&stream[before..])
        );
    }

    let mut decoder = NativeDecoder::for_client();
    let mut input = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in stream.iter() {
        input.extend_from_slice(&[*byte]);
        while let Some(message) = decoder.decode(&mut input)? {
            decoded.push(message);
        }
    }
    if decoded != messages {
        return Err("decoded stream differs from what was encoded".into());
    }
    println!(
        "{} bytes decoded back into {} messages, one byte at a time",
        stream.len(),
        decoded.len()
    );
    Ok(())
}
