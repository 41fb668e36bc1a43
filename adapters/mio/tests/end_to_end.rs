//! The mio server and clients end to end on loopback: a realistic
//! snapshot in every flavour, live changes, pings, closes, and peers that
//! misbehave.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{
    FLAVOURS, RunningServer, Seen, cache_with, client_config, expected_view, run_clients_until,
    snapshot,
};
use syncproto::CloseReason;
use syncproto::client::ClientConnection;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus};
use syncproto::server::ServerConfig;
use syncproto::synthetic::{endpoint, endpoint_key};
use syncproto_mio::{Client, Clients, ConnectionId, Disconnect, Server};

const LIMIT: Duration = Duration::from_secs(60);

fn quick_pings() -> ServerConfig {
    ServerConfig {
        ping_interval: Duration::from_millis(50),
        ping_jitter: Duration::from_millis(5),
        ..ServerConfig::default()
    }
}

#[test]
fn every_flavour_syncs_follows_changes_answers_pings_and_closes() {
    let cache = cache_with(snapshot(3000, 1));
    let server = RunningServer::start(cache.clone(), quick_pings(), true).unwrap();
    let mut clients = Clients::new().unwrap();
    let ids: Vec<_> = (0..8)
        .map(|index| {
            let (format, compressed) = FLAVOURS[index % 4];
            let config = client_config(format, compressed, format!("node-{index}"));
            clients.connect(server.addr, config).unwrap()
        })
        .collect();

    // Everyone reaches InSync with the cache's state.
    run_clients_until(&mut clients, LIMIT, "initial sync", |c| {
        c.stats().in_sync == 8
    })
    .unwrap();
    let expected = expected_view(&cache);
    assert_eq!(expected.len(), 3000);
    for (index, id) in ids.iter().enumerate() {
        let state = clients.get(*id).unwrap();
        assert_eq!(state.view(), &expected, "client {index}");
        assert_eq!(state.dropped_keys(), 0, "client {index}");
        assert!(state.server_hello().is_some(), "client {index}");
    }

    // Live changes, from this thread, announced with the notifier: updates,
    // deletions, new keys and a status dip.
    for round in 0..5u64 {
        let now = Instant::now();
        if round == 2 {
            cache.set_status(now, SyncStatus::ResyncInProgress);
        }
        let base = round as usize * 40;
        let mut changes: Vec<SerializedUpdate> = (base..base + 20)
            .map(|index| SerializedUpdate {
                revision: format!("r{round}").into(),
                ..endpoint(index, round + 1)
            })
            .collect();
        changes.extend(
            (base + 20..base + 30)
                .map(|index| SerializedUpdate::deletion(endpoint_key(index), "gone")),
        );
        changes.extend((0..10).map(|n| {
            let index = 10_000 + base + n;
            SerializedUpdate {
                revision: "new".into(),
                ..endpoint(index, 0)
            }
        }));
        cache.apply(now, changes);
        if round == 3 {
            cache.set_status(now, SyncStatus::InSync);
        }
        server.notifier.notify().unwrap();
        // Let some of them arrive between rounds, some batched.
        for _ in 0..3 {
            clients.run_once(Some(Duration::from_millis(5))).unwrap();
        }
    }
    let expected = expected_view(&cache);
    assert_eq!(expected.len(), 3000 - 50 + 50);
    run_clients_until(&mut clients, LIMIT, "live changes", |c| {
        c.iter()
            .all(|(_, state)| state.is_in_sync() && state.view() == &expected)
    })
    .unwrap();

    // Pings: every connection answers several (50 ms interval).
    let hostnames_by_connection = |seen: &[Seen]| {
        seen.iter()
            .filter_map(|event| match event {
                Seen::Connected(connection, hostname) => Some((*connection, hostname.clone())),
                _ => None,
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    run_clients_until(&mut clients, LIMIT, "pongs", |_| {
        let seen = server.seen();
        hostnames_by_connection(&seen).keys().all(|connection| {
            seen.iter()
                .filter(|event| **event == Seen::Pong(*connection))
                .count()
                >= 3
        })
    })
    .unwrap();

    // A client closing makes the server drop that connection, and only it.
    let closing = ids[3];
    let connection = ConnectionId(
        clients
            .get(closing)
            .unwrap()
            .server_hello()
            .unwrap()
            .server_conn_id,
    );
    clients.close(closing);
    assert!(matches!(
        clients.get(closing).unwrap().closed(),
        Some(Disconnect::Closed(CloseReason::Local))
    ));
    run_clients_until(
        &mut clients,
        LIMIT,
        "server drops the closed client",
        |_| {
            server
                .seen()
                .iter()
                .filter_map(Seen::report)
                .any(|report| report.id == connection.0)
        },
    )
    .unwrap();
    // The others keep going: one more change reaches them.
    cache.apply(
        Instant::now(),
        [SerializedUpdate::deletion(endpoint_key(2999), "late")],
    );
    server.notifier.notify().unwrap();
    let expected = expected_view(&cache);
    run_clients_until(&mut clients, LIMIT, "change after a close", |c| {
        c.iter()
            .filter(|(id, _)| *id != closing)
            .all(|(_, state)| state.is_in_sync() && state.view() == &expected)
    })
    .unwrap();
    assert_eq!(clients.stats().closed, 1);
    assert_eq!(clients.stats().closed_with_error, 0);

    let seen = server.seen();
    assert_eq!(hostnames_by_connection(&seen).len(), 8);
    let closes: Vec<_> = seen
        .iter()
        .filter(|event| matches!(event, Seen::Closed { .. }))
        .collect();
    assert_eq!(closes.len(), 1, "{closes:?}");
    let server = server.stop().unwrap();
    assert_eq!(server.connection_count(), 7);
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.handshakes, stats.closed), (8, 8, 1));
    assert!(stats.pongs >= 8 * 3, "{stats:?}");
    assert_eq!(stats.bytes_read, clients.stats().bytes_written);
}

#[test]
fn same_thread_server_and_single_client() {
    // Server and client in one thread, the cache change announced with
    // `cache_changed` instead of the notifier.
    let cache = cache_with(snapshot(200, 2));
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server = Server::bind(addr, cache.clone(), ServerConfig::default()).unwrap();
    let (format, compressed) = FLAVOURS[3];
    let mut client = Client::connect(
        server.local_addr(),
        client_config(format, compressed, "solo".into()),
    )
    .unwrap();
    let turn = |server: &mut Server, client: &mut Client| {
        server.run_once(Some(Duration::from_millis(1))).unwrap();
        client.run_once(Some(Duration::from_millis(1))).unwrap();
    };
    let give_up = Instant::now() + LIMIT;
    while !client.state().is_in_sync() {
        assert!(Instant::now() < give_up, "{:?}", client.state().closed());
        turn(&mut server, &mut client);
    }
    assert_eq!(client.state().view(), &expected_view(&cache));
    assert_eq!(server.connection_count(), 1);

    cache.apply(
        Instant::now(),
        [SerializedUpdate::upsert(endpoint_key(7), "{}", "x")],
    );
    server.cache_changed();
    let expected = expected_view(&cache);
    while client.state().view() != &expected {
        assert!(Instant::now() < give_up);
        turn(&mut server, &mut client);
    }

    // The server going away ends the client cleanly.
    drop(server);
    while client.state().is_open() {
        assert!(Instant::now() < give_up);
        client.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert!(
        matches!(
            client.state().closed(),
            Some(Disconnect::Closed(CloseReason::PeerClosed)) | Some(Disconnect::Io(_))
        ),
        "{:?}",
        client.state().closed()
    );
}

/// Configuration mistakes fail the bind, before any client connects.
#[test]
fn bind_refuses_an_unusable_configuration() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let large_batches = SnapshotCache::new(CacheConfig {
        max_message_len: 2 << 20,
        ..CacheConfig::default()
    });
    let small_limit = ServerConfig {
        max_server_message_len: 1 << 20,
        ..ServerConfig::default()
    };
    let error = Server::bind(addr, large_batches, small_limit)
        .expect_err("a cache batching past the connection limit was accepted");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("max_message_len"), "{error}");
    let no_pings = ServerConfig {
        ping_interval: Duration::ZERO,
        ..ServerConfig::default()
    };
    let error = Server::bind(addr, SnapshotCache::new(CacheConfig::default()), no_pings)
        .expect_err("a zero ping interval was accepted");
    assert!(error.to_string().contains("ping_interval"), "{error}");
}

