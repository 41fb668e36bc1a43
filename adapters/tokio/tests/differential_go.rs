//! Differential test against Go: one random datastore script is played
//! through three servers side by side — the project's Go peer (`go-peer
//! hub`, upstream-shaped, on Go's own `encoding/gob`), this crate's tokio
//! server, and a relay whose upstream is the Go hub — each with Go clients
//! of both protocol generations and Rust clients (gob, and native on the
//! Rust server and the relay). Every client of every server must end
//! holding the same datastore, the one the script describes, and every
//! ping a server sent to a client that saw the end must have been
//! answered.
//!
//! The script mixes upserts, deletions (of absent keys too), no-op writes,
//! empty values (deletions on every wire), binary, unicode and large
//! values, a long key, status flips, pauses and client reconnects. It runs
//! in CI with a fixed number of cases (`SYNCPROTO_DIFFERENTIAL_CASES`,
//! default 32); a failure prints the shrunk script.
//!
//! Needs Go; see `tests/common/go_peer.rs` at the repository root.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../tests/common/go_peer.rs"]
#[allow(dead_code, unreachable_pub)]
mod go_peer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::key::Key;
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus};
use syncproto::server::ConnectionReport;
use syncproto::server::ServerConfig;
use syncproto::session::Backoff;
use syncproto_tokio::relay::{Relay, RelayOptions};
use syncproto_tokio::{Server, ServerOptions};

use go_peer::{go_peers, read_state, scratch};
use script::{Case, GO_NEW, GO_V325, Model, RUST_GOB, RUST_NATIVE, Step, case, key_pool};

#[path = "differential/peers.rs"]
mod peers;
#[path = "differential/script.rs"]
mod script;
use peers::{GoClient, Hub, RustClient, RustCommand};

/// How long any one wait may take before the case fails.
const LIMIT: Duration = Duration::from_secs(60);
const SENTINEL: &str = "/calico/v1/config/DifferentialDone";
const PING_INTERVAL: Duration = Duration::from_millis(20);

/// The clients of one server.
struct Fleet {
    go: Vec<Option<GoClient>>,
    rust: Vec<Option<RustClient>>,
    dir: PathBuf,
    name: &'static str,
    address: String,
    go_compress: bool,
    connections: usize,
}

impl Fleet {
    fn start(
        name: &'static str,
        dir: &Path,
        address: String,
        go_compress: bool,
        rust_compress: bool,
        native: bool,
    ) -> Fleet {
        let mut fleet = Fleet {
            go: vec![None, None],
            rust: vec![None, None],
            dir: dir.to_owned(),
            name,
            address,
            go_compress,
            connections: 0,
        };
        fleet.start_go(GO_NEW);
        fleet.start_go(GO_V325);
        fleet.rust[0] = Some(RustClient::start(
            &fleet.address,
            WireFormat::Gob,
            rust_compress,
        ));
        if native {
            fleet.rust[1] = Some(RustClient::start(
                &fleet.address,
                WireFormat::Native,
                rust_compress,
            ));
        }
        fleet
    }

    fn start_go(&mut self, slot: usize) {
        self.connections += 1;
        let layout = if slot == GO_NEW { "new" } else { "v325" };
        let state = self
            .dir
            .join(format!("{}-{layout}-{}.jsonl", self.name, self.connections));
        self.go[slot] = Some(GoClient::start(
            layout,
            &self.address,
            state,
            self.go_compress,
        ));
    }

    fn reconnect(&mut self, slot: usize) {
        match slot {
            GO_NEW | GO_V325 => {
                if let Some(mut client) = self.go[slot].take() {
                    client.kill();
                }
                self.start_go(slot);
            }
            RUST_GOB | RUST_NATIVE => {
                if let Some(client) = &self.rust[slot - RUST_GOB] {
                    client.commands.send(RustCommand::Reconnect).unwrap();
                }
            }
            _ => unreachable!(),
        }
    }

    async fn wait_for(&mut self, value: &str) {
        for client in self.go.iter_mut().flatten() {
            client.wait_for(value);
        }
        for client in self.rust.iter_mut().flatten() {
            client.wait_for(value).await;
        }
    }

    fn prepare_to_finish(&self) {
        for client in self.rust.iter().flatten() {
            client.commands.send(RustCommand::Finish).unwrap();
        }
    }

