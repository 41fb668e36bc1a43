//! The client side (upstream: Felix's Typha client) as a Sans-IO state
//! machine.

mod checksum;
mod config;
mod deliver;
mod event;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use checksum::ChecksumReport;
pub use config::{ChecksumCheck, ClientConfig, DEFAULT_READ_TIMEOUT};
pub use event::{ClientEvent, ClientEventRef};

use crate::checksum::StateChecksum;
use crate::close::{CloseReason, TimeoutKind};
use crate::codec::WireFormat;
use crate::codec::native::NATIVE_PROTOCOL_VERSION;
use crate::codec::{StreamDecoder, StreamEncoder};
use crate::error::{DecodeError, ProtocolError, UsageError};
use crate::message::{
    ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, MessageRef, Pong,
    ServerHello, SyncStatus,
};
use crate::time::Now;
use checksum::ReceivedState;
use deliver::{Delivery, hand_over_queued};

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
/// An application that applies each update and lets it go (a relay, a
/// checksum, a projection of the data) can take input with
/// [`handle_input_borrowed`](Self::handle_input_borrowed) instead: the
/// same events, handed to a callback, with the updates borrowed from the
/// bytes received rather than copied out of them.
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
        self.process_input(now, false, None);
    }

    /// Like [`handle_input`](Self::handle_input), but hands events to
    /// `on_event` instead of queuing them: first every event still queued,
    /// then those this input produces, in order. Each `KVs` message comes
    /// as a [`ClientEventRef::Updates`] borrowing the received bytes, valid
    /// only during the call: no key, value or revision is copied and
    /// nothing is allocated per update (one vector per message when a key
    /// check or the legacy upgrade is configured). Copy what must outlive
    /// the callback ([`SerializedUpdateRef::to_update`](crate::message::SerializedUpdateRef::to_update)).
    ///
    /// The events are the ones [`handle_input`](Self::handle_input)
    /// followed by [`poll_event`](Self::poll_event) would give; the two can
    /// be mixed on one connection. Events from the other calls
    /// ([`handle_eof`](Self::handle_eof),
    /// [`handle_timeout`](Self::handle_timeout), [`close`](Self::close))
    /// are queued for [`poll_event`](Self::poll_event) as always.
    pub fn handle_input_borrowed(
        &mut self,
        now: Now,
        data: &[u8],
        mut on_event: impl FnMut(ClientEventRef<'_>),
    ) {
        if self.state != State::Closed {
            self.input.extend_from_slice(data);
            self.process_input(now, false, Some(&mut on_event));
        }
        hand_over_queued(&mut self.events, &mut on_event);
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
        self.process_input(now, true, None);
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

    /// Decodes what is buffered, message by message, until it runs out or
    /// the connection closes. `KVs` messages are delivered as they are
    /// decoded: handed over borrowed to `on_event` when given, queued as
    /// owned updates otherwise.
    fn process_input(
        &mut self,
        now: Now,
        at_eof: bool,
        mut on_event: Option<&mut dyn FnMut(ClientEventRef<'_>)>,
    ) {
        while self.state != State::Closed {
            let decoded = match on_event.as_deref_mut() {
                None => self.decode_queuing(at_eof),
                Some(on_event) => self.decode_handing_over(at_eof, on_event),
            };
            match decoded {
                Ok(Some(unhandled)) => {
                    self.read_deadline = now.instant + self.config.read_timeout;
                    if let Some(message) = unhandled
                        && let Err(error) = self.handle_message(now, message)
                    {
                        self.finish(CloseReason::Protocol(error));
                    }
                }
                Ok(None) => break,
                Err(error) => self.finish(CloseReason::Protocol(error.into())),
            }
        }
    }

    /// Decodes the next message with the owning API: `Some(None)` when it
    /// was a `KVs` message, delivered to the queue; `Some(message)` for
    /// any other (and a `KVs` before the hello), to be handled.
    fn decode_queuing(&mut self, at_eof: bool) -> Result<Option<Option<Message>>, DecodeError> {
        let decoded = match at_eof {
            true => self.decoder.decode_eof(&mut self.input)?,
            false => self.decoder.decode(&mut self.input)?,
        };
        Ok(decoded.map(|message| match message {
            Message::Kvs(updates) if self.state == State::Syncing => {
                self.delivery().queue(updates);
                None
            }
            other => Some(other),
        }))
    }

    /// As [`decode_queuing`](Self::decode_queuing), with the borrowing API:
    /// a `KVs` message's updates go to `on_event` without being copied.
    fn decode_handing_over(
        &mut self,
        at_eof: bool,
        on_event: &mut dyn FnMut(ClientEventRef<'_>),
    ) -> Result<Option<Option<Message>>, DecodeError> {
        let syncing = self.state == State::Syncing;
        // Borrowed apart from the decoder, which holds the bytes the
        // updates point into while `on_message` runs.
        let delivery = Delivery {
            config: &self.config,
            received: &mut self.received,
            events: &mut self.events,
        };
        let on_message = |message: MessageRef<'_>| match message {
            MessageRef::Kvs(updates) if syncing => {
                delivery.hand_over(updates, on_event);
                None
            }
            other => Some(other.to_message()),
        };
        match at_eof {
            true => self
                .decoder
                .decode_eof_borrowed(&mut self.input, on_message),
            false => self.decoder.decode_borrowed(&mut self.input, on_message),
        }
    }

    /// What delivering a message's updates works on.
    fn delivery(&mut self) -> Delivery<'_> {
        Delivery {
            config: &self.config,
            received: &mut self.received,
            events: &mut self.events,
        }
    }

    fn handle_message(&mut self, now: Now, message: Message) -> Result<(), ProtocolError> {
        match (self.state, message) {
            (State::AwaitingServerHello, Message::ServerHello(hello)) => self.accept_hello(hello),
            (State::AwaitingServerHello, other) => Err(ProtocolError::UnexpectedMessage {
                expected: "waiting for the ServerHello",
                got: other.kind(),
            }),
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
