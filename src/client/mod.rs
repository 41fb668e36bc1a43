//! The client side (upstream: Felix's Typha client) as a Sans-IO state
//! machine.

mod checksum;
mod config;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use checksum::ChecksumReport;
pub use config::{ChecksumCheck, ClientConfig, DEFAULT_READ_TIMEOUT};

use crate::checksum::StateChecksum;
use crate::close::{CloseReason, TimeoutKind};
use crate::codec::WireFormat;
use crate::codec::native::NATIVE_PROTOCOL_VERSION;
use crate::codec::{StreamDecoder, StreamEncoder};
use crate::error::{ProtocolError, UsageError};
use crate::key::KeyError;
use crate::message::{
    ByteString, ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, Pong,
    SerializedUpdate, ServerHello, SyncStatus,
};
use crate::time::Now;
use checksum::ReceivedState;

/// What a [`ClientConnection`] reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the handshake.
    Connected(ServerHello),
    /// The server's sync status. The first event of every connection is
    /// `Status(ResyncInProgress)`, as upstream clients report on start.
    Status(SyncStatus),
    /// One `KVs` message's updates, in order (possibly none), minus those
    /// whose keys the key parser rejected.
    Updates(Vec<SerializedUpdate>),
    /// An update was dropped because its key did not parse (upstream's
    /// `ErrBadKey`); the connection goes on.
    Dropped {
        /// The rejected key.
        key: ByteString,
        /// Why the key parser rejected it.
        reason: KeyError,
    },
    /// The server sent something a client ignores, as upstream's does: a
    /// `Pong`, `Ack` or `ClientHello` (messages only a client sends), or a
    /// `DecoderRestart` naming a compression algorithm this crate does not
    /// know (acknowledged, and the stream goes on as it was). Counted by
    /// [`ClientConnection::ignored_messages`]; the connection goes on.
    Ignored(MessageKind),
    /// The server's snapshot checksum was compared with the checksum of
    /// what this connection received before it (only when both sides
    /// negotiated checksums: see [`ClientConfig::checksums`]). A mismatch
    /// is reported, not acted on: what to do about it is the caller's (a
    /// [`Session`](crate::session::Session) reconnects as upstream does).
    Checksum(ChecksumReport),
    /// The connection is over; this is the last event.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingServerHello,
    Syncing,
    Closed,
}

/// The client end of one connection.
///
/// Drive it like this, in any runtime:
///
/// 1. [`new`](Self::new), then send what [`poll_transmit`](Self::poll_transmit)
///    returns (the `ClientHello`).
/// 2. Whenever bytes arrive, [`handle_input`](Self::handle_input); when the
///    peer closes its side, [`handle_eof`](Self::handle_eof); when the
///    deadline from [`poll_timeout`](Self::poll_timeout) passes,
///    [`handle_timeout`](Self::handle_timeout).
/// 3. After each `handle_*` call, drain [`poll_event`](Self::poll_event) and
///    [`poll_transmit`](Self::poll_transmit) until they return `None`, and
///    re-read [`poll_timeout`](Self::poll_timeout).
///
/// The machine answers pings and acknowledges decoder restarts by itself.
/// Once it has emitted [`ClientEvent::Closed`] it emits nothing more and
/// queues nothing more; write out what [`poll_transmit`](Self::poll_transmit)
/// still hands out (only after a clean end of stream: see
/// [`handle_eof`](Self::handle_eof)), then close the socket.
///
/// It tolerates what upstream's client tolerates
/// (`typha/pkg/syncclient/sync_client.go`, `loop` and `restartDecoder`):
/// a `Pong`, `Ack` or `ClientHello` from the server, and a restart naming an
/// unknown compression algorithm, are reported as
/// [`ClientEvent::Ignored`] and the connection goes on. The read timeout
/// runs per message, as upstream sets its read deadline before each
/// message: a message that trickles in for longer than the timeout ends the
/// connection even though bytes keep arriving. A second `ServerHello`, or a
/// restart when this client did not offer restarts, ends it, as upstream.
#[derive(Debug)]
pub struct ClientConnection {
    config: ClientConfig,
    state: State,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    input: BytesMut,
    output: BytesMut,
    events: VecDeque<ClientEvent>,
    read_deadline: Instant,
    server_hello: Option<ServerHello>,
    close_reason: Option<CloseReason>,
    ignored_messages: u64,
    pings_answered: u64,
    /// The checksum of what was received, once the server agreed to send
    /// checksums.
    received: Option<ReceivedState>,
}

