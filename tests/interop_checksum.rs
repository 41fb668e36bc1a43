//! Snapshot checksums (upstream's newest generation, DESIGN.md §1b)
//! against Go's `encoding/gob`: the golden vectors the Go reference peer
//! wrote, and the peer itself (`interop/go`) as server, client and hub
//! against this crate's machines over loopback TCP.
//!
//! The live tests need Go; see `common::go_peer` (they pass without
//! running when Go is missing, and fail then under `SYNCPROTO_REQUIRE_GO=1`).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::blocking::{now, run_client, run_server};
use common::dataset;
use common::go_peer::{
    go_peers, listening, read_state, scratch, spawn, spawn_go_server, spawn_with_stdin, summary,
    write_records,
};
use common::golden::{assert_matches_golden, load};
use serde_json::Value;
use syncproto::checksum::{StateChecksum, entry_digest};
use syncproto::client::{ChecksumReport, ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::codec::gob::{GobDecoder, GobEncoder, GobLimits};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{
    ByteString, Checksum, CompressionAlgorithm, SerializedUpdate, SyncStatus,
};
use syncproto::records::{Record, status_to_line, update_to_line};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Message};

const ENDPOINTS: usize = 2_000;
const SEED: u64 = 20_261_201;

/// A state's checksum computed from scratch (the tests' reference; the
/// peers keep theirs incrementally).
fn checksum_of(state: &BTreeMap<ByteString, SerializedUpdate>) -> StateChecksum {
    let mut sum = StateChecksum::default();
    for (key, update) in state {
        if let Some(value) = update.effective_value() {
            sum.replace(None, Some(entry_digest(key.as_bytes(), value)));
        }
    }
    sum
}

/// The checksum as the Go peer's summaries print it.
fn hex(sum: StateChecksum) -> String {
    format!("{:#018x}", sum.checksum)
}

fn decode_all(stream: &[u8]) -> Vec<Message> {
    let mut decoder = GobDecoder::new(GobLimits::default());
    let mut buffer = BytesMut::from(stream);
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut buffer).unwrap() {
        out.push(message);
    }
    assert_eq!(decoder.decode_eof(&mut buffer), Ok(None));
    out
}

/// Every checksum in the Go-written session is the checksum of the KVs
/// before it, as this crate computes it.
#[test]
fn golden_checksum_session_describes_the_state_before_each_checksum() {
    let (stream, expected) = load("checksum_session.new");
    let decoded = decode_all(&stream);
    assert_eq!(decoded.len(), expected.len(), "message count");
    let mut state = BTreeMap::new();
    let mut checked = Vec::new();
    for (i, (message, golden)) in decoded.iter().zip(&expected).enumerate() {
        assert_matches_golden(message, golden, &format!("checksum_session message {i}"));
        match message {
            Message::ServerHello(hello) => assert!(hello.supports_checksum),
            Message::Kvs(updates) => updates.iter().for_each(|u| dataset::apply(&mut state, u)),
            Message::Checksum(checksum) => {
                assert_eq!(
                    StateChecksum::from(*checksum),
                    checksum_of(&state),
                    "message {i}"
                );
                checked.push(checksum.kv_count);
            }
            _ => {}
        }
    }
    assert_eq!(checked, [4, 3, 0]);
}

/// The standalone `MsgChecksum` vector: the state holding upstream's golden
/// entry ("ab", "c"), twice. This crate's encoder writes the second message
/// as Go does, but for the type id it gave `MsgChecksum`.
#[test]
fn golden_lone_checksum_matches_the_golden_digest_and_our_encoding() {
    let (stream, expected) = load("checksum_alone.new");
    let lone = Checksum {
        checksum: entry_digest(b"ab", b"c"),
        kv_count: 1,
    };
    assert_eq!(lone.checksum, 0x4b60_7981_3954_9d1d);
    let decoded = decode_all(&stream);
    assert_eq!(decoded, [Message::Checksum(lone), Message::Checksum(lone)]);
    assert_matches_golden(&decoded[0], &expected[0], "checksum_alone");

    // Go's second message: length 77, Envelope (65), field delta 1, the
    // 56-byte name, then MsgChecksum's id (66: ff 84) and the value.
    let go_second = &stream[stream.len() - 78..];
    assert_eq!(go_second[0], 77);
    let mut encoder = GobEncoder::new(usize::MAX);
    let mut first = BytesMut::new();
    encoder
        .encode(&Message::Checksum(lone), &mut first)
        .unwrap();
    let mut ours = BytesMut::new();
    encoder.encode(&Message::Checksum(lone), &mut ours).unwrap();
    assert_eq!(ours.len(), go_second.len());
    let id_at = 1 + 4 + 56;
    assert_eq!(&go_second[id_at..id_at + 2], [0xff, 0x84]);
    assert_eq!(ours[..id_at], go_second[..id_at], "up to the type id");
    assert_eq!(
        ours[id_at + 2..],
        go_second[id_at + 2..],
        "after the type id"
    );
}

