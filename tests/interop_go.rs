//! Live interop with Go's encoding/gob: the Go reference peer
//! (`interop/go`, both protocol generations) against this crate's machines
//! over loopback TCP, both ways round, plain and compressed.
//!
//! Needs Go (Debian's `golang-go`). Without it these tests say so and pass,
//! unless `SYNCPROTO_REQUIRE_GO=1` (as CI sets), when they fail.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;
use syncproto::message::ByteString;

use common::blocking::{now, run_client, run_server};
use common::dataset::{self, apply, comparable};
use common::go_peer::{
    go_peers, read_state, scratch, spawn, spawn_go_server, summary, write_records,
};
use serde_json::Value;
use syncproto::CloseReason;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus, SyncerType};
use syncproto::records::{Record, status_to_line, update_to_line};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::synthetic::UNKNOWN_KEY;

const ENDPOINTS: usize = 10_000;
const SEED: u64 = 20_261_126;

/// The dataset, written where the Go peer can read it.
fn write_dataset(dir: &Path) -> (Vec<SerializedUpdate>, Vec<Record>) {
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
    (snapshot, changes)
}

fn assert_same_state(
    actual: &BTreeMap<ByteString, SerializedUpdate>,
    expected: &BTreeMap<ByteString, SerializedUpdate>,
    context: &str,
) {
    assert_eq!(actual.len(), expected.len(), "{context}: key count");
    for (key, update) in expected {
        let ours = actual
            .get(key)
            .unwrap_or_else(|| panic!("{context}: missing {key}"));
        assert_eq!(comparable(ours), comparable(update), "{context}: {key}");
    }
}

fn rust_client_against_go_server(layout: &str, compress: bool) {
    let Some(_) = go_peers() else { return };
    let dir = scratch(&format!("go-server-{layout}-{compress}"));
    let (snapshot, changes) = write_dataset(&dir);
    let state_file = dir.join("server-state.jsonl");
    let extra = ["--ping-interval", "20ms", "--min-pongs", "3"];
    let (mut child, stdout, address) = spawn_go_server(layout, &dir, &extra, compress);

    let mut stream = TcpStream::connect(&address).unwrap();
    let config = ClientConfig {
        hostname: "rust-client".into(),
        wire_format: WireFormat::Gob,
        compression: if compress {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config, now()).unwrap();
    let events = run_client(&mut stream, &mut client, Duration::from_secs(60));
    let context = format!("Rust client, Go {layout} server, compress {compress}");
    assert_eq!(
        client.close_reason(),
        Some(&CloseReason::PeerClosed),
        "{context}: {events:?}"
    );

    let mut view = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut statuses = Vec::new();
    for event in &events {
        match event {
            ClientEvent::Updates(updates) => updates.iter().for_each(|u| apply(&mut view, u)),
            ClientEvent::Dropped { key, .. } => dropped.push(key.clone()),
            ClientEvent::Status(status) => statuses.push(*status),
            _ => {}
        }
    }
    assert_eq!(dropped, [UNKNOWN_KEY], "{context}");
    assert_eq!(
        statuses,
        [
            SyncStatus::ResyncInProgress,
            SyncStatus::InSync,
            SyncStatus::ResyncInProgress,
            SyncStatus::InSync
        ],
        "{context}"
    );

    let summary = summary(&mut child, stdout);
    let pings = summary["pings_sent"].as_u64().unwrap();
    assert!(pings >= 3, "{context}: {summary}");
    assert_eq!(summary["pongs_received"].as_u64(), Some(pings), "{context}");
    assert_eq!(
        summary["compressed"],
        compress && layout == "new",
        "{context}"
    );
    assert_eq!(
        summary["client_hello"]["Hostname"], "rust-client",
        "{context}"
    );

    // Both sides end with the same datastore, but for the key no parser knows.
    let mut expected = read_state(&state_file);
    assert_same_state(
        &expected,
        &dataset::final_state(&snapshot, &changes),
        &format!("{context}: Go vs dataset"),
    );
    assert!(expected.remove(UNKNOWN_KEY).is_some());
    assert_same_state(&view, &expected, &context);
}

fn go_client_against_rust_server(layout: &str, compress: bool) {
    let Some(_) = go_peers() else { return };
    let dir = scratch(&format!("go-client-{layout}-{compress}"));
    let snapshot = dataset::snapshot(ENDPOINTS, SEED);
    let changes = dataset::changes(ENDPOINTS, SEED);
    let state_file = dir.join("client-state.jsonl");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut args = vec![
        "client",
        "--connect",
        &address,
        "--state-out",
        state_file.to_str().unwrap(),
    ];
    if compress {
        args.push("--compress");
    }
    let (mut child, stdout) = spawn(&format!("go-peer-{layout}"), &args);
    let (mut stream, _) = listener.accept().unwrap();

    let config = ServerConfig {
        ping_interval: Duration::from_millis(20),
        ping_jitter: Duration::from_millis(2),
        connection_id: 99,
        // A v3.2.5 client lacks modern policy keys: serve it anyway (the
        // dataset holds none; the server would close it before sending it
        // one).
        require_modern_policy_keys: layout == "new",
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, now()).unwrap();
    let mut feed = Some((snapshot.clone(), changes.clone()));
    let events = run_server(
        &mut stream,
        &mut server,
        Duration::from_secs(60),
        |server, event| {
            if let ServerEvent::Connected { .. } = event
                && let Some((snapshot, changes)) = feed.take()
            {
                server.send_snapshot(snapshot, SyncStatus::InSync).unwrap();
                for record in changes {
                    match record {
                        Record::Update(update) => server.send_updates(vec![update]).unwrap(),
                        Record::Status(status) => server.send_status(status).unwrap(),
                    }
                }
            }
        },
        |server, events| {
            let pongs = events
                .iter()
                .filter(|e| matches!(e, ServerEvent::Pong { .. }))
                .count();
            server.is_flushed() && pongs >= 3 && server.unanswered_pings() == 0
        },
    );
    let context = format!("Go {layout} client, Rust server, compress {compress}");
    assert_eq!(
        server.close_reason(),
        Some(&CloseReason::PeerClosed),
        "{context}: {events:?}"
    );
    assert_eq!(server.wire_format(), Some(WireFormat::Gob));
    let negotiated = compress && layout == "new";
    assert_eq!(server.compression().is_some(), negotiated, "{context}");
    let hello = server.client_hello().unwrap();
    assert_eq!(hello.hostname, "go-client");
    assert_eq!(hello.syncer_type, SyncerType::Felix);
    assert_eq!(hello.supports_modern_policy_keys, layout == "new");

    let summary = summary(&mut child, stdout);
    let pongs = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Pong { .. }))
        .count();
    assert_eq!(
        summary["pings_answered"].as_u64(),
        Some(pongs as u64),
        "{context}: {summary}"
    );
    assert_eq!(
        summary["statuses"],
        serde_json::json!(["in-sync", "resync", "in-sync"]),
        "{context}"
    );
    assert_eq!(
        summary["restarts"].as_u64(),
        Some(if negotiated { 2 } else { 0 }),
        "{context}"
    );
    if layout == "new" {
        assert_eq!(summary["server_hello"]["ServerConnID"], 99, "{context}");
    }

    // The Go client parses no keys: it holds everything, the unknown key too.
    let state = read_state(&state_file);
    assert_same_state(&state, &dataset::final_state(&snapshot, &changes), &context);
}

