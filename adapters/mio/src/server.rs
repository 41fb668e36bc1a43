//! The poll-loop server: one thread, one listener, many connections, one
//! snapshot cache.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use syncproto::Now;
use syncproto::codec::WireFormat;
use syncproto::fanout::SnapshotCache;
use syncproto::message::{ClientHello, CompressionAlgorithm};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};

use crate::io::{Flush, READ_CHUNK, READ_CHUNKS_PER_TURN, ReadOutcome, flush, read_some};
use crate::slab::Slab;
use crate::timers::{Owner, Timers};
use crate::{Disconnect, now};

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
    /// The connection was dropped (its socket is closed).
    Closed {
        /// The connection.
        connection: ConnectionId,
        /// Why.
        reason: Disconnect,
    },
    /// `accept` failed (for example: out of file descriptors). The server
    /// retries shortly; the connections waiting in the backlog stay there.
    AcceptFailed {
        /// The error.
        error: io::Error,
    },
}

/// Counters of what a [`Server`] has done since it was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Handshakes completed.
    pub connected: u64,
    /// Pongs received.
    pub pongs: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Of those, closed because something went wrong (see
    /// [`Disconnect::is_error`]).
    pub closed_with_error: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
    /// Bytes read from clients.
    pub bytes_read: u64,
    /// Bytes written to clients.
    pub bytes_written: u64,
}

/// Wakes a [`Server`]'s loop from any thread after its cache changed, so
/// that every connection pulls the new data. Cheap to clone; notifications
/// that arrive before the loop runs are coalesced into one pass.
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
}

/// One accepted connection.
struct Conn {
    id: u64,
    socket: TcpStream,
    machine: ServerConnection,
    /// The unwritten rest of the last `Bytes` the machine handed out.
    pending: Option<Bytes>,
    /// The deadline of this connection's live timer entry.
    armed: Option<Instant>,
    /// Whether it is on the list to be serviced again without an event.
    queued: bool,
}

type Handler = Box<dyn FnMut(&ServerLoopEvent) + Send>;

