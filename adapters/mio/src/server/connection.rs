//! One accepted connection in the server's loop: its machine, how it goes
//! away (gracefully or not, never cutting a message short unless the
//! client will not take it within [`LINGER`]), and its report.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use syncproto::Now;
use syncproto::server::{ConnectionReport, ServerConnection, ServerEvent, ServerStats};

use super::log;
use super::{ConnectionId, ServerLoopEvent};
use crate::io::{LINGER, Stream};
use crate::poll_loop::{Connection, Io, Settled};
use syncproto::server::WarningLimiter;

/// The server's event handler.
pub(super) type Handler = Box<dyn FnMut(&ServerLoopEvent) + Send>;

/// What the server's connections share.
pub(super) struct Shared {
    /// Totals (the byte counts are the loop's, added when read).
    pub(super) stats: ServerStats,
    pub(super) handler: Option<Handler>,
    /// Connections whose machine is not closed: what the limit counts.
    pub(super) open: usize,
    /// Keeps a flood of failing connections from flooding the log.
    pub(super) warnings: WarningLimiter,
}

impl Shared {
    pub(super) fn emit(&mut self, event: ServerLoopEvent) {
        if let Some(handler) = self.handler.as_mut() {
            handler(&event);
        }
    }

    /// Counts a connection that ended, logs it and hands its report to the
    /// handler. Call inside the connection's span.
    pub(super) fn closed(&mut self, report: ConnectionReport, now: Instant) {
        self.stats.record_close(&report);
        log::closed(&report, &mut self.warnings, now);
        self.emit(ServerLoopEvent::Closed {
            connection: ConnectionId(report.id),
            report,
        });
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving.
    Open,
    /// [`ServerConnection::stop_sending`] was called: what the machine has
    /// ready (the message in flight) goes out by `finish_by`.
    Stopping { finish_by: Instant },
    /// Everything is written and our side shut: the client's last pongs
    /// are read until it closes its side, or `until`.
    Draining { until: Instant },
    /// The machine closed: the part of a message already being written is
    /// finished by `give_up`.
    Closing { give_up: Instant },
    /// Our side is shut: what the client still sends is read (and
    /// dropped) until it closes its side, or `until`, so that it sees a
    /// clean end of stream rather than a reset.
    Lingering { until: Instant },
    /// Gone.
    Done,
}

/// One accepted connection.
pub(super) struct ServerConn {
    id: u64,
    /// What its log lines are logged in ([`log::connection_span`]).
    span: tracing::Span,
    peer: SocketAddr,
    started: Instant,
    pub(super) machine: ServerConnection,
    phase: Phase,
    /// Counted in [`Shared::open`].
    counted: bool,
    /// The socket failed while the machine was still open.
    failure: Option<io::Error>,
}

impl ServerConn {
    /// A connection counted as open from `now`.
    pub(super) fn new(
        id: u64,
        span: tracing::Span,
        peer: SocketAddr,
        machine: ServerConnection,
        shared: &mut Shared,
        now: Now,
    ) -> ServerConn {
        shared.open += 1;
        ServerConn {
            id,
            span,
            peer,
            started: now.instant,
            machine,
            phase: Phase::Open,
            counted: true,
            failure: None,
        }
    }

    /// Whether it counts against the connection limit (its machine is not
    /// closed, though its socket may still be finishing).
    pub(super) fn is_open(&self) -> bool {
        self.counted
    }

    /// Ends a connection whose socket could not be used at all.
    pub(super) fn failed(mut self, shared: &mut Shared, now: Now, error: io::Error) {
        self.failure = Some(error);
        self.finish(shared, now);
    }

    /// Reports a connection that is gone.
    fn finish(&mut self, shared: &mut Shared, now: Now) {
        self.drain(shared);
        if std::mem::take(&mut self.counted) {
            shared.open -= 1;
        }
        let mut report = self.machine.report(self.id);
        report.peer = Some(self.peer);
        report.duration = now.instant.saturating_duration_since(self.started);
        if let Some(error) = self.failure.take() {
            report.set_io_error(&error);
        }
        let _entered = self.span.enter();
        shared.closed(report, now.instant);
    }

