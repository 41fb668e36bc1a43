//! Scenario tests of the client and server machines, driven through the
//! in-memory pair harness.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use syncproto::message::ByteString;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::harness::{Link, Pair, apply_updates, decode_server_output};
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::native::NativeEncoder;
use syncproto::message::{
    ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, Ping, Pong,
    SerializedUpdate, ServerHello, SyncStatus, SyncerType, Timestamp,
};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Now, ProtocolError, TimeoutKind};

fn datastore(n: usize) -> Vec<SerializedUpdate> {
    (0..n)
        .map(|i| {
            SerializedUpdate::upsert(
                format!("/calico/v1/host/node-{i:05}/config/Key"),
                format!("{{\"value\":{i}}}"),
                format!("{i}"),
            )
        })
        .collect()
}

fn client_config() -> ClientConfig {
    ClientConfig {
        hostname: "node-1".into(),
        connection_id: 7,
        ..ClientConfig::default()
    }
}

fn server_config() -> ServerConfig {
    ServerConfig {
        connection_id: 42,
        ..ServerConfig::default()
    }
}

/// A pair that has completed its handshake and been given `snapshot`.
fn synced_pair(snapshot: Vec<SerializedUpdate>, link: Link) -> Pair {
    let mut pair = Pair::new(client_config(), server_config(), link);
    pair.settle();
    assert!(matches!(
        pair.server_events.first(),
        Some(ServerEvent::Connected { .. })
    ));
    pair.server
        .send_snapshot(snapshot, SyncStatus::InSync)
        .unwrap();
    pair.settle();
    pair
}

fn client_view(pair: &Pair) -> BTreeMap<ByteString, Bytes> {
    let mut view = BTreeMap::new();
    apply_updates(&mut view, &pair.client_events);
    view
}

fn as_map(updates: &[SerializedUpdate]) -> BTreeMap<ByteString, Bytes> {
    updates
        .iter()
        .filter_map(|u| Some((u.key.clone(), u.value.clone()?)))
        .collect()
}

fn last_client_close(pair: &Pair) -> Option<&CloseReason> {
    match pair.client_events.last() {
        Some(ClientEvent::Closed(reason)) => Some(reason),
        _ => None,
    }
}

fn last_server_close(pair: &Pair) -> Option<&CloseReason> {
    match pair.server_events.last() {
        Some(ServerEvent::Closed(reason)) => Some(reason),
        _ => None,
    }
}

fn now() -> Now {
    Now::new(
        std::time::Instant::now(),
        Timestamp::from_unix(1_700_000_000, 0).unwrap(),
    )
}

