//! Writes a synthetic server-to-client capture for throughput comparisons:
//! the same session in gob (which Go's encoding/gob reads), gob behind
//! snappy, and native.
//!
//! ```sh
//! cargo run --release --example write_capture -- <megabytes> <out-dir>
//! ```
//!
//! writes `<out-dir>/capture.gob`, `capture.gob-snappy` and
//! `capture.native`, each about `megabytes` of gob (sessions are repeated,
//! each on a fresh stream, until the size is reached).

use std::path::PathBuf;

use bytes::BytesMut;
use syncproto::Message;
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::message::{CompressionAlgorithm, DecoderRestart};

const USAGE: &str = "usage: write_capture <megabytes> <out-dir>";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(megabytes), Some(out)) = (args.next().and_then(|n| n.parse().ok()), args.next())
    else {
        // Said plainly, not as `main`'s Debug-formatted error.
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let megabytes: usize = megabytes;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let session = syncproto::synthetic::session(10_000, 2_000, 1);
    // Size one gob session, then write the same number of sessions in
    // every format, so that all three captures hold the same content.
    let one_session = encode(&session, WireFormat::Gob, false, 1)?;
    let sessions = (megabytes * 1_000_000).div_ceil(one_session.len()).max(1);
    for (name, format, compressed) in [
        ("capture.gob", WireFormat::Gob, false),
        ("capture.gob-snappy", WireFormat::Gob, true),
        ("capture.native", WireFormat::Native, false),
    ] {
        let stream = encode(&session, format, compressed, sessions)?;
        std::fs::write(out.join(name), &stream)?;
        println!("{name}: {} bytes, {sessions} sessions", stream.len());
    }
    Ok(())
}

/// `sessions` copies of `session`, each on a fresh stream after a decoder
/// restart (as after a reconnect), all behind snappy when `compressed`.
fn encode(
    session: &[Message],
    format: WireFormat,
    compressed: bool,
    sessions: usize,
) -> Result<BytesMut, Box<dyn std::error::Error>> {
    let restart = Message::DecoderRestart(DecoderRestart {
        message: "next session".into(),
        compression_algorithm: compressed.then_some(CompressionAlgorithm::Snappy),
    });
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut stream = BytesMut::new();
    if compressed {
        encoder.encode(&restart, &mut stream)?;
        encoder.restart(true);
    }
    for _ in 0..sessions {
        for message in session {
            encoder.encode(message, &mut stream)?;
        }
        encoder.encode(&restart, &mut stream)?;
        encoder.restart(compressed);
    }
    Ok(stream)
}
