//! The machines where real traffic leaves the happy path, each as
//! upstream's Go implementation behaves (DESIGN.md §1a, read against
//! `typha/pkg/syncserver`, `syncclient`, `snapcache` and `syncproto`): the
//! empty-value rule, statuses, pings and pongs, tolerance of stray
//! messages, the per-message read timeout, modern policy keys, and live
//! batching. The same behaviours are checked against the Go peer itself in
//! `interop_go.rs` and by the differential test in the tokio adapter.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::harness::{Link, Pair, apply_updates, decode_server_output};
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{
    ByteString, ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, Pong,
    SerializedUpdate, ServerHello, SyncStatus, Timestamp,
};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Now, ProtocolError, TimeoutKind};

const FORMATS: [WireFormat; 2] = [WireFormat::Native, WireFormat::Gob];

fn client_config(format: WireFormat) -> ClientConfig {
    ClientConfig {
        wire_format: format,
        compression: Vec::new(),
        ..ClientConfig::default()
    }
}

fn key(name: &str) -> String {
    format!("/calico/v1/config/{name}")
}

fn view(pair: &Pair) -> BTreeMap<ByteString, Bytes> {
    let mut view = BTreeMap::new();
    apply_updates(&mut view, &pair.client_events);
    view
}

fn statuses(events: &[ClientEvent]) -> Vec<SyncStatus> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Status(status) => Some(*status),
            _ => None,
        })
        .collect()
}

fn last_server_close(pair: &Pair) -> Option<&CloseReason> {
    match pair.server_events.last() {
        Some(ServerEvent::Closed(reason)) => Some(reason),
        _ => None,
    }
}

fn pings_written(pair: &Pair) -> usize {
    decode_server_output(pair)
        .iter()
        .filter(|message| matches!(message, Message::Ping(_)))
        .count()
}

/// A handshaken pair whose server has been given `snapshot`.
fn synced(format: WireFormat, snapshot: Vec<SerializedUpdate>, status: SyncStatus) -> Pair {
    let mut pair = Pair::new(
        client_config(format),
        ServerConfig::default(),
        Link::default(),
    );
    pair.settle();
    pair.server.send_snapshot(snapshot, status).unwrap();
    pair.settle();
    pair
}