#[test]
fn handshake_exchanges_hellos() {
    let mut pair = Pair::new(client_config(), server_config(), Link::default());
    pair.settle();
    assert_eq!(
        pair.client_events[0],
        ClientEvent::Status(SyncStatus::ResyncInProgress)
    );
    let ClientEvent::Connected(hello) = &pair.client_events[1] else {
        panic!("expected Connected, got {:?}", pair.client_events);
    };
    assert_eq!(hello.server_conn_id, 42);
    assert_eq!(hello.syncer_type, SyncerType::Felix);
    assert!(hello.supports_node_resource_updates);
    let ServerEvent::Connected { hello, .. } = &pair.server_events[0] else {
        panic!("expected Connected, got {:?}", pair.server_events);
    };
    assert_eq!(hello.hostname, "node-1");
    assert_eq!(hello.client_conn_id, 7);
    assert!(hello.supports_modern_policy_keys);
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

/// A pair whose client does not offer compression: the snapshot goes out
/// uncompressed, in upstream's batches of 100.
fn uncompressed_client() -> ClientConfig {
    ClientConfig {
        compression: Vec::new(),
        ..client_config()
    }
}

#[test]
fn snapshots_of_every_size_arrive_whole_then_in_sync() {
    for compressed in [false, true] {
        for n in [0, 1, 100, 10_000] {
            let snapshot = datastore(n);
            let client = if compressed {
                client_config()
            } else {
                uncompressed_client()
            };
            let mut pair = Pair::new(client, server_config(), Link::default());
            pair.server
                .send_snapshot(snapshot.clone(), SyncStatus::InSync)
                .unwrap();
            pair.settle();
            let context = format!("snapshot of {n}, compressed: {compressed}");
            assert_eq!(client_view(&pair), as_map(&snapshot), "{context}");
            let messages = decode_server_output(&pair);
            let batches = messages
                .iter()
                .filter(|m| matches!(m, Message::Kvs(_)))
                .count();
            let batch_size = if compressed { 1000 } else { 100 };
            assert_eq!(batches, n.div_ceil(batch_size), "{context}");
            let restarts = messages
                .iter()
                .filter(|m| matches!(m, Message::DecoderRestart(_)))
                .count();
            assert_eq!(restarts, if compressed { 2 } else { 0 }, "{context}");
            // InSync comes after every update, and only once.
            let last_update = pair
                .client_events
                .iter()
                .rposition(|e| matches!(e, ClientEvent::Updates(_)));
            let in_sync: Vec<_> = pair
                .client_events
                .iter()
                .enumerate()
                .filter(|(_, e)| **e == ClientEvent::Status(SyncStatus::InSync))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(in_sync.len(), 1, "{context}");
            assert!(
                last_update.is_none_or(|last| last < in_sync[0]),
                "{context}"
            );
        }
    }
}

#[test]
fn snapshot_survives_byte_at_a_time_delivery_with_latency() {
    let snapshot = datastore(300);
    let link = Link {
        max_chunk: Some(1),
        latency: Duration::from_millis(30),
        seed: 9,
    };
    let pair = synced_pair(snapshot.clone(), link);
    assert_eq!(client_view(&pair), as_map(&snapshot));
}

#[test]
fn live_updates_and_status_changes_follow_the_snapshot() {
    let mut pair = synced_pair(datastore(3), Link::default());
    let key = "/calico/v1/host/node-00001/config/Key".to_string();
    pair.server
        .send_updates(vec![SerializedUpdate::deletion(key.clone(), "9")])
        .unwrap();
    pair.server.send_status(SyncStatus::InSync).unwrap(); // unchanged: not sent
    pair.server
        .send_status(SyncStatus::ResyncInProgress)
        .unwrap();
    pair.settle();
    assert!(!client_view(&pair).contains_key(key.as_str()));
    let statuses: Vec<_> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            SyncStatus::ResyncInProgress,
            SyncStatus::InSync,
            SyncStatus::ResyncInProgress
        ]
    );
}

#[test]
fn pings_are_answered_and_the_connection_stays_up() {
    let mut pair = synced_pair(
        datastore(5),
        Link {
            latency: Duration::from_millis(5),
            ..Link::default()
        },
    );
    pair.run_for(Duration::from_secs(125));
    let pings = decode_server_output(&pair)
        .iter()
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    let pongs = pair
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Pong { .. }))
        .count();
    assert!((11..=14).contains(&pings), "{pings} pings in 125 s");
    assert_eq!(pongs, pings);
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

#[test]
fn pong_timeout_closes_the_server_side() {
    let mut pair = synced_pair(datastore(1), Link::default());
    pair.client_output_dropped = true;
    pair.run_for(Duration::from_secs(80));
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::TimedOut {
            kind: TimeoutKind::Pong,
            after: Duration::from_secs(60)
        })
    );
    // Pings kept the client's read timeout from firing.
    assert!(!pair.client.is_closed());
}

#[test]
fn read_timeout_closes_the_client_side() {
    let mut pair = synced_pair(datastore(1), Link::default());
    pair.server_output_blocked = true;
    pair.run_for(Duration::from_secs(29));
    assert!(!pair.client.is_closed());
    pair.run_for(Duration::from_secs(2));
    assert_eq!(
        last_client_close(&pair),
        Some(&CloseReason::TimedOut {
            kind: TimeoutKind::Read,
            after: Duration::from_secs(30)
        })
    );
}

#[test]
fn handshake_timeout_closes_the_server_side() {
    let mut pair = Pair::new(client_config(), server_config(), Link::default());
    pair.client_output_dropped = true;
    pair.run_for(Duration::from_secs(9));
    assert!(!pair.server.is_closed());
    pair.run_for(Duration::from_secs(2));
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::TimedOut {
            kind: TimeoutKind::Handshake,
            after: Duration::from_secs(10)
        })
    );
}

