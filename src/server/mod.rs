//! The server side (upstream: Typha's per-client connection) as a Sans-IO
//! state machine.

mod config;
mod feed;
mod handshake;
mod limit;
mod output;
mod pinger;
mod report;
mod send_queue;
mod sent;
mod warnings;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

pub use limit::ConnectionLimit;
pub use report::{CloseReasons, ConnectionReport, ServerStats};
pub use sent::SendStats;
pub use warnings::{Admit, WARNING_WINDOW, WARNINGS_PER_WINDOW, WarningLimiter};

pub use config::{
    DEFAULT_ACK_TIMEOUT, DEFAULT_CHECKSUM_INTERVAL, DEFAULT_COMPRESSED_SNAPSHOT_BATCH_SIZE,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_PING_INTERVAL,
    DEFAULT_PONG_TIMEOUT, DEFAULT_SNAPSHOT_BATCH_SIZE, ServerConfig,
};

use self::pinger::Pinger;
use self::send_queue::SendQueue;
use crate::close::{CloseReason, TimeoutKind};
use crate::codec::{Direction, WireFormat};
use crate::codec::{StreamDecoder, StreamEncoder};
use crate::error::UsageError;
use crate::fanout::{Output, Subscription};
use crate::message::{ClientHello, CompressionAlgorithm, Message, Ping};
use crate::time::Now;

/// The restart that switches a client to the compressed snapshot (upstream's
/// wording).
pub const START_COMPRESSION_MESSAGE: &str = "enable compression: snappy;send binary snapshot";
/// The restart that ends the compressed snapshot (upstream's wording).
pub const END_OF_SNAPSHOT_MESSAGE: &str = "End of compressed snapshot.";

/// What a [`ServerConnection`] reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client's hello was accepted and answered: give the connection
    /// its snapshot (for `hello.syncer_type`) with
    /// [`ServerConnection::send_snapshot`].
    Connected {
        /// The client's hello.
        hello: ClientHello,
        /// The wire format the client speaks.
        wire_format: WireFormat,
        /// The compression negotiated for the snapshot and what follows it.
        compression: Option<CompressionAlgorithm>,
    },
    /// A pong arrived (any pong keeps the connection alive, as upstream).
    Pong {
        /// Time from sending the ping it answers to receiving it; `None`
        /// when it echoes no ping still waiting for an answer.
        round_trip: Option<Duration>,
    },
    /// The whole snapshot has been handed out (and, compressed, the restart
    /// that ends it): `took` from the handshake's end to here (upstream's
    /// `typha_client_snapshot_send_secs`).
    SnapshotSent {
        /// How long handing it out took.
        took: Duration,
    },
    /// The connection is over; this is the last event.
    Closed(CloseReason),
}

/// Which decoder restart the server is waiting to have acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckPhase {
    /// The switch to the compressed snapshot stream.
    StartCompression,
    /// The end of the compressed snapshot.
    EndOfSnapshot,
}

/// Where a connection's data comes from.
#[derive(Debug)]
enum Feed {
    /// The caller hands it a snapshot and changes.
    Manual(Box<SendQueue>),
    /// It follows a shared snapshot cache.
    Cache(Box<Subscription>),
}

/// One step of output production.
enum Step {
    Message(Message),
    Output(Output),
    EndOfSnapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    /// A decoder restart was sent; nothing more is sent until the client
    /// acknowledges it, so that it never reads past the restart point.
    AwaitingAck {
        phase: AckPhase,
        deadline: Instant,
    },
    Syncing,
    Closed,
}