#[test]
fn an_empty_value_reaches_every_client_as_a_deletion() {
    for format in FORMATS {
        let snapshot = vec![
            SerializedUpdate::upsert(key("Empty"), "", "1"),
            SerializedUpdate::upsert(key("Kept"), "x", "2"),
            SerializedUpdate::upsert(key("Emptied"), "y", "3"),
        ];
        let mut pair = synced(format, snapshot, SyncStatus::InSync);
        pair.server
            .send_updates(vec![SerializedUpdate::upsert(key("Emptied"), "", "4")])
            .unwrap();
        pair.settle();
        let delivered: Vec<&SerializedUpdate> = pair
            .client_events
            .iter()
            .flat_map(|event| match event {
                ClientEvent::Updates(updates) => updates.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        assert!(
            delivered
                .iter()
                .all(|update| update.value.as_ref().is_none_or(|v| !v.is_empty())),
            "{format:?}: no update arrives with an empty value: {delivered:?}"
        );
        let keys: Vec<ByteString> = view(&pair).into_keys().collect();
        assert_eq!(keys, [ByteString::from(key("Kept"))], "{format:?}");
    }
}

#[test]
fn wait_for_datastore_is_never_sent() {
    for format in FORMATS {
        let mut pair = synced(format, Vec::new(), SyncStatus::WaitForDatastore);
        // The client's own initial status, and nothing from the server.
        assert_eq!(
            statuses(&pair.client_events),
            [SyncStatus::ResyncInProgress]
        );
        pair.server
            .send_status(SyncStatus::WaitForDatastore)
            .unwrap();
        pair.server.send_status(SyncStatus::InSync).unwrap();
        pair.settle();
        assert_eq!(
            statuses(&pair.client_events),
            [SyncStatus::ResyncInProgress, SyncStatus::InSync]
        );
        assert!(
            !decode_server_output(&pair)
                .contains(&Message::SyncStatus(SyncStatus::WaitForDatastore)),
            "{format:?}"
        );
    }
}

#[test]
fn pings_start_only_after_the_snapshot() {
    let mut pair = Pair::new(
        ClientConfig {
            // Upstream's client would give up after 30 s of silence; this
            // one waits, so that the server's side is what is observed.
            read_timeout: Duration::from_secs(3600),
            ..client_config(WireFormat::Gob)
        },
        ServerConfig::default(),
        Link::default(),
    );
    pair.settle();
    // No snapshot yet: five minutes pass without a ping, and without a
    // pong timeout (nothing was asked).
    pair.run_for(Duration::from_secs(300));
    assert_eq!(pings_written(&pair), 0);
    assert!(!pair.server.is_closed() && !pair.client.is_closed());
    pair.server
        .send_snapshot(
            vec![SerializedUpdate::upsert(key("A"), "1", "1")],
            SyncStatus::InSync,
        )
        .unwrap();
    pair.run_for(Duration::from_secs(35));
    assert!((3..=4).contains(&pings_written(&pair)));
    assert_eq!(pair.server.pings_sent(), pair.server.pongs_received());
}

/// A server machine fed raw client messages, on a clock of its own.
struct BareServer {
    server: ServerConnection,
    encoder: StreamEncoder,
    start: Instant,
}

impl BareServer {
    fn at(&self, secs: u64) -> Now {
        Now::new(
            self.start + Duration::from_secs(secs),
            Timestamp::from_unix(1_700_000_000 + secs as i64, 0).unwrap(),
        )
    }

    /// Handshaken (plain gob) and past an empty snapshot at time 0.
    fn synced() -> BareServer {
        let start = Instant::now();
        let mut bare = BareServer {
            server: ServerConnection::new(
                ServerConfig::default(),
                Now::new(start, Timestamp::ZERO),
            )
            .unwrap(),
            encoder: StreamEncoder::new(WireFormat::Gob, usize::MAX),
            start,
        };
        let hello = ClientHello {
            supports_modern_policy_keys: true,
            ..ClientHello::default()
        };
        bare.feed(0, &Message::ClientHello(hello));
        bare.server
            .send_snapshot(Vec::new(), SyncStatus::InSync)
            .unwrap();
        while bare.server.poll_transmit(start).is_some() {}
        bare.drain();
        bare
    }

    fn feed(&mut self, secs: u64, message: &Message) {
        let mut bytes = BytesMut::new();
        self.encoder.encode(message, &mut bytes).unwrap();
        self.server.handle_input(self.at(secs), &bytes);
    }

    fn tick(&mut self, secs: u64) {
        self.server.handle_timeout(self.at(secs));
        while self.server.poll_transmit(self.at(secs).instant).is_some() {}
    }

    fn drain(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }
}

#[test]
fn any_pong_is_accepted_and_the_pong_timeout_runs_from_the_last_one() {
    let mut bare = BareServer::synced();
    // A pong that answers no ping at all: accepted, not timed.
    let stray = Pong {
        ping_timestamp: Timestamp::from_unix(5, 0).unwrap(),
        pong_timestamp: Timestamp::ZERO,
    };
    (1..50).for_each(|secs| bare.tick(secs));
    bare.feed(50, &Message::Pong(stray));
    assert_eq!(bare.drain(), [ServerEvent::Pong { round_trip: None }]);
    // Pings go out every ~10 s, none answered: still alive 60 s after the
    // last pong, although the first unanswered ping is 100 s old.
    (51..110).for_each(|secs| bare.tick(secs));
    assert!(!bare.server.is_closed());
    assert!(bare.server.unanswered_pings() >= 9);
    bare.tick(110);
    assert_eq!(
        bare.drain().last(),
        Some(&ServerEvent::Closed(CloseReason::TimedOut {
            kind: TimeoutKind::Pong,
            after: Duration::from_secs(60),
        }))
    );
}

#[test]
fn a_pong_is_timed_against_the_ping_it_echoes() {
    let mut bare = BareServer::synced();
    (1..=15).for_each(|secs| bare.tick(secs));
    assert_eq!(bare.server.pings_sent(), 1);
    // The ping carries the caller's wall time at the tick that sent it.
    let sent = (9..=15).map(|secs| bare.at(secs).wall).collect::<Vec<_>>();
    for wall in sent {
        bare.feed(
            17,
            &Message::Pong(Pong {
                ping_timestamp: wall,
                pong_timestamp: Timestamp::ZERO,
            }),
        );
    }
    let round_trips: Vec<Option<Duration>> = bare
        .drain()
        .into_iter()
        .filter_map(|event| match event {
            ServerEvent::Pong { round_trip } => Some(round_trip),
            _ => None,
        })
        .collect();
    assert_eq!(round_trips.iter().flatten().count(), 1, "{round_trips:?}");
    assert_eq!(bare.server.unanswered_pings(), 0);
}

/// A client fed `messages` (in `format`) as if a server had sent them.
fn client_fed(format: WireFormat, messages: &[Message]) -> (ClientConnection, Vec<ClientEvent>) {
    let now = Now::new(Instant::now(), Timestamp::ZERO);
    let mut client = ClientConnection::new(
        ClientConfig {
            compression: vec![CompressionAlgorithm::Snappy],
            ..client_config(format)
        },
        now,
    )
    .unwrap();
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut bytes = BytesMut::new();
    for message in messages {
        encoder.encode(message, &mut bytes).unwrap();
    }
    client.handle_input(now, &bytes);
    let events = std::iter::from_fn(|| client.poll_event()).collect();
    (client, events)
}

#[test]
fn a_client_ignores_messages_only_a_client_sends() {
    for format in FORMATS {
        let (client, events) = client_fed(
            format,
            &[
                Message::ServerHello(ServerHello::default()),
                Message::Pong(Pong::default()),
                Message::Ack,
                Message::ClientHello(ClientHello::default()),
                Message::Kvs(vec![SerializedUpdate::upsert(key("A"), "1", "1")]),
            ],
        );
        let ignored: Vec<&ClientEvent> = events
            .iter()
            .filter(|event| matches!(event, ClientEvent::Ignored(_)))
            .collect();
        assert_eq!(
            ignored,
            [
                &ClientEvent::Ignored(MessageKind::Pong),
                &ClientEvent::Ignored(MessageKind::Ack),
                &ClientEvent::Ignored(MessageKind::ClientHello),
            ],
            "{format:?}"
        );
        assert!(matches!(events.last(), Some(ClientEvent::Updates(u)) if u.len() == 1));
        assert_eq!(client.ignored_messages(), 3);
        assert!(!client.is_closed());
    }
}

#[test]
fn a_second_server_hello_ends_the_connection() {
    let (client, events) = client_fed(
        WireFormat::Gob,
        &[
            Message::ServerHello(ServerHello::default()),
            Message::ServerHello(ServerHello::default()),
        ],
    );
    assert!(client.is_closed());
    assert!(matches!(
        events.last(),
        Some(ClientEvent::Closed(CloseReason::Protocol(
            ProtocolError::UnexpectedMessage {
                got: MessageKind::ServerHello,
                ..
            }
        )))
    ));
}

#[test]
fn a_restart_to_an_unknown_algorithm_is_acknowledged_and_the_stream_goes_on() {
    for format in FORMATS {
        let (mut client, events) = client_fed(
            format,
            &[
                Message::ServerHello(ServerHello::default()),
                Message::DecoderRestart(DecoderRestart {
                    message: "enable compression: zstd".into(),
                    compression_algorithm: Some(CompressionAlgorithm::from_wire("zstd")),
                }),
                // Still the same stream: the restart was not followed.
                Message::Kvs(vec![SerializedUpdate::upsert(key("A"), "1", "1")]),
            ],
        );
        assert!(events.contains(&ClientEvent::Ignored(MessageKind::DecoderRestart)));
        assert!(matches!(events.last(), Some(ClientEvent::Updates(u)) if u.len() == 1));
        // The hello, then the ACK.
        let mut sent = BytesMut::new();
        while let Some(bytes) = client.poll_transmit() {
            sent.extend_from_slice(&bytes);
        }
        let mut decoder = syncproto::codec::StreamDecoder::new(format, usize::MAX, None);
        let messages: Vec<MessageKind> = std::iter::from_fn(|| decoder.decode(&mut sent).unwrap())
            .map(|message| message.kind())
            .collect();
        assert_eq!(
            messages,
            [MessageKind::ClientHello, MessageKind::Ack],
            "{format:?}"
        );
    }
}

/// A native client past its handshake at `at`, and the encoder of the
/// server's side of its stream.
fn handshaken_client(at: Now) -> (ClientConnection, StreamEncoder) {
    let mut client = ClientConnection::new(client_config(WireFormat::Native), at).unwrap();
    let mut encoder = StreamEncoder::new(WireFormat::Native, usize::MAX);
    let mut hello = BytesMut::new();
    encoder
        .encode(&Message::ServerHello(ServerHello::default()), &mut hello)
        .unwrap();
    client.handle_input(at, &hello);
    (client, encoder)
}

#[test]
fn the_read_timeout_runs_per_message_not_per_byte() {
    let start = Instant::now();
    let at = |secs: u64| Now::new(start + Duration::from_secs(secs), Timestamp::ZERO);
    let (mut client, mut encoder) = handshaken_client(at(0));
    let mut stream = BytesMut::new();
    // A message that trickles in, one byte a second: bytes keep arriving,
    // but no message completes for 30 s.
    encoder
        .encode(
            &Message::Kvs(vec![SerializedUpdate::upsert(
                key("A"),
                "x".repeat(100),
                "1",
            )]),
            &mut stream,
        )
        .unwrap();
    for secs in 1..=30 {
        client.handle_input(at(secs), &stream.split_to(1));
        client.handle_timeout(at(secs));
    }
    assert_eq!(
        client.close_reason(),
        Some(&CloseReason::TimedOut {
            kind: TimeoutKind::Read,
            after: Duration::from_secs(30),
        })
    );

    // Whole messages every 20 s keep a connection up indefinitely.
    let (mut client, mut encoder) = handshaken_client(at(0));
    let mut stream = BytesMut::new();
    for secs in (20..400).step_by(20) {
        encoder
            .encode(&Message::SyncStatus(SyncStatus::InSync), &mut stream)
            .unwrap();
        client.handle_timeout(at(secs));
        client.handle_input(at(secs), &stream.split());
    }
    assert!(!client.is_closed());
}

#[test]
fn by_default_a_client_without_modern_policy_keys_is_refused_without_a_reply() {
    let client = ClientConfig {
        supports_modern_policy_keys: false,
        ..client_config(WireFormat::Gob)
    };
    let mut pair = Pair::new(client, ServerConfig::default(), Link::default());
    pair.settle();
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::Protocol(ProtocolError::MissingFeature(
            "modern policy keys"
        )))
    );
    assert!(pair.server_wrote.is_empty(), "not even a ServerHello");
}