#[test]
fn server_refuses_anything_but_a_hello_first() {
    let mut server = ServerConnection::new(server_config(), now()).unwrap();
    let mut bytes = BytesMut::new();
    NativeEncoder::for_client()
        .encode(&Message::Pong(Pong::default()), &mut bytes)
        .unwrap();
    server.handle_input(now(), &bytes);
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::Closed(CloseReason::Protocol(
            ProtocolError::UnexpectedMessage {
                expected: "waiting for the ClientHello",
                got: MessageKind::Pong,
            }
        )))
    );
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.poll_transmit(now().instant), None);
}

/// A client fed `messages` as if a server had sent them, all in one chunk.
fn client_fed(messages: &[Message]) -> ClientConnection {
    let mut client = ClientConnection::new(client_config(), now()).unwrap();
    let mut bytes = BytesMut::new();
    let mut encoder = NativeEncoder::for_server();
    for message in messages {
        encoder.encode(message, &mut bytes).unwrap();
    }
    client.handle_input(now(), &bytes);
    client
}

fn events(client: &mut ClientConnection) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn client_refuses_anything_but_a_server_hello_first() {
    let mut client = client_fed(&[Message::Kvs(vec![])]);
    assert_eq!(
        events(&mut client).last(),
        Some(&ClientEvent::Closed(CloseReason::Protocol(
            ProtocolError::UnexpectedMessage {
                expected: "waiting for the ServerHello",
                got: MessageKind::Kvs,
            }
        )))
    );
}

#[test]
fn client_refuses_a_different_syncer_type() {
    let mut client = client_fed(&[Message::ServerHello(ServerHello {
        syncer_type: SyncerType::Bgp,
        ..ServerHello::default()
    })]);
    assert_eq!(
        events(&mut client).last(),
        Some(&ClientEvent::Closed(CloseReason::Protocol(
            ProtocolError::SyncerTypeMismatch {
                requested: SyncerType::Felix,
                answered: SyncerType::Bgp,
            }
        )))
    );
}

#[test]
fn server_refuses_an_unknown_syncer_type() {
    let config = ClientConfig {
        syncer_type: SyncerType::from_wire("bogus"),
        ..client_config()
    };
    let mut pair = Pair::new(config, server_config(), Link::default());
    pair.settle();
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::Protocol(
            ProtocolError::UnsupportedSyncerType(SyncerType::from_wire("bogus"))
        ))
    );
    pair.server_closes_socket();
    assert_eq!(last_client_close(&pair), Some(&CloseReason::PeerClosed));
}

#[test]
fn a_key_the_parser_rejects_is_dropped_and_later_updates_still_arrive() {
    let mut pair = Pair::new(client_config(), server_config(), Link::default());
    pair.settle();
    let snapshot = vec![
        SerializedUpdate::upsert("/calico/v1/config/A", "1", "1"),
        SerializedUpdate::upsert("/calico/v1/no-such-kind/x", "2", "2"),
        SerializedUpdate::upsert("/calico/v1/config/C", "3", "3"),
    ];
    pair.server
        .send_snapshot(snapshot, SyncStatus::InSync)
        .unwrap();
    pair.settle();
    pair.server
        .send_updates(vec![SerializedUpdate::upsert(
            "/calico/v1/config/D",
            "4",
            "4",
        )])
        .unwrap();
    pair.settle();
    let dropped: Vec<_> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Dropped { key, reason } => Some((key.clone(), reason.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].0, "/calico/v1/no-such-kind/x");
    assert!(
        dropped[0].1.contains("/calico/v1/no-such-kind/x"),
        "{}",
        dropped[0].1
    );
    let view = client_view(&pair);
    assert_eq!(
        view.keys().collect::<Vec<_>>(),
        [
            "/calico/v1/config/A",
            "/calico/v1/config/C",
            "/calico/v1/config/D"
        ]
    );
    assert!(!pair.client.is_closed());
}

#[test]
fn without_a_key_parser_every_key_is_delivered() {
    let client = ClientConfig {
        key_parser: None,
        ..client_config()
    };
    let mut pair = Pair::new(client, server_config(), Link::default());
    pair.settle();
    pair.server
        .send_snapshot(
            vec![SerializedUpdate::upsert("/not/a/calico/key", "1", "1")],
            SyncStatus::InSync,
        )
        .unwrap();
    pair.settle();
    assert!(client_view(&pair).contains_key("/not/a/calico/key"));
}

