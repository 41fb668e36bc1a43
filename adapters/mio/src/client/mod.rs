//! The poll-loop client side: many client connections in one loop, each
//! keeping the datastore view its updates build, and reconnecting clients
//! that keep theirs across connections.

mod single;
mod slot;
mod state;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::session::{Backoff, ChecksumPolicy, Session, SessionEvent};

pub use self::single::{Client, ReconnectingClient};
pub use self::state::{ClientState, ClientsStats};

use self::slot::{ClientSlot, Reconnect, Shared};
use crate::poll_loop::{Key, PollLoop, now};

/// Identifies one client of a [`Clients`] loop. Stays valid until
/// [`Clients::remove`]; an id of a removed client is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Key);

/// Many client connections driven by one poll loop: for agents that hold
/// several connections, load generators and tests.
///
/// [`connect`](Self::connect) starts a connection;
/// [`connect_reconnecting`](Self::connect_reconnecting) a client that
/// reconnects whenever its connection is lost.
/// [`run_once`](Self::run_once) in a loop moves their bytes. Each client's
/// [`ClientState`] keeps what it received, also after it closed, until
/// [`remove`](Self::remove).
pub struct Clients {
    core: PollLoop<ClientSlot>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("clients", &self.core.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// An empty loop. Fails only if the poll instance cannot be created.
    pub fn new() -> io::Result<Clients> {
        let shared = Shared {
            stats: ClientsStats::default(),
            handler: None,
        };
        Ok(Clients {
            core: PollLoop::new(0, shared)?,
        })
    }

    /// Starts connecting to `addr` with a client configured by `config`;
    /// the hello goes out once the connection is established (during
    /// [`run_once`](Self::run_once)). Fails if the socket cannot be created
    /// (out of file descriptors or local ports) or `config` is unusable
    /// (`InvalidInput`); a refused connection is reported later, as the
    /// client's [`ClientState::closed`].
    pub fn connect(&mut self, addr: SocketAddr, config: ClientConfig) -> io::Result<ClientId> {
        let now = now();
        let machine = ClientConnection::new(config, now)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let socket = TcpStream::connect(addr)?;
        let _ = socket.set_nodelay(true);
        let key = self
            .core
            .insert(Some(socket), |key| {
                ClientSlot::connecting(ClientId(key), machine)
            })
            .map_err(|(_, error)| error)?;
        // The machine's first event (ResyncInProgress) goes to the state
        // and the handler now.
        self.core
            .touch(key, now, |slot, shared| slot.started(shared));
        Ok(ClientId(key))
    }

    /// Adds a client that stays connected to `addr`, hiding reconnects from
    /// its application as the core's [`Session`] does: whenever its
    /// connection is lost (refused, reset, closed by the server, timed
    /// out, [`disconnect`](Self::disconnect)ed), it connects again after a
    /// delay drawn from `backoff` (its jitter seeded with `seed`), waiting
    /// on the loop's timers, never blocking. After a new connection's
    /// snapshot the keys that did not come back are reported deleted, and
    /// nothing that changes nothing is reported. Take its events with
    /// [`poll_session_event`](Self::poll_session_event); its state's
    /// [`session`](ClientState::session) holds the datastore.
    ///
    /// The first attempt is made by the next [`run_once`](Self::run_once).
    /// Fails only if `config` is unusable (`InvalidInput`).
    pub fn connect_reconnecting(
        &mut self,
        addr: SocketAddr,
        config: ClientConfig,
        backoff: Backoff,
        seed: u64,
    ) -> io::Result<ClientId> {
        let now = now();
        ClientConnection::new(config.clone(), now)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let state = ClientState {
            session: Some(Session::new(backoff, seed)),
            ..ClientState::default()
        };
        let reconnect = Reconnect {
            addr,
            config,
            retry_at: Some(now.instant),
        };
        let make = |key| ClientSlot::reconnecting(ClientId(key), state, reconnect);
        let key = self.core.insert(None, make).map_err(|(_, error)| error)?;
        Ok(ClientId(key))
    }

    /// Sets the function called with every event of every client's
    /// connection, before the event is applied to the client's state (so
    /// it sees updates as they arrive). It runs inside
    /// [`run_once`](Self::run_once), [`connect`](Self::connect) and
    /// [`close`](Self::close). Replaces any earlier handler.
    pub fn set_event_handler(
        &mut self,
        handler: impl FnMut(ClientId, &ClientEvent) + Send + 'static,
    ) {
        self.core.shared.handler = Some(Box::new(handler));
    }

    /// What client `id` has received, `None` if it was removed.
    pub fn get(&self, id: ClientId) -> Option<&ClientState> {
        self.core.get(id.0).map(|slot| &slot.state)
    }

    /// The next event of reconnecting client `id`'s session (changes,
    /// statuses, reconnects), `None` when there is none now (or `id` is
    /// not a reconnecting client).
    pub fn poll_session_event(&mut self, id: ClientId) -> Option<SessionEvent> {
        self.core
            .get_mut(id.0)?
            .state
            .session
            .as_mut()?
            .poll_event()
    }

    /// Sets what a snapshot checksum mismatch does for reconnecting client
    /// `id` (see [`Session::set_checksum_policy`]); `false` if `id` is not
    /// a reconnecting client.
    pub fn set_checksum_policy(&mut self, id: ClientId, policy: ChecksumPolicy) -> bool {
        let session = self
            .core
            .get_mut(id.0)
            .and_then(|slot| slot.state.session.as_mut());
        match session {
            Some(session) => {
                session.set_checksum_policy(policy);
                true
            }
            None => false,
        }
    }

    /// Every client and its state.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &ClientState)> {
        self.core
            .iter()
            .map(|(key, slot)| (ClientId(key), &slot.state))
    }

    /// How many clients are held (open or closed, until removed).
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no clients are held.
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// Counters over all clients, including how many are open and in sync
    /// right now (kept up to date as events arrive, so cheap to call).
    pub fn stats(&self) -> ClientsStats {
        let mut stats = self.core.shared.stats;
        (stats.bytes_read, stats.bytes_written) = self.core.bytes();
        stats
    }

    /// Closes client `id`'s current connection from this side. A
    /// reconnecting client connects again after its backoff; any other
    /// client is closed, as by [`close`](Self::close). Harmless if there
    /// is no connection.
    pub fn disconnect(&mut self, id: ClientId) {
        self.core.touch(id.0, now(), |slot, _| slot.disconnect());
    }

    /// Closes client `id` from this side, for good (its state records
    /// [`CloseReason::Local`](syncproto::CloseReason::Local); a
    /// reconnecting client stops reconnecting). Harmless if it is already
    /// closed or gone.
    pub fn close(&mut self, id: ClientId) {
        self.core.touch(id.0, now(), |slot, _| slot.close());
    }

    /// Forgets client `id`, closing its connection first if it is open,
    /// and returns its state.
    pub fn remove(&mut self, id: ClientId) -> Option<ClientState> {
        self.close(id);
        self.core.remove(id.0).map(|slot| slot.state)
    }

    /// Runs one iteration of the loop: waits until a socket is ready, a
    /// client's deadline (or reconnect) is due or `timeout` passes (`None`:
    /// no limit besides those), then does the work that is ready. Call it
    /// in a loop. Errors come only from the poll itself; a failing
    /// connection is closed and recorded in its state instead.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let Some(now) = self.core.poll(timeout, None, false)? else {
            return Ok(());
        };
        self.core.dispatch(now, |_| {});
        self.core.finish_iteration(now);
        Ok(())
    }
}