#[test]
fn a_refused_connection_is_reported_on_the_client() {
    // Bind then drop a listener: its port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client =
        Client::connect(port, client_config(FLAVOURS[0].0, false, "x".into())).unwrap();
    let give_up = Instant::now() + LIMIT;
    while client.state().is_open() {
        assert!(Instant::now() < give_up);
        client.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert!(
        matches!(client.state().closed(), Some(Disconnect::Io(_))),
        "{:?}",
        client.state().closed()
    );
    assert_eq!(client.stats().closed_with_error, 1);
}

#[test]
fn misbehaving_peers_close_only_their_own_connection() {
    let cache = cache_with(snapshot(100, 3));
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = RunningServer::start(cache.clone(), config, true).unwrap();
    let mut clients = Clients::new().unwrap();
    let good = clients
        .connect(
            server.addr,
            client_config(FLAVOURS[0].0, false, "good".into()),
        )
        .unwrap();

    // Garbage instead of a hello: a protocol error.
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    let mut request = b"GET / HTTP/1.1\r\nHost: typha\r\n".to_vec();
    request.resize(512, b'x');
    garbage.write_all(&request).unwrap();
    // A hello that never comes: the handshake timeout.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    // Connects and resets at once.
    drop(TcpStream::connect(server.addr).unwrap());

    // The server ends the garbage and silent peers' connections cleanly:
    // our side reads an end of stream (not a reset, not a timeout), with
    // nothing before it.
    for (what, peer) in [("garbage", &mut garbage), ("silent", &mut silent)] {
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buffer = [0u8; 16];
        let read = peer.read(&mut buffer);
        assert!(matches!(read, Ok(0)), "{what}: {read:?}");
    }
    drop(garbage);
    drop(silent);
    run_clients_until(&mut clients, LIMIT, "bad peers dropped", |_| {
        server.seen().iter().filter_map(Seen::report).count() == 3
    })
    .unwrap();
    let seen = server.seen();
    let reasons: Vec<_> = seen
        .iter()
        .filter_map(Seen::report)
        .map(|report| (report.reason.clone(), report.is_error))
        .collect();
    // A protocol error, a handshake timeout, and a clean close by a peer
    // that sent nothing.
    assert!(
        reasons
            .iter()
            .any(|(reason, error)| reason.contains("undecodable") && *error),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(reason, error)| reason.contains("Handshake") && *error),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(_, error)| !*error), "{reasons:?}");
    assert_eq!(server.counts.closed.load(Ordering::Relaxed), 3);

    run_clients_until(&mut clients, LIMIT, "good client syncs", |c| {
        c.stats().in_sync == 1
    })
    .unwrap();
    assert_eq!(clients.get(good).unwrap().view(), &expected_view(&cache));
    let server = server.stop().unwrap();
    assert_eq!(server.connection_count(), 1);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_the_others_carry_on() {
    // A short fall-behind limit, so the stalled client is cut off quickly;
    // pings keep its timer firing while its socket is full.
    let cache = SnapshotCache::new(CacheConfig {
        max_fall_behind: Duration::from_millis(300),
        new_client_grace: Duration::from_millis(100),
        ..CacheConfig::default()
    });
    cache.apply(Instant::now(), snapshot(1000, 4));
    cache.set_status(Instant::now(), SyncStatus::InSync);
    let server = RunningServer::start(cache.clone(), quick_pings(), true).unwrap();
    let mut clients = Clients::new().unwrap();
    let reader = clients
        .connect(
            server.addr,
            client_config(FLAVOURS[2].0, false, "reader".into()),
        )
        .unwrap();

    // The stalled client: a hello from a real machine, then never a read.
    let mut machine = ClientConnection::new(
        client_config(FLAVOURS[0].0, false, "stalled".into()),
        syncproto_mio::now(),
    )
    .unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    while let Some(bytes) = machine.poll_transmit() {
        stalled.write_all(&bytes).unwrap();
    }
    run_clients_until(&mut clients, LIMIT, "reader in sync", |c| {
        c.stats().in_sync == 1
    })
    .unwrap();

    // Megabytes of changes: far more than the stalled socket's buffers.
    for round in 0..40u64 {
        let changes: Vec<_> = (0..1000)
            .map(|index| SerializedUpdate {
                revision: format!("{round}").into(),
                ..endpoint(index, round + 1)
            })
            .collect();
        cache.apply(Instant::now(), changes);
        server.notifier.notify().unwrap();
        clients.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    let stalled_closed = |seen: &[Seen]| {
        seen.iter()
            .filter_map(Seen::report)
            .any(|report| report.is_error && report.reason.contains("behind"))
    };
    run_clients_until(&mut clients, LIMIT, "stalled client cut off", |_| {
        stalled_closed(&server.seen())
    })
    .unwrap();
    let expected = expected_view(&cache);
    run_clients_until(&mut clients, LIMIT, "reader keeps up", |c| {
        c.get(reader).unwrap().view() == &expected
    })
    .unwrap();
    assert!(clients.get(reader).unwrap().is_in_sync());
    drop(stalled);
    let server = server.stop().unwrap();
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.stats().closed_with_error, 1);
}
