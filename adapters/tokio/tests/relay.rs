//! The relay between Rust servers and clients: a chain of three delivers
//! the upstream's state and the same checksum; an upstream restart is
//! hidden from downstream clients (they stay connected and get only what
//! changed); one upstream per syncer type asked for; keys the relay does
//! not know, and legacy ones, pass through as received.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use syncproto::checksum::StateChecksum;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::key::Key;
use syncproto::message::{ByteString, SerializedUpdate, SyncStatus, SyncerType};
use syncproto::session::Backoff;
use syncproto_tokio::relay::{Relay, RelayHandle, RelayOptions};
use syncproto_tokio::{Client, ClientOptions, Server, ServerHandle, ServerOptions};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const HUNG: Duration = Duration::from_secs(60);

fn key(index: usize) -> String {
    format!("/calico/v1/host/node-{:03}/config/Key{index}", index % 40)
}

fn datastore(keys: std::ops::Range<usize>, version: &str) -> Vec<SerializedUpdate> {
    keys.map(|index| {
        SerializedUpdate::upsert(key(index), format!("{{\"v\":\"{version}-{index}\"}}"), "1")
    })
    .collect()
}

/// A Rust server on `address` holding `updates`, in sync; its address,
/// handle and task.
async fn upstream(
    address: &str,
    updates: Vec<SerializedUpdate>,
) -> (String, ServerHandle, JoinHandle<std::io::Result<()>>) {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = std::time::Instant::now();
    cache.apply(now, updates);
    cache.set_status(now, SyncStatus::InSync);
    let server = Server::bind(address, cache, ServerOptions::default())
        .await
        .unwrap();
    let address = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    let running = tokio::spawn(server.run());
    (address, handle, running)
}

/// A relay of `upstream` on a free port, reconnecting quickly.
async fn relay(upstream: &str, upstream_format: WireFormat) -> (String, RelayHandle) {
    let mut options = RelayOptions::new(upstream);
    options.upstream_client.wire_format = upstream_format;
    options.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    let relay = Relay::bind("127.0.0.1:0", options).await.unwrap();
    let address = relay.local_addr().unwrap().to_string();
    let handle = relay.handle();
    tokio::spawn(relay.run());
    (address, handle)
}

/// A downstream client and what it has received.
struct Downstream {
    client: Client,
    view: BTreeMap<ByteString, Bytes>,
    statuses: Vec<SyncStatus>,
    updates: usize,
    checksums: Vec<(bool, StateChecksum)>,
    /// The last update received for each key, as received.
    received: BTreeMap<ByteString, SerializedUpdate>,
    /// The keys its parser dropped.
    dropped: Vec<ByteString>,
}

impl Downstream {
    /// A client that parses no keys: it keeps every key it receives.
    async fn connect(address: &str, format: WireFormat, syncer: SyncerType) -> Downstream {
        let config = ClientConfig {
            wire_format: format,
            syncer_type: syncer,
            key_parser: None,
            ..ClientConfig::default()
        };
        Downstream::connect_with(address, config).await
    }

    async fn connect_with(address: &str, config: ClientConfig) -> Downstream {
        Downstream {
            client: Client::connect(address, config, ClientOptions::default())
                .await
                .unwrap(),
            view: BTreeMap::new(),
            statuses: Vec::new(),
            updates: 0,
            checksums: Vec::new(),
            received: BTreeMap::new(),
            dropped: Vec::new(),
        }
    }

    /// Reads until `done` holds; the connection must stay up.
    async fn read_until(&mut self, done: impl Fn(&Downstream) -> bool) {
        timeout(HUNG, async {
            while !done(self) {
                match self.client.next_event().await.unwrap() {
                    Some(ClientEvent::Updates(updates)) => {
                        self.updates += updates.len();
                        updates.iter().for_each(|u| u.apply_to(&mut self.view));
                        for update in updates {
                            self.received.insert(update.key.clone(), update);
                        }
                    }
                    Some(ClientEvent::Status(status)) => self.statuses.push(status),
                    Some(ClientEvent::Checksum(report)) => {
                        self.checksums.push((report.verified, report.server));
                    }
                    Some(ClientEvent::Dropped { key, .. }) => self.dropped.push(key),
                    Some(ClientEvent::Closed(reason)) => panic!("downstream closed: {reason}"),
                    Some(_) => {}
                    None => panic!("downstream finished"),
                }
            }
        })
        .await
        .expect("the downstream client never got there");
    }
}

fn state_of(handle: &ServerHandle) -> BTreeMap<ByteString, Bytes> {
    handle
        .cache()
        .unwrap()
        .snapshot_updates()
        .into_iter()
        .filter_map(|update| Some((update.key, update.value?)))
        .collect()
}