impl ClientConnection {
    /// Starts a connection: queues the `ClientHello` for
    /// [`poll_transmit`](Self::poll_transmit) and the initial
    /// `Status(ResyncInProgress)` event, and arms the read timeout.
    ///
    /// Fails if the configuration is unusable (a zero timeout or limit, or
    /// more than 16 compression algorithms).
    pub fn new(config: ClientConfig, now: Now) -> Result<ClientConnection, UsageError> {
        if config.read_timeout.is_zero() {
            return Err(UsageError::InvalidConfig("read_timeout must be positive"));
        }
        if config.max_message_len == 0 {
            return Err(UsageError::InvalidConfig(
                "max_message_len must be positive",
            ));
        }
        if config.compression.len() > crate::codec::MAX_COMPRESSION_ALGORITHMS {
            return Err(UsageError::InvalidConfig(
                "compression lists more algorithms than a server accepts (16)",
            ));
        }
        // Any direction: messages only a client sends are ignored rather
        // than refused, as upstream's client ignores them.
        let decoder = StreamDecoder::new(config.wire_format, config.max_message_len, None);
        // What the client sends is small; cap it at what upstream servers accept.
        let encoder = StreamEncoder::new(
            config.wire_format,
            crate::codec::DEFAULT_MAX_CLIENT_MESSAGE_LEN,
        );
        let mut connection = ClientConnection {
            read_deadline: now.instant + config.read_timeout,
            state: State::AwaitingServerHello,
            decoder,
            encoder,
            input: BytesMut::new(),
            output: BytesMut::new(),
            events: VecDeque::new(),
            server_hello: None,
            close_reason: None,
            ignored_messages: 0,
            pings_answered: 0,
            received: None,
            config,
        };
        connection
            .events
            .push_back(ClientEvent::Status(SyncStatus::ResyncInProgress));
        let hello = connection.client_hello();
        connection.send(&Message::ClientHello(hello));
        Ok(connection)
    }

    /// The hello this client sends, built from its configuration.
    fn client_hello(&self) -> ClientHello {
        let config = &self.config;
        ClientHello {
            hostname: config.hostname.clone(),
            info: config.info.clone(),
            version: config.version.clone(),
            syncer_type: config.syncer_type.clone(),
            supports_decoder_restart: config.supports_decoder_restart,
            supported_compression_algorithms: config.compression.clone(),
            supports_modern_policy_keys: config.supports_modern_policy_keys,
            client_conn_id: config.connection_id,
            supports_checksum: config.checksums.is_some(),
            protocol_version: match config.wire_format {
                WireFormat::Native => NATIVE_PROTOCOL_VERSION,
                WireFormat::Gob => 0,
            },
        }
    }

    /// Feeds bytes received from the server, split anywhere. Each complete
    /// message re-arms the read timeout (bytes of an unfinished one do
    /// not). Ignored once closed.
    pub fn handle_input(&mut self, now: Now, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.input.extend_from_slice(data);
        self.process_input(now, false);
    }

    /// Tells the machine the server closed its side of the connection. A
    /// clean close between messages ends with [`CloseReason::PeerClosed`];
    /// one mid-message is a truncation error.
    ///
    /// After a clean close, what was already queued (a pong to a ping that
    /// came just before the end) is still handed out by
    /// [`poll_transmit`](Self::poll_transmit): the server may only have
    /// closed its writing side and still be reading, and upstream's client
    /// answers every ping it reads before the end.
    pub fn handle_eof(&mut self, now: Now) {
        if self.state == State::Closed {
            return;
        }
        self.process_input(now, true);
        if self.state != State::Closed {
            self.finish(CloseReason::PeerClosed);
        }
    }