fn legacy_pair() -> Pair {
    let client = ClientConfig {
        supports_modern_policy_keys: false,
        ..client_config(WireFormat::Gob)
    };
    let server = ServerConfig {
        require_modern_policy_keys: false,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(client, server, Link::default());
    pair.settle();
    pair
}

const MODERN: &str = "/calico/v1/policy/NetworkPolicy/ns/p";
const LEGACY: &str = "/calico/v1/policy/tier/default/policy/ns%2fp";

#[test]
fn a_legacy_client_is_served_legacy_keys_and_closed_rather_than_sent_a_modern_one() {
    let mut pair = legacy_pair();
    pair.server
        .send_snapshot(
            vec![SerializedUpdate::upsert(LEGACY, "{}", "1")],
            SyncStatus::InSync,
        )
        .unwrap();
    pair.settle();
    assert_eq!(view(&pair).len(), 1);
    pair.server
        .send_updates(vec![
            SerializedUpdate::upsert(key("A"), "1", "2"),
            SerializedUpdate::upsert(MODERN, "{}", "3"),
        ])
        .unwrap();
    pair.settle();
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::Protocol(ProtocolError::MissingFeature(
            "modern policy keys"
        )))
    );
    assert!(
        !view(&pair).contains_key(MODERN),
        "the key it would drop was never sent"
    );
}

