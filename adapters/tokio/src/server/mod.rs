//! The server on tokio: an accept loop on a shared snapshot cache, one task
//! per connection.

mod caches;
mod connection;
mod log;
mod stats;

pub use caches::CacheSource;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncproto::fanout::{ApplyOutcome, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus, SyncerType};
use syncproto::server::{ConnectionLimit, ConnectionReport, ServerConfig, ServerStats};
use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::stats::Counters;
#[cfg(test)]
use crate::io::BoxedTransport;
use crate::tls::PeerRequirement;

/// How long to wait before accepting again after `accept` failed (out of
/// file descriptors, say), rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Called with each connection's [`ConnectionReport`] as it ends.
pub type ReportHook = Arc<dyn Fn(&ConnectionReport) + Send + Sync>;

/// How a [`Server`] runs its connections.
#[derive(Clone)]
pub struct ServerOptions {
    /// The template for every connection's machine (`connection_id` and
    /// `rng_seed` are set per connection).
    pub config: ServerConfig,
    /// Drop a connection whose writes make no progress for this long
    /// (upstream Typha: 120 s).
    pub write_timeout: Duration,
    /// Above this many connections, shed one (chosen at random) every
    /// `shed_interval` until back at the limit, as upstream Typha does.
    pub max_connections: Option<usize>,
    /// The pace of shedding.
    pub shed_interval: Duration,
    /// TLS: the rustls configuration (see
    /// [`tls::server_config`](crate::tls::server_config)) and which client
    /// certificate to accept.
    pub tls: Option<(Arc<rustls::ServerConfig>, PeerRequirement)>,
    /// How long a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Called (on the connection's task) with a report of each connection
    /// as it ends: its hello, why it ended, pings and pongs. Keep it quick.
    pub on_connection_closed: Option<ReportHook>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            config: ServerConfig::default(),
            write_timeout: Duration::from_secs(120),
            max_connections: None,
            shed_interval: Duration::from_secs(1),
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            on_connection_closed: None,
        }
    }
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("config", &self.config)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .field("shed_interval", &self.shed_interval)
            .field("tls", &self.tls.as_ref().map(|(_, peer)| peer))
            .field("on_connection_closed", &self.on_connection_closed.is_some())
            .finish()
    }
}

struct Shared {
    data: caches::Data,
    options: ServerOptions,
    /// Bumped whenever the cache changes, to wake connection tasks.
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// Live connections, by id, with the signal that closes each.
    connections: Mutex<HashMap<u64, Arc<Notify>>>,
    next_id: AtomicU64,
    counters: Counters,
    /// Whether the listener is still bound (for the probes).
    accepting: AtomicBool,
    warnings: log::WarningLimiter,
}

impl Shared {
    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Notify>>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts and logs a connection that ended, and hands its report to
    /// the hook.
    fn record_close(&self, report: &ConnectionReport) {
        log::closed(report, &self.warnings);
        // Counted before the hook runs, so that it sees the totals with
        // this connection in them.
        self.counters.record_close(report);
        if let Some(hook) = &self.options.on_connection_closed {
            hook(report);
        }
    }
}