    /// Fires expired deadlines. Call when the instant from
    /// [`poll_timeout`](Self::poll_timeout) has passed; calling early, late
    /// or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.state != State::Closed && now.instant >= self.read_deadline {
            self.finish(CloseReason::TimedOut {
                kind: TimeoutKind::Read,
                after: self.config.read_timeout,
            });
        }
    }

    /// The next deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called, `None` once closed. Re-read it after every call that
    /// changes the machine.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Closed).then_some(self.read_deadline)
    }

    /// The next event for the application. Drain after every `handle_*`
    /// call; [`ClientEvent::Closed`] is always the last.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the server, in order. Drain after every call that
    /// changes the machine; `None` when there is nothing to send.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.output.is_empty()).then(|| self.output.split().freeze())
    }

    /// Closes the connection from this side: pending output is discarded and
    /// a final [`ClientEvent::Closed`]`(`[`CloseReason::Local`]`)` is queued.
    /// Harmless when already closed.
    pub fn close(&mut self) {
        if self.state != State::Closed {
            self.finish(CloseReason::Local);
        }
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// The server's hello, once the handshake is done.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.server_hello.as_ref()
    }

    /// Bytes received and held, not yet decoded: what is left of an
    /// incomplete message (or compressed chunk), decompressed bytes waiting
    /// to be decoded, and a gob value's messages while it is incomplete.
    /// Bounded by the limits, whatever the server sends: about twice
    /// `max_message_len` plus the gob definition budget and a snappy chunk.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.decoder.buffered()
    }

    /// The decoding work done so far (see [`StreamDecoder::work`]).
    pub fn decoding_work(&self) -> u64 {
        self.decoder.work()
    }

    /// How many pings the server sent and this client answered.
    pub fn pings_answered(&self) -> u64 {
        self.pings_answered
    }

    /// The checksum of what this connection received so far, when the
    /// server agreed to send checksums (see [`ClientConfig::checksums`]).
    pub fn received_checksum(&self) -> Option<StateChecksum> {
        self.received.as_ref().map(ReceivedState::state)
    }

    /// How many messages were ignored ([`ClientEvent::Ignored`]).
    pub fn ignored_messages(&self) -> u64 {
        self.ignored_messages
    }

    fn process_input(&mut self, now: Now, at_eof: bool) {
        while self.state != State::Closed {
            let decoded = if at_eof {
                self.decoder.decode_eof(&mut self.input)
            } else {
                self.decoder.decode(&mut self.input)
            };
            match decoded {
                Ok(Some(message)) => {
                    self.read_deadline = now.instant + self.config.read_timeout;
                    if let Err(error) = self.handle_message(now, message) {
                        self.finish(CloseReason::Protocol(error));
                    }
                }
                Ok(None) => break,
                Err(error) => self.finish(CloseReason::Protocol(error.into())),
            }
        }
    }

    fn handle_message(&mut self, now: Now, message: Message) -> Result<(), ProtocolError> {
        match (self.state, message) {
            (State::AwaitingServerHello, Message::ServerHello(hello)) => self.accept_hello(hello),
            (State::AwaitingServerHello, other) => Err(ProtocolError::UnexpectedMessage {
                expected: "waiting for the ServerHello",
                got: other.kind(),
            }),
            (State::Syncing, Message::Kvs(updates)) => {
                self.deliver(updates);
                Ok(())
            }
            (State::Syncing, Message::SyncStatus(status)) => {
                self.events.push_back(ClientEvent::Status(status));
                Ok(())
            }
            (State::Syncing, Message::Ping(ping)) => {
                self.pings_answered += 1;
                self.send(&Message::Pong(Pong {
                    ping_timestamp: ping.timestamp,
                    pong_timestamp: now.wall,
                }));
                Ok(())
            }
            (State::Syncing, Message::DecoderRestart(restart)) => self.restart_decoder(&restart),
            (State::Syncing, Message::Checksum(checksum)) => {
                match self.received.as_mut() {
                    Some(received) => {
                        let report = received.check(checksum, now.instant);
                        self.events.push_back(ClientEvent::Checksum(report));
                    }
                    // Not negotiated: nothing to compare it with.
                    None => self.ignore(MessageKind::Checksum),
                }
                Ok(())
            }
            (
                State::Syncing,
                message @ (Message::Pong(_) | Message::Ack | Message::ClientHello(_)),
            ) => {
                self.ignore(message.kind());
                Ok(())
            }
            (_, other) => Err(ProtocolError::UnexpectedMessage {
                expected: "receiving server data",
                got: other.kind(),
            }),
        }
    }

    fn accept_hello(&mut self, hello: ServerHello) -> Result<(), ProtocolError> {
        if hello.syncer_type != self.config.syncer_type {
            return Err(ProtocolError::SyncerTypeMismatch {
                requested: self.config.syncer_type.clone(),
                answered: hello.syncer_type,
            });
        }
        if self.config.require_node_resource_updates && !hello.supports_node_resource_updates {
            return Err(ProtocolError::MissingFeature("node resource updates"));
        }
        self.state = State::Syncing;
        if hello.supports_checksum {
            self.received = self.config.checksums.map(ReceivedState::new);
        }
        self.server_hello = Some(hello.clone());
        self.events.push_back(ClientEvent::Connected(hello));
        Ok(())
    }

    fn ignore(&mut self, kind: MessageKind) {
        self.ignored_messages += 1;
        self.events.push_back(ClientEvent::Ignored(kind));
    }

    /// Reports one `KVs` message, dropping updates whose keys are rejected
    /// (and upgrading legacy policy keys first, if configured).
    fn deliver(&mut self, mut updates: Vec<SerializedUpdate>) {
        // As received: the server's checksum covers what it sent.
        if let Some(received) = self.received.as_mut() {
            received.apply(&updates);
        }
        if self.config.upgrade_legacy_policy_keys {
            updates = updates
                .into_iter()
                .map(SerializedUpdate::upgrade_legacy_policy_key)
                .collect();
        }
        if let Some(parser) = &self.config.key_parser {
            updates.retain(|update| match parser.validate(&update.key) {
                Ok(()) => true,
                Err(reason) => {
                    self.events.push_back(ClientEvent::Dropped {
                        key: update.key.clone(),
                        reason,
                    });
                    false
                }
            });
        }
        self.events.push_back(ClientEvent::Updates(updates));
    }

    /// Switches to the stream that begins right after the restart message:
    /// whatever is already buffered past it is decoded by the new decoder.
    ///
    /// As upstream's client: a restart to plain or snappy is followed
    /// whether or not snappy was offered (it can be decoded either way); one
    /// naming an algorithm this crate does not know is acknowledged and
    /// otherwise ignored, the stream going on as before.
    fn restart_decoder(&mut self, restart: &DecoderRestart) -> Result<(), ProtocolError> {
        if !self.config.supports_decoder_restart {
            return Err(ProtocolError::UnexpectedMessage {
                expected: "not having offered decoder restarts",
                got: MessageKind::DecoderRestart,
            });
        }
        match &restart.compression_algorithm {
            None | Some(CompressionAlgorithm::Snappy) => self
                .decoder
                .restart(restart.compression_algorithm.as_ref())?,
            Some(CompressionAlgorithm::Other(_)) => self.ignore(MessageKind::DecoderRestart),
        }
        self.send(&Message::Ack);
        Ok(())
    }

    fn send(&mut self, message: &Message) {
        if let Err(error) = self.encoder.encode(message, &mut self.output) {
            self.finish(CloseReason::Usage(error));
        }
    }

    /// Enters the closed state: one final event, no more output.
    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.input = BytesMut::new();
        // Owed answers survive a clean end of stream (see `handle_eof`).
        if reason != CloseReason::PeerClosed {
            self.output = BytesMut::new();
        }
        self.close_reason = Some(reason.clone());
        self.events.push_back(ClientEvent::Closed(reason));
    }
}
