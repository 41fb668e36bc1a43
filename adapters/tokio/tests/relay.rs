//! The relay between Rust servers and clients: a chain of three delivers
//! the upstream's state and the same checksum; an upstream restart is
//! hidden from downstream clients (they stay connected and get only what
//! changed); one upstream per syncer type asked for.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use syncproto::checksum::StateChecksum;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
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
}

impl Downstream {
    async fn connect(address: &str, format: WireFormat, syncer: SyncerType) -> Downstream {
        let config = ClientConfig {
            wire_format: format,
            syncer_type: syncer,
            key_parser: None,
            ..ClientConfig::default()
        };
        Downstream {
            client: Client::connect(address, config, ClientOptions::default())
                .await
                .unwrap(),
            view: BTreeMap::new(),
            statuses: Vec::new(),
            updates: 0,
            checksums: Vec::new(),
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
                    }
                    Some(ClientEvent::Status(status)) => self.statuses.push(status),
                    Some(ClientEvent::Checksum(report)) => {
                        self.checksums.push((report.verified, report.server));
                    }
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