/// A single-threaded poll-loop server: accepts connections on one listener
/// and serves each from one shared [`SnapshotCache`].
///
/// Every accepted connection gets a [`ServerConnection`] built from the
/// configuration template, with its own `connection_id` (counting up from
/// the template's) and `rng_seed` (mixed from the template's and the id),
/// and follows the cache from the moment it is accepted. Call
/// [`run_once`](Self::run_once) in a loop; after changing the cache, call
/// [`Notifier::notify`] or [`cache_changed`](Self::cache_changed).
pub struct Server {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    local_addr: SocketAddr,
    cache: SnapshotCache,
    config: ServerConfig,
    connections: Slab<Conn>,
    timers: Timers,
    /// Connections whose read or write turn was cut short by its budget:
    /// serviced again next iteration (readiness is edge-triggered, so no
    /// new event would come for them).
    again: Vec<Owner>,
    notifier: Notifier,
    accept_retry_at: Option<Instant>,
    next_serial: u64,
    read_buffer: Box<[u8]>,
    stats: ServerStats,
    handler: Option<Handler>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connections.len())
            .field("stats", &self.stats)
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
    /// options yourself); it is switched to non-blocking mode.
    pub fn from_std(
        listener: std::net::TcpListener,
        cache: SnapshotCache,
        config: ServerConfig,
    ) -> io::Result<Server> {
        // Fail at start-up, not on the first accept, if the template is
        // unusable or the cache batches for a larger limit than it allows.
        ServerConnection::new(config.clone(), now())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        if cache.config().max_message_len > config.max_server_message_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the cache's max_message_len is above the server's max_server_message_len",
            ));
        }
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            poll,
            events: Events::with_capacity(1024),
            listener,
            local_addr,
            cache,
            config,
            connections: Slab::new(),
            timers: Timers::new(),
            again: Vec::new(),
            notifier: Notifier {
                waker,
                pending: Arc::new(AtomicBool::new(false)),
            },
            accept_retry_at: None,
            next_serial: 0,
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            stats: ServerStats::default(),
            handler: None,
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
    /// connection (accepted, handshake done, pong, closed and why). It runs
    /// inside [`run_once`](Self::run_once), so it should be quick. Replaces
    /// any earlier handler.
    pub fn set_event_handler(&mut self, handler: impl FnMut(&ServerLoopEvent) + Send + 'static) {
        self.handler = Some(Box::new(handler));
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Runs one iteration of the loop: waits until a socket is ready, a
    /// connection's deadline passes, the cache is announced changed, or
    /// `timeout` passes (`None`: no limit besides those), then does all
    /// the work that is ready. Call it in a loop. Errors come only from
    /// the poll itself; a failing connection is closed and reported
    /// through the event handler instead.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let wait = self.wait_time(timeout);
        if let Err(error) = self.poll.poll(&mut self.events, wait) {
            // A signal is not a failure; the caller simply loops again.
            return match error.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(error),
            };
        }
        let now = now();
        // Take the events out so the connections can be borrowed mutably
        // while they are walked.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let mut accept = self.accept_retry_at.is_some_and(|at| at <= now.instant);
        for event in events.iter() {
            match event.token() {
                LISTENER => accept = true,
                WAKER => {}
                Token(token) => {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.service_slot(token - FIRST_CONNECTION, None, now, readable);
                }
            }
        }
        self.events = events;
        if accept {
            self.accept_all(now);
        }
        for owner in std::mem::take(&mut self.again) {
            if let Some(conn) = self
                .connections
                .get_mut(owner.slot)
                .filter(|conn| conn.id == owner.serial)
            {
                conn.queued = false;
            }
            self.service_slot(owner.slot, Some(owner.serial), now, true);
        }
        if self.notifier.pending.swap(false, Ordering::AcqRel) {
            self.pull_everywhere(now);
        }
        self.fire_timers(now);
        let live = self.connections.len();
        let connections = &self.connections;
        self.timers.compact_if_needed(live, |due, owner| {
            connections
                .get(owner.slot)
                .is_some_and(|conn| conn.id == owner.serial && conn.armed == Some(due))
        });
        Ok(())
    }

    /// How long the next poll may block.
    fn wait_time(&self, timeout: Option<Duration>) -> Option<Duration> {
        if !self.again.is_empty() || self.notifier.pending.load(Ordering::Acquire) {
            return Some(Duration::ZERO);
        }
        let current = Instant::now();
        [self.timers.next_deadline(), self.accept_retry_at]
            .into_iter()
            .flatten()
            .map(|due| due.saturating_duration_since(current))
            .chain(timeout)
            .min()
    }

    /// Accepts every connection waiting in the backlog.
    fn accept_all(&mut self, now: Now) {
        self.accept_retry_at = None;
        loop {
            match self.listener.accept() {
                Ok((socket, peer)) => self.add_connection(socket, peer, now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up while queued, or a signal: go on.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    self.stats.accept_errors += 1;
                    self.accept_retry_at = Some(now.instant + ACCEPT_RETRY);
                    self.emit(ServerLoopEvent::AcceptFailed { error });
                    return;
                }
            }
        }
    }

    fn add_connection(&mut self, socket: TcpStream, peer: SocketAddr, now: Now) {
        self.next_serial += 1;
        let serial = self.next_serial;
        let id = self.config.connection_id.wrapping_add(serial);
        self.stats.accepted += 1;
        self.emit(ServerLoopEvent::Accepted {
            connection: ConnectionId(id),
            peer,
        });
        // Pings and pongs are tiny and latency-sensitive (as Go's default).
        let _ = socket.set_nodelay(true);
        let config = ServerConfig {
            connection_id: id,
            rng_seed: mix(self.config.rng_seed, serial),
            ..self.config.clone()
        };
        let machine = ServerConnection::new(config, now).and_then(|mut machine| {
            machine.follow(self.cache.subscribe(now.instant))?;
            Ok(machine)
        });
        let machine = match machine {
            Ok(machine) => machine,
            // The template and the cache were checked at bind, so this
            // should not happen; if it does, refuse the one connection
            // rather than the server.
            Err(error) => {
                let reason = Disconnect::Io(io::Error::new(io::ErrorKind::InvalidInput, error));
                self.report_closed(id, reason);
                return;
            }
        };
        let deadline = machine.poll_timeout();
        let slot = self.connections.insert(Conn {
            id,
            socket,
            machine,
            pending: None,
            armed: None,
            queued: false,
        });
        let Some(conn) = self.connections.get_mut(slot) else {
            return;
        };
        let token = Token(slot + FIRST_CONNECTION);
        if let Err(error) = self.poll.registry().register(
            &mut conn.socket,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.connections.remove(slot);
            self.report_closed(id, Disconnect::Io(error));
            return;
        }
        // The first writable event services it; until the hello arrives
        // there is nothing to send, only the handshake deadline.
        self.timers
            .arm(&mut conn.armed, Owner { slot, serial: id }, deadline);
    }

    /// Asks every connection not blocked on its socket for output: the
    /// cache changed. This visits every connection once per wake-up (however
    /// many changes it covers): each one follows the cache, so each has
    /// something to send. A blocked connection pulls the change when its
    /// socket drains; its timer is not re-read here (that would take the
    /// cache's lock once more per connection): the fall-behind deadline the
    /// change may have added is armed when its live entry fires, by the
    /// next ping at the latest (seconds, against a limit of minutes).
    fn pull_everywhere(&mut self, now: Now) {
        for slot in 0..self.connections.capacity() {
            if self
                .connections
                .get(slot)
                .is_some_and(|conn| conn.pending.is_none())
            {
                self.service_slot(slot, None, now, false);
            }
        }
    }

    /// Fires the connections' timers that are due.
    fn fire_timers(&mut self, now: Now) {
        while let Some((due, owner)) = self.timers.pop_due(now.instant) {
            let Some(conn) = self.connections.get_mut(owner.slot) else {
                continue;
            };
            if conn.id != owner.serial || conn.armed != Some(due) {
                continue; // stale entry
            }
            conn.armed = None;
            if conn
                .machine
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now.instant)
            {
                conn.machine.handle_timeout(now);
            }
            // Writes what the timeout produced (a ping) and re-arms, also
            // when the deadline had only moved later.
            self.service_slot(owner.slot, Some(owner.serial), now, false);
        }
    }

    /// One turn for one connection: read what is there (when `readable`),
    /// write what the machine hands out, report its events, re-arm its
    /// timer, and drop it if it closed. `serial`, when given, must match.
    fn service_slot(&mut self, slot: usize, serial: Option<u64>, now: Now, readable: bool) {
        let Some(conn) = self.connections.get_mut(slot) else {
            return;
        };
        if serial.is_some_and(|serial| serial != conn.id) {
            return;
        }
        let mut sink = Sink {
            stats: &mut self.stats,
            handler: &mut self.handler,
        };
        let turn = service(conn, &mut self.read_buffer, now, readable, &mut sink);
        let owner = Owner {
            slot,
            serial: conn.id,
        };
        match turn {
            Turn::Open { again } => {
                let deadline = conn.machine.poll_timeout();
                self.timers.arm(&mut conn.armed, owner, deadline);
                if again && !conn.queued {
                    conn.queued = true;
                    self.again.push(owner);
                }
            }
            Turn::Closed(reason) => {
                if let Some(mut conn) = self.connections.remove(slot) {
                    // Dropping the socket would deregister it too; doing it
                    // explicitly keeps the registry in step even if the
                    // descriptor were shared.
                    let _ = self.poll.registry().deregister(&mut conn.socket);
                    self.report_closed(conn.id, reason);
                }
            }
        }
    }

    fn report_closed(&mut self, id: u64, reason: Disconnect) {
        self.stats.closed += 1;
        if reason.is_error() {
            self.stats.closed_with_error += 1;
        }
        self.emit(ServerLoopEvent::Closed {
            connection: ConnectionId(id),
            reason,
        });
    }

    fn emit(&mut self, event: ServerLoopEvent) {
        Sink {
            stats: &mut self.stats,
            handler: &mut self.handler,
        }
        .emit(event);
    }
}