    /// After the server closed: every client's state, by name.
    async fn finish(self) -> Vec<(String, BTreeMap<ByteString, Bytes>)> {
        let mut states = Vec::new();
        for (slot, client) in self.go.into_iter().enumerate() {
            let (summary, state) = client.unwrap().finish();
            let name = format!("{} server, Go client {slot}", self.name);
            assert_eq!(
                summary["pongs_sent"], summary["pings_received"],
                "{name}: {summary}"
            );
            states.push((name, state));
        }
        for (slot, client) in self.rust.into_iter().enumerate() {
            let Some(client) = client else { continue };
            let (view, dropped) = tokio::time::timeout(LIMIT, client.task)
                .await
                .expect("Rust client ends with the server")
                .unwrap();
            let name = format!("{} server, Rust client {slot}", self.name);
            assert!(dropped.is_empty(), "{name} dropped {dropped:?}");
            states.push((name, view));
        }
        states
    }
}

fn run(case: &Case, number: u64) {
    let dir = scratch(&format!("differential-{number}"));
    let keys = key_pool();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut hub = Hub::start(&dir, case.hub_compresses);
        let reports: Arc<Mutex<Vec<ConnectionReport>>> = Arc::default();
        let collected = Arc::clone(&reports);
        let options = ServerOptions {
            config: ServerConfig {
                ping_interval: PING_INTERVAL,
                ping_jitter: Duration::from_millis(2),
                pong_timeout: Duration::from_secs(10),
                // v3.2.5 clients are served: the data holds no modern keys.
                require_modern_policy_keys: false,
                ..ServerConfig::default()
            },
            on_connection_closed: Some(Arc::new(move |report: &ConnectionReport| {
                collected.lock().unwrap().push(report.clone());
            })),
            ..ServerOptions::default()
        };
        let cache = SnapshotCache::new(CacheConfig::default());
        // A relay of the Go hub, serving the same kinds of clients.
        let mut relay_options = RelayOptions::new(hub.address.clone());
        relay_options.server = ServerOptions {
            config: options.config.clone(),
            ..ServerOptions::default()
        };
        relay_options.backoff = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
        };
        let relay = Relay::bind("127.0.0.1:0", relay_options).await.unwrap();
        let relay_address = relay.local_addr().unwrap().to_string();
        let relay_handle = relay.handle();
        let relaying = tokio::spawn(relay.run());
        let server = Server::bind("127.0.0.1:0", cache, options).await.unwrap();
        let rust_address = server.local_addr().unwrap().to_string();
        let handle = server.handle();
        let serving = tokio::spawn(server.run());

        let mut fleets = [
            Fleet::start(
                "Go",
                &dir,
                hub.address.clone(),
                case.go_client_compresses,
                case.rust_client_compresses,
                false,
            ),
            Fleet::start(
                "Rust",
                &dir,
                rust_address,
                case.go_client_compresses,
                case.rust_client_compresses,
                true,
            ),
            Fleet::start(
                "Relay",
                &dir,
                relay_address,
                case.go_client_compresses,
                case.rust_client_compresses,
                true,
            ),
        ];
        let mut model = Model::default();
        let ending = [
            Step::Status(SyncStatus::InSync),
            // Time for pings to go both ways on every connection.
            Step::Pause(3 * PING_INTERVAL.as_millis() as u8),
        ];
        for step in case.steps.iter().chain(&ending) {
            match step {
                Step::Write(changes) => {
                    let updates = model.write(&keys, changes);
                    hub.write(&updates);
                    handle.apply(updates);
                }
                Step::Status(status) => {
                    hub.status(*status);
                    handle.set_status(*status);
                }
                Step::Reconnect(slot) => fleets.iter_mut().for_each(|f| f.reconnect(*slot)),
                Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
            }
        }
        let done = format!("case-{number}");
        let sentinel = SerializedUpdate::upsert(SENTINEL, done.clone(), "sentinel");
        model
            .state
            .insert(SENTINEL.into(), Bytes::from(done.clone()));
        hub.write(std::slice::from_ref(&sentinel));
        handle.apply([sentinel]);
        for fleet in &mut fleets {
            fleet.wait_for(&done).await;
            fleet.prepare_to_finish();
        }

        // Every server ends its connections gracefully (the relay once its
        // upstream, the hub, is gone).
        let [go_fleet, rust_fleet, relay_fleet] = fleets;
        let hub_state_out = hub.state_out.clone();
        let relay_state = state_of(&relay_handle.server().caches()[0].1);
        // The relay checked the hub's snapshot checksums: none disagreed.
        for (syncer, status) in relay_handle.upstreams() {
            assert_eq!(status.checksum_mismatches, 0, "{syncer}: {status:?}");
        }
        let hub_summary = hub.finish();
        handle.shutdown();
        relay_handle.shutdown();
        for server in [serving, relaying] {
            tokio::time::timeout(LIMIT, server)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        let mut states = go_fleet.finish().await;
        states.extend(rust_fleet.finish().await);
        states.extend(relay_fleet.finish().await);
        states.push(("Relay cache".into(), relay_state));

        // The servers hold the script's datastore...
        let hub_state: BTreeMap<ByteString, Bytes> = read_state(&hub_state_out)
            .into_iter()
            .filter_map(|(key, update)| Some((key, update.value?)))
            .collect();
        states.push(("Go hub".into(), hub_state));
        states.push(("Rust cache".into(), state_of(handle.cache().unwrap())));
        // ...and so does every client of either.
        for (name, state) in &states {
            assert_same(name, state, &model.state);
        }

        // Every ping to a connection that saw the end was answered. A
        // connection made late (a reconnect under load) may end before its
        // first ping, so only the sum is required to be non-zero: the check
        // is not vacuous.
        let mut hub_pings = 0;
        for connection in hub_summary["connections"].as_array().unwrap() {
            if connection["end"] == "finished" {
                hub_pings += connection["pings_sent"].as_u64().unwrap_or(0);
                assert_eq!(
                    connection["pongs_matched"], connection["pings_sent"],
                    "Go hub: {connection}"
                );
            }
        }
        assert!(hub_pings > 0, "the Go hub sent no pings: {hub_summary}");
        let reports = reports.lock().unwrap();
        let finished: Vec<&ConnectionReport> = reports
            .iter()
            .filter(|report| report.reason == "closed locally")
            .collect();
        assert_eq!(finished.len(), 4, "every client saw the end: {reports:#?}");
        let rust_pings: u64 = finished.iter().map(|report| report.pings_sent).sum();
        assert!(
            rust_pings > 0,
            "the Rust server sent no pings: {finished:#?}"
        );
        for report in finished {
            assert_eq!(report.unanswered_pings, 0, "Rust server: {report:?}");
        }
    });
}

