//! The driver contract (ARCHITECTURE.md, "The driver contract") as tests:
//! every driver of the syncproto machines implements [`Driver`] for its
//! server and reconnecting client, and runs this one list against itself
//! with [`driver_contract_tests!`]. Real sockets on loopback, real time;
//! every wait is for an event (with a generous bound for a hung test), and
//! every test checks that the situation it sets up really happened.
//!
//! What a driver owes its users, beyond moving bytes and time:
//!
//! - **A graceful shutdown ends every connection cleanly**: each finishes
//!   the message in flight (bounded by a linger), stops sending, shuts its
//!   writing side and counts the client's last pongs until the client
//!   closes; no client sees a message cut short.
//! - **Limits**: over `max_connections`, one connection (chosen by the
//!   core's [`ConnectionLimit`](syncproto::server::ConnectionLimit)) is shed
//!   per interval until back at the limit.
//! - **A reconnecting client resyncs** through the core's
//!   [`Session`](syncproto::session::Session): after a reconnect only what
//!   changed is delivered.
//! - **Stats in one shape**: the core's [`ServerStats`], one
//!   [`ConnectionReport`] per connection.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod blocking;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncproto::CloseReason;
use syncproto::client::ClientConfig;
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus};
use syncproto::server::{ConnectionReport, ServerConfig, ServerStats};
use syncproto::session::{Backoff, SessionEvent};

pub use blocking::BlockingClient;

/// A bound on a hung test, not a measure of speed.
pub const HUNG: Duration = Duration::from_secs(60);

/// How to start a server under test.
#[derive(Debug, Clone)]
pub struct ServerSetup {
    /// The datastore to serve.
    pub cache: SnapshotCache,
    /// The template for every connection.
    pub config: ServerConfig,
    /// Shed connections above this many.
    pub max_connections: Option<usize>,
    /// The pace of shedding.
    pub shed_interval: Duration,
}

/// A server driver running on threads of its own, on 127.0.0.1.
pub trait ServerUnderTest: Send {
    /// Where it listens.
    fn address(&self) -> SocketAddr;
    /// Wakes its connections after its cache changed.
    fn notify(&self);
    /// Connections open now.
    fn connection_count(&self) -> usize;
    /// Its totals so far.
    fn stats(&self) -> ServerStats;
    /// Stops accepting and ends every connection gracefully; returns once
    /// all are gone, with the report of every connection it ever served.
    fn shutdown(self: Box<Self>) -> Vec<ConnectionReport>;
}

/// A reconnecting client driver running on threads of its own.
pub trait ClientUnderTest: Send {
    /// The next event of its session, waiting up to `limit`.
    fn next_event(&mut self, limit: Duration) -> Option<SessionEvent>;
    /// Drops the current connection (the client reconnects).
    fn disconnect(&mut self);
}

/// A driver: how to start its server and its reconnecting client.
pub trait Driver {
    /// Starts a server as `setup` says.
    fn start_server(setup: ServerSetup) -> Box<dyn ServerUnderTest>;
    /// Starts a reconnecting client of `address`.
    fn start_client(
        address: SocketAddr,
        config: ClientConfig,
        backoff: Backoff,
    ) -> Box<dyn ClientUnderTest>;
}

/// Defines one `#[test]` per contract test for `$driver`.
#[macro_export]
macro_rules! driver_contract_tests {
    ($driver:ty) => {
        #[test]
        fn a_graceful_shutdown_ends_every_connection_cleanly() {
            $crate::a_graceful_shutdown_ends_every_connection_cleanly::<$driver>();
        }
        #[test]
        fn a_connection_stopped_mid_message_finishes_it() {
            $crate::a_connection_stopped_mid_message_finishes_it::<$driver>();
        }
        #[test]
        fn over_its_limit_a_server_sheds_one_connection_per_interval() {
            $crate::over_its_limit_a_server_sheds_one_connection_per_interval::<$driver>();
        }
        #[test]
        fn a_reconnecting_client_resyncs_without_a_full_resend() {
            $crate::a_reconnecting_client_resyncs_without_a_full_resend::<$driver>();
        }
    };
}

