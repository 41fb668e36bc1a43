//! One client in the [`Clients`](super::Clients) loop: its current
//! connection's machine, its state, and (when it reconnects) where and how
//! it connects again.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use mio::net::TcpStream;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::message::SyncStatus;
use syncproto::{CloseReason, Now};

use super::ClientId;
use super::state::{ClientState, ClientsStats};
use crate::Disconnect;
use crate::io::Stream;
use crate::poll_loop::{Connection, Io, Settled};

/// The loop's event handler.
pub(super) type Handler = Box<dyn FnMut(ClientId, &ClientEvent) + Send>;

/// What the clients of one loop share.
pub(super) struct Shared {
    /// Counters (the byte counts are the loop's, added when read).
    pub(super) stats: ClientsStats,
    pub(super) handler: Option<Handler>,
}

/// Where a reconnecting client connects, and when next.
pub(super) struct Reconnect {
    pub(super) addr: SocketAddr,
    pub(super) config: ClientConfig,
    /// Between connections: when to try again.
    pub(super) retry_at: Option<Instant>,
}

/// One client: at most one connection at a time.
pub(super) struct ClientSlot {
    id: ClientId,
    pub(super) state: ClientState,
    machine: Option<ClientConnection>,
    /// Until the non-blocking connect completes, nothing is read or
    /// written.
    connecting: bool,
    /// Set for a reconnecting client until it is closed.
    reconnect: Option<Reconnect>,
}

impl ClientSlot {
    /// A client whose connection (its socket is the loop's) starts with
    /// `machine`.
    pub(super) fn connecting(id: ClientId, machine: ClientConnection) -> ClientSlot {
        ClientSlot {
            id,
            state: ClientState::default(),
            machine: Some(machine),
            connecting: true,
            reconnect: None,
        }
    }

    /// A reconnecting client, its first attempt due at once (its state
    /// holds the session).
    pub(super) fn reconnecting(id: ClientId, state: ClientState, reconnect: Reconnect) -> Self {
        ClientSlot {
            id,
            state,
            machine: None,
            connecting: false,
            reconnect: Some(reconnect),
        }
    }

    /// Counts a connection that started; reports its first events.
    pub(super) fn started(&mut self, shared: &mut Shared) {
        shared.stats.started += 1;
        shared.stats.open += 1;
        self.drain(shared);
    }

    /// Closes the current connection from this side; a reconnecting client
    /// connects again after its backoff.
    pub(super) fn disconnect(&mut self) {
        if let Some(machine) = self.machine.as_mut() {
            machine.close();
        }
    }

    /// Closes the client for good (a reconnecting one stops reconnecting).
    pub(super) fn close(&mut self) {
        self.reconnect = None;
        match self.machine.as_mut() {
            Some(machine) => machine.close(),
            None if self.state.closed.is_none() => {
                self.state.closed = Some(Disconnect::Closed(CloseReason::Local));
            }
            None => {}
        }
    }

    /// Reports the machine's events: to the handler, to the state, and to
    /// the session of a reconnecting client (every one, the final `Closed`
    /// included).
    fn drain(&mut self, shared: &mut Shared) {
        let Some(machine) = self.machine.as_mut() else {
            return;
        };
        while let Some(event) = machine.poll_event() {
            if let Some(handler) = shared.handler.as_mut() {
                handler(self.id, &event);
            }
            self.state.record(&event, &mut shared.stats);
            if self.reconnect.is_some()
                && let Some(session) = self.state.session.as_mut()
            {
                session.handle_event(event);
                // Its checksum policy dropping the connection: the
                // machine's `Closed` follows in this loop.
                if session.take_forced_resync() {
                    machine.close();
                }
            }
        }
    }