/// A cache's datastore, key to value.
fn state_of(cache: &SnapshotCache) -> BTreeMap<ByteString, Bytes> {
    cache
        .snapshot_updates()
        .into_iter()
        .filter_map(|update| Some((update.key, update.value?)))
        .collect()
}

fn assert_same(
    name: &str,
    actual: &BTreeMap<ByteString, Bytes>,
    expected: &BTreeMap<ByteString, Bytes>,
) {
    let short = |key: &ByteString| key.chars().take(80).collect::<String>();
    for (key, value) in expected {
        match actual.get(key) {
            Some(held) => assert!(held == value, "{name}: {} has the wrong value", short(key)),
            None => panic!("{name}: missing {}", short(key)),
        }
    }
    for key in actual.keys() {
        assert!(expected.contains_key(key), "{name}: extra {}", short(key));
    }
}

fn cases() -> u32 {
    std::env::var("SYNCPROTO_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(32)
}

#[test]
fn the_key_pool_parses_for_every_client() {
    for key in key_pool() {
        assert!(Key::parse(&key).is_ok(), "{key}");
        assert!(!syncproto::rewrite::is_modern_policy_key(&key));
    }
}

#[test]
fn every_client_of_either_server_ends_with_the_scripts_datastore() {
    if go_peers().is_none() {
        return;
    }
    let config = ProptestConfig {
        cases: cases(),
        // Each case runs real processes; shrinking re-runs it.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let number = std::sync::atomic::AtomicU64::new(0);
    proptest::test_runner::TestRunner::new(config)
        .run(&case(), |case| {
            let number = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let started = std::time::Instant::now();
            run(&case, number);
            eprintln!(
                "case {number}: {} steps in {:.2?}",
                case.steps.len(),
                started.elapsed()
            );
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
