//! mio drivers for the [`syncproto`] Sans-IO machines: a single-threaded
//! poll-loop [`Server`] that serves many connections from one
//! [`SnapshotCache`](syncproto::fanout::SnapshotCache), and [`Clients`], a
//! poll loop that runs many client connections (with [`Client`] for one
//! and [`ReconnectingClient`] for one that stays connected).
//!
//! The drivers only move bytes, time and events: every protocol decision is
//! the core machines'. Both sides run on one poll loop (an internal generic
//! module): each iteration ([`Server::run_once`], [`Clients::run_once`])
//! waits on the sockets and on the earliest deadline, then for each
//! connection that is ready reads into its machine in bounded chunks,
//! reports its events, writes what it hands out until the socket would
//! block (keeping only the unwritten remainder of one `Bytes`), and
//! re-arms its timer from `poll_timeout`.
//!
//! # Example
//!
//! A server and a client in one thread (normally each runs its own loop):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use syncproto::client::ClientConfig;
//! use syncproto::fanout::{CacheConfig, SnapshotCache};
//! use syncproto::message::{SerializedUpdate, SyncStatus};
//! use syncproto::server::ServerConfig;
//! use syncproto_mio::{Client, Server};
//!
//! let cache = SnapshotCache::new(CacheConfig::default());
//! let key = "/calico/v1/config/LogSeverityScreen";
//! cache.apply(Instant::now(), [SerializedUpdate::upsert(key, "Info", "1")]);
//! cache.set_status(Instant::now(), SyncStatus::InSync);
//!
//! let mut server = Server::bind("127.0.0.1:0".parse()?, cache.clone(), ServerConfig::default())?;
//! let notifier = server.notifier(); // for other threads that change the cache
//! let mut client = Client::connect(server.local_addr(), ClientConfig::default())?;
//! let give_up = Instant::now() + Duration::from_secs(10);
//! while !client.state().is_in_sync() && Instant::now() < give_up {
//!     server.run_once(Some(Duration::from_millis(1)))?;
//!     client.run_once(Some(Duration::from_millis(1)))?;
//! }
//! assert_eq!(client.state().view()[key], "Info");
//!
//! // A live change: apply it to the cache, then wake the server's loop.
//! cache.apply(Instant::now(), [SerializedUpdate::upsert(key, "Debug", "2")]);
//! notifier.notify()?;
//! while client.state().view()[key] != "Debug" && Instant::now() < give_up {
//!     server.run_once(Some(Duration::from_millis(1)))?;
//!     client.run_once(Some(Duration::from_millis(1)))?;
//! }
//! assert_eq!(client.state().view()[key], "Debug");
//!
//! // A graceful stop: every connection finishes what it is sending, the
//! // client closes its side, the server's loop is done.
//! server.shutdown();
//! while !server.is_finished() && Instant::now() < give_up {
//!     server.run_once(Some(Duration::from_millis(1)))?;
//!     client.run_once(Some(Duration::from_millis(1)))?;
//! }
//! assert!(server.is_finished());
//! assert_eq!(server.stats().close_reasons.get("closed locally"), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Timers
//!
//! Each loop keeps one binary heap of `(deadline, connection)` entries,
//! invalidated lazily: a connection remembers the deadline of its live
//! entry and pushes a new one only when its deadline moves *earlier*.
//! When an entry comes due, the connection's current deadline is checked:
//! if it moved later (a client's read timeout moves on every read) the
//! entry is simply re-pushed, so the heap stays about one entry per
//! connection and no iteration scans all connections. A connection's
//! deadline is its machine's, or the driver's own while it closes (the
//! linger) or waits to reconnect (the backoff).
//!
//! # Cache wake-ups
//!
//! A connection following the cache notices new data only when asked for
//! output. After `cache.apply(..)` or `cache.set_status(..)`, call
//! [`Notifier::notify`] (from any thread) or [`Server::cache_changed`]
//! (from the loop's thread): the next iteration asks every connection that
//! is not blocked on its socket for output. Connections blocked on a full
//! socket pull the new data when the socket becomes writable.
//!
//! # Closing, shutdown and the connection limit
//!
//! A server connection never drops a message it has started writing
//! unless the client will not take it: when its machine closes (for any
//! reason: a protocol error, a timeout, a client that fell behind, a shed)
//! the rest of the message in flight is written, for at most a linger of
//! 2 s; then the writing side is shut down and what the client still sends
//! is read (and dropped) until it closes its side, for at most another
//! 2 s, so that it sees a clean end of stream rather than a reset.
//!
//! [`Server::shutdown`] closes the listener and stops every connection
//! gracefully ([`ServerConnection::stop_sending`](syncproto::server::ServerConnection::stop_sending)):
//! what the machine has ready goes out (bounded by the linger), the
//! writing side is shut, and the client's last pongs are read and counted
//! until it closes its side (the connection then ends "closed locally")
//! or the linger passes. Run the loop until [`Server::is_finished`].
//!
//! [`Server::set_connection_limit`] sheds connections above a maximum, one
//! per interval, as upstream Typha does (the core's
//! [`ConnectionLimit`](syncproto::server::ConnectionLimit) chooses which).
//!
//! # Reports and counters
//!
//! [`Server::stats`] returns the core's
//! [`ServerStats`](syncproto::server::ServerStats), the shape every driver
//! reports. Every connection that ends is reported once, with the core's
//! [`ConnectionReport`](syncproto::server::ConnectionReport) (its hello,
//! why it ended, pings, pongs, bytes, peer and duration) in
//! [`ServerLoopEvent::Closed`].
//!
//! # Reconnecting clients
//!
//! [`Clients::connect_reconnecting`] (or [`ReconnectingClient`]) runs the
//! core's [`Session`](syncproto::session::Session) over successive
//! connections: a lost connection is made again after a backoff waited on
//! the loop's timers, and after its snapshot the application is told only
//! what changed.
//!
//! # Errors
//!
//! Setup returns `io::Result`. Anything that happens to one connection (a
//! peer breaking the protocol, a reset socket, a timeout) closes that
//! connection only, and is reported through the event handler and
//! counters (for clients, as a [`Disconnect`] in their state).

#![forbid(unsafe_code)]

mod client;
mod io;
mod poll_loop;
mod server;
mod timers;

pub use client::{Client, ClientId, ClientState, Clients, ClientsStats, ReconnectingClient};
pub use server::{ConnectionId, Notifier, Server, ServerLoopEvent};
pub use syncproto;

use syncproto::CloseReason;
use syncproto::Now;

/// Why a client connection was dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum Disconnect {
    /// The protocol machine closed the connection and says why (including
    /// [`CloseReason::PeerClosed`] for a clean end of stream and
    /// [`CloseReason::Local`] for a close asked for by the application).
    Closed(CloseReason),
    /// The socket failed: the connection was refused or reset, or a read or
    /// write failed.
    Io(std::io::Error),
}

impl Disconnect {
    /// Whether the connection ended because something went wrong (anything
    /// but a local close or a clean close by the peer).
    pub fn is_error(&self) -> bool {
        match self {
            Disconnect::Closed(reason) => reason.is_error(),
            Disconnect::Io(_) => true,
        }
    }
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disconnect::Closed(reason) => write!(f, "{reason}"),
            Disconnect::Io(error) => write!(f, "socket error: {error}"),
        }
    }
}

/// Reads both clocks, as the machines want them
/// ([`Now::from_std`]): the monotonic clock for deadlines and the wall
/// clock for ping and pong timestamps. The drivers call it once per loop
/// iteration; call it yourself to feed a machine.
pub fn now() -> Now {
    poll_loop::now()
}
