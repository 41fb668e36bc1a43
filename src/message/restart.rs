//! Switching the byte stream's format mid-connection: `DecoderRestart`.

use super::CompressionAlgorithm;

/// Tells the receiver that the bytes after this message start a new stream
/// (upstream's `MsgDecoderRestart`, server to client). The receiver builds
/// a fresh decoder, optionally behind a decompressor, positioned at the byte
/// right after this message, and acknowledges with
/// [`Message::Ack`](crate::Message::Ack).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecoderRestart {
    /// A human-readable reason (upstream: `"enable compression: snappy;send
    /// binary snapshot"` or `"End of compressed snapshot."`).
    pub message: String,
    /// The compression of the new stream; `None` (an empty string on the
    /// wire) for an uncompressed stream.
    pub compression_algorithm: Option<CompressionAlgorithm>,
}
