//! What a server connection hands out: messages it encodes itself and
//! pre-encoded output from a cache, each held to the client's limits first.

use bytes::Bytes;

use super::{MODERN_POLICY_KEYS, ServerConnection};
use crate::close::CloseReason;
use crate::error::{ProtocolError, UsageError};
use crate::fanout::Output;
use crate::message::{Message, SerializedUpdate};

impl ServerConnection {
    /// Encodes one message onto the end of the ready output; `false` if it
    /// could not be (the connection is then closed, or has no encoder yet).
    pub(super) fn encode(&mut self, message: &Message) -> bool {
        let Some(encoder) = self.encoder.as_mut() else {
            return false;
        };
        match encoder.encode(message, &mut self.scratch) {
            Ok(()) => {
                let bytes = self.scratch.split().freeze();
                self.push_ready(bytes);
                self.sent.record_message(message);
                self.unreported.record_message(message);
                true
            }
            Err(error) => {
                self.finish(CloseReason::Usage(error));
                false
            }
        }
    }

    /// Queues bytes from the cache, unless a message in them is larger
    /// than the client accepts. The cache encoded them without knowing this
    /// connection's limit; the encoder holds the manual feed's messages to
    /// it, and this holds the cache's to it the same way, closing with the
    /// same error.
    pub(super) fn push_output(&mut self, output: Output) {
        let max = self.config.max_server_message_len;
        if output.modern_policy_keys && self.legacy_client {
            self.refuse_legacy_client();
        } else if output.largest.len > max {
            self.finish(CloseReason::Usage(UsageError::FrameTooLarge {
                message: output.largest.kind,
                len: output.largest.len,
                max,
            }));
        } else {
            self.push_ready(output.bytes);
            self.sent.record_output(&output.carries);
            self.unreported.record_output(&output.carries);
        }
    }

    /// Whether a client without modern policy key support would drop one
    /// of `updates`.
    pub(super) fn would_drop_any(&self, updates: &[SerializedUpdate]) -> bool {
        self.legacy_client
            && updates
                .iter()
                .any(|update| crate::rewrite::is_modern_policy_key(&update.key))
    }

    /// Closes a client that is about to be sent a modern policy key it
    /// would drop: never silently serve it keys it cannot take.
    pub(super) fn refuse_legacy_client(&mut self) {
        self.finish(CloseReason::Protocol(ProtocolError::MissingFeature(
            MODERN_POLICY_KEYS,
        )));
    }

    pub(super) fn push_ready(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.ready_bytes += bytes.len();
            self.ready.push_back(bytes);
        }
    }
}
