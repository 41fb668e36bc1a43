//! Both halves of upstream's `V3ResourceVersion` contract against the Go
//! peer (Go's own `encoding/gob`): a server moves a v3 resource's
//! `metadata.resourceVersion` out of its value into `V3ResourceVersion`
//! (upstream's `SerializeUpdate`), so that writes changing only the
//! version are squashed; a client writes it back (upstream's `ToUpdate`).
//!
//! Needs Go; see `common::go_peer`.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::blocking::{now, run_client, run_server};
use common::go_peer::{go_peers, read_state, scratch, spawn, summary, write_records};
use serde_json::Value;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus};
use syncproto::records::update_to_line;
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};

const POLICY: &str = "/calico/resources/v3/projectcalico.org/networkpolicies/ns-1/allow";
const CONFIG: &str = "/calico/resources/v3/projectcalico.org/felixconfigurations/default";

/// A v3 resource as Go marshals it, with `version` in its metadata.
fn resource(name: &str, version: &str, order: u32) -> String {
    format!(
        r#"{{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}","namespace":"ns-1","uid":"u-{name}","resourceVersion":"{version}","creationTimestamp":null}},"spec":{{"order":{order},"selector":"all()"}}}}"#
    )
}

/// The datastore as written: two resources carrying their versions, and a
/// key that is not a resource (left alone).
fn datastore() -> Vec<SerializedUpdate> {
    vec![
        SerializedUpdate::upsert(CONFIG, resource("default", "17", 1), "17"),
        SerializedUpdate::upsert(POLICY, resource("allow", "41", 10), "41"),
        SerializedUpdate::upsert("/calico/v1/config/LogSeverityScreen", "Info", "3"),
    ]
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The Go peer's state file with each value parsed, by key.
fn go_state(path: &std::path::Path) -> BTreeMap<ByteString, (Value, String)> {
    read_state(path)
        .into_iter()
        .map(|(key, update)| {
            let value = update.value.as_deref().map_or(Value::Null, |v| {
                serde_json::from_slice(v)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(v).into()))
            });
            (key, (value, update.v3_resource_version.to_string()))
        })
        .collect()
}

