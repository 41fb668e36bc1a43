//! How mio connections end, beyond the shared driver contract: a shed
//! connection finishes the message it is writing (to a client whose small
//! receive window blocks the server early), a graceful shutdown
//! counts the last pongs of mio's own clients, and a reconnecting client
//! in a `Clients` loop rides out a server restart.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{FLAVOURS, cache_with, client_config, expected_view, snapshot};
use syncproto::CloseReason;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus};
use syncproto::server::{ConnectionReport, ServerConfig};
use syncproto::session::{Backoff, SessionEvent};
use syncproto_mio::{Clients, Disconnect, Server, ServerLoopEvent};

const LIMIT: Duration = Duration::from_secs(60);

fn quick_pings() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_millis(20),
        ping_jitter: Duration::from_millis(2),
        ..ServerConfig::default()
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Collects the server's reports.
fn reporting(server: &mut Server) -> std::sync::mpsc::Receiver<ConnectionReport> {
    let (send, reports) = std::sync::mpsc::channel();
    server.set_event_handler(move |event| {
        if let ServerLoopEvent::Closed { report, .. } = event {
            let _ = send.send(report.clone());
        }
    });
    reports
}

/// Runs `server` until `done` holds, failing after [`LIMIT`].
fn run_until(server: &mut Server, what: &str, mut done: impl FnMut(&Server) -> bool) {
    let give_up = Instant::now() + LIMIT;
    while !done(server) {
        assert!(Instant::now() < give_up, "waited too long for {what}");
        server.run_once(Some(Duration::from_millis(1))).unwrap();
    }
}

/// A client machine over a blocking socket with a small receive window
/// (so that a server writing a large message blocks in it early), read
/// only when asked.
struct SlowReader {
    socket: std::net::TcpStream,
    machine: ClientConnection,
    events: Vec<ClientEvent>,
}

impl SlowReader {
    fn connect(addr: SocketAddr) -> SlowReader {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut socket: std::net::TcpStream = socket.into();
        let config = ClientConfig {
            key_parser: None,
            ..client_config(WireFormat::Native, false, "slow".into())
        };
        let mut machine = ClientConnection::new(config, syncproto_mio::now()).unwrap();
        while let Some(bytes) = machine.poll_transmit() {
            socket.write_all(&bytes).unwrap();
        }
        socket.set_nonblocking(true).unwrap();
        SlowReader {
            socket,
            machine,
            events: Vec::new(),
        }
    }

