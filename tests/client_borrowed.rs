//! The client machine's borrowing input (`handle_input_borrowed`) against
//! its owning one (`handle_input` then `poll_event`): fed the same server
//! stream in the same pieces, a connection taking every piece borrowed, and
//! one switching between the two APIs piece by piece, report the same
//! events as a connection taking every piece owned (borrowed updates copied
//! out by `to_event`), send the same bytes back (pongs, acknowledgements),
//! and end with the same received checksum and close reason. Streams are
//! both formats, with restarts into and out of snappy, keys the key check
//! accepts and rejects and legacy policy keys, statuses, pings and
//! checksums, whole or damaged; configurations with and without a key
//! check, the legacy key upgrade and checksums.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::sessions::encode_sessions;
use common::strategies::{message, split_points};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::CloseReason;
use syncproto::Now;
use syncproto::client::{ChecksumCheck, ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::key::DefaultKeyParser;
use syncproto::message::{
    Checksum, Ping, Revision, SerializedUpdate, ServerHello, SyncStatus, Timestamp,
};

/// Keys of every sort the delivery steps treat differently.
const KEYS: [&str; 6] = [
    "/calico/v1/config/LogSeverityScreen",
    "/calico/v1/host/node-1/config/Foo",
    // Legacy policy keys: upgraded (key and value rewritten) when asked.
    "/calico/v1/policy/tier/t1/policy/ns1%2fknp.default.p",
    "/calico/v1/policy/tier/default/policy/gp",
    // Rejected by the default key check.
    "/calico/v1/no/such/kind",
    "not a key",
];

fn update() -> impl Strategy<Value = SerializedUpdate> {
    let value = prop_oneof![
        Just(None),
        Just(Some(Bytes::new())),
        Just(Some(Bytes::from_static(
            br#"{"order":10,"selector":"all()"}"#
        ))),
        vec(any::<u8>(), 1..40).prop_map(|bytes| Some(Bytes::from(bytes))),
    ];
    (proptest::sample::select(KEYS.to_vec()), value, 0u32..5).prop_map(|(key, value, revision)| {
        SerializedUpdate {
            value,
            ..SerializedUpdate::upsert(key, "", Revision::String(revision.to_string().into()))
        }
    })
}

/// What the server sends after its hello: mostly batches of the keys
/// above, statuses, pings and checksums, now and then anything at all.
fn server_message() -> impl Strategy<Value = syncproto::Message> {
    use syncproto::Message;
    prop_oneof![
        6 => vec(update(), 0..6).prop_map(Message::Kvs),
        2 => proptest::sample::select(vec![SyncStatus::ResyncInProgress, SyncStatus::InSync])
            .prop_map(Message::SyncStatus),
        1 => (any::<i64>()).prop_map(|seconds| Message::Ping(Ping {
            timestamp: Timestamp::from_unix(seconds % 1_000_000_000, 0).unwrap(),
        })),
        1 => (any::<u64>(), 0i64..8).prop_map(|(checksum, kv_count)| {
            Message::Checksum(Checksum { checksum, kv_count })
        }),
        1 => message().prop_filter("restarts are placed between sessions", |message| {
            !matches!(message, Message::DecoderRestart(_))
        }),
    ]
}

/// How each piece is fed to a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    Owning,
    Borrowing,
}

/// Everything a connection did, comparable across the APIs.
#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<ClientEvent>,
    sent: Vec<u8>,
    checksum: Option<syncproto::checksum::StateChecksum>,
    close_reason: Option<String>,
}