#[test]
fn rust_client_against_newest_go_server_plain() {
    rust_client_against_go_server("new", false);
}

#[test]
fn rust_client_against_newest_go_server_compressed() {
    rust_client_against_go_server("new", true);
}

#[test]
fn rust_client_against_v3_2_5_go_server() {
    rust_client_against_go_server("v325", false);
}

#[test]
fn rust_client_offering_compression_to_a_v3_2_5_go_server() {
    rust_client_against_go_server("v325", true);
}

#[test]
fn newest_go_client_against_rust_server_plain() {
    go_client_against_rust_server("new", false);
}

#[test]
fn newest_go_client_against_rust_server_compressed() {
    go_client_against_rust_server("new", true);
}

#[test]
fn v3_2_5_go_client_against_rust_server() {
    go_client_against_rust_server("v325", false);
}

/// As upstream's newest server: a client without modern policy key
/// support is refused, and closed without a reply.
#[test]
fn by_default_a_v3_2_5_go_client_is_refused_without_a_reply() {
    let Some(_) = go_peers() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (mut child, stdout) = spawn("go-peer-v325", &["client", "--connect", &address]);
    let (mut stream, _) = listener.accept().unwrap();
    let mut server = ServerConnection::new(ServerConfig::default(), now()).unwrap();
    let mut written = 0;
    let mut buffer = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    while !server.is_closed() {
        let read = std::io::Read::read(&mut stream, &mut buffer).unwrap();
        assert!(read > 0, "the client hung up before the server decided");
        server.handle_input(now(), &buffer[..read]);
        while let Some(bytes) = server.poll_transmit(now().instant) {
            written += bytes.len();
            stream.write_all(&bytes).unwrap();
        }
    }
    assert_eq!(
        server.close_reason(),
        Some(&CloseReason::Protocol(
            syncproto::ProtocolError::MissingFeature("modern policy keys")
        ))
    );
    assert_eq!(written, 0, "the refusal sends nothing");
    drop(stream);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(!child.wait().unwrap().success());
    let summary: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(summary["ok"], false, "{summary}");
    assert!(
        summary["error"] == "server closed the connection before its ServerHello",
        "the Go client read nothing before the close: {summary}"
    );
}
