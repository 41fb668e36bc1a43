//! The conversation with the client proper: its hello and the answer to
//! it, the negotiation policy, and the decoder restarts the client must
//! acknowledge before anything more is sent.

use std::time::Instant;

use super::{
    AckPhase, END_OF_SNAPSHOT_MESSAGE, Feed, START_COMPRESSION_MESSAGE, ServerConnection,
    ServerEvent, State,
};
use crate::codec::WireFormat;
use crate::codec::native::NATIVE_PROTOCOL_VERSION;
use crate::error::ProtocolError;
use crate::message::{ClientHello, DecoderRestart, Message, ServerHello};
use crate::time::Now;

impl ServerConnection {
    /// Acts on one message from the client; an error is the client's fault
    /// and closes the connection.
    pub(super) fn handle_message(
        &mut self,
        now: Now,
        message: Message,
    ) -> Result<(), ProtocolError> {
        match (self.state, message) {
            (State::AwaitingHello, Message::ClientHello(hello)) => self.accept_hello(now, hello),
            (State::AwaitingHello, other) => Err(ProtocolError::UnexpectedMessage {
                expected: "waiting for the ClientHello",
                got: other.kind(),
            }),
            (State::AwaitingAck { phase, .. }, Message::Ack) => {
                self.state = State::Syncing;
                // Every restart this server sends switches to compression.
                if let Some(encoder) = self.encoder.as_mut() {
                    encoder.restart(true);
                    if phase == AckPhase::EndOfSnapshot {
                        // Open the stream now: shared pre-encoded messages may follow.
                        encoder.start_stream(&mut self.scratch);
                    }
                }
                if phase == AckPhase::EndOfSnapshot {
                    self.stream_compressed = true;
                    let header = self.scratch.split().freeze();
                    self.push_ready(header);
                    // Pings start once the snapshot is out, as upstream's
                    // (and the compressed snapshot stream may hold nothing
                    // but the snapshot).
                    self.pinger.start(now.instant);
                }
                Ok(())
            }
            // Any pong is accepted, as upstream: it restarts the pong
            // timeout whether or not it echoes a ping still outstanding.
            (State::Syncing | State::AwaitingAck { .. }, Message::Pong(pong)) => {
                let round_trip = self.pinger.pong_received(now.instant, &pong.ping_timestamp);
                self.events.push_back(ServerEvent::Pong { round_trip });
                Ok(())
            }
            (_, other) => Err(ProtocolError::UnexpectedMessage {
                expected: "waiting for pongs",
                got: other.kind(),
            }),
        }
    }

    /// Applies the negotiation policy to a client's hello and answers it,
    /// starting the compressed-snapshot handshake when both sides can.
    fn accept_hello(&mut self, now: Now, hello: ClientHello) -> Result<(), ProtocolError> {
        // Kept whether or not it is accepted: a refused client's report
        // (and log line) says who it was and what it asked for.
        self.client_hello = Some(hello.clone());
        if !self.config.syncer_types.contains(&hello.syncer_type) {
            return Err(ProtocolError::UnsupportedSyncerType(hello.syncer_type));
        }
        // As upstream's server (`sync_server.go` `doHandshake`, line 1007): refused
        // without a reply, since such a client would drop every modern
        // policy key.
        if self.config.require_modern_policy_keys && !hello.supports_modern_policy_keys {
            return Err(ProtocolError::MissingFeature(super::MODERN_POLICY_KEYS));
        }
        self.legacy_client = !hello.supports_modern_policy_keys;
        // Only to a client that asked, as upstream.
        self.checksums = self.config.checksum_interval.is_some() && hello.supports_checksum;
        let wire_format = self.wire_format.unwrap_or(WireFormat::Native);
        self.compression = self
            .config
            .compression
            .iter()
            .find(|algorithm| {
                hello.supports_decoder_restart
                    && hello.supported_compression_algorithms.contains(algorithm)
            })
            .cloned();
        let answer = ServerHello {
            version: self.config.version.clone(),
            syncer_type: hello.syncer_type.clone(),
            supports_node_resource_updates: self.config.supports_node_resource_updates,
            server_conn_id: self.config.connection_id,
            supports_checksum: self.checksums,
            protocol_version: match wire_format {
                WireFormat::Native => NATIVE_PROTOCOL_VERSION,
                WireFormat::Gob => 0,
            },
        };
        // A message that does not fit the client's limit closes the
        // connection (with the reason) inside `encode`: stop there, so that
        // nothing is queued after the close, the state stays closed, and no
        // `Connected` follows the final `Closed`.
        if !self.encode(&Message::ServerHello(answer)) {
            return Ok(());
        }
        match self.compression.clone() {
            Some(algorithm) => {
                if let Feed::Manual(queue) = &mut self.feed {
                    queue.set_snapshot_batch_size(self.config.compressed_snapshot_batch_size);
                }
                if !self.encode(&Message::DecoderRestart(DecoderRestart {
                    message: START_COMPRESSION_MESSAGE.to_owned(),
                    compression_algorithm: Some(algorithm),
                })) {
                    return Ok(());
                }
                self.await_ack(AckPhase::StartCompression, now.instant);
            }
            // Pings start once the snapshot is out (see `end_snapshot`).
            None => self.state = State::Syncing,
        }
        self.connected_at = Some(now.instant);
        self.events.push_back(ServerEvent::Connected {
            hello,
            wire_format,
            compression: self.compression.clone(),
        });
        Ok(())
    }

    /// Ends the snapshot: on a compressed stream, with the restart that
    /// closes it (the snapshot's status follows on the next stream). A
    /// cache's compressed snapshot already ends with that restart.
    /// Uncompressed, pings start here: upstream's server starts its pinger
    /// once the snapshot has been written.
    pub(super) fn end_snapshot(&mut self, now: Instant) {
        if let Some(connected_at) = self.connected_at {
            self.events.push_back(ServerEvent::SnapshotSent {
                took: now.saturating_duration_since(connected_at),
            });
        }
        let Some(algorithm) = self.compression.clone() else {
            self.pinger.start(now);
            return;
        };
        if let Feed::Manual(_) = self.feed
            && !self.encode(&Message::DecoderRestart(DecoderRestart {
                message: END_OF_SNAPSHOT_MESSAGE.to_owned(),
                compression_algorithm: Some(algorithm),
            }))
        {
            return;
        }
        self.await_ack(AckPhase::EndOfSnapshot, now);
    }

    fn await_ack(&mut self, phase: AckPhase, now: Instant) {
        if self.state != State::Closed {
            self.state = State::AwaitingAck {
                phase,
                deadline: now + self.config.ack_timeout,
            };
        }
    }
}
