//! The native stream encoder.

use bytes::{BufMut, BytesMut};

use super::{PREAMBLE, body, varint};
use crate::codec::{DEFAULT_MAX_CLIENT_MESSAGE_LEN, DEFAULT_MAX_SERVER_MESSAGE_LEN};
use crate::error::UsageError;
use crate::message::Message;

/// Encodes [`Message`]s as a native-format byte stream.
///
/// The first call writes the preamble before the message. Encoding appends
/// to a buffer the caller owns (like a tokio-util `Encoder`), so one buffer
/// can collect many messages before a single write.
#[derive(Debug, Clone)]
pub struct NativeEncoder {
    preamble_sent: bool,
    max_frame_len: usize,
    scratch: BytesMut,
}

impl NativeEncoder {
    /// An encoder that refuses to produce frames longer than `max_frame_len`
    /// bytes (set it to what the peer's decoder accepts).
    pub fn new(max_frame_len: usize) -> NativeEncoder {
        NativeEncoder {
            preamble_sent: false,
            max_frame_len,
            scratch: BytesMut::new(),
        }
    }

    /// An encoder for a client, limited to what upstream servers accept
    /// ([`DEFAULT_MAX_CLIENT_MESSAGE_LEN`]).
    pub fn for_client() -> NativeEncoder {
        NativeEncoder::new(DEFAULT_MAX_CLIENT_MESSAGE_LEN)
    }

    /// An encoder for a server ([`DEFAULT_MAX_SERVER_MESSAGE_LEN`]).
    pub fn for_server() -> NativeEncoder {
        NativeEncoder::new(DEFAULT_MAX_SERVER_MESSAGE_LEN)
    }

    /// Whether the preamble has been written.
    pub(crate) fn stream_started(&self) -> bool {
        self.preamble_sent
    }

    /// Records that the caller wrote the preamble itself (prebuilt).
    pub(crate) fn mark_stream_started(&mut self) {
        self.preamble_sent = true;
    }

    /// Writes the preamble now if it has not been written yet: for callers
    /// that append pre-encoded frames after this encoder's output.
    pub fn start_stream(&mut self, dst: &mut BytesMut) {
        if !self.preamble_sent {
            dst.put_slice(&PREAMBLE);
            self.preamble_sent = true;
        }
    }

    /// Appends `message` (preceded by the preamble on the first call) to
    /// `dst`. On error nothing is appended and the encoder is unchanged.
    pub fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), UsageError> {
        crate::codec::check_peer_limits(message)?;
        self.scratch.clear();
        body::encode(message, &mut self.scratch);
        let len = self.scratch.len();
        if len > self.max_frame_len {
            return Err(UsageError::FrameTooLarge {
                message: message.kind(),
                len,
                max: self.max_frame_len,
            });
        }
        self.start_stream(dst);
        dst.reserve(varint::len(len as u64) + len);
        varint::write(dst, len as u64);
        dst.put_slice(&self.scratch);
        Ok(())
    }
}