    /// Reports the machine's events.
    fn drain(&mut self, shared: &mut Shared) {
        let connection = ConnectionId(self.id);
        while let Some(event) = self.machine.poll_event() {
            // What the handler logs is logged in the connection's span.
            let _entered = self.span.enter();
            match event {
                ServerEvent::Connected {
                    hello,
                    wire_format,
                    compression,
                } => {
                    shared.stats.record_connected();
                    log::handshake_done(&self.span, &hello, wire_format, compression.as_ref());
                    shared.emit(ServerLoopEvent::Connected {
                        connection,
                        hello,
                        wire_format,
                        compression,
                    });
                }
                ServerEvent::Pong { round_trip } => {
                    shared.stats.record_pong(round_trip);
                    shared.emit(ServerLoopEvent::Pong {
                        connection,
                        round_trip,
                    });
                }
                ServerEvent::SnapshotSent { took } => shared.stats.record_snapshot_sent(took),
                // Seen through `is_closed`; the report says why.
                ServerEvent::Closed(_) => {}
            }
        }
        shared.stats.record_sent(&self.machine.take_send_stats());
        if self.machine.is_closed() && std::mem::take(&mut self.counted) {
            shared.open -= 1;
        }
    }

    /// The next phase, if the connection moves on at `now`.
    fn next_phase(&mut self, stream: &mut Stream, now: Now) -> Option<Phase> {
        let closed = self.machine.is_closed();
        let later = now.instant + LINGER;
        let next = match self.phase {
            Phase::Open if closed => Phase::Closing { give_up: later },
            Phase::Open if self.machine.is_stopping() => Phase::Stopping { finish_by: later },
            Phase::Stopping { finish_by } if closed => Phase::Closing { give_up: finish_by },
            Phase::Stopping { .. } if self.machine.is_flushed() && !stream.is_blocked() => {
                stream.shutdown_write();
                Phase::Draining { until: later }
            }
            Phase::Stopping { finish_by } if now.instant >= finish_by => {
                // A client that will not take the rest cannot hold the
                // shutdown: it sees the message cut short instead.
                self.machine.close();
                Phase::Closing { give_up: finish_by }
            }
            Phase::Draining { .. } if closed => Phase::Closing { give_up: later },
            Phase::Draining { until } if now.instant >= until => {
                // The client did not close in time: give up on it.
                self.machine.close();
                Phase::Done
            }
            Phase::Closing { give_up } if !stream.is_blocked() || now.instant >= give_up => {
                // (Past `give_up` the rest of the message is dropped.)
                stream.shutdown_write();
                match stream.read_open {
                    true => Phase::Lingering { until: later },
                    false => Phase::Done,
                }
            }
            Phase::Lingering { until } if !stream.read_open || now.instant >= until => Phase::Done,
            _ => return None,
        };
        Some(next)
    }
}

impl Connection for ServerConn {
    type Shared = Shared;

    fn input(&mut self, shared: &mut Shared, now: Now, data: &[u8]) {
        // Ignored once the machine is closed: a lingering connection only
        // empties its socket.
        self.machine.handle_input(now, data);
        // Events are reported after every chunk so that they never pile
        // up; output waits for the write (the machine holds at most a
        // message or two of replies).
        self.drain(shared);
    }

    fn eof(&mut self, shared: &mut Shared, now: Now) {
        self.machine.handle_eof(now);
        self.drain(shared);
    }

    fn transmit(&mut self, now: Now) -> Option<Bytes> {
        self.machine.poll_transmit(now.instant)
    }

    fn settle(
        &mut self,
        shared: &mut Shared,
        now: Now,
        io: &mut Io<'_>,
        result: io::Result<()>,
    ) -> Settled {
        // Taking output can end the machine too (a client cut off for
        // falling behind), so drain after writing as well.
        self.drain(shared);
        if let Err(error) = result {
            if !self.machine.is_closed() {
                self.failure = Some(error);
            }
            self.phase = Phase::Done;
        }
        if let Some(stream) = io.stream() {
            while let Some(next) = self.next_phase(stream, now) {
                self.phase = next;
                self.drain(shared);
            }
        }
        if self.phase != Phase::Done {
            return Settled::Keep;
        }
        self.finish(shared, now);
        Settled::Remove
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open => self.machine.poll_timeout(),
            Phase::Stopping { finish_by } => Some(finish_by),
            Phase::Draining { until } | Phase::Lingering { until } => Some(until),
            Phase::Closing { give_up } => Some(give_up),
            Phase::Done => None,
        }
    }

    fn fire(&mut self, _shared: &mut Shared, now: Now, _io: &mut Io<'_>) {
        // The other phases' deadlines are the driver's own, checked when
        // the turn settles.
        if self.phase == Phase::Open
            && self
                .machine
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now.instant)
        {
            self.machine.handle_timeout(now);
        }
    }
}