/// Feeds `stream` to a new connection in the pieces `cuts` makes, piece
/// `i` through `apis[i % apis.len()]`, the clock at `start` plus a
/// millisecond per piece.
fn run(config: &ClientConfig, start: Instant, stream: &[u8], cuts: &[usize], apis: &[Api]) -> Run {
    let now = |step: usize| {
        Now::new(
            start + Duration::from_millis(step as u64),
            Timestamp::from_unix(1_700_000_000 + step as i64, 0).unwrap(),
        )
    };
    let mut connection = ClientConnection::new(config.clone(), now(0)).unwrap();
    let mut events = Vec::new();
    let mut sent = Vec::new();
    let mut drain = |connection: &mut ClientConnection, events: &mut Vec<ClientEvent>| {
        while let Some(bytes) = connection.poll_transmit() {
            sent.extend_from_slice(&bytes);
        }
        events.extend(std::iter::from_fn(|| connection.poll_event()));
    };
    let mut from = 0;
    for (step, &to) in cuts.iter().chain([&stream.len()]).enumerate() {
        let piece = &stream[from..to];
        from = to;
        match apis[step % apis.len()] {
            Api::Owning => connection.handle_input(now(step), piece),
            Api::Borrowing => connection
                .handle_input_borrowed(now(step), piece, |event| events.push(event.to_event())),
        }
        drain(&mut connection, &mut events);
    }
    connection.handle_eof(now(cuts.len() + 1));
    drain(&mut connection, &mut events);
    Run {
        events,
        sent,
        checksum: connection.received_checksum(),
        close_reason: connection.close_reason().map(ToString::to_string),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn borrowed_input_reports_what_owned_input_does(
        gob in any::<bool>(),
        key_check in any::<bool>(),
        upgrade in any::<bool>(),
        checksums in any::<bool>(),
        sessions in vec((any::<bool>(), vec(server_message(), 0..8)), 1..4),
        damage in proptest::option::weighted(0.2, (any::<prop::sample::Index>(), 1..=255u8)),
        seeds in vec(any::<prop::sample::Index>(), 0..10),
        mixed in vec(any::<bool>(), 1..6),
    ) {
        let format = if gob { WireFormat::Gob } else { WireFormat::Native };
        let config = ClientConfig {
            wire_format: format,
            key_parser: key_check.then(|| Arc::new(DefaultKeyParser) as _),
            upgrade_legacy_policy_keys: upgrade,
            checksums: checksums.then(ChecksumCheck::default),
            ..ClientConfig::default()
        };
        let hello = ServerHello {
            syncer_type: config.syncer_type.clone(),
            supports_checksum: true,
            ..ServerHello::default()
        };
        let mut stream = encode_sessions(format, &[syncproto::Message::ServerHello(hello)], &sessions);
        if let Some((at, mask)) = damage {
            let at = at.index(stream.len());
            stream[at] ^= mask;
        }
        let cuts = split_points(stream.len(), &seeds);
        let start = Instant::now();
        let owned = run(&config, start, &stream, &cuts, &[Api::Owning]);
        let borrowed = run(&config, start, &stream, &cuts, &[Api::Borrowing]);
        prop_assert_eq!(&borrowed, &owned);
        let apis: Vec<Api> = mixed
            .iter()
            .map(|&borrow| if borrow { Api::Borrowing } else { Api::Owning })
            .collect();
        prop_assert_eq!(&run(&config, start, &stream, &cuts, &apis), &owned);
        let ordinary = |message: &syncproto::Message| {
            use syncproto::Message;
            matches!(message, Message::Kvs(_) | Message::SyncStatus(_) | Message::Ping(_) | Message::Checksum(_))
        };
        if damage.is_none() && sessions.iter().all(|(_, messages)| messages.iter().all(ordinary)) {
            // A whole stream of what servers send is read to its end,
            // every batch delivered.
            prop_assert_eq!(owned.close_reason, Some(CloseReason::PeerClosed.to_string()));
            let batches = sessions
                .iter()
                .flat_map(|(_, messages)| messages)
                .filter(|message| matches!(message, syncproto::Message::Kvs(_)))
                .count();
            let delivered = owned
                .events
                .iter()
                .filter(|event| matches!(event, ClientEvent::Updates(_)))
                .count();
            prop_assert_eq!(delivered, batches);
        }
    }
}

/// With neither a key check nor the legacy upgrade, a batch's updates are
/// handed over as the decoder borrowed them; with a key check, the rejected
/// ones are reported before the batch and left out of it.
#[test]
fn rejected_keys_are_reported_before_their_batch() {
    let config = ClientConfig {
        wire_format: WireFormat::Native,
        ..ClientConfig::default()
    };
    let batch = vec![
        SerializedUpdate::upsert(KEYS[0], "1", "7"),
        SerializedUpdate::upsert("not a key", "2", "8"),
        SerializedUpdate::upsert(KEYS[1], "3", "9"),
    ];
    let hello = ServerHello {
        syncer_type: config.syncer_type.clone(),
        ..ServerHello::default()
    };
    let stream = encode_sessions(
        WireFormat::Native,
        &[syncproto::Message::ServerHello(hello)],
        &[(false, vec![syncproto::Message::Kvs(batch.clone())])],
    );
    let start = Instant::now();
    let mut connection =
        ClientConnection::new(config, Now::new(start, Timestamp::from_unix(0, 0).unwrap()))
            .unwrap();
    let mut seen = Vec::new();
    connection.handle_input_borrowed(
        Now::new(start, Timestamp::from_unix(0, 0).unwrap()),
        &stream,
        |event| seen.push(event.to_event()),
    );
    assert!(matches!(
        seen[0],
        ClientEvent::Status(SyncStatus::ResyncInProgress)
    ));
    assert!(matches!(seen[1], ClientEvent::Connected(_)));
    assert!(matches!(&seen[2], ClientEvent::Dropped { key, .. } if key == "not a key"));
    assert_eq!(
        seen[3],
        ClientEvent::Updates(vec![batch[0].clone(), batch[2].clone()])
    );
    assert_eq!(seen.len(), 4);
    assert_eq!(connection.poll_event(), None, "nothing is left queued");
}