/// Upstream's server moves the version out and upstream's client writes it
/// back: a Go server does the first half, and the Rust client's
/// `value_with_resource_version` gives the same JSON as a Go client's
/// write-back, which is the JSON as written.
#[test]
fn a_rust_client_writes_back_what_a_go_server_moved_out() {
    let Some(_) = go_peers() else { return };
    let dir = scratch("resource-versions-go-server");
    let snapshot = dir.join("snapshot.jsonl");
    write_records(
        &snapshot,
        datastore().iter().map(|u| update_to_line(u, true)),
    );
    let serve = |state: Option<&std::path::Path>| {
        let mut args = vec![
            "server".to_owned(),
            "--move-resource-versions".to_owned(),
            "--snapshot".to_owned(),
            snapshot.to_str().unwrap().to_owned(),
            "--min-pongs".to_owned(),
            "1".to_owned(),
        ];
        if let Some(state) = state {
            args.extend(["--state-out".to_owned(), state.to_str().unwrap().to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, mut stdout) = spawn("go-peer-new", &args);
        let mut listening = String::new();
        stdout.read_line(&mut listening).unwrap();
        let address = listening
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap()
            .to_owned();
        (child, stdout, address)
    };

    // The Rust client.
    let (mut child, stdout, address) = serve(None);
    let mut stream = TcpStream::connect(&address).unwrap();
    let config = ClientConfig {
        wire_format: WireFormat::Gob,
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config, now()).unwrap();
    let events = run_client(&mut stream, &mut client, Duration::from_secs(60));
    summary(&mut child, stdout);
    let received: BTreeMap<ByteString, SerializedUpdate> = events
        .iter()
        .flat_map(|event| match event {
            ClientEvent::Updates(updates) => updates.clone(),
            _ => Vec::new(),
        })
        .map(|update| (update.key.clone(), update))
        .collect();
    let policy = &received[POLICY];
    assert_eq!(policy.v3_resource_version, "41", "moved into the field");
    assert!(
        json(policy.value.as_deref().unwrap())["metadata"]
            .get("resourceVersion")
            .is_none(),
        "and out of the value"
    );

    // A Go client of the same server, writing the version back as Felix.
    let go_client_state = dir.join("go-client-state.jsonl");
    let (mut server, server_out, address) = serve(None);
    let (mut go_client, go_out) = spawn(
        "go-peer-new",
        &[
            "client",
            "--connect",
            &address,
            "--write-back-resource-versions",
            "--state-out",
            go_client_state.to_str().unwrap(),
        ],
    );
    summary(&mut go_client, go_out);
    summary(&mut server, server_out);
    let go_view = go_state(&go_client_state);

    for written in datastore() {
        let ours = received[&written.key]
            .value_with_resource_version()
            .unwrap();
        let as_written = written.value.as_deref().unwrap();
        if written.key.starts_with("/calico/resources/v3/") {
            assert_eq!(json(&ours), json(as_written), "{}", written.key);
            assert_eq!(go_view[&written.key].0, json(&ours), "{}", written.key);
        } else {
            assert_eq!(&ours[..], as_written);
        }
    }
}

/// A Rust server doing what upstream's `SerializeUpdate` does, behind a
/// snapshot cache: a write that changes only the version is squashed, and
/// a Go client gets the version in `V3ResourceVersion`.
#[test]
fn a_rust_server_moves_versions_out_so_version_only_writes_are_squashed() {
    let Some(_) = go_peers() else { return };
    let dir = scratch("resource-versions-rust-server");
    let start = Instant::now();
    let cache = SnapshotCache::new(CacheConfig::default());
    let prepared = |mut update: SerializedUpdate| {
        update.move_resource_version_out();
        update
    };
    cache.apply(start, datastore().into_iter().map(prepared));
    cache.set_status(start, SyncStatus::InSync);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let state = dir.join("go-client-state.jsonl");
    let (mut child, stdout) = spawn(
        "go-peer-new",
        &[
            "client",
            "--connect",
            &address,
            "--state-out",
            state.to_str().unwrap(),
        ],
    );
    let (mut stream, _) = listener.accept().unwrap();
    let config = ServerConfig {
        ping_interval: Duration::from_millis(20),
        ping_jitter: Duration::from_millis(2),
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, now()).unwrap();
    let mut live_sent = false;
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
            if server.is_flushed() && !live_sent {
                // The policy written again, only its version changed: a
                // no-op once the version is moved out. Then a real change.
                live_sent = true;
                let again = cache.apply(
                    Instant::now(),
                    [prepared(SerializedUpdate::upsert(
                        POLICY,
                        resource("allow", "42", 10),
                        "42",
                    ))],
                );
                assert_eq!((again.accepted, again.skipped), (0, 1));
                let changed = cache.apply(
                    Instant::now(),
                    [prepared(SerializedUpdate::upsert(
                        POLICY,
                        resource("allow", "43", 11),
                        "43",
                    ))],
                );
                assert_eq!(changed.accepted, 1);
                return false;
            }
            live_sent
                && server.is_flushed()
                && server.pongs_received() >= 1
                && server.unanswered_pings() == 0
        },
    );
    let summary = summary(&mut child, stdout);
    assert_eq!(
        summary["kvs_received"], 4,
        "3 in the snapshot, 1 change: {summary}"
    );
    let view = go_state(&state);
    let (policy, version) = &view[POLICY];
    assert_eq!(version, "43");
    assert!(policy["metadata"].get("resourceVersion").is_none());
    assert_eq!(policy["spec"]["order"], 11);
    assert_eq!(view[CONFIG].1, "17");
}
