//! The poll-loop server: one thread, one listener, many connections, one
//! snapshot cache.

mod connection;
mod log;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token, Waker};
use syncproto::Now;
use syncproto::codec::WireFormat;
use syncproto::fanout::SnapshotCache;
use syncproto::message::{ClientHello, CompressionAlgorithm};
use syncproto::server::{
    ConnectionLimit, ConnectionReport, ServerConfig, ServerConnection, ServerStats,
};

use self::connection::{ServerConn, Shared};
use crate::poll_loop::{PollLoop, now};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens are slab indices offset past the fixed tokens.
const FIRST_CONNECTION: usize = 2;
/// The accept backlog [`Server::bind`] asks for (the kernel caps it at
/// `net.core.somaxconn`). std and mio use 128, which a burst of thousands
/// of connecting clients overflows, costing each dropped SYN a
/// one-second retransmission.
const LISTEN_BACKLOG: i32 = 4096;
/// How long to wait before accepting again after `accept` failed for a
/// reason other than a connection aborted in the queue (typically running
/// out of file descriptors): the listener's readiness is edge-triggered, so
/// without a retry the queued connections would wait for the next arrival.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Identifies one connection of a [`Server`]: the `ServerConnID` its
/// client received in the `ServerHello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// What happened on a [`Server`], as passed to its event handler
/// ([`Server::set_event_handler`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerLoopEvent {
    /// A connection was accepted and now follows the cache.
    Accepted {
        /// The new connection.
        connection: ConnectionId,
        /// The client's address.
        peer: SocketAddr,
    },
    /// The client's hello was accepted; the snapshot is on its way.
    Connected {
        /// The connection.
        connection: ConnectionId,
        /// The client's hello.
        hello: ClientHello,
        /// The wire format the client speaks.
        wire_format: WireFormat,
        /// The compression negotiated, if any.
        compression: Option<CompressionAlgorithm>,
    },
    /// A pong arrived.
    Pong {
        /// The connection.
        connection: ConnectionId,
        /// Time from sending the ping it answers to receiving it; `None`
        /// when it answers no ping still outstanding.
        round_trip: Option<Duration>,
    },
    /// The connection is gone (its socket is closed), and what it did.
    Closed {
        /// The connection.
        connection: ConnectionId,
        /// Its hello, why it ended (the machine's reason, or the I/O
        /// error's when the socket failed first), pings, pongs, bytes,
        /// the client's address and how long it lasted.
        report: ConnectionReport,
    },
    /// `accept` failed (for example: out of file descriptors). The server
    /// retries shortly; the connections waiting in the backlog stay there.
    AcceptFailed {
        /// The error.
        error: io::Error,
    },
}

/// Wakes a [`Server`]'s loop from any thread: after its cache changed
/// ([`notify`](Self::notify)), so that every connection pulls the new
/// data, or for any other reason ([`wake`](Self::wake)). Cheap to clone;
/// notifications that arrive before the loop runs are coalesced into one
/// pass.
#[derive(Debug, Clone)]
pub struct Notifier {
    waker: Arc<Waker>,
    pending: Arc<AtomicBool>,
}

impl Notifier {
    /// Call after `cache.apply(..)` or `cache.set_status(..)`. Fails only if
    /// the poll instance cannot be woken (the server is gone or the system
    /// is out of resources).
    pub fn notify(&self) -> io::Result<()> {
        // The flag is what the loop acts on; the wake-up only interrupts a
        // blocked poll. Set the flag first so a loop woken for another
        // reason still sees it.
        self.pending.store(true, Ordering::Release);
        self.waker.wake()
    }

    /// Only interrupts a blocked [`Server::run_once`] (to have the loop's
    /// thread look at its own work, commands from a channel say); the
    /// connections are not asked for output.
    pub fn wake(&self) -> io::Result<()> {
        self.waker.wake()
    }
}

/// The connection limit and the pace of shedding.
struct Shedding {
    limit: ConnectionLimit,
    interval: Duration,
    next: Instant,
}

