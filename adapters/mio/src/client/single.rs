//! One client in a loop of its own: [`Client`] (one connection) and
//! [`ReconnectingClient`].

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus};
use syncproto::session::{Backoff, ChecksumPolicy, SessionEvent};

use super::state::NO_STATE;
use super::{ClientId, ClientState, Clients, ClientsStats};

/// One client connection in its own poll loop: the simple case of
/// [`Clients`].
#[derive(Debug)]
pub struct Client {
    clients: Clients,
    id: ClientId,
}

impl Client {
    /// Starts connecting to `addr`; see [`Clients::connect`].
    pub fn connect(addr: SocketAddr, config: ClientConfig) -> io::Result<Client> {
        let mut clients = Clients::new()?;
        let id = clients.connect(addr, config)?;
        Ok(Client { clients, id })
    }

    /// Runs one iteration of the loop; see [`Clients::run_once`].
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.clients.run_once(timeout)
    }

    /// What the client has received so far, and how it ended.
    pub fn state(&self) -> &ClientState {
        self.clients.get(self.id).unwrap_or(&NO_STATE)
    }

    /// Sets the function called with every event as it arrives; see
    /// [`Clients::set_event_handler`].
    pub fn set_event_handler(&mut self, mut handler: impl FnMut(&ClientEvent) + Send + 'static) {
        self.clients
            .set_event_handler(move |_, event| handler(event));
    }

    /// Closes the connection from this side; see [`Clients::close`].
    pub fn close(&mut self) {
        self.clients.close(self.id);
    }

    /// Byte counters; see [`Clients::stats`].
    pub fn stats(&self) -> ClientsStats {
        self.clients.stats()
    }
}

/// A client that stays connected, in its own poll loop: the mio
/// counterpart of the tokio driver's `ReconnectingClient`. See
/// [`Clients::connect_reconnecting`]: the core's
/// [`Session`](syncproto::session::Session) over successive connections,
/// the retry delay waited on the loop's timer.
///
/// ```no_run
/// # use std::time::Duration;
/// # use syncproto::client::ClientConfig;
/// # use syncproto::session::Backoff;
/// # use syncproto_mio::ReconnectingClient;
/// let addr = "127.0.0.1:5473".parse()?;
/// let mut client = ReconnectingClient::connect(addr, ClientConfig::default(), Backoff::default(), 1)?;
/// loop {
///     client.run_once(Some(Duration::from_millis(100)))?;
///     while let Some(event) = client.poll_event() {
///         println!("{event:?}");
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReconnectingClient {
    clients: Clients,
    id: ClientId,
}

/// The view of a client without a session (never seen in practice).
static NO_VIEW: BTreeMap<ByteString, SerializedUpdate> = BTreeMap::new();

impl ReconnectingClient {
    /// A client of `addr`; the first attempt is made by the first
    /// [`run_once`](Self::run_once). Fails if the poll instance cannot be
    /// created or `config` is unusable (`InvalidInput`).
    pub fn connect(
        addr: SocketAddr,
        config: ClientConfig,
        backoff: Backoff,
        seed: u64,
    ) -> io::Result<ReconnectingClient> {
        let mut clients = Clients::new()?;
        let id = clients.connect_reconnecting(addr, config, backoff, seed)?;
        Ok(ReconnectingClient { clients, id })
    }

    /// Runs one iteration of the loop (connecting again when the backoff
    /// has passed); see [`Clients::run_once`].
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.clients.run_once(timeout)
    }

    /// The next event for the application, `None` when there is none now:
    /// changes (none of them a no-op), statuses, dropped keys, and
    /// reconnects (for logs).
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.clients.poll_session_event(self.id)
    }

    /// Sets what a snapshot checksum mismatch does (by default, upstream's:
    /// resync after three in a row, at most once per ten minutes).
    pub fn set_checksum_policy(&mut self, policy: ChecksumPolicy) {
        self.clients.set_checksum_policy(self.id, policy);
    }

    /// The datastore as the application has been told it.
    pub fn view(&self) -> &BTreeMap<ByteString, SerializedUpdate> {
        self.state()
            .session()
            .map_or(&NO_VIEW, |session| session.view())
    }

    /// The last status the application was told.
    pub fn status(&self) -> Option<SyncStatus> {
        self.state().session().and_then(|session| session.status())
    }

    /// Whether a connection is up and past its handshake.
    pub fn is_connected(&self) -> bool {
        self.state()
            .session()
            .is_some_and(|session| session.is_connected())
    }

    /// The current connection's state (its status, hello, counters).
    pub fn state(&self) -> &ClientState {
        self.clients.get(self.id).unwrap_or(&NO_STATE)
    }

    /// Sets the function called with every event of every connection as
    /// it arrives; see [`Clients::set_event_handler`].
    pub fn set_event_handler(&mut self, mut handler: impl FnMut(&ClientEvent) + Send + 'static) {
        self.clients
            .set_event_handler(move |_, event| handler(event));
    }

    /// Drops the current connection (as if it had failed): it reconnects
    /// after the backoff. For tests, and for moving to another server.
    pub fn disconnect(&mut self) {
        self.clients.disconnect(self.id);
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&mut self) {
        self.clients.close(self.id);
    }

    /// Counters over its connections; see [`Clients::stats`].
    pub fn stats(&self) -> ClientsStats {
        self.clients.stats()
    }
}