/// Writes the synthetic dataset for the Go server; returns the number of
/// update records (each one `KVs`, so one batch of deltas).
fn write_dataset(dir: &Path) -> usize {
    let snapshot = dataset::snapshot(ENDPOINTS, SEED);
    let changes = dataset::changes(ENDPOINTS, SEED);
    write_records(
        &dir.join("snapshot.jsonl"),
        snapshot.iter().map(|u| update_to_line(u, true)),
    );
    write_records(
        &dir.join("updates.jsonl"),
        changes.iter().map(|record| match record {
            Record::Update(update) => update_to_line(update, true),
            Record::Status(status) => status_to_line(*status),
        }),
    );
    changes
        .iter()
        .filter(|record| matches!(record, Record::Update(_)))
        .count()
}

fn checksum_reports(events: &[ClientEvent]) -> Vec<ChecksumReport> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Checksum(report) => Some(*report),
            _ => None,
        })
        .collect()
}

/// (a) The Go server, a checksum after every batch: a Rust gob client
/// verifies every one and ends with the server's state checksum.
fn rust_client_verifies_go_server_checksums(compress: bool) {
    let Some(_) = go_peers() else { return };
    let dir = scratch(&format!("checksum-go-server-{compress}"));
    let batches = write_dataset(&dir);
    let state_file = dir.join("server-state.jsonl");
    let extra = ["--checksum-interval", "0", "--min-pongs", "1"];
    let (mut child, stdout, address) = spawn_go_server("new", &dir, &extra, compress);

    let mut stream = TcpStream::connect(&address).unwrap();
    let config = ClientConfig {
        wire_format: WireFormat::Gob,
        compression: if compress {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    };
    assert!(config.checksums.is_some_and(|check| !check.count_only));
    let mut client = ClientConnection::new(config, now()).unwrap();
    let events = run_client(&mut stream, &mut client, Duration::from_secs(60));
    let context = format!("Go server, compress {compress}");
    assert_eq!(
        client.close_reason(),
        Some(&CloseReason::PeerClosed),
        "{context}"
    );
    let summary = summary(&mut child, stdout);
    assert_eq!(summary["compressed"], compress, "{context}: {summary}");

    let reports = checksum_reports(&events);
    assert!(
        reports.iter().all(|report| report.verified),
        "{context}: {reports:?}"
    );
    assert!(reports.len() > batches, "{context}: {}", reports.len());
    assert_eq!(
        summary["checksums_sent"].as_u64(),
        Some(reports.len() as u64),
        "{context}"
    );
    let expected = checksum_of(&read_state(&state_file));
    assert!(expected.kv_count > 1000, "{context}: {expected:?}");
    assert_eq!(client.received_checksum(), Some(expected), "{context}");
    assert_eq!(reports.last().unwrap().server, expected, "{context}");
    assert_eq!(summary["checksum"], hex(expected), "{context}");
}

#[test]
fn a_rust_client_verifies_every_go_server_checksum_plain() {
    rust_client_verifies_go_server_checksums(false);
}

#[test]
fn a_rust_client_verifies_every_go_server_checksum_compressed() {
    rust_client_verifies_go_server_checksums(true);
}

/// A Rust server following a cache, a checksum after every change batch,
/// to a Go client run with `go_args`; the changes are applied one batch at
/// a time, each once the one before has gone out. Returns the Go client's
/// summary, the cache's final checksum and whether the hello asked.
fn go_client_of_rust_server(name: &str, go_args: &[&str]) -> (Value, StateChecksum, bool) {
    let dir = scratch(name);
    let start = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(start, dataset::snapshot(200, SEED));
    cache.set_status(start, SyncStatus::InSync);
    let key = |i: usize| format!("/calico/v1/config/Checksum{i:02}");
    let mut batches: Vec<Vec<SerializedUpdate>> = (0..6)
        .map(|round| {
            (0..5)
                .map(|i| match (round + i) % 4 {
                    // A deletion (of an absent key, at first).
                    0 => SerializedUpdate::deletion(key(i), "1"),
                    // An empty value: a deletion on every wire.
                    1 => SerializedUpdate::upsert(key(i), "", "2"),
                    _ => SerializedUpdate::upsert(key(i), format!("r{}", round % 3), "3"),
                })
                .collect()
        })
        .collect();
    batches.reverse();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let state_file = dir.join("go-client-state.jsonl");
    let mut args = vec![
        "client",
        "--connect",
        &address,
        "--state-out",
        state_file.to_str().unwrap(),
    ];
    args.extend_from_slice(go_args);
    let (mut child, stdout) = spawn("go-peer-new", &args);
    let (mut stream, _) = listener.accept().unwrap();
    let config = ServerConfig {
        ping_interval: Duration::from_millis(20),
        ping_jitter: Duration::from_millis(2),
        checksum_interval: Some(Duration::ZERO),
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, now()).unwrap();
    run_server(
        &mut stream,
        &mut server,
        Duration::from_secs(60),
        |server, event| {
            if let ServerEvent::Connected { .. } = event {
                server.follow(cache.subscribe(Instant::now())).unwrap();
            }
        },
        |server, _| {
            if !server.is_flushed() {
                return false;
            }
            match batches.pop() {
                Some(batch) => {
                    cache.apply(Instant::now(), batch);
                    false
                }
                None => server.pongs_received() >= 1 && server.unanswered_pings() == 0,
            }
        },
    );
    assert_eq!(server.close_reason(), Some(&CloseReason::PeerClosed));
    let asked = server.client_hello().unwrap().supports_checksum;
    let summary = summary(&mut child, stdout);
    let state = read_state(&state_file);
    assert_eq!(
        checksum_of(&state),
        cache.checksum(),
        "the Go client's state"
    );
    (summary, cache.checksum(), asked)
}

/// (b) A Go client asking for (and requiring) checksums verifies every one
/// a Rust server sends, and its own checksum is the cache's.
#[test]
fn a_go_client_verifies_a_rust_servers_checksums() {
    let Some(_) = go_peers() else { return };
    let (summary, expected, asked) = go_client_of_rust_server(
        "checksum-rust-server",
        &["--checksums", "--require-checksums"],
    );
    assert!(asked);
    assert_eq!(
        summary["server_hello"]["SupportsChecksum"], true,
        "{summary}"
    );
    assert!(
        summary["checksums_verified"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert_eq!(summary["checksum_mismatches"], 0, "{summary}");
    assert_eq!(summary["checksum"], hex(expected), "{summary}");
    assert_eq!(summary["kv_count"], expected.kv_count, "{summary}");
    // A checksum follows the last batch too: the last one is the final state.
    assert_eq!(summary["last_server_checksum"], hex(expected), "{summary}");
}

/// (c) A Go client that does not ask gets no checksum (one would fail it:
/// "server sent a checksum without being asked").
#[test]
fn a_go_client_that_does_not_ask_gets_no_checksum() {
    let Some(_) = go_peers() else { return };
    let (summary, _, asked) = go_client_of_rust_server("checksum-rust-server-unasked", &[]);
    assert!(!asked);
    assert_eq!(
        summary["server_hello"]["SupportsChecksum"], false,
        "{summary}"
    );
    assert!(summary.get("checksums_verified").is_none(), "{summary}");
}

/// Reads the hub's stdout lines until one is a JSON object whose `field`
/// is `value` (any value when `None`).
fn hub_line(stdout: &mut impl BufRead, field: &str, value: Option<&str>) -> Value {
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "hub output ended");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        if parsed
            .get(field)
            .is_some_and(|v| value.is_none_or(|value| v == value))
        {
            return parsed;
        }
    }
}

/// (d) The Go hub with one update per breadcrumb and every breadcrumb but
/// the newest counting as lagging: deltas reach a Rust client coalesced,
/// each message followed by the checksum after its last breadcrumb, and
/// every checksum verifies.
#[test]
fn go_hub_checksums_verify_on_a_rust_client_through_coalesced_batches() {
    let Some(_) = go_peers() else { return };
    let dir = scratch("checksum-hub");
    let state_file = dir.join("hub-state.jsonl");
    let (mut child, mut stdin, mut stdout) = spawn_with_stdin(
        "go-peer-new",
        &[
            "hub",
            "--max-batch-size",
            "1",
            "--max-message-size",
            "4",
            "--min-batching-age",
            "1ns",
            "--checksum-interval",
            "0",
            "--events",
            "--state-out",
            state_file.to_str().unwrap(),
        ],
    );
    let address = listening(&mut stdout);
    let mut send = |lines: &[String]| {
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    };
    let key = |i: usize| format!("/calico/v1/config/Hub{i:02}");
    let mut initial: Vec<String> = (0..10)
        .map(|i| update_to_line(&SerializedUpdate::upsert(key(i), "initial", "1"), true))
        .collect();
    initial.push(status_to_line(SyncStatus::InSync));
    initial.push(r#"{"cmd":"flush"}"#.into());
    initial.push(r#"{"cmd":"sync","id":1}"#.into());
    send(&initial);
    // The client's snapshot is then the flushed store, in sync.
    hub_line(&mut stdout, "synced", None);

    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        let config = ClientConfig {
            wire_format: WireFormat::Gob,
            ..ClientConfig::default()
        };
        let mut client = ClientConnection::new(config, now()).unwrap();
        let events = run_client(&mut stream, &mut client, Duration::from_secs(60));
        (events, client.received_checksum())
    });
    hub_line(&mut stdout, "event", Some("streaming"));

    // Two flushes of 12 changes each (one breadcrumb per change):
    // replacements, deletions (of absent keys too), no-ops and new keys.
    for round in 0..2 {
        let mut lines: Vec<String> = (0..12)
            .map(|i| {
                let update = match (round * 12 + i) % 4 {
                    0 => SerializedUpdate::deletion(key(i), "2"),
                    1 => SerializedUpdate::upsert(key(i), "initial", "3"),
                    _ => SerializedUpdate::upsert(key(i + round), format!("r{round}"), "4"),
                };
                update_to_line(&update, true)
            })
            .collect();
        lines.push(r#"{"cmd":"flush"}"#.into());
        send(&lines);
    }
    send(&[r#"{"cmd":"finish"}"#.into()]);
    let hub_summary = hub_line(&mut stdout, "ok", None);
    assert!(child.wait().unwrap().success(), "hub: {hub_summary}");
    assert_eq!(hub_summary["ok"], true, "{hub_summary}");
    let (events, received) = client.join().unwrap();

    let reports = checksum_reports(&events);
    assert!(reports.iter().all(|report| report.verified), "{reports:?}");
    // After the initial in-sync's checksum, every KVs of deltas is followed
    // by its own checksum.
    let stream_events: Vec<&ClientEvent> = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Updates(_) | ClientEvent::Checksum(_)))
        .collect();
    let first = stream_events
        .iter()
        .position(|e| matches!(e, ClientEvent::Checksum(_)))
        .unwrap();
    let deltas = &stream_events[first + 1..];
    assert_eq!(deltas.len() % 2, 0, "{deltas:?}");
    let mut sizes = Vec::new();
    for pair in deltas.chunks(2) {
        match pair {
            [ClientEvent::Updates(updates), ClientEvent::Checksum(_)] => sizes.push(updates.len()),
            other => panic!("a delta message without its checksum: {other:?}"),
        }
    }
    assert!(
        sizes.iter().any(|&size| size > 1),
        "no message coalesced breadcrumbs: {sizes:?}"
    );
    let connection = &hub_summary["connections"][0];
    assert_eq!(connection["checksums"], true, "{connection}");
    assert_eq!(
        connection["checksums_sent"].as_u64(),
        Some(reports.len() as u64),
        "{connection}"
    );

    let expected = checksum_of(&read_state(&state_file));
    assert_eq!(received, Some(expected));
    assert_eq!(hub_summary["checksum"], hex(expected), "{hub_summary}");
    assert_eq!(hub_summary["kv_count"], expected.kv_count, "{hub_summary}");
}