/// Where a connection's turn reports to.
struct Sink<'a> {
    stats: &'a mut ServerStats,
    handler: &'a mut Option<Handler>,
}

impl Sink<'_> {
    fn emit(&mut self, event: ServerLoopEvent) {
        if let Some(handler) = self.handler.as_mut() {
            handler(&event);
        }
    }
}

/// How a connection's turn ended.
enum Turn {
    Open {
        /// The turn's budget ran out: service again without an event.
        again: bool,
    },
    Closed(Disconnect),
}

/// Reads (when `readable`) and writes one connection, reporting its
/// events; see [`Server::service_slot`].
fn service(
    conn: &mut Conn,
    buffer: &mut [u8],
    now: Now,
    readable: bool,
    sink: &mut Sink<'_>,
) -> Turn {
    let mut again = false;
    if readable {
        let mut chunks = 0;
        loop {
            if chunks == READ_CHUNKS_PER_TURN {
                again = true;
                break;
            }
            match read_some(&mut conn.socket, buffer) {
                Ok(ReadOutcome::Data(n)) => {
                    sink.stats.bytes_read += n as u64;
                    conn.machine
                        .handle_input(now, buffer.get(..n).unwrap_or_default());
                    chunks += 1;
                }
                Ok(ReadOutcome::Eof) => {
                    conn.machine.handle_eof(now);
                    break;
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Err(error) => return Turn::Closed(Disconnect::Io(error)),
            }
            // Events are drained after every chunk so that they never pile
            // up; output waits for the write below (the machine holds at
            // most a message or two of replies).
            if let Some(reason) = drain_events(conn, sink) {
                return Turn::Closed(Disconnect::Closed(reason));
            }
        }
    }
    let machine = &mut conn.machine;
    let written = flush(
        &mut conn.socket,
        &mut conn.pending,
        &mut sink.stats.bytes_written,
        || machine.poll_transmit(now.instant),
    );
    // Taking output can end the machine too (a client cut off for falling
    // behind), so drain the events after writing.
    if let Some(reason) = drain_events(conn, sink) {
        return Turn::Closed(Disconnect::Closed(reason));
    }
    match written {
        Ok(Flush::Budget) => Turn::Open { again: true },
        Ok(Flush::Done | Flush::Blocked) => Turn::Open { again },
        Err(error) => Turn::Closed(Disconnect::Io(error)),
    }
}

/// Reports a connection's pending events; the close reason if it closed.
fn drain_events(conn: &mut Conn, sink: &mut Sink<'_>) -> Option<syncproto::CloseReason> {
    let connection = ConnectionId(conn.id);
    while let Some(event) = conn.machine.poll_event() {
        match event {
            ServerEvent::Connected {
                hello,
                wire_format,
                compression,
            } => {
                sink.stats.connected += 1;
                sink.emit(ServerLoopEvent::Connected {
                    connection,
                    hello,
                    wire_format,
                    compression,
                });
            }
            ServerEvent::Pong { round_trip } => {
                sink.stats.pongs += 1;
                sink.emit(ServerLoopEvent::Pong {
                    connection,
                    round_trip,
                });
            }
            // The last event: the caller drops the connection and reports
            // the close.
            ServerEvent::Closed(reason) => return Some(reason),
        }
    }
    None
}

/// Spreads the template's seed over connections (splitmix64), so that
/// their ping jitter is not in lock step.
fn mix(seed: u64, serial: u64) -> u64 {
    let mut z = seed ^ serial.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
