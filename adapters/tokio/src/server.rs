//! The server on tokio: an accept loop on a shared snapshot cache, one task
//! per connection.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use syncproto::fanout::{ApplyOutcome, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, UsageError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use crate::io::{BoxedTransport, LINGER, Progress, READ_CHUNK, write_or_flush};
use crate::now;
use crate::tls::PeerRequirement;

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
            .finish()
    }
}

/// Counts of what a server has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted (TCP).
    pub accepted: u64,
    /// Connections refused during the TLS handshake or identity check.
    pub tls_rejected: u64,
    /// Connections shed to get back under the connection limit.
    pub shed: u64,
    /// Connections that completed the protocol handshake.
    pub handshakes: u64,
    /// Pings answered, across all connections.
    pub pongs: u64,
    /// Connections that ended, by reason (the `CloseReason`'s text, or the
    /// I/O error's).
    ///
    /// Reasons can quote the peer (its hello's strings, its certificate's
    /// names), so the map is bounded whatever clients send: a reason is cut
    /// to its first 200 characters (and marked with `…`), and once 63
    /// distinct reasons are counted, connections ending for any new one are
    /// counted under [`OTHER_CLOSE_REASONS`](Self::OTHER_CLOSE_REASONS):
    /// at most 64 keys.
    pub closed: HashMap<String, u64>,
}

impl ServerStats {
    /// The key in [`closed`](Self::closed) counting connections that ended
    /// for reasons beyond the first 63 distinct ones.
    pub const OTHER_CLOSE_REASONS: &'static str = "(other reasons)";
}

/// The longest close reason kept as a key, in characters.
const MAX_CLOSE_REASON_CHARS: usize = 200;
/// The most keys in [`ServerStats::closed`], the catch-all one included.
const MAX_CLOSE_REASONS: usize = 64;

/// Counts a connection that ended for `reason`, within the bounds
/// [`ServerStats::closed`] documents.
fn count_close(closed: &mut HashMap<String, u64>, mut reason: String) {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_CLOSE_REASON_CHARS) {
        reason.truncate(cut);
        reason.push('…');
    }
    // One place is kept for the catch-all, so that it can always be added.
    if !closed.contains_key(&reason) && closed.len() >= MAX_CLOSE_REASONS - 1 {
        reason = ServerStats::OTHER_CLOSE_REASONS.to_owned();
    }
    *closed.entry(reason).or_default() += 1;
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    tls_rejected: AtomicU64,
    shed: AtomicU64,
    handshakes: AtomicU64,
    pongs: AtomicU64,
    closed: Mutex<HashMap<String, u64>>,
}

struct Shared {
    cache: SnapshotCache,
    options: ServerOptions,
    /// Bumped whenever the cache changes, to wake connection tasks.
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// Live connections, by id, with the signal that closes each.
    connections: Mutex<HashMap<u64, Arc<Notify>>>,
    next_id: AtomicU64,
    counters: Counters,
}