fn in_sync(downstream: &Downstream) -> bool {
    downstream.statuses.last() == Some(&SyncStatus::InSync)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_relays_delivers_the_upstream_state_and_checksum() {
    let (origin, source, _) = upstream("127.0.0.1:0", datastore(0..300, "a")).await;
    let (first, _first) = relay(&origin, WireFormat::Gob).await;
    let (second, _second) = relay(&first, WireFormat::Native).await;
    let (third, last) = relay(&second, WireFormat::Gob).await;
    let mut client = Downstream::connect(&third, WireFormat::Native, SyncerType::Felix).await;
    client
        .read_until(|client| in_sync(client) && client.view.len() == 300)
        .await;
    // A change at the origin travels down the chain.
    let sentinel = ByteString::from(key(1000));
    source.apply([
        SerializedUpdate::deletion(key(3), "2"),
        SerializedUpdate::upsert(key(4), "changed", "2"),
        SerializedUpdate::upsert(sentinel.clone(), "done", "2"),
    ]);
    client
        .read_until(|client| client.view.contains_key(&sentinel))
        .await;
    assert_eq!(client.view, state_of(&source));
    // The last relay's checksum is the origin's: the values are the bytes
    // received, all the way down.
    let origin_checksum = source.cache().unwrap().checksum();
    let (syncer, cache) = last.server().caches().into_iter().next().unwrap();
    assert_eq!(syncer, Some(SyncerType::Felix));
    assert_eq!(cache.checksum(), origin_checksum);
    // Every checksum the client got from the last relay verified.
    assert!(!client.checksums.is_empty());
    assert!(client.checksums.iter().all(|(verified, _)| *verified));
    let (_, status) = last.upstreams().into_iter().next().unwrap();
    assert_eq!(status.status, Some(SyncStatus::InSync));
    assert!(status.checksums_verified >= 1, "{status:?}");
    assert_eq!(status.checksum_mismatches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_restart_is_hidden_from_downstream_clients() {
    let (origin, source, running) = upstream("127.0.0.1:0", datastore(0..200, "a")).await;
    let (address, relay) = relay(&origin, WireFormat::Gob).await;
    let mut gob = Downstream::connect(&address, WireFormat::Gob, SyncerType::Felix).await;
    let mut native = Downstream::connect(&address, WireFormat::Native, SyncerType::Felix).await;
    for client in [&mut gob, &mut native] {
        client
            .read_until(|client| in_sync(client) && client.view.len() == 200)
            .await;
    }
    assert!(relay.is_ready());
    // The upstream goes away; the downstream clients stay, told the data
    // is resyncing.
    source.shutdown();
    for client in [&mut gob, &mut native] {
        client
            .read_until(|client| client.statuses.last() == Some(&SyncStatus::ResyncInProgress))
            .await;
    }
    assert!(!relay.is_ready());
    // Gone for good, so that its address is free again.
    timeout(HUNG, running).await.unwrap().unwrap().unwrap();
    // It comes back on the same port with 10 keys gone, 20 changed and 5
    // new.
    let mut changed = datastore(10..200, "a");
    for update in changed.iter_mut().take(20) {
        update.value = Some(Bytes::from(format!("{{\"v\":\"b-{}\"}}", update.key)));
    }
    changed.extend(datastore(500..505, "a"));
    let (_, restarted, _) = upstream(&origin, changed).await;
    let before: Vec<usize> = [&gob, &native]
        .iter()
        .map(|client| client.updates)
        .collect();
    for client in [&mut gob, &mut native] {
        client.read_until(in_sync).await;
        assert_eq!(client.view, state_of(&restarted));
    }
    // Only what changed came down: 10 deletions, 20 changes, 5 new keys.
    let after: Vec<usize> = [&gob, &native]
        .iter()
        .map(|client| client.updates)
        .collect();
    assert_eq!(after[0] - before[0], 35);
    assert_eq!(after[1] - before[1], 35);
    assert!(relay.is_ready());
    let (_, status) = relay.upstreams().into_iter().next().unwrap();
    assert!(status.reconnects >= 1, "{status:?}");
    assert!(status.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_syncer_type_asked_for_gets_its_own_upstream() {
    let (origin, source, _) = upstream("127.0.0.1:0", datastore(0..10, "a")).await;
    let (address, relay) = relay(&origin, WireFormat::Native).await;
    assert!(
        relay.upstreams().is_empty(),
        "nothing opened before a client asks"
    );
    let mut felix = Downstream::connect(&address, WireFormat::Native, SyncerType::Felix).await;
    let mut bgp = Downstream::connect(&address, WireFormat::Gob, SyncerType::Bgp).await;
    let mut felix_again = Downstream::connect(&address, WireFormat::Gob, SyncerType::Felix).await;
    for client in [&mut felix, &mut bgp, &mut felix_again] {
        client
            .read_until(|client| in_sync(client) && client.view.len() == 10)
            .await;
    }
    let syncers: Vec<SyncerType> = relay
        .upstreams()
        .into_iter()
        .map(|(syncer, _)| syncer)
        .collect();
    assert_eq!(syncers, [SyncerType::Felix, SyncerType::Bgp]);
    // Two upstream connections, one per syncer type.
    assert_eq!(source.stats().handshakes, 2);
}

/// The relay forwards keys and values as received (README: "forwards keys
/// and values exactly as received"): keys no parser of this version knows
/// reach the downstream clients unchanged, and so does a legacy policy key
/// (not upgraded), even when the relay's upstream client template asks for
/// the default parser and the upgrade. Each downstream client judges the
/// keys itself: one with the default parser drops the unknown ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_relay_does_not_know_pass_through_unchanged() {
    let unknown = [
        // A value neither JSON nor UTF-8, with a numeric revision.
        SerializedUpdate::upsert(
            "/calico/v1/unknown-kind/mystery",
            vec![0xff, 0x00, 0x80],
            "7",
        ),
        SerializedUpdate::upsert("/not-calico/at/all", "{\"x\":1}", "8"),
    ];
    for update in &unknown {
        assert!(
            Key::parse(&update.key).is_err(),
            "{}: the default parser must reject it for this test to mean anything",
            update.key
        );
    }
    let legacy = SerializedUpdate::upsert(
        "/calico/v1/policy/tier/default/policy/allow-all",
        "{\"order\":1}",
        "9",
    );
    assert!(
        Key::parse(&legacy.key)
            .unwrap()
            .legacy_policy_as_modern()
            .is_some(),
        "a legacy key the upgrade would rewrite"
    );
    let mut updates = datastore(0..5, "a");
    updates.extend(unknown.iter().cloned());
    updates.push(legacy.clone());
    let (origin, source, _) = upstream("127.0.0.1:0", updates.clone()).await;

    let mut options = RelayOptions::new(&origin);
    options.upstream_client.key_parser = ClientConfig::default().key_parser;
    options.upstream_client.upgrade_legacy_policy_keys = true;
    let relay = Relay::bind("127.0.0.1:0", options).await.unwrap();
    let address = relay.local_addr().unwrap().to_string();
    tokio::spawn(relay.run());

    let received = |client: &Downstream, want: &SerializedUpdate| {
        client.received.get(&want.key).map(|got| {
            (
                got.key.clone(),
                got.value.clone(),
                got.revision.clone(),
                got.ttl_nanos,
            )
        }) == Some((
            want.key.clone(),
            want.value.clone(),
            want.revision.clone(),
            want.ttl_nanos,
        ))
    };
    let mut clients = Vec::new();
    for format in [WireFormat::Gob, WireFormat::Native] {
        let mut client = Downstream::connect(&address, format, SyncerType::Felix).await;
        // In sync with the keys every parser knows: a relay that dropped
        // or upgraded the others fails below rather than waits for them.
        client
            .read_until(|client| {
                in_sync(client)
                    && updates[..5]
                        .iter()
                        .all(|update| client.view.contains_key(&update.key))
            })
            .await;
        for update in unknown.iter().chain([&legacy]) {
            assert!(
                received(&client, update),
                "{format:?}: {} arrived as {:?}",
                update.key,
                client.received.get(&update.key)
            );
        }
        assert!(client.dropped.is_empty(), "{:?}", client.dropped);
        clients.push(client);
    }

    // Live changes to unknown keys pass through too.
    let changed = SerializedUpdate::upsert(unknown[0].key.clone(), vec![0xfe], "10");
    let deleted = SerializedUpdate::deletion(unknown[1].key.clone(), "11");
    source.apply([changed.clone(), deleted.clone()]);
    for client in &mut clients {
        client
            .read_until(|client| received(client, &changed) && received(client, &deleted))
            .await;
        assert_eq!(client.view, state_of(&source));
    }

    // A downstream client with the default parser judges for itself: the
    // relay sent it the unknown key, and it dropped it; it keeps the legacy
    // key as received (it does not upgrade either).
    let config = ClientConfig {
        wire_format: WireFormat::Native,
        ..ClientConfig::default()
    };
    let mut parsing = Downstream::connect_with(&address, config).await;
    parsing.read_until(in_sync).await;
    // (It may also get the deleted key: a new client is sent the cache's
    // last snapshot and the changes since.)
    assert!(
        parsing.dropped.contains(&changed.key),
        "{:?}",
        parsing.dropped
    );
    assert!(
        parsing
            .dropped
            .iter()
            .all(|key| unknown.iter().any(|update| update.key == *key)),
        "{:?}",
        parsing.dropped
    );
    assert!(!parsing.view.contains_key(&changed.key));
    assert!(received(&parsing, &legacy), "{:?}", parsing.received);
}