/// A server configuration that pings often.
fn chatty() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_millis(20),
        ping_jitter: Duration::from_millis(2),
        pong_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

fn setup(cache: SnapshotCache) -> ServerSetup {
    ServerSetup {
        cache,
        config: chatty(),
        max_connections: None,
        shed_interval: Duration::from_secs(1),
    }
}

/// A cache holding `keys` keys of `value_len` bytes each, in sync.
fn cache(keys: usize, value_len: usize) -> SnapshotCache {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = Instant::now();
    cache.apply(
        now,
        (0..keys).map(|index| {
            let mut value = index.to_string();
            value.extend(std::iter::repeat_n(
                'v',
                value_len.saturating_sub(value.len()),
            ));
            SerializedUpdate::upsert(format!("/calico/v1/config/Key{index:05}"), value, "1")
        }),
    );
    cache.set_status(now, SyncStatus::InSync);
    cache
}

/// Waits until `done` holds, checking now and then.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + HUNG;
    while !done() {
        assert!(Instant::now() < give_up, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every connection that stayed to the end: ended by the shutdown, each
/// ping answered.
pub fn a_graceful_shutdown_ends_every_connection_cleanly<D: Driver>() {
    let server = D::start_server(setup(cache(2000, 500)));
    let clients: Vec<BlockingClient> = [WireFormat::Gob, WireFormat::Native, WireFormat::Gob]
        .into_iter()
        .enumerate()
        .map(|(index, format)| BlockingClient::start(server.address(), format, index == 2))
        .collect();
    for client in &clients {
        client.wait_for_status(SyncStatus::InSync);
    }
    // Pings have gone both ways on every connection.
    for client in &clients {
        client.wait_for_pings(2);
    }
    let reports = server.shutdown();
    for client in clients {
        let ended = client.join();
        assert_eq!(
            ended.reason,
            CloseReason::PeerClosed,
            "a clean end of stream"
        );
        assert_eq!(ended.view.len(), 2000);
    }
    assert_eq!(reports.len(), 3, "{reports:#?}");
    for report in &reports {
        assert_eq!(report.reason, "closed locally", "{report:?}");
        assert!(!report.is_error, "{report:?}");
        assert!(report.pings_sent >= 2, "{report:?}");
        assert_eq!(report.unanswered_pings, 0, "{report:?}");
        assert!(
            report.peer.is_some() && report.hello.is_some(),
            "{report:?}"
        );
    }
}

/// A message being written when the shutdown comes goes out whole.
pub fn a_connection_stopped_mid_message_finishes_it<D: Driver>() {
    // One value far larger than the socket buffers: its message is written
    // over many turns, and blocks while the client does not read.
    let big = 8 << 20;
    let server = D::start_server(setup(cache(1, big)));
    let client = BlockingClient::start(server.address(), WireFormat::Native, false);
    client.wait_for_connected();
    client.pause();
    // The server has started the message and is blocked in it.
    wait_until("the server to be blocked mid-message", || {
        let written = server.stats().bytes_written;
        written > 1 << 20 && written < big as u64
    });
    let shutting = std::thread::spawn(move || server.shutdown());
    // Give the shutdown ample time to reach the connection (well within
    // the linger it has to finish the message); the status check below
    // fails if it had not.
    std::thread::sleep(Duration::from_millis(300));
    client.resume();
    let ended = client.join();
    assert_eq!(
        ended.reason,
        CloseReason::PeerClosed,
        "the message arrived whole, then a clean end"
    );
    assert_eq!(ended.view.values().next().map(Bytes::len), Some(big));
    // The snapshot's status would have followed the message had the stop
    // not come while it was in flight.
    assert_eq!(ended.statuses, [SyncStatus::ResyncInProgress]);
    let reports = shutting.join().unwrap();
    assert_eq!(reports.len(), 1);
}

/// Over the limit, one connection is shed each interval, down to the
/// limit and no further.
pub fn over_its_limit_a_server_sheds_one_connection_per_interval<D: Driver>() {
    let interval = Duration::from_millis(100);
    let server = D::start_server(ServerSetup {
        max_connections: Some(2),
        shed_interval: interval,
        ..setup(cache(10, 10))
    });
    let clients: Vec<BlockingClient> = (0..5)
        .map(|_| BlockingClient::start(server.address(), WireFormat::Native, false))
        .collect();
    wait_until("five connections", || server.stats().accepted == 5);
    wait_until("the first shed", || server.stats().shed >= 1);
    let first = Instant::now();
    wait_until("shedding down to the limit", || {
        server.connection_count() == 2 && server.stats().shed == 3
    });
    // One a tick: two ticks between the first shed and the third (less a
    // little for how often this looks).
    assert!(
        first.elapsed() >= interval * 3 / 2,
        "three sheds within {:?}",
        first.elapsed()
    );
    // And none after: three more intervals pass at the limit.
    let settled = Instant::now();
    while settled.elapsed() < interval * 3 {
        assert_eq!(server.stats().shed, 3);
        assert_eq!(server.connection_count(), 2);
        std::thread::sleep(Duration::from_millis(10));
    }
    let reports = server.shutdown();
    let ended: Vec<CloseReason> = clients
        .into_iter()
        .map(|client| client.join().reason)
        .collect();
    // The shed clients and the ones the shutdown ended all saw a clean end.
    assert!(
        ended
            .iter()
            .all(|reason| *reason == CloseReason::PeerClosed)
    );
    let shed = reports
        .iter()
        .filter(|report| report.reason == "closed locally")
        .count();
    assert_eq!(
        shed, 5,
        "shed and shut down, all from this side: {reports:#?}"
    );
}

/// After a reconnect, the application is told only what changed.
pub fn a_reconnecting_client_resyncs_without_a_full_resend<D: Driver>() {
    let cache = cache(50, 10);
    let server = D::start_server(setup(cache.clone()));
    let config = ClientConfig {
        wire_format: WireFormat::Gob,
        key_parser: None,
        ..ClientConfig::default()
    };
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let mut client = D::start_client(server.address(), config, backoff);
    let mut view: BTreeMap<ByteString, Bytes> = BTreeMap::new();
    let mut statuses = Vec::new();
    let apply = |view: &mut BTreeMap<ByteString, Bytes>, updates: Vec<SerializedUpdate>| {
        updates.iter().for_each(|update| update.apply_to(view));
        updates.len()
    };
    while view.len() < 50 || statuses.last() != Some(&SyncStatus::InSync) {
        match client.next_event(HUNG).expect("the client synced") {
            SessionEvent::Updates(updates) => {
                apply(&mut view, updates);
            }
            SessionEvent::Status(status) => statuses.push(status),
            SessionEvent::Checksum(report) => assert!(report.verified, "{report:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let keys: Vec<ByteString> = view.keys().cloned().collect();
    client.disconnect();
    let mut reconnects = 0;
    let mut delivered = 0;
    let mut resynced = 0;
    loop {
        match client.next_event(HUNG).expect("the client came back") {
            SessionEvent::Reconnecting { .. } => {
                reconnects += 1;
                if reconnects == 1 {
                    // While the client is away, two keys go and one changes.
                    cache.apply(
                        Instant::now(),
                        [
                            SerializedUpdate::deletion(keys[0].clone(), "d1"),
                            SerializedUpdate::deletion(keys[1].clone(), "d2"),
                            SerializedUpdate::upsert(keys[2].clone(), "changed", "c1"),
                        ],
                    );
                    server.notify();
                }
            }
            SessionEvent::Updates(updates) => delivered += apply(&mut view, updates),
            SessionEvent::Status(status) => statuses.push(status),
            SessionEvent::Dropped { key, .. } => panic!("dropped {key}"),
            SessionEvent::Checksum(report) => assert!(report.verified, "{report:?}"),
            SessionEvent::Resynced => resynced += 1,
        }
        if reconnects > 0 && resynced > 0 && view.len() == 48 && view[&keys[2]] == "changed" {
            break;
        }
    }
    assert_eq!(reconnects, 1);
    assert_eq!(resynced, 1, "the session says when the resync ended");
    assert_eq!(
        delivered, 3,
        "two deletions and one change, not the whole snapshot"
    );
    assert_eq!(statuses, [SyncStatus::ResyncInProgress, SyncStatus::InSync]);
    server.shutdown();
}