#[test]
fn a_client_that_does_not_read_is_cut_off_at_the_queue_limit() {
    let server = ServerConfig {
        max_queued_bytes: 64 * 1024,
        ..server_config()
    };
    let mut pair = Pair::new(client_config(), server, Link::default());
    pair.settle();
    pair.server
        .send_snapshot(datastore(10), SyncStatus::InSync)
        .unwrap();
    pair.settle();
    pair.server_output_blocked = true;
    let mut sent = 0;
    while !pair.server.is_closed() {
        pair.server
            .send_updates(vec![SerializedUpdate::upsert(
                format!("/k{sent}"),
                vec![b'x'; 1000],
                "1",
            )])
            .unwrap();
        sent += 1;
        assert!(sent < 1000, "never cut off");
    }
    pair.pump();
    let Some(CloseReason::SlowReader { queued, limit }) = last_server_close(&pair) else {
        panic!("expected SlowReader, got {:?}", pair.server_events.last());
    };
    assert_eq!(*limit, 64 * 1024);
    assert!(*queued > *limit && *queued < *limit + 2048);
    assert_eq!(pair.server.poll_transmit(pair.clock.now().instant), None);
    assert_eq!(
        pair.server.send_updates(vec![]),
        Err(syncproto::UsageError::Closed)
    );
}

#[test]
fn decoder_restart_switches_streams_at_the_exact_byte() {
    // ServerHello, KVs, DecoderRestart, then a fresh native stream holding
    // more KVs and a status: all delivered in one chunk.
    let mut bytes = BytesMut::new();
    let mut first = NativeEncoder::for_server();
    first
        .encode(&Message::ServerHello(ServerHello::default()), &mut bytes)
        .unwrap();
    first
        .encode(
            &Message::Kvs(vec![SerializedUpdate::upsert(
                "/calico/v1/config/A",
                "1",
                "1",
            )]),
            &mut bytes,
        )
        .unwrap();
    first
        .encode(
            &Message::DecoderRestart(DecoderRestart::default()),
            &mut bytes,
        )
        .unwrap();
    let mut second = NativeEncoder::for_server();
    second
        .encode(
            &Message::Kvs(vec![SerializedUpdate::upsert(
                "/calico/v1/config/B",
                "2",
                "2",
            )]),
            &mut bytes,
        )
        .unwrap();
    second
        .encode(&Message::SyncStatus(SyncStatus::InSync), &mut bytes)
        .unwrap();

    for split in [None, Some(1), Some(7)] {
        let mut client = ClientConnection::new(client_config(), now()).unwrap();
        let _hello = client.poll_transmit().unwrap();
        match split {
            None => client.handle_input(now(), &bytes),
            Some(size) => bytes
                .chunks(size)
                .for_each(|piece| client.handle_input(now(), piece)),
        }
        let events = events(&mut client);
        let keys: Vec<ByteString> = events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Updates(u) => Some(u.iter().map(|u| u.key.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            keys,
            ["/calico/v1/config/A", "/calico/v1/config/B"],
            "split {split:?}"
        );
        assert_eq!(
            events.last(),
            Some(&ClientEvent::Status(SyncStatus::InSync))
        );
        // The machine acknowledged the restart.
        // (The preamble went out with the hello, already taken above.)
        let ack = client.poll_transmit().unwrap();
        let mut decoder = syncproto::codec::native::NativeDecoder::for_server();
        let mut with_preamble = BytesMut::from(&syncproto::codec::native::PREAMBLE[..]);
        with_preamble.extend_from_slice(&ack);
        assert_eq!(
            decoder.decode(&mut with_preamble).unwrap(),
            Some(Message::Ack)
        );
    }
}

#[test]
fn pings_are_answered_with_the_callers_wall_time() {
    let ping_time = Timestamp::from_unix(1_600_000_000, 5).unwrap();
    let mut client = client_fed(&[
        Message::ServerHello(ServerHello::default()),
        Message::Ping(Ping {
            timestamp: ping_time,
        }),
    ]);
    let mut out = BytesMut::from(&client.poll_transmit().unwrap()[..]);
    let mut decoder = syncproto::codec::native::NativeDecoder::for_server();
    assert!(matches!(
        decoder.decode(&mut out).unwrap(),
        Some(Message::ClientHello(ClientHello { .. }))
    ));
    assert_eq!(
        decoder.decode(&mut out).unwrap(),
        Some(Message::Pong(Pong {
            ping_timestamp: ping_time,
            pong_timestamp: now().wall,
        }))
    );
}

#[test]
fn close_ends_with_one_event_and_no_output() {
    let mut pair = synced_pair(datastore(2), Link::default());
    pair.client.close();
    pair.server.close();
    pair.client.close();
    pair.pump();
    assert_eq!(last_client_close(&pair), Some(&CloseReason::Local));
    assert_eq!(last_server_close(&pair), Some(&CloseReason::Local));
    let closes = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Closed(_)))
        .count();
    assert_eq!(closes, 1);
    pair.client.handle_input(pair.clock.now(), b"anything");
    pair.client.handle_timeout(pair.clock.now());
    pair.server.handle_eof(pair.clock.now());
    assert_eq!(pair.client.poll_event(), None);
    assert_eq!(pair.server.poll_event(), None);
    assert_eq!(pair.client.poll_transmit(), None);
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.server.poll_timeout(), None);
}