#[test]
fn a_legacy_client_following_a_cache_is_closed_before_a_modern_key_reaches_it() {
    let now = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(now, [SerializedUpdate::upsert(LEGACY, "{}", "1")]);
    cache.set_status(now, SyncStatus::InSync);
    let mut pair = legacy_pair();
    pair.server.follow(cache.subscribe(now)).unwrap();
    pair.settle();
    assert_eq!(view(&pair).len(), 1);
    cache.apply(now, [SerializedUpdate::upsert(MODERN, "{}", "2")]);
    pair.settle();
    assert_eq!(
        last_server_close(&pair),
        Some(&CloseReason::Protocol(ProtocolError::MissingFeature(
            "modern policy keys"
        )))
    );
    // A legacy client joining now is closed too, before the key reaches it.
    let mut late = legacy_pair();
    late.server.follow(cache.subscribe(now)).unwrap();
    late.settle();
    assert!(late.server.is_closed());
    assert!(!view(&late).contains_key(MODERN));
}

#[test]
fn the_client_can_upgrade_legacy_policy_keys_as_upstream_does() {
    for upgrade in [false, true] {
        let config = ClientConfig {
            upgrade_legacy_policy_keys: upgrade,
            ..client_config(WireFormat::Gob)
        };
        let mut pair = Pair::new(config, ServerConfig::default(), Link::default());
        pair.settle();
        pair.server
            .send_snapshot(
                vec![SerializedUpdate::upsert(LEGACY, r#"{"order":1}"#, "1")],
                SyncStatus::InSync,
            )
            .unwrap();
        pair.settle();
        let view = view(&pair);
        let (key, value) = view.iter().next().unwrap();
        if upgrade {
            assert_eq!(key, MODERN);
            assert_eq!(&value[..], br#"{"order":1,"tier":"default"}"#);
        } else {
            assert_eq!(key, LEGACY);
        }
    }
}

fn batch(from: usize, count: usize) -> Vec<SerializedUpdate> {
    (from..from + count)
        .map(|i| SerializedUpdate::upsert(key(&format!("K{i:04}")), "v", "1"))
        .collect()
}

fn kvs_sizes(pair: &Pair) -> Vec<usize> {
    pair.client_events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Updates(updates) => Some(updates.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn each_live_batch_is_one_message_and_a_lagging_client_gets_them_coalesced() {
    let mut pair = synced(WireFormat::Native, Vec::new(), SyncStatus::InSync);
    // Keeping up: one message per batch.
    pair.server.send_updates(batch(0, 30)).unwrap();
    pair.settle();
    pair.server.send_updates(batch(30, 5)).unwrap();
    pair.settle();
    assert_eq!(kvs_sizes(&pair), [30, 5]);
    // A batch over the limit is split at 100, as upstream's cache splits.
    pair.server.send_updates(batch(100, 250)).unwrap();
    pair.settle();
    assert_eq!(kvs_sizes(&pair)[2..], [100, 100, 50]);
    // Not reading: batches wait, then go coalesced, whole, until a message
    // holds at least 100.
    pair.server_output_blocked = true;
    for from in (1000..1200).step_by(40) {
        pair.server.send_updates(batch(from, 40)).unwrap();
        pair.settle();
    }
    pair.server_output_blocked = false;
    pair.settle();
    assert_eq!(kvs_sizes(&pair)[5..], [120, 80]);
}
