//! The server never sends a message larger than the client accepts
//! (`ServerConfig::max_server_message_len`), whether it encodes the message
//! itself or sends bytes a snapshot cache encoded once for every client:
//! when one would not fit, the connection closes with a usage error, as its
//! one final event, and sends nothing more.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::harness::{Clock, Link, Pair, client_config};
use syncproto::client::{ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{MessageKind, SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Now, UsageError};

const FORMATS: [(WireFormat, bool); 4] = [
    (WireFormat::Native, false),
    (WireFormat::Native, true),
    (WireFormat::Gob, false),
    (WireFormat::Gob, true),
];

/// What a client speaking `format` sends first: its hello.
fn client_hello(format: WireFormat, compressed: bool, now: Now) -> Vec<u8> {
    let mut client = ClientConnection::new(client_config(format, compressed), now).unwrap();
    let mut out = Vec::new();
    while let Some(bytes) = client.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn drain(server: &mut ServerConnection, now: Instant) -> (Vec<ServerEvent>, Vec<Bytes>) {
    let events = std::iter::from_fn(|| server.poll_event()).collect();
    let sent = std::iter::from_fn(|| server.poll_transmit(now)).collect();
    (events, sent)
}

#[test]
fn a_server_hello_over_the_limit_closes_once_and_sends_nothing() {
    let mut clock = Clock::new();
    for (format, compressed) in FORMATS {
        let context = format!("{format:?}, compressed {compressed}");
        let now = clock.now();
        let mut server = ServerConnection::new(
            ServerConfig {
                // Far longer than the limit in either format; the restart
                // that would start compression fits in it on its own.
                version: "v".repeat(200),
                max_server_message_len: 100,
                ..ServerConfig::default()
            },
            now,
        )
        .unwrap();
        server.handle_input(now, &client_hello(format, compressed, now));
        let (events, sent) = drain(&mut server, now.instant);
        assert!(sent.is_empty(), "{context}: sent {sent:?}");
        match events.as_slice() {
            [
                ServerEvent::Closed(CloseReason::Usage(UsageError::FrameTooLarge {
                    message: MessageKind::ServerHello,
                    max: 100,
                    ..
                })),
            ] => {}
            other => panic!("{context}: events {other:?}"),
        }
        assert!(server.is_closed(), "{context}");
        assert_eq!(server.poll_timeout(), None, "{context}");
        // Nothing brings it back.
        clock.advance(Duration::from_secs(60));
        server.handle_timeout(clock.now());
        let (events, sent) = drain(&mut server, clock.now().instant);
        assert!(events.is_empty() && sent.is_empty(), "{context}");
    }
}

/// The message limit of the server and client in the tests below.
const LIMIT: usize = 4096;

fn small(index: usize) -> SerializedUpdate {
    SerializedUpdate::upsert(format!("/calico/v1/config/K{index}"), "1", "1")
}

/// An update whose `Kvs` message is over [`LIMIT`] on its own.
fn too_large() -> SerializedUpdate {
    SerializedUpdate::upsert("/calico/v1/config/Large", "x".repeat(LIMIT), "1")
}

/// Where the oversized update turns up.
#[derive(Debug, Clone, Copy)]
enum When {
    InTheSnapshot,
    AfterIt,
}

/// Runs a client and a server with [`LIMIT`] on both sides, fed by hand or
/// from a cache, until the oversized update is due; returns the pair.
fn run(format: WireFormat, compressed: bool, from_cache: bool, when: When) -> Pair {
    let mut client = client_config(format, compressed);
    client.max_message_len = LIMIT;
    let server = ServerConfig {
        max_server_message_len: LIMIT,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(client, server, Link::default());
    let start = pair.clock.now().instant;
    let mut snapshot: Vec<SerializedUpdate> = (0..5).map(small).collect();
    if let When::InTheSnapshot = when {
        snapshot.push(too_large());
    }
    let cache = SnapshotCache::new(CacheConfig {
        max_message_len: LIMIT,
        ..CacheConfig::default()
    });
    if from_cache {
        cache.apply(start, snapshot);
        cache.set_status(start, SyncStatus::InSync);
        pair.server.follow(cache.subscribe(start)).unwrap();
    } else {
        pair.server
            .send_snapshot(snapshot, SyncStatus::InSync)
            .unwrap();
    }
    pair.pump();
    if let When::AfterIt = when {
        assert!(
            pair.client_events
                .contains(&ClientEvent::Status(SyncStatus::InSync)),
            "the snapshot did not arrive"
        );
        if from_cache {
            cache.apply(start, [too_large()]);
        } else {
            pair.server.send_updates(vec![too_large()]).unwrap();
        }
        pair.pump();
    }
    pair
}

#[test]
fn a_cache_holds_its_messages_to_the_connections_limit_as_the_encoder_does() {
    for (format, compressed) in FORMATS {
        for when in [When::InTheSnapshot, When::AfterIt] {
            let context = format!("{format:?}, compressed {compressed}, {when:?}");
            let by_hand = run(format, compressed, false, when);
            let mut cached = run(format, compressed, true, when);
            let closes = |pair: &Pair| -> Vec<CloseReason> {
                pair.server_events
                    .iter()
                    .filter_map(|event| match event {
                        ServerEvent::Closed(reason) => Some(reason.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let expected = closes(&by_hand);
            assert!(
                matches!(
                    expected.as_slice(),
                    [CloseReason::Usage(UsageError::FrameTooLarge {
                        message: MessageKind::Kvs,
                        max: LIMIT,
                        ..
                    })]
                ),
                "{context}: by hand {expected:?}"
            );
            assert_eq!(closes(&cached), expected, "{context}");
            assert!(
                matches!(cached.server_events.last(), Some(ServerEvent::Closed(_))),
                "{context}"
            );
            let now = cached.clock.now().instant;
            assert!(cached.server.poll_transmit(now).is_none(), "{context}");
            // The client was sent nothing it would reject: it is still open,
            // waiting (the harness does not pass the close on as an EOF).
            assert!(
                !cached
                    .client_events
                    .iter()
                    .any(|event| matches!(event, ClientEvent::Closed(_))),
                "{context}: {:?}",
                cached.client_events
            );
        }
    }
}

#[test]
fn a_cache_batching_for_a_larger_limit_is_refused() {
    let mut clock = Clock::new();
    let cache = SnapshotCache::new(CacheConfig {
        max_message_len: 2 * LIMIT,
        ..CacheConfig::default()
    });
    let config = ServerConfig {
        max_server_message_len: LIMIT,
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config.clone(), clock.now()).unwrap();
    assert!(matches!(
        server.follow(cache.subscribe(clock.now().instant)),
        Err(UsageError::InvalidConfig(_))
    ));
    // A cache batching for the connection's limit, or a smaller one, is
    // followed.
    clock.advance(Duration::from_secs(1));
    for max_message_len in [LIMIT, LIMIT / 2] {
        let cache = SnapshotCache::new(CacheConfig {
            max_message_len,
            ..CacheConfig::default()
        });
        let mut server = ServerConnection::new(config.clone(), clock.now()).unwrap();
        assert_eq!(server.follow(cache.subscribe(clock.now().instant)), Ok(()));
    }
}