/// The server end of one client connection.
///
/// Drive it like this, in any runtime:
///
/// 1. [`new`](Self::new) when a client connects.
/// 2. Whenever bytes arrive, [`handle_input`](Self::handle_input); when the
///    client closes its side, [`handle_eof`](Self::handle_eof); when the
///    deadline from [`poll_timeout`](Self::poll_timeout) passes,
///    [`handle_timeout`](Self::handle_timeout).
/// 3. After each call, drain [`poll_event`](Self::poll_event); on
///    [`ServerEvent::Connected`], give it the snapshot
///    ([`send_snapshot`](Self::send_snapshot)), then live changes as they
///    happen ([`send_updates`](Self::send_updates),
///    [`send_status`](Self::send_status)).
/// 4. Whenever the socket can take more, write what
///    [`poll_transmit`](Self::poll_transmit) returns until it returns `None`,
///    and re-read [`poll_timeout`](Self::poll_timeout).
///
/// The snapshot is pulled from its iterator one batch at a time as the
/// client reads, so a connection holds at most one batch of it. Live changes
/// wait in a bounded queue: a client that stops reading is disconnected
/// ([`CloseReason::SlowReader`]) rather than buffered without limit. When
/// the client supports it, the snapshot and the stream after it are
/// compressed, with upstream's two acknowledged decoder restarts. Once it
/// has emitted [`ServerEvent::Closed`] the machine emits and transmits
/// nothing more.
#[derive(Debug)]
pub struct ServerConnection {
    config: ServerConfig,
    state: State,
    wire_format: Option<WireFormat>,
    decoder: Option<StreamDecoder>,
    encoder: Option<StreamEncoder>,
    compression: Option<CompressionAlgorithm>,
    input: BytesMut,
    ready: VecDeque<Bytes>,
    ready_bytes: usize,
    scratch: BytesMut,
    feed: Feed,
    /// Whether the stream after the snapshot is compressed (set at the
    /// second acknowledged restart).
    stream_compressed: bool,
    pinger: Pinger,
    handshake_deadline: Instant,
    events: VecDeque<ServerEvent>,
    client_hello: Option<ClientHello>,
    /// The client did not say it supports modern policy keys (allowed only
    /// when the config does not require them).
    legacy_client: bool,
    /// [`stop_sending`](Self::stop_sending) was called: hand out what is
    /// ready, produce nothing more, wait for the client to close.
    draining: bool,
    /// Bytes handed out by `poll_transmit`.
    bytes_sent: u64,
    /// What was handed out, in all, and since the driver last took it.
    sent: SendStats,
    unreported: SendStats,
    /// When the handshake completed (for the snapshot's send time).
    connected_at: Option<Instant>,
    /// Whether checksums were negotiated (both sides said so).
    checksums: bool,
    close_reason: Option<CloseReason>,
}

/// The feature a client without modern policy key support lacks, as close
/// reasons name it.
const MODERN_POLICY_KEYS: &str = "modern policy keys";

