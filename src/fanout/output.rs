//! Shared bytes handed to a connection, labelled with the size of the
//! largest message they carry, so that the connection can hold them to its
//! own message limit before sending: a stream encoder checks every message
//! it encodes, but these bytes were encoded once, for every connection,
//! without knowing any connection's limit.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::WireFormat;
use crate::message::MessageKind;

/// Bytes to send as they are, the largest message in them, and whether
/// they carry a modern policy key (which a client without modern policy
/// key support must not be sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    pub(crate) bytes: Bytes,
    pub(crate) largest: MessageSize,
    pub(crate) modern_policy_keys: bool,
    /// The messages in the bytes, for the connection's send statistics.
    pub(crate) carries: Carries,
}

/// What an [`Output`]'s bytes carry: counted by the connection that sends
/// them (updates per message, checksums sent), since the bytes were encoded
/// once for every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Carries {
    /// One `KVs` message of this many updates.
    Kvs(u32),
    /// `KVs` messages of these many updates each (a compressed snapshot,
    /// whose closing restart is not counted).
    Snapshot(Arc<[u32]>),
    /// One message of another kind.
    Other(MessageKind),
}

/// One message's kind and length, measured as a stream encoder measures it
/// against its limit (and a decoder against its own): uncompressed, without
/// the length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageSize {
    pub(crate) kind: MessageKind,
    pub(crate) len: usize,
}

impl Output {
    /// Bytes holding exactly one uncompressed `KVs` message of `count`
    /// updates in `format`.
    pub(crate) fn kvs(format: WireFormat, bytes: Bytes, count: usize) -> Output {
        let largest = MessageSize::of(format, MessageKind::Kvs, &bytes);
        Output {
            bytes,
            largest,
            modern_policy_keys: false,
            carries: Carries::Kvs(u32::try_from(count).unwrap_or(u32::MAX)),
        }
    }
}

impl MessageSize {
    /// The size of the message in `frame`, one whole uncompressed frame in
    /// `format`.
    pub(crate) fn of(format: WireFormat, kind: MessageKind, frame: &[u8]) -> MessageSize {
        MessageSize {
            kind,
            len: frame.len().saturating_sub(prefix_len(format, frame)),
        }
    }

    /// The larger of two sizes (the first on a tie).
    pub(crate) fn max(self, other: MessageSize) -> MessageSize {
        if other.len > self.len { other } else { self }
    }
}

/// How many bytes at the start of `frame` give its length: a LEB128 varint
/// in the native format; in gob, one byte below 0x80, else a byte holding
/// the negated count of the big-endian bytes that follow. (This reads the
/// prefixes the two encoders write; the tests below hold it to them.)
fn prefix_len(format: WireFormat, frame: &[u8]) -> usize {
    match format {
        WireFormat::Native => frame
            .iter()
            .position(|byte| byte & 0x80 == 0)
            .map_or(frame.len(), |last| last + 1),
        WireFormat::Gob => match frame.first() {
            Some(&first) if first >= 0x80 => 1 + usize::from(first.wrapping_neg()),
            _ => 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::codec::{StreamEncoder, prebuilt};
    use crate::error::UsageError;
    use crate::message::{Message, SerializedUpdate};

    #[test]
    fn sizes_agree_with_the_stream_encoders_limit() {
        // Bodies on both sides of every length at which a prefix grows: 128
        // (both formats), 256 and 65 536 (gob), 16 384 (native).
        let value_lens = (0..320).chain(16_250..16_450).chain(65_400..65_600);
        for format in [WireFormat::Native, WireFormat::Gob] {
            for value_len in value_lens.clone() {
                let message = Message::Kvs(vec![SerializedUpdate::upsert(
                    "/calico/v1/config/Key",
                    "x".repeat(value_len),
                    "1",
                )]);
                let frame = prebuilt::message_bytes(format, &message);
                let size = MessageSize::of(format, MessageKind::Kvs, &frame);
                let mut out = BytesMut::new();
                let at_limit = StreamEncoder::new(format, size.len).encode(&message, &mut out);
                assert_eq!(at_limit, Ok(()), "{format:?}, {} bytes", size.len);
                let below = StreamEncoder::new(format, size.len - 1).encode(&message, &mut out);
                assert_eq!(
                    below,
                    Err(UsageError::FrameTooLarge {
                        message: MessageKind::Kvs,
                        len: size.len,
                        max: size.len - 1,
                    }),
                    "{format:?}"
                );
            }
        }
    }
}
