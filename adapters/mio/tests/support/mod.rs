//! Shared by the integration tests and the `ten_thousand` example: a
//! realistic dataset, a server running on its own thread, and the
//! many-clients scale run (`scale.rs`). Written without unwrap/expect so
//! that the example (which is held to the crate's lints) can include it.

#![allow(dead_code, unreachable_pub, unused_imports)]

mod scale;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncproto::client::ClientConfig;
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{ByteString, CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::server::{ConnectionReport, ServerConfig};
use syncproto_mio::{Clients, ConnectionId, Notifier, Server, ServerLoopEvent};

pub use scale::{Placement, ScaleParams, ScaleReport, scale_child_main, scale_run};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A snapshot of `keys` workload endpoints (the crate's shared synthetic
/// data: 300–800-byte JSON values).
pub fn snapshot(keys: usize, seed: u64) -> Vec<SerializedUpdate> {
    syncproto::synthetic::endpoints(keys, seed)
}

/// A cache holding `updates`, in sync.
pub fn cache_with(updates: Vec<SerializedUpdate>) -> SnapshotCache {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = Instant::now();
    cache.apply(now, updates);
    cache.set_status(now, SyncStatus::InSync);
    cache
}

/// The cache's state as a client view.
pub fn expected_view(cache: &SnapshotCache) -> BTreeMap<ByteString, Bytes> {
    cache
        .snapshot_updates()
        .into_iter()
        .filter_map(|update| update.value.map(|value| (update.key, value)))
        .collect()
}

/// The four client flavours: (format, compressed).
pub const FLAVOURS: [(WireFormat, bool); 4] = [
    (WireFormat::Native, false),
    (WireFormat::Native, true),
    (WireFormat::Gob, false),
    (WireFormat::Gob, true),
];

pub fn client_config(format: WireFormat, compressed: bool, hostname: String) -> ClientConfig {
    ClientConfig {
        hostname,
        wire_format: format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    }
}

/// What the server's event handler saw, in a form the test thread can
/// inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Accepted(ConnectionId),
    Connected(ConnectionId, String),
    Pong(ConnectionId),
    Closed(Box<ConnectionReport>),
    AcceptFailed(String),
}

impl Seen {
    /// The report, if this is a close.
    pub fn report(&self) -> Option<&ConnectionReport> {
        match self {
            Seen::Closed(report) => Some(report),
            _ => None,
        }
    }
}

/// Counts of what the server's handler saw (cheap to read from another
/// thread).
#[derive(Debug, Default)]
pub struct Counts {
    pub accepted: AtomicU64,
    pub connected: AtomicU64,
    pub pongs: AtomicU64,
    pub closed: AtomicU64,
    pub closed_with_error: AtomicU64,
    pub accept_failed: AtomicU64,
}

/// [`RunningServer`]'s loop runs,
const RUN: u8 = 0;
/// stops at once,
const STOP: u8 = 1;
/// or shuts the server down and runs until it is finished.
const SHUT_DOWN: u8 = 2;

/// A [`Server`] running its loop on its own thread until stopped.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub notifier: Notifier,
    pub counts: Arc<Counts>,
    /// Every event (only when asked for: 10 000 connections would make a
    /// long list).
    pub seen: Option<Arc<Mutex<Vec<Seen>>>>,
    /// What the loop's thread is to do: [`RUN`], [`STOP`] or
    /// [`SHUT_DOWN`].
    command: Arc<AtomicU8>,
    thread: JoinHandle<io::Result<Server>>,
}

impl RunningServer {
    pub fn start(cache: SnapshotCache, config: ServerConfig, record: bool) -> io::Result<Self> {
        let mut server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), cache, config)?;
        let counts = Arc::new(Counts::default());
        let seen = record.then(|| Arc::new(Mutex::new(Vec::new())));
        let handler_counts = Arc::clone(&counts);
        let handler_seen = seen.clone();
        server.set_event_handler(move |event| {
            let counts = &handler_counts;
            let summary = match event {
                ServerLoopEvent::Accepted { connection, .. } => {
                    counts.accepted.fetch_add(1, Ordering::Relaxed);
                    Seen::Accepted(*connection)
                }
                ServerLoopEvent::Connected {
                    connection, hello, ..
                } => {
                    counts.connected.fetch_add(1, Ordering::Relaxed);
                    Seen::Connected(*connection, hello.hostname.clone())
                }
                ServerLoopEvent::Pong { connection, .. } => {
                    counts.pongs.fetch_add(1, Ordering::Relaxed);
                    Seen::Pong(*connection)
                }
                ServerLoopEvent::Closed { report, .. } => {
                    counts.closed.fetch_add(1, Ordering::Relaxed);
                    if report.is_error {
                        counts.closed_with_error.fetch_add(1, Ordering::Relaxed);
                    }
                    Seen::Closed(Box::new(report.clone()))
                }
                ServerLoopEvent::AcceptFailed { error } => {
                    counts.accept_failed.fetch_add(1, Ordering::Relaxed);
                    Seen::AcceptFailed(error.to_string())
                }
                other => Seen::AcceptFailed(format!("unexpected event {other:?}")),
            };
            if let Some(seen) = &handler_seen {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(summary);
            }
        });
        let addr = server.local_addr();
        let notifier = server.notifier();
        let command = Arc::new(AtomicU8::new(RUN));
        let thread_command = Arc::clone(&command);
        let thread = std::thread::Builder::new()
            .name("mio-server".into())
            .spawn(move || {
                loop {
                    match thread_command.load(Ordering::Acquire) {
                        STOP => break,
                        SHUT_DOWN => {
                            server.shutdown();
                            if server.is_finished() {
                                break;
                            }
                        }
                        _ => {}
                    }
                    server.run_once(Some(Duration::from_millis(100)))?;
                }
                Ok(server)
            })?;
        Ok(RunningServer {
            addr,
            notifier,
            counts,
            seen,
            command,
            thread,
        })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .as_ref()
            .map(|seen| seen.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Stops the loop at once (the connections stay open) and hands the
    /// server back (for its counters).
    pub fn stop(self) -> Result<Server, Error> {
        self.finish(STOP)
    }

    /// Shuts the server down gracefully and runs its loop until every
    /// connection is gone; hands the server back.
    pub fn shutdown(self) -> Result<Server, Error> {
        self.finish(SHUT_DOWN)
    }

    fn finish(self, command: u8) -> Result<Server, Error> {
        self.command.store(command, Ordering::Release);
        self.notifier.wake()?;
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err("the server thread panicked".into()),
        }
    }
}

/// Runs `clients` until `done` holds, failing after `limit`.
pub fn run_clients_until(
    clients: &mut Clients,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Clients) -> bool,
) -> Result<(), Error> {
    let give_up = Instant::now() + limit;
    while !done(clients) {
        if Instant::now() > give_up {
            return Err(format!("{what}: not done after {limit:?}: {:?}", clients.stats()).into());
        }
        clients.run_once(Some(Duration::from_millis(10)))?;
    }
    Ok(())
}