/// A single-threaded poll-loop server: accepts connections on one listener
/// and serves each from one shared [`SnapshotCache`].
///
/// Every accepted connection gets a [`ServerConnection`] configured by
/// [`ServerConfig::for_connection`] from the template, numbered from the
/// template's `connection_id` + 1 in accept order, and follows the cache
/// from the moment it is accepted. Call [`run_once`](Self::run_once) in a
/// loop; after changing the cache, call [`Notifier::notify`] or
/// [`cache_changed`](Self::cache_changed). To stop,
/// [`shutdown`](Self::shutdown), then run until
/// [`is_finished`](Self::is_finished).
pub struct Server {
    core: PollLoop<ServerConn>,
    /// `None` once shut down: nothing more is accepted.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    cache: SnapshotCache,
    config: ServerConfig,
    notifier: Notifier,
    accept_retry_at: Option<Instant>,
    accepted: u64,
    shedding: Option<Shedding>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.core.len())
            .field("shut_down", &self.listener.is_none())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds a listener on `addr` (port 0 picks a free port) with a deep
    /// accept backlog, to serve `cache` with connections configured from
    /// `config`. Call once at start-up. Fails if the address cannot be
    /// bound, `config` is unusable, or `cache` batches for a larger message
    /// limit than `config` allows (both `InvalidInput`).
    pub fn bind(
        addr: SocketAddr,
        cache: SnapshotCache,
        config: ServerConfig,
    ) -> io::Result<Server> {
        check(&cache, &config)?;
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        // As std and mio do: a restarted server can bind at once.
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Server::from_std(socket.into(), cache, config)
    }

    /// Serves on an already bound and listening socket (to choose its
    /// options yourself); it is switched to non-blocking mode. Fails as
    /// [`bind`](Self::bind) does.
    pub fn from_std(
        listener: std::net::TcpListener,
        cache: SnapshotCache,
        config: ServerConfig,
    ) -> io::Result<Server> {
        check(&cache, &config)?;
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr()?;
        let shared = Shared {
            stats: ServerStats::default(),
            handler: None,
            open: 0,
            warnings: syncproto::server::WarningLimiter::default(),
        };
        let core = PollLoop::new(FIRST_CONNECTION, shared)?;
        core.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(core.registry(), WAKER)?);
        Ok(Server {
            core,
            listener: Some(listener),
            local_addr,
            cache,
            config,
            notifier: Notifier {
                waker,
                pending: Arc::new(AtomicBool::new(false)),
            },
            accept_retry_at: None,
            accepted: 0,
            shedding: None,
        })
    }

    /// The address the listener is bound to (with the port picked, when
    /// bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cache the connections follow (a handle on the same cache).
    pub fn cache(&self) -> &SnapshotCache {
        &self.cache
    }

    /// A handle that wakes this loop from other threads after the cache
    /// changed.
    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    /// Call after changing the cache on the loop's own thread: the next
    /// [`run_once`](Self::run_once) hands the new data to every connection
    /// (without blocking first).
    pub fn cache_changed(&mut self) {
        self.notifier.pending.store(true, Ordering::Release);
    }

    /// Sets the function called for everything that happens to a
    /// connection (accepted, handshake done, pong, closed with its
    /// report). It runs inside [`run_once`](Self::run_once) (and
    /// [`shutdown`](Self::shutdown)), so it should be quick. Replaces any
    /// earlier handler.
    pub fn set_event_handler(&mut self, handler: impl FnMut(&ServerLoopEvent) + Send + 'static) {
        self.core.shared.handler = Some(Box::new(handler));
    }

    /// Limits the server to `max` connections, as upstream Typha does:
    /// while more are open, one (chosen by the core's [`ConnectionLimit`],
    /// seeded from the template's `rng_seed`) is closed every
    /// `shed_interval` (counted in [`ServerStats::shed`]). A shed
    /// connection finishes the message it is writing, bounded by a linger
    /// of 2 s, but no longer counts as open meanwhile. Replaces any
    /// earlier limit.
    pub fn set_connection_limit(&mut self, max: usize, shed_interval: Duration) {
        self.shedding = Some(Shedding {
            limit: ConnectionLimit::new(max, self.config.rng_seed),
            interval: shed_interval,
            next: Instant::now() + shed_interval,
        });
    }

    /// How many connections are open: accepted, and their machine not
    /// closed (a connection still finishing its last message or waiting
    /// for its client to close is not counted).
    pub fn connection_count(&self) -> usize {
        self.core.shared.open
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        let mut stats = self.core.shared.stats.clone();
        (stats.bytes_read, stats.bytes_written) = self.core.bytes();
        stats
    }

    /// Shuts the server down gracefully: the listener is closed (nothing
    /// more is accepted) and every connection stops sending
    /// ([`ServerConnection::stop_sending`]). Each connection then writes
    /// what its machine has ready (the message in flight, never cut short
    /// unless the client will not take it within 2 s), shuts down its
    /// writing side, and keeps reading, so the client's last pongs are
    /// counted, until the client closes its side (reported as closed
    /// locally) or another 2 s pass. Keep calling
    /// [`run_once`](Self::run_once) until [`is_finished`](Self::is_finished).
    /// Harmless twice.
    pub fn shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.core.registry().deregister(&mut listener);
        }
        self.accept_retry_at = None;
        self.core.touch_all(now(), |conn, _, _| {
            conn.machine.stop_sending();
            true
        });
    }

    /// Whether [`shutdown`](Self::shutdown) was called and every
    /// connection is gone: the loop can stop.
    pub fn is_finished(&self) -> bool {
        self.listener.is_none() && self.core.len() == 0
    }

    /// Runs one iteration of the loop: waits until a socket is ready, a
    /// connection's deadline passes, the cache is announced changed, or
    /// `timeout` passes (`None`: no limit besides those), then does all
    /// the work that is ready. Call it in a loop. Errors come only from
    /// the poll itself; a failing connection is closed and reported
    /// through the event handler instead.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let busy = self.notifier.pending.load(Ordering::Acquire);
        let shed_at = self
            .shedding
            .as_ref()
            .filter(|shedding| self.core.shared.open > shedding.limit.max())
            .map(|shedding| shedding.next);
        let also = [self.accept_retry_at, shed_at].into_iter().flatten().min();
        let Some(now) = self.core.poll(timeout, also, busy)? else {
            return Ok(());
        };
        let mut accept = self.accept_retry_at.is_some_and(|at| at <= now.instant);
        self.core.dispatch(now, |token| accept |= token == LISTENER);
        if accept {
            self.accept_all(now);
        }
        if self.notifier.pending.swap(false, Ordering::AcqRel) {
            self.pull_everywhere(now);
        }
        self.shed(now);
        self.core.finish_iteration(now);
        Ok(())
    }

    /// Accepts every connection waiting in the backlog.
    fn accept_all(&mut self, now: Now) {
        self.accept_retry_at = None;
        while let Some(listener) = self.listener.as_ref() {
            match listener.accept() {
                Ok((socket, peer)) => self.add_connection(socket, peer, now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up while queued, or a signal: go on.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    let shared = &mut self.core.shared;
                    shared.stats.accept_errors += 1;
                    log::accept_failed(&error, &mut shared.warnings, now.instant);
                    self.accept_retry_at = Some(now.instant + ACCEPT_RETRY);
                    self.core
                        .shared
                        .emit(ServerLoopEvent::AcceptFailed { error });
                    return;
                }
            }
        }
    }

    fn add_connection(&mut self, socket: TcpStream, peer: SocketAddr, now: Now) {
        self.accepted += 1;
        let id = self.config.connection_id.wrapping_add(self.accepted);
        let shared = &mut self.core.shared;
        shared.stats.accepted += 1;
        let span = log::connection_span(id, peer);
        let entered = span.enter();
        log::accepted();
        shared.emit(ServerLoopEvent::Accepted {
            connection: ConnectionId(id),
            peer,
        });
        // Pings and pongs are tiny and latency-sensitive (as Go's default).
        let _ = socket.set_nodelay(true);
        let machine =
            ServerConnection::new(self.config.for_connection(id), now).and_then(|mut machine| {
                machine.follow(self.cache.subscribe(now.instant))?;
                Ok(machine)
            });
        let machine = match machine {
            Ok(machine) => machine,
            // The template and the cache were checked at bind, so this
            // should not happen; if it does, refuse the one connection
            // rather than the server.
            Err(error) => {
                let reason = format!("cannot serve the connection: {error}");
                let report = ConnectionReport::early(id, Some(peer), "usage", reason);
                shared.closed(report, now.instant);
                return;
            }
        };
        drop(entered);
        let conn = ServerConn::new(id, span, peer, machine, shared, now);
        if let Err((conn, error)) = self.core.insert(Some(socket), |_| conn) {
            conn.failed(&mut self.core.shared, now, error);
        }
    }

    /// Asks every connection not blocked on its socket for output: the
    /// cache changed. This visits every connection once per wake-up
    /// (however many changes it covers): each one follows the cache, so
    /// each has something to send. A blocked connection pulls the change
    /// when its socket drains.
    fn pull_everywhere(&mut self, now: Now) {
        self.core.touch_all(now, |_, _, blocked| !blocked);
    }

    /// Once per interval, if over the limit: closes the connection the
    /// limit chooses.
    fn shed(&mut self, now: Now) {
        let Some(shedding) = self.shedding.as_mut() else {
            return;
        };
        if now.instant < shedding.next {
            return;
        }
        shedding.next = now.instant + shedding.interval;
        let Some(index) = shedding.limit.choose_victim(self.core.shared.open) else {
            return;
        };
        if let Some(victim) = self.core.nth(index, ServerConn::is_open) {
            self.core.touch(victim, now, |conn, shared| {
                conn.machine.close();
                shared.stats.shed += 1;
            });
        }
    }
}

/// What [`Server::bind`] refuses: an unusable template, or a cache that
/// batches for larger messages than the connections may send.
fn check(cache: &SnapshotCache, config: &ServerConfig) -> io::Result<()> {
    let invalid = |error| io::Error::new(io::ErrorKind::InvalidInput, error);
    config.validate().map_err(invalid)?;
    config.check_cache(cache.config()).map_err(invalid)
}