    /// Reads what is there; whether the connection ended.
    fn read(&mut self) -> bool {
        let mut buffer = vec![0; 64 << 10];
        loop {
            match self.socket.read(&mut buffer) {
                Ok(0) => self.machine.handle_eof(syncproto_mio::now()),
                Ok(n) => self
                    .machine
                    .handle_input(syncproto_mio::now(), &buffer[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("{error}"),
            }
            self.events
                .extend(std::iter::from_fn(|| self.machine.poll_event()));
            if self.machine.is_closed() {
                // As a client does: our side closes too.
                let _ = self.socket.shutdown(std::net::Shutdown::Write);
                return true;
            }
        }
        false
    }
}

#[test]
fn a_connection_shed_mid_message_finishes_it_first() {
    let big = 8 << 20;
    let cache = SnapshotCache::new(CacheConfig::default());
    let key = "/calico/v1/config/Big";
    cache.apply(
        Instant::now(),
        [SerializedUpdate::upsert(key, "v".repeat(big), "1")],
    );
    cache.set_status(Instant::now(), SyncStatus::InSync);
    let mut server = Server::bind(loopback(), cache, ServerConfig::default()).unwrap();
    let reports = reporting(&mut server);
    let mut client = SlowReader::connect(server.local_addr());
    // The server has started the message and is blocked in it: more than
    // the handshake written, then no progress for a while.
    run_until(&mut server, "the message to start", |server| {
        server.stats().bytes_written > 16 << 10
    });
    let mut written = 0;
    let mut since = Instant::now();
    run_until(&mut server, "the server to be blocked", |server| {
        let now = server.stats().bytes_written;
        if now != written {
            (written, since) = (now, Instant::now());
        }
        since.elapsed() > Duration::from_millis(100)
    });
    // Mid-message: the kernel's buffers (autotuned on loopback, several MiB
    // on some machines) hold part of it, the rest waits.
    assert!(written < big as u64, "{written}");
    server.set_connection_limit(0, Duration::from_millis(10));
    run_until(&mut server, "the shed", |server| server.stats().shed == 1);
    // No longer counted, but still writing: not gone yet.
    assert_eq!(server.connection_count(), 0);
    assert_eq!(server.stats().closed, 0);
    let give_up = Instant::now() + LIMIT;
    while !client.read() {
        assert!(Instant::now() < give_up);
        server.run_once(Some(Duration::from_millis(1))).unwrap();
    }
    run_until(&mut server, "the connection to go", |server| {
        server.stats().closed == 1
    });
    // The message arrived whole, then a clean end; not the status that
    // would have followed it.
    let mut view = std::collections::BTreeMap::new();
    let mut statuses = Vec::new();
    for event in &client.events {
        match event {
            ClientEvent::Updates(updates) => updates.iter().for_each(|u| u.apply_to(&mut view)),
            ClientEvent::Status(status) => statuses.push(*status),
            _ => {}
        }
    }
    assert_eq!(
        client.machine.close_reason(),
        Some(&CloseReason::PeerClosed)
    );
    assert_eq!(view.get(key).map(Bytes::len), Some(big));
    assert_eq!(statuses, [SyncStatus::ResyncInProgress]);
    let report = reports.try_recv().unwrap();
    assert_eq!(report.reason, "closed locally", "{report:?}");
    assert!(
        report.peer.is_some() && report.hello.is_some(),
        "{report:?}"
    );
}

#[test]
fn a_graceful_shutdown_counts_the_last_pongs_of_mio_clients() {
    let cache = cache_with(snapshot(200, 11));
    let mut server = Server::bind(loopback(), cache.clone(), quick_pings()).unwrap();
    let reports = reporting(&mut server);
    let mut clients = Clients::new().unwrap();
    for (index, (format, compressed)) in FLAVOURS.into_iter().enumerate() {
        let config = client_config(format, compressed, format!("node-{index}"));
        clients.connect(server.local_addr(), config).unwrap();
    }
    let turn = |server: &mut Server, clients: &mut Clients| {
        server.run_once(Some(Duration::from_millis(1))).unwrap();
        clients.run_once(Some(Duration::from_millis(1))).unwrap();
    };
    let give_up = Instant::now() + LIMIT;
    while clients.stats().in_sync < 4 || server.stats().pongs < 8 {
        assert!(Instant::now() < give_up, "{:?}", server.stats());
        turn(&mut server, &mut clients);
    }
    server.shutdown();
    assert_eq!(
        server.connection_count(),
        4,
        "gone only once the clients close"
    );
    while !server.is_finished() || clients.stats().open > 0 {
        assert!(Instant::now() < give_up, "{:?}", server.stats());
        turn(&mut server, &mut clients);
    }
    let expected = expected_view(&cache);
    for (id, state) in clients.iter() {
        assert!(
            matches!(
                state.closed(),
                Some(Disconnect::Closed(CloseReason::PeerClosed))
            ),
            "{id:?}: {:?}",
            state.closed()
        );
        assert_eq!(state.view(), &expected, "{id:?}");
    }
    let reports: Vec<_> = reports.try_iter().collect();
    assert_eq!(reports.len(), 4);
    for report in &reports {
        assert_eq!(report.reason, "closed locally", "{report:?}");
        assert!(!report.is_error, "{report:?}");
        assert!(report.pings_sent >= 1, "{report:?}");
        assert_eq!(report.unanswered_pings, 0, "{report:?}");
    }
    let stats = server.stats();
    assert_eq!((stats.closed, stats.closed_with_error), (4, 0));
    assert_eq!(stats.close_reasons.get("closed locally"), 4);
    // Shut down: nothing more is accepted.
    assert!(std::net::TcpStream::connect(server.local_addr()).is_err());
}

#[test]
fn a_reconnecting_client_rides_out_a_server_restart() {
    let cache = cache_with(snapshot(100, 5));
    let mut server = Server::bind(loopback(), cache.clone(), quick_pings()).unwrap();
    let addr = server.local_addr();
    let mut clients = Clients::new().unwrap();
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let config = client_config(FLAVOURS[3].0, FLAVOURS[3].1, "roamer".into());
    let id = clients
        .connect_reconnecting(addr, config, backoff, 3)
        .unwrap();
    let mut events = Vec::new();
    let run = |server: Option<&mut Server>, clients: &mut Clients| {
        if let Some(server) = server {
            server.run_once(Some(Duration::from_millis(1))).unwrap();
        }
        clients.run_once(Some(Duration::from_millis(1))).unwrap();
        let fresh: Vec<_> = std::iter::from_fn(|| clients.poll_session_event(id)).collect();
        fresh
    };
    let session_status = |clients: &Clients| clients.get(id).unwrap().session().unwrap().status();
    let give_up = Instant::now() + LIMIT;
    while session_status(&clients) != Some(SyncStatus::InSync) {
        assert!(Instant::now() < give_up);
        events.extend(run(Some(&mut server), &mut clients));
    }
    let updates = |events: &[SessionEvent]| -> usize {
        events
            .iter()
            .map(|event| match event {
                SessionEvent::Updates(updates) => updates.len(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(updates(&events), 100);

    // The server goes away; the client retries (refused) without blocking.
    events.clear();
    server.shutdown();
    while !server.is_finished() {
        assert!(Instant::now() < give_up);
        events.extend(run(Some(&mut server), &mut clients));
    }
    drop(server);
    let attempts = |events: &[SessionEvent]| -> Vec<u32> {
        events
            .iter()
            .filter_map(|event| match event {
                SessionEvent::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect()
    };
    while attempts(&events).len() < 3 {
        assert!(Instant::now() < give_up);
        events.extend(run(None, &mut clients));
    }
    assert_eq!(attempts(&events)[..3], [1, 2, 3], "{events:?}");
    assert!(clients.get(id).unwrap().is_open());
    assert_eq!(clients.stats().open, 0);

    // While it is away, two keys go and one changes; the server comes back
    // on the same port.
    let view = clients.get(id).unwrap().session().unwrap().view();
    let keys: Vec<_> = view.keys().take(3).cloned().collect();
    cache.apply(
        Instant::now(),
        [
            SerializedUpdate::deletion(keys[0].clone(), "d1"),
            SerializedUpdate::deletion(keys[1].clone(), "d2"),
            SerializedUpdate::upsert(keys[2].clone(), "changed", "c1"),
        ],
    );
    let mut server = Server::bind(addr, cache.clone(), quick_pings()).unwrap();
    events.clear();
    let resynced = |clients: &Clients| {
        let view = clients.get(id).unwrap().session().unwrap().view();
        view.len() == 98 && view[&keys[2]].value.as_deref() == Some(&b"changed"[..])
    };
    while !resynced(&clients) {
        assert!(Instant::now() < give_up);
        events.extend(run(Some(&mut server), &mut clients));
    }
    assert_eq!(updates(&events), 3, "only what changed: {events:?}");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, SessionEvent::Status(_))),
        "the status never changed for the application: {events:?}"
    );
    assert!(clients.get(id).unwrap().is_in_sync());

    // Closed for good: it stops reconnecting.
    clients.close(id);
    let state = clients.get(id).unwrap();
    assert!(matches!(
        state.closed(),
        Some(Disconnect::Closed(CloseReason::Local))
    ));
    let started = clients.stats().started;
    for _ in 0..20 {
        events.extend(run(Some(&mut server), &mut clients));
    }
    assert_eq!(clients.stats().started, started);
}