#[test]
fn early_and_repeated_timeouts_change_nothing() {
    let mut pair = synced_pair(datastore(2), Link::default());
    let events_before = (pair.client_events.len(), pair.server_events.len());
    let deadline = pair.server.poll_timeout();
    for _ in 0..5 {
        let now = pair.clock.now();
        pair.client.handle_timeout(now);
        pair.server.handle_timeout(now);
    }
    pair.pump();
    assert_eq!(
        (pair.client_events.len(), pair.server_events.len()),
        events_before
    );
    assert_eq!(pair.server.poll_timeout(), deadline);
}

#[test]
fn peer_closing_mid_message_is_a_truncation() {
    let mut client = ClientConnection::new(client_config(), now()).unwrap();
    let mut bytes = BytesMut::new();
    NativeEncoder::for_server()
        .encode(&Message::ServerHello(ServerHello::default()), &mut bytes)
        .unwrap();
    client.handle_input(now(), &bytes[..bytes.len() - 1]);
    client.handle_eof(now());
    let last = events(&mut client).pop();
    assert!(
        matches!(
            last,
            Some(ClientEvent::Closed(CloseReason::Protocol(
                ProtocolError::Decode(syncproto::DecodeError::Truncated { .. })
            )))
        ),
        "{last:?}"
    );
}

#[test]
fn snapshot_misuse_is_a_usage_error() {
    let mut pair = synced_pair(datastore(1), Link::default());
    assert_eq!(
        pair.server.send_snapshot(datastore(1), SyncStatus::InSync),
        Err(syncproto::UsageError::SnapshotAlreadySent)
    );
    let mut fresh = ServerConnection::new(server_config(), now()).unwrap();
    assert_eq!(
        fresh.send_updates(vec![]),
        Err(syncproto::UsageError::SnapshotNotSent)
    );
    assert_eq!(
        ServerConnection::new(
            ServerConfig {
                ping_interval: Duration::ZERO,
                ..server_config()
            },
            now()
        )
        .err(),
        Some(syncproto::UsageError::InvalidConfig(
            "ping_interval must be positive"
        ))
    );
    // So is a batch no client would accept.
    assert!(matches!(
        ServerConnection::new(
            ServerConfig {
                snapshot_batch_size: syncproto::codec::MAX_UPDATES_PER_MESSAGE + 1,
                ..server_config()
            },
            now()
        ),
        Err(syncproto::UsageError::InvalidConfig(reason)) if reason.contains("snapshot_batch_size")
    ));
    // A hello no server would accept is refused before it is sent.
    assert!(matches!(
        ClientConnection::new(
            ClientConfig {
                compression: vec![CompressionAlgorithm::Snappy; 17],
                ..client_config()
            },
            now()
        ),
        Err(syncproto::UsageError::InvalidConfig(reason)) if reason.contains("compression")
    ));
    pair.pump();
}