    /// A reconnecting client's next attempt: a new socket and machine.
    fn attempt(&mut self, shared: &mut Shared, now: Now, io: &mut Io<'_>) {
        let (Some(reconnect), Some(session)) =
            (self.reconnect.as_mut(), self.state.session.as_mut())
        else {
            return;
        };
        reconnect.retry_at = None;
        session.connection_started();
        let opened = TcpStream::connect(reconnect.addr).and_then(|socket| {
            // Small messages (pongs) must not wait for Nagle.
            let _ = socket.set_nodelay(true);
            io.open(socket)
        });
        let machine = opened.and_then(|()| {
            ClientConnection::new(reconnect.config.clone(), now)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))
        });
        match machine {
            Ok(machine) => {
                self.machine = Some(machine);
                self.connecting = true;
                self.started(shared);
            }
            Err(error) => {
                // No connection to count: the session hears of it and the
                // next attempt waits out the backoff.
                io.close(|| None);
                session.connection_lost(error.to_string());
                reconnect.retry_at = Some(now.instant + session.retry_delay());
            }
        }
    }

    /// The current connection ended (`error`: its socket failed first).
    fn ended(&mut self, shared: &mut Shared, now: Now, io: &mut Io<'_>, error: Option<io::Error>) {
        let Some(mut machine) = self.machine.take() else {
            return;
        };
        // After a clean end the machine still owes what it queued (a pong
        // to a last ping): the server may still be reading.
        io.close(|| machine.poll_transmit());
        self.connecting = false;
        let reason = match error {
            Some(error) => Disconnect::Io(error),
            None => Disconnect::Closed(
                machine
                    .close_reason()
                    .cloned()
                    .unwrap_or(CloseReason::Local),
            ),
        };
        let stats = &mut shared.stats;
        stats.open -= 1;
        stats.closed += 1;
        if reason.is_error() {
            stats.closed_with_error += 1;
        }
        match (self.reconnect.as_mut(), self.state.session.as_mut()) {
            (Some(reconnect), Some(session)) => {
                // A `Closed` event has reached the session already; a
                // socket error has not.
                if let Disconnect::Io(error) = &reason {
                    session.connection_lost(error.to_string());
                }
                reconnect.retry_at = Some(now.instant + session.retry_delay());
                self.state.set_status(None, stats);
                self.state.server_hello = None;
            }
            _ => {
                if self.state.status == Some(SyncStatus::InSync) {
                    stats.in_sync -= 1;
                }
                self.state.closed = Some(reason);
            }
        }
    }
}

impl Connection for ClientSlot {
    type Shared = Shared;

    fn ready(&mut self, stream: &Stream) -> io::Result<bool> {
        if self.connecting {
            self.connecting = !connect_finished(&stream.socket)?;
        }
        Ok(!self.connecting)
    }

    fn input(&mut self, shared: &mut Shared, now: Now, data: &[u8]) {
        if let Some(machine) = self.machine.as_mut() {
            machine.handle_input(now, data);
            // Applied after every chunk: events never pile up.
            self.drain(shared);
        }
    }

    fn eof(&mut self, shared: &mut Shared, now: Now) {
        if let Some(machine) = self.machine.as_mut() {
            machine.handle_eof(now);
            self.drain(shared);
        }
    }

    fn transmit(&mut self, _now: Now) -> Option<Bytes> {
        self.machine.as_mut()?.poll_transmit()
    }

    fn settle(
        &mut self,
        shared: &mut Shared,
        now: Now,
        io: &mut Io<'_>,
        result: io::Result<()>,
    ) -> Settled {
        // Also reports a close from a timeout or a local close, which can
        // happen while still connecting.
        self.drain(shared);
        let closed = self
            .machine
            .as_ref()
            .is_some_and(ClientConnection::is_closed);
        match result {
            _ if closed => self.ended(shared, now, io, None),
            Err(error) => self.ended(shared, now, io, Some(error)),
            Ok(()) => {}
        }
        Settled::Keep
    }

    fn deadline(&self) -> Option<Instant> {
        match (&self.machine, &self.reconnect) {
            (Some(machine), _) => machine.poll_timeout(),
            (None, Some(reconnect)) => reconnect.retry_at,
            (None, None) => None,
        }
    }

    fn fire(&mut self, shared: &mut Shared, now: Now, io: &mut Io<'_>) {
        match self.machine.as_mut() {
            // A close it causes is reported when the turn settles.
            Some(machine) => machine.handle_timeout(now),
            None => self.attempt(shared, now, io),
        }
    }
}

/// Whether a non-blocking connect has completed (mio's recipe: a pending
/// socket error means it failed; a peer address means it succeeded).
fn connect_finished(socket: &TcpStream) -> io::Result<bool> {
    if let Some(error) = socket.take_error()? {
        return Err(error);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(error) => Err(error),
    }
}
