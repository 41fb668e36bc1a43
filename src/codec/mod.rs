//! Wire formats: how [`Message`]s become bytes and back.
//!
//! Two encodings of the same messages exist: Go's gob (what upstream Typha
//! and Felix speak) and this crate's [`native`] postcard format. A server
//! can tell them apart from a connection's first byte
//! ([`WireFormat::detect`]).

mod borrowed;
pub mod gob;
pub mod native;
pub(crate) mod prebuilt;
mod read_ahead;
mod retain;
pub mod snappy;
mod stream;

pub use stream::{StreamDecoder, StreamEncoder};

use crate::Message;
use crate::error::UsageError;
use crate::message::MessageKind;

/// What a server accepts in one message from a client by default: 1 MiB,
/// upstream Typha's limit.
pub const DEFAULT_MAX_CLIENT_MESSAGE_LEN: usize = 1 << 20;

/// What a client accepts in one message from a server by default: 64 MiB,
/// far above any batch a server builds (values are at most a few MiB), yet a
/// bound on what a broken or hostile server can make a client buffer.
pub const DEFAULT_MAX_SERVER_MESSAGE_LEN: usize = 64 << 20;

/// The most updates one `KVs` message may carry: a thousand times
/// upstream's batch of 100, and a hundred times this crate's largest
/// (compressed snapshots batch 1 000). Each decoded update takes about 150
/// bytes however few it took on the wire, so without this a 64 MiB message
/// of near-empty updates would decode into gigabytes.
pub const MAX_UPDATES_PER_MESSAGE: usize = 100_000;

/// The most compression algorithms a hello may offer (there are two).
pub(crate) const MAX_COMPRESSION_ALGORITHMS: usize = 16;

/// Refuses a message that carries more than a decoder of this crate
/// accepts, before encoding: the peer would drop the connection over it.
/// Both format encoders call this, so the formats agree on what they send.
pub(crate) fn check_peer_limits(message: &Message) -> Result<(), UsageError> {
    let (what, count, max) = match message {
        Message::Kvs(updates) => ("updates", updates.len(), MAX_UPDATES_PER_MESSAGE),
        Message::ClientHello(hello) => (
            "compression algorithms",
            hello.supported_compression_algorithms.len(),
            MAX_COMPRESSION_ALGORITHMS,
        ),
        _ => return Ok(()),
    };
    if count > max {
        return Err(UsageError::OverPeerLimit {
            message: message.kind(),
            what,
            count,
            max,
        });
    }
    Ok(())
}

/// The encoding of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// Go's `encoding/gob`, as upstream Typha and Felix speak it.
    Gob,
    /// This crate's postcard-based format ([`native`]).
    Native,
}

impl WireFormat {
    /// The format's name in logs and metrics labels: `gob` or `native`.
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::Gob => "gob",
            WireFormat::Native => "native",
        }
    }

    /// Tells the format of a stream from its first byte: the native preamble
    /// starts with a byte no gob stream can start with. `None` until a byte
    /// has arrived.
    pub fn detect(first_bytes: &[u8]) -> Option<WireFormat> {
        let first = *first_bytes.first()?;
        Some(if first == native::MAGIC[0] {
            WireFormat::Native
        } else {
            WireFormat::Gob
        })
    }
}

/// Which way a stream flows: decoders for one side of a connection refuse
/// messages only the other side sends, by their tag or type name, before
/// decoding their contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// What a client sends: `ClientHello`, `Pong`, `Ack`.
    ClientToServer,
    /// What a server sends: everything else.
    ServerToClient,
}

impl Direction {
    /// Whether messages of `kind` travel in this direction.
    pub fn carries(self, kind: MessageKind) -> bool {
        let from_client = matches!(
            kind,
            MessageKind::ClientHello | MessageKind::Pong | MessageKind::Ack
        );
        from_client == (self == Direction::ClientToServer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_native_from_the_first_byte() {
        assert_eq!(WireFormat::detect(&[]), None);
        assert_eq!(
            WireFormat::detect(&native::PREAMBLE[..1]),
            Some(WireFormat::Native)
        );
        // A gob stream opens with a small message length.
        assert_eq!(WireFormat::detect(&[0x22, 0xff]), Some(WireFormat::Gob));
    }

    /// What a decoder would refuse, both encoders refuse to send, and say
    /// what was over; at the limit both send it and it decodes.
    ///
    /// Regression (fuzz target `differential`, in CI's smoke run): a
    /// `ClientHello` offering 17 algorithms encoded, then failed to decode
    /// (`fuzz/regressions/differential/`).
    #[test]
    fn encoders_refuse_what_a_peer_would_refuse() {
        use crate::message::{ClientHello, CompressionAlgorithm, SerializedUpdate};
        let hello = |count: usize| {
            Message::ClientHello(ClientHello {
                supported_compression_algorithms: vec![CompressionAlgorithm::Snappy; count],
                ..ClientHello::default()
            })
        };
        let kvs = |count: usize| Message::Kvs(vec![SerializedUpdate::default(); count]);
        for format in [WireFormat::Native, WireFormat::Gob] {
            for (message, what, max) in [
                (
                    hello as fn(usize) -> Message,
                    "compression algorithms",
                    MAX_COMPRESSION_ALGORITHMS,
                ),
                (kvs, "updates", MAX_UPDATES_PER_MESSAGE),
            ] {
                let mut encoder = StreamEncoder::new(format, usize::MAX);
                let mut out = bytes::BytesMut::new();
                let over = message(max + 1);
                assert_eq!(
                    encoder.encode(&over, &mut out),
                    Err(UsageError::OverPeerLimit {
                        message: over.kind(),
                        what,
                        count: max + 1,
                        max,
                    }),
                    "{format:?}"
                );
                assert!(out.is_empty(), "{format:?}: refused bytes were written");
                let at_limit = message(max);
                encoder.encode(&at_limit, &mut out).unwrap();
                let mut decoder = StreamDecoder::new(format, usize::MAX, None);
                assert_eq!(
                    decoder.decode(&mut out).unwrap(),
                    Some(at_limit),
                    "{format:?}"
                );
            }
        }
    }
}