/// A control handle on a running [`Server`]: feed its cache, watch it,
/// shut it down. Cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl ServerHandle {
    /// The cache every client follows, for a server made with
    /// [`Server::bind`]; `None` for one made with
    /// [`Server::bind_by_syncer`] (see [`caches`](Self::caches)).
    pub fn cache(&self) -> Option<&SnapshotCache> {
        match &self.shared.data {
            caches::Data::One(cache) => Some(cache),
            caches::Data::BySyncer(_) => None,
        }
    }

    /// Every cache served now: the one cache (without a syncer type), or
    /// each cache a [`CacheSource`] has opened, by syncer type.
    pub fn caches(&self) -> Vec<(Option<SyncerType>, SnapshotCache)> {
        self.shared.data.caches()
    }

    /// Applies datastore changes to the server's one cache and wakes the
    /// connections. A server by syncer type has no one cache: nothing is
    /// applied there (feed its [`CacheSource`]'s caches and call
    /// [`notify`](Self::notify)).
    pub fn apply(&self, updates: impl IntoIterator<Item = SerializedUpdate>) -> ApplyOutcome {
        let Some(cache) = self.cache() else {
            return ApplyOutcome::default();
        };
        let outcome = cache.apply(crate::now().instant, updates);
        self.notify();
        outcome
    }

    /// Sets the server's one cache's sync status and wakes the
    /// connections (nothing, for a server by syncer type: see
    /// [`apply`](Self::apply)).
    pub fn set_status(&self, status: SyncStatus) {
        if let Some(cache) = self.cache() {
            cache.set_status(crate::now().instant, status);
            self.notify();
        }
    }

    /// Wakes the connections after the cache was changed directly.
    pub fn notify(&self) {
        self.shared
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// Stops accepting and ends every connection gracefully: each sends
    /// what it has ready (never a message cut short), then closes its side
    /// and waits briefly for the client's last pongs and close.
    /// [`Server::run`] returns once they are gone.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Connections currently open.
    pub fn connection_count(&self) -> usize {
        self.shared.lock_connections().len()
    }

    /// Serves one connection over an in-memory transport, as the accept
    /// loop would over a socket; returns why it ended. For tests of the
    /// connection loop against transports that misbehave on purpose.
    #[cfg(test)]
    pub(crate) async fn serve_transport(&self, transport: BoxedTransport) -> String {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        connection::serve_transport(&self.shared, id, transport, &Notify::new())
            .await
            .reason
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Whether the server accepts connections: its listener is bound (the
    /// kernel queues connections from then on, and [`Server::run`] takes
    /// them) and it has not been shut down.
    pub fn is_accepting(&self) -> bool {
        self.shared.accepting.load(Ordering::Relaxed) && !*self.shared.shutdown.borrow()
    }

    /// Whether the server is ready for clients, as a readiness probe asks:
    /// it accepts connections and its data is in sync.
    pub fn is_ready(&self) -> bool {
        self.is_accepting() && self.shared.data.in_sync()
    }
}

/// How many connections may wait to be accepted. tokio's default (1 024)
/// overflows when a thousand agents connect at once (a Typha restart): the
/// kernel then drops their SYNs and they retry after 1 s, 3 s, 7 s… The
/// kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the first address `address` resolves to that can be bound, with
/// [`LISTEN_BACKLOG`].
async fn listen(address: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut failure = None;
    for address in tokio::net::lookup_host(address).await? {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As `TcpListener::bind` does: a restarted server can bind at once.
        socket.set_reuseaddr(true)?;
        match socket
            .bind(address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// A server bound to a port, serving a [`SnapshotCache`] to every client
/// that connects, in either wire format (told apart per connection).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `address`; nothing is accepted until [`run`](Self::run).
    ///
    /// Fails with [`std::io::ErrorKind::InvalidInput`] if `options.config`
    /// does not validate, or if the cache batches messages larger than
    /// `max_server_message_len` allows.
    pub async fn bind(
        address: impl ToSocketAddrs,
        cache: SnapshotCache,
        options: ServerOptions,
    ) -> std::io::Result<Server> {
        Server::bind_data(address, caches::Data::One(cache), options).await
    }

    /// Binds `address` for a server that serves each syncer type from its
    /// own cache, which `source` gives (opening it on first demand) once a
    /// client's hello says which syncer it wants. Fails as
    /// [`bind`](Self::bind) does.
    pub async fn bind_by_syncer(
        address: impl ToSocketAddrs,
        source: Arc<dyn CacheSource>,
        options: ServerOptions,
    ) -> std::io::Result<Server> {
        Server::bind_data(address, caches::Data::BySyncer(source), options).await
    }

    async fn bind_data(
        address: impl ToSocketAddrs,
        data: caches::Data,
        options: ServerOptions,
    ) -> std::io::Result<Server> {
        // Fail at start-up, not on each accept, if the template is unusable
        // or the caches batch for a larger limit than connections allow.
        let invalid = |error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
        options.config.validate().map_err(invalid)?;
        options
            .config
            .check_cache(&data.cache_config())
            .map_err(invalid)?;
        let listener = listen(address).await?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                data,
                options,
                changes: watch::Sender::new(0),
                shutdown: watch::Sender::new(false),
                connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
                accepting: AtomicBool::new(true),
                warnings: log::WarningLimiter::default(),
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to feed and control the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepts connections until [`ServerHandle::shutdown`], then closes
    /// them all and returns once they are gone.
    pub async fn run(self) -> std::io::Result<()> {
        let Server { listener, shared } = self;
        let mut tasks = JoinSet::new();
        let mut shutdown = shared.shutdown.subscribe();
        let mut shed_tick = tokio::time::interval(shared.options.shed_interval);
        shed_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut limit = shared
            .options
            .max_connections
            .map(|max| ConnectionLimit::new(max, shared.options.config.rng_seed));
        while !*shutdown.borrow() {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of descriptors and the like: back off
                            // briefly rather than spin.
                            shared.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                            log::accept_failed(&error, &shared.warnings);
                            tokio::time::sleep(ACCEPT_RETRY).await;
                            continue;
                        }
                    };
                    shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let close = Arc::new(Notify::new());
                    shared.lock_connections().insert(id, Arc::clone(&close));
                    let shared = Arc::clone(&shared);
                    // What the hello says is recorded once it arrives
                    // (`log::handshake_done`), so that every line after the
                    // handshake names the client.
                    let span = tracing::info_span!(
                        "connection",
                        id,
                        %peer,
                        hostname = tracing::field::Empty,
                        syncer = tracing::field::Empty,
                        client_version = tracing::field::Empty,
                        client_conn_id = tracing::field::Empty,
                        wire = tracing::field::Empty,
                        compression = tracing::field::Empty,
                    );
                    tasks.spawn(async move {
                        log::accepted();
                        let report = connection::serve(&shared, id, stream, peer, &close).await;
                        shared.lock_connections().remove(&id);
                        shared.record_close(&report);
                    }.instrument(span));
                }
                _ = shed_tick.tick(), if limit.is_some() => {
                    if let Some(limit) = limit.as_mut() {
                        shed_one(&shared, limit);
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        shared.accepting.store(false, Ordering::Relaxed);
        // Stop accepting now, not once the last connection is gone: new
        // clients are refused at once (and can go elsewhere) rather than
        // queue unanswered, and a new server can bind the address.
        drop(listener);
        // Connections see the shutdown signal themselves; wait for them.
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// If over the connection limit, closes the connection `limit` chooses.
fn shed_one(shared: &Shared, limit: &mut ConnectionLimit) {
    let connections = shared.lock_connections();
    let victim = limit
        .choose_victim(connections.len())
        .and_then(|index| connections.values().nth(index));
    if let Some(close) = victim {
        close.notify_one();
        shared.counters.shed.fetch_add(1, Ordering::Relaxed);
    }
}
