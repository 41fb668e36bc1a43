//! mio drivers for the [`syncproto`] Sans-IO machines: a single-threaded
//! poll-loop [`Server`] that serves many connections from one
//! [`SnapshotCache`](syncproto::fanout::SnapshotCache), and [`Clients`], a
//! poll loop that runs many client connections (with [`Client`] for one).
//!
//! The drivers only move bytes, time and events: every protocol decision is
//! the core machines'. Each loop iteration ([`Server::run_once`],
//! [`Clients::run_once`]) waits on the sockets and on the earliest machine
//! deadline, then for each connection that is ready reads into its machine
//! in bounded chunks, drains its events, writes what it hands out until
//! the socket would block (keeping only the unwritten remainder of one
//! `Bytes`), and re-arms its timer from `poll_timeout`.
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Timers
//!
//! Each loop keeps one binary heap of `(deadline, connection)` entries,
//! invalidated lazily: a connection remembers the deadline of its live
//! entry and pushes a new one only when its `poll_timeout` moves *earlier*.
//! When an entry comes due, the connection's current deadline is checked:
//! if it moved later (a client's read timeout moves on every read) the
//! entry is simply re-pushed, so the heap stays about one entry per
//! connection and no iteration scans all connections.
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
//! # Errors
//!
//! Setup returns `io::Result`. Anything that happens to one connection (a
//! peer breaking the protocol, a reset socket, a timeout) closes that
//! connection only, and is reported as a [`Disconnect`] through the
//! event handler and counters.

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
