//! Streams of several sessions: what a server sends when it restarts its
//! encoder into or out of snappy compression between them.

use bytes::BytesMut;
use syncproto::Message;
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::message::{CompressionAlgorithm, DecoderRestart};

/// Encodes `prelude` (e.g. a server's hello), then each session's
/// messages, every session after the first behind a `DecoderRestart` into
/// (`true`) or out of compression. The first session is uncompressed, as
/// every stream starts.
pub fn encode_sessions(
    format: WireFormat,
    prelude: &[Message],
    sessions: &[(bool, Vec<Message>)],
) -> Vec<u8> {
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut out = BytesMut::new();
    for message in prelude {
        encoder.encode(message, &mut out).unwrap();
    }
    for (index, (compressed, messages)) in sessions.iter().enumerate() {
        if index > 0 {
            let restart = DecoderRestart {
                message: format!("session {index}"),
                compression_algorithm: compressed.then_some(CompressionAlgorithm::Snappy),
            };
            encoder
                .encode(&Message::DecoderRestart(restart), &mut out)
                .unwrap();
            encoder.restart(*compressed);
        }
        for message in messages {
            encoder.encode(message, &mut out).unwrap();
        }
    }
    out.to_vec()
}