impl ServerConnection {
    /// Starts serving a client that just connected at `now`: arms the
    /// handshake timeout. Fails if the configuration is unusable.
    pub fn new(config: ServerConfig, now: Now) -> Result<ServerConnection, UsageError> {
        config.validate()?;
        let pinger = Pinger::new(
            config.ping_interval,
            config.ping_jitter,
            config.pong_timeout,
            config.rng_seed,
        );
        // Leave room under the client's limit for framing and the fields
        // the estimate does not count.
        let queue = SendQueue::new(
            config.snapshot_batch_size,
            config.max_server_message_len / 2,
        );
        Ok(ServerConnection {
            state: State::AwaitingHello,
            wire_format: None,
            decoder: None,
            encoder: None,
            compression: None,
            input: BytesMut::new(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            scratch: BytesMut::new(),
            feed: Feed::Manual(Box::new(queue)),
            stream_compressed: false,
            pinger,
            handshake_deadline: now.instant + config.handshake_timeout,
            events: VecDeque::new(),
            client_hello: None,
            legacy_client: false,
            draining: false,
            bytes_sent: 0,
            sent: SendStats::default(),
            unreported: SendStats::default(),
            connected_at: None,
            checksums: false,
            close_reason: None,
            config,
        })
    }

    /// Feeds bytes received from the client, split anywhere. The first
    /// bytes decide the wire format when the config leaves it open. Ignored
    /// once closed.
    pub fn handle_input(&mut self, now: Now, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.input.extend_from_slice(data);
        self.process_input(now, false);
    }

    /// Tells the machine the client closed its side of the connection. After
    /// [`stop_sending`](Self::stop_sending) that is the expected end, and
    /// the reason is [`CloseReason::Local`]; otherwise
    /// [`CloseReason::PeerClosed`].
    pub fn handle_eof(&mut self, now: Now) {
        if self.state == State::Closed {
            return;
        }
        self.process_input(now, true);
        if self.state != State::Closed {
            let reason = match self.draining {
                true => CloseReason::Local,
                false => CloseReason::PeerClosed,
            };
            self.finish(reason);
        }
    }

    /// Fires expired deadlines (handshake, acknowledgement, pong) and sends
    /// a ping when one is due. Call when the instant from
    /// [`poll_timeout`](Self::poll_timeout) has passed; calling early, late
    /// or repeatedly is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.draining {
            return;
        }
        if let Some(reason) = self.expired(now.instant) {
            self.finish(reason);
            return;
        }
        if self.state == State::Syncing && self.pinger.ping_due(now.instant) {
            self.pinger.ping_sent(now.instant, now.wall);
            // Nothing follows here, so a ping that closed the connection
            // needs no further care.
            self.encode(&Message::Ping(Ping {
                timestamp: now.wall,
            }));
        }
    }

    /// Which deadline, if any, has passed at `now`.
    fn expired(&self, now: Instant) -> Option<CloseReason> {
        let timed_out = |kind, after| Some(CloseReason::TimedOut { kind, after });
        match self.state {
            State::Closed => None,
            State::AwaitingHello if now >= self.handshake_deadline => {
                timed_out(TimeoutKind::Handshake, self.config.handshake_timeout)
            }
            State::AwaitingHello => None,
            _ if self.pinger.pong_deadline().is_some_and(|due| now >= due) => {
                timed_out(TimeoutKind::Pong, self.config.pong_timeout)
            }
            State::AwaitingAck { deadline, .. } if now >= deadline => {
                timed_out(TimeoutKind::Ack, self.config.ack_timeout)
            }
            _ if let Feed::Cache(subscription) = &self.feed
                && subscription.fallen_behind(now).is_some() =>
            {
                Some(CloseReason::FellBehind {
                    limit: subscription.max_fall_behind(),
                })
            }
            State::AwaitingAck { .. } | State::Syncing => None,
        }
    }

    /// The next deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called, `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.draining {
            // The driver bounds the wait for the client's close itself.
            return None;
        }
        match self.state {
            State::AwaitingHello => Some(self.handshake_deadline),
            State::AwaitingAck { deadline, .. } => Some(
                self.pinger
                    .pong_deadline()
                    .map_or(deadline, |pong| pong.min(deadline)),
            ),
            State::Syncing => {
                let fall_behind = match &self.feed {
                    Feed::Cache(subscription) => subscription.fall_behind_deadline(),
                    Feed::Manual(_) => None,
                };
                match (self.pinger.deadline(), fall_behind) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closed => None,
        }
    }

    /// The next event for the application; drain after every call.
    /// [`ServerEvent::Closed`] is always the last.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next bytes to write to the client, `None` when there is nothing
    /// to send right now. Call whenever the socket can take more: each call
    /// hands out at most one message, pulling the next snapshot batch or
    /// queued change only when the previous one has been taken.
    ///
    /// Producing output can change the machine: the end of the snapshot
    /// starts the pings and (compressed) arms the acknowledgement deadline,
    /// both counted from `now`. So after transmitting, too, drain
    /// [`poll_event`](Self::poll_event) and re-read
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        while self.ready.is_empty() && self.state == State::Syncing && !self.draining {
            let Some(step) = self.next_step(now) else {
                break;
            };
            match step {
                Step::Message(Message::Kvs(updates)) if self.would_drop_any(&updates) => {
                    self.refuse_legacy_client();
                }
                // A failed encode closes the connection, which ends the loop.
                Step::Message(message) => {
                    self.encode(&message);
                }
                Step::Output(output) => self.push_output(output),
                Step::EndOfSnapshot => self.end_snapshot(now),
            }
        }
        let bytes = self.ready.pop_front()?;
        self.ready_bytes -= bytes.len();
        self.bytes_sent += bytes.len() as u64;
        Some(bytes)
    }

    /// Ends the stream from this side gracefully, as a server shutting
    /// down does: nothing more is produced (no snapshot, changes, statuses
    /// or pings), but what [`poll_transmit`](Self::poll_transmit) has
    /// ready is still handed out, so the client never sees a message cut
    /// short. Once [`is_flushed`](Self::is_flushed), the driver half-closes
    /// the socket and keeps reading: the client's last pongs are still
    /// taken (and counted) until it closes its side,
    /// [`handle_eof`](Self::handle_eof), which ends the connection with
    /// [`CloseReason::Local`]. Deadlines stop: the driver bounds that wait
    /// itself and then calls [`close`](Self::close).
    ///
    /// Before the handshake is done there is nothing to finish: it closes
    /// at once. Harmless when already closed or called twice.
    pub fn stop_sending(&mut self) {
        match self.state {
            State::Closed => {}
            State::Syncing => self.draining = true,
            State::AwaitingHello | State::AwaitingAck { .. } => self.finish(CloseReason::Local),
        }
    }

    /// Whether [`stop_sending`](Self::stop_sending) was called (and the
    /// connection is waiting for the client to close).
    pub fn is_stopping(&self) -> bool {
        self.draining && self.state != State::Closed
    }

    /// Closes the connection from this side: queued output is discarded and
    /// a final [`ServerEvent::Closed`]`(`[`CloseReason::Local`]`)` is queued.
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

    /// The client's hello, once it arrived (accepted or refused).
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.client_hello.as_ref()
    }

    /// Whether the handshake completed ([`ServerEvent::Connected`] was
    /// emitted).
    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    /// The wire format in use, once known.
    pub fn wire_format(&self) -> Option<WireFormat> {
        self.wire_format
    }

    /// The compression negotiated with the client, once the handshake is
    /// done.
    pub fn compression(&self) -> Option<&CompressionAlgorithm> {
        self.compression.as_ref()
    }

    /// How many pings are waiting for their pong.
    pub fn unanswered_pings(&self) -> usize {
        self.pinger.unanswered()
    }

    /// How many pings have been sent. Pings start once the snapshot is out.
    pub fn pings_sent(&self) -> u64 {
        self.pinger.pings_sent()
    }

    /// How many pongs have arrived (answering a ping or not).
    pub fn pongs_received(&self) -> u64 {
        self.pinger.pongs_received()
    }

    /// How many bytes [`poll_transmit`](Self::poll_transmit) has handed out.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// What [`poll_transmit`](Self::poll_transmit) has handed out since the
    /// last call (messages, updates per `KVs` message, checksums): call
    /// after transmitting and add it into the driver's totals. Only what
    /// went out in whole messages counts, and each message once.
    pub fn take_send_stats(&mut self) -> SendStats {
        std::mem::take(&mut self.unreported)
    }

    /// Everything handed out so far (see
    /// [`take_send_stats`](Self::take_send_stats)).
    pub fn send_stats(&self) -> &SendStats {
        &self.sent
    }

    /// Picks the wire format from the first byte (or the config) and builds
    /// the codecs; `false` until a byte has arrived.
    fn ensure_codecs(&mut self) -> bool {
        if self.decoder.is_some() {
            return true;
        }
        let Some(format) = self
            .config
            .wire_format
            .or_else(|| WireFormat::detect(&self.input))
        else {
            return false;
        };
        self.wire_format = Some(format);
        self.decoder = Some(StreamDecoder::new(
            format,
            self.config.max_client_message_len,
            Some(Direction::ClientToServer),
        ));
        self.encoder = Some(StreamEncoder::new(
            format,
            self.config.max_server_message_len,
        ));
        true
    }

    fn process_input(&mut self, now: Now, at_eof: bool) {
        if !self.ensure_codecs() {
            return;
        }
        while self.state != State::Closed {
            let Some(decoder) = self.decoder.as_mut() else {
                return;
            };
            let decoded = if at_eof {
                decoder.decode_eof(&mut self.input)
            } else {
                decoder.decode(&mut self.input)
            };
            match decoded {
                Ok(Some(message)) => {
                    if let Err(error) = self.handle_message(now, message) {
                        self.finish(CloseReason::Protocol(error));
                    }
                }
                Ok(None) => break,
                Err(error) => self.finish(CloseReason::Protocol(error.into())),
            }
        }
    }

    /// Enters the closed state: one final event, no more output.
    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.input = BytesMut::new();
        self.ready.clear();
        self.ready_bytes = 0;
        // Drop the snapshot source or subscription: a closed connection
        // holds nothing back in the cache's log.
        self.feed = Feed::Manual(Box::new(SendQueue::new(1, 1)));
        self.close_reason = Some(reason.clone());
        self.events.push_back(ServerEvent::Closed(reason));
    }
}