impl Shared {
    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Notify>>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_close(&self, reason: String) {
        let mut closed = self
            .counters
            .closed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        count_close(&mut closed, reason);
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
    /// The cache the server serves.
    pub fn cache(&self) -> &SnapshotCache {
        &self.shared.cache
    }

    /// Applies datastore changes to the cache and wakes the connections.
    pub fn apply(&self, updates: impl IntoIterator<Item = SerializedUpdate>) -> ApplyOutcome {
        let outcome = self.shared.cache.apply(std::time::Instant::now(), updates);
        self.notify();
        outcome
    }

    /// Sets the cache's sync status and wakes the connections.
    pub fn set_status(&self, status: SyncStatus) {
        self.shared
            .cache
            .set_status(std::time::Instant::now(), status);
        self.notify();
    }

    /// Wakes the connections after the cache was changed directly.
    pub fn notify(&self) {
        self.shared
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// Stops accepting and closes every connection; [`Server::run`] returns
    /// once they are gone.
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
        serve_transport(&self.shared, id, transport, &Notify::new()).await
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        let counters = &self.shared.counters;
        ServerStats {
            accepted: counters.accepted.load(Ordering::Relaxed),
            tls_rejected: counters.tls_rejected.load(Ordering::Relaxed),
            shed: counters.shed.load(Ordering::Relaxed),
            handshakes: counters.handshakes.load(Ordering::Relaxed),
            pongs: counters.pongs.load(Ordering::Relaxed),
            closed: counters
                .closed
                .lock()
                .map(|closed| closed.clone())
                .unwrap_or_default(),
        }
    }
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
        // Fail at start-up, not on each accept, if the template is unusable
        // or the cache batches for a larger limit than connections allow.
        let invalid = |error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
        options.config.validate().map_err(invalid)?;
        if cache.config().max_message_len > options.config.max_server_message_len {
            return Err(invalid(UsageError::InvalidConfig(
                "the cache's max_message_len is above the server's max_server_message_len",
            )));
        }
        let listener = TcpListener::bind(address).await?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                cache,
                options,
                changes: watch::Sender::new(0),
                shutdown: watch::Sender::new(false),
                connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
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
        let mut tasks = JoinSet::new();
        let mut shutdown = self.shared.shutdown.subscribe();
        let mut shed_tick = tokio::time::interval(self.shared.options.shed_interval);
        shed_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut random = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
            | 1;
        while !*shutdown.borrow() {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, _peer)) = accepted else {
                        // Out of descriptors and the like: back off briefly
                        // rather than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    self.shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let close = Arc::new(Notify::new());
                    self.shared.lock_connections().insert(id, Arc::clone(&close));
                    let shared = Arc::clone(&self.shared);
                    tasks.spawn(async move {
                        let reason = serve(&shared, id, stream, &close).await;
                        shared.lock_connections().remove(&id);
                        shared.record_close(reason);
                    });
                }
                _ = shed_tick.tick() => {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    self.shed_one(random);
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        // Connections see the shutdown signal themselves; wait for them.
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// If over the connection limit, closes one connection at random.
    fn shed_one(&self, random: u64) {
        let Some(limit) = self.shared.options.max_connections else {
            return;
        };
        let connections = self.shared.lock_connections();
        if connections.len() <= limit {
            return;
        }
        let victim = connections
            .values()
            .nth((random % connections.len() as u64) as usize);
        if let Some(close) = victim {
            close.notify_one();
            self.shared.counters.shed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Serves one connection; returns why it ended.
async fn serve(shared: &Shared, id: u64, stream: TcpStream, close: &Notify) -> String {
    let _ = stream.set_nodelay(true);
    let transport: BoxedTransport = match &shared.options.tls {
        None => Box::new(stream),
        Some((config, peer)) => {
            let accept = tokio_rustls::TlsAcceptor::from(Arc::clone(config)).accept(stream);
            let tls = match timeout(shared.options.tls_handshake_timeout, accept).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    return format!("TLS handshake failed: {error}");
                }
                Err(_) => {
                    shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                    return "TLS handshake timed out".to_owned();
                }
            };
            let checked = match tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
            {
                Some(certificate) => peer.check(certificate).map_err(|error| error.to_string()),
                None => Err("client presented no certificate".to_owned()),
            };
            if let Err(reason) = checked {
                shared.counters.tls_rejected.fetch_add(1, Ordering::Relaxed);
                return format!("client identity refused: {reason}");
            }
            Box::new(tls)
        }
    };
    serve_transport(shared, id, transport, close).await
}

/// Runs the protocol over an established transport; returns why it ended.
async fn serve_transport(
    shared: &Shared,
    id: u64,
    transport: BoxedTransport,
    close: &Notify,
) -> String {
    let config = ServerConfig {
        connection_id: id,
        rng_seed: shared.options.config.rng_seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ..shared.options.config.clone()
    };
    let mut machine = match ServerConnection::new(config, now()) {
        Ok(machine) => machine,
        Err(error) => return format!("invalid server configuration: {error}"),
    };
    if let Err(error) = machine.follow(shared.cache.subscribe(std::time::Instant::now())) {
        return format!("cannot follow the cache: {error}");
    }
    match drive(shared, id, &mut machine, transport, close).await {
        Ok(()) => machine
            .close_reason()
            .map_or_else(|| "closed".to_owned(), CloseReason::to_string),
        Err(error) => format!("I/O error: {error}"),
    }
}

/// The connection's loop: bytes in, bytes out, timers, wake-ups.
async fn drive(
    shared: &Shared,
    id: u64,
    machine: &mut ServerConnection,
    transport: BoxedTransport,
    close: &Notify,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(transport);
    let mut changes = shared.changes.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut pending: Option<Bytes> = None;
    // Written but perhaps held by the transport (TLS buffers encrypted
    // output when the socket is full): flush before going quiet.
    let mut needs_flush = false;
    let mut stalled_since: Option<Instant> = None;
    // After end of stream a read returns at once, every time: stop asking.
    let mut read_open = true;
    // Once the machine is closed, how long the message in flight (if any)
    // may take to finish, so that the client sees it whole.
    let mut closing_deadline: Option<Instant> = None;
    loop {
        while let Some(event) = machine.poll_event() {
            let counter = match event {
                ServerEvent::Connected { .. } => &shared.counters.handshakes,
                ServerEvent::Pong { .. } => &shared.counters.pongs,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if pending.is_none() {
            // Take one message at a time: the machine produces the next
            // only when this one has gone, so nothing piles up here.
            pending = machine.poll_transmit();
        }
        if machine.is_closed() {
            let give_up = *closing_deadline.get_or_insert_with(|| Instant::now() + LINGER);
            if Instant::now() >= give_up {
                // A client that will not take the rest cannot hold the
                // connection open: it sees the message cut short instead.
                pending = None;
            }
        }
        if machine.is_closed() && pending.is_none() {
            // No longer a live connection (for the limit), even while it
            // lingers below.
            shared.lock_connections().remove(&id);
            // Close our side, then let the client's last writes (a pong in
            // flight) land before the socket goes, so that the client sees
            // a clean end of stream rather than a reset. Shutting down TLS
            // writes (what it still holds, then close_notify): a client
            // that stopped reading would hold it, and graceful shutdown,
            // forever.
            let _ = timeout(LINGER, writer.shutdown()).await;
            let linger =
                async { while matches!(reader.read(&mut buffer).await, Ok(n) if n > 0) {} };
            let _ = timeout(LINGER, linger).await;
            return Ok(());
        }
        let writing = pending.is_some() || needs_flush;
        if writing && stalled_since.is_none() {
            stalled_since = Some(Instant::now());
        }
        let deadline = closing_deadline.or_else(|| machine.poll_timeout().map(Instant::from_std));
        let write_deadline = stalled_since.map(|since| since + shared.options.write_timeout);
        tokio::select! {
            progress = write_or_flush(&mut writer, pending.as_deref()), if writing => {
                stalled_since = None;
                match progress? {
                    Progress::Wrote(written) => {
                        needs_flush = true;
                        if let Some(bytes) = pending.as_mut() {
                            let _ = bytes.split_to(written.min(bytes.len()));
                            if bytes.is_empty() {
                                pending = None;
                            }
                        }
                    }
                    Progress::Flushed => needs_flush = false,
                }
            }
            _ = sleep_until(write_deadline.unwrap_or_else(far_future)), if write_deadline.is_some() => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading"));
            }
            read = reader.read(&mut buffer), if read_open => match read? {
                0 => {
                    read_open = false;
                    machine.handle_eof(now());
                }
                n => machine.handle_input(now(), &buffer[..n]),
            },
            _ = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                machine.handle_timeout(now());
            }
            _ = changes.changed() => {}
            _ = close.notified() => machine.close(),
            _ = shutdown.changed() => machine.close(),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let mut closed = HashMap::new();
        // Two bytes a character: a cut by bytes could split one.
        count_close(&mut closed, format!("hello {}", "é".repeat(1 << 20)));
        let (reason, count) = closed.iter().next().unwrap();
        assert_eq!(*count, 1);
        assert_eq!(reason.chars().count(), MAX_CLOSE_REASON_CHARS + 1);
        assert!(reason.starts_with("hello éé") && reason.ends_with("é…"));
    }

    #[test]
    fn close_reasons_beyond_the_limit_are_counted_together() {
        let mut closed = HashMap::new();
        for round in 0..2 {
            for index in 0..100 {
                count_close(&mut closed, format!("reason {index}"));
            }
            assert_eq!(closed.len(), MAX_CLOSE_REASONS, "round {round}");
        }
        assert_eq!(closed.values().sum::<u64>(), 200);
        assert_eq!(closed["reason 0"], 2);
        assert_eq!(closed["reason 62"], 2);
        assert_eq!(closed[ServerStats::OTHER_CLOSE_REASONS], 2 * 37);
    }
}
