//! The tokio drivers end to end over loopback: snapshot, live updates,
//! pings, shedding, graceful shutdown, and reconnects with resync
//! deletions.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;
use syncproto::message::ByteString;

use bytes::Bytes;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus, SyncerType};
use syncproto::server::CloseReasons;
use syncproto::server::ServerConfig;
use syncproto::{CloseReason, synthetic};
use syncproto_tokio::{Client, ClientOptions, Server, ServerHandle, ServerOptions};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

fn expected(cache: &SnapshotCache) -> BTreeMap<ByteString, Bytes> {
    cache
        .snapshot_updates()
        .into_iter()
        .filter_map(|u| Some((u.key, u.value?)))
        .collect()
}

async fn start(
    options: ServerOptions,
    endpoints: usize,
) -> (String, ServerHandle, tokio::task::JoinHandle<()>) {
    let cache = SnapshotCache::new(CacheConfig::default());
    let start = std::time::Instant::now();
    cache.apply(start, synthetic::snapshot(endpoints, 1));
    cache.set_status(start, SyncStatus::InSync);
    let server = Server::bind("127.0.0.1:0", cache, options).await.unwrap();
    let address = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    let task = tokio::spawn(async move { server.run().await.unwrap() });
    (address, handle, task)
}

fn client_config(format: WireFormat, compressed: bool) -> ClientConfig {
    ClientConfig {
        hostname: "test".into(),
        wire_format: format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        key_parser: None,
        ..ClientConfig::default()
    }
}

/// Reads events until `done` says the view is complete.
async fn run_until(
    client: &mut Client,
    view: &mut BTreeMap<ByteString, Bytes>,
    mut done: impl FnMut(&BTreeMap<ByteString, Bytes>, Option<SyncStatus>) -> bool,
) -> Option<SyncStatus> {
    let mut status = None;
    timeout(LIMIT, async {
        loop {
            if done(view, status) {
                return;
            }
            match client.next_event().await.unwrap() {
                Some(ClientEvent::Updates(updates)) => {
                    for update in updates {
                        update.apply_to(view);
                    }
                }
                Some(ClientEvent::Status(new)) => status = Some(new),
                Some(ClientEvent::Closed(reason)) => panic!("closed: {reason}"),
                Some(_) => {}
                None => panic!("client finished"),
            }
        }
    })
    .await
    .expect("client did not get there in time");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_every_format_sync_and_follow_live_updates() {
    let options = ServerOptions {
        config: ServerConfig {
            ping_interval: Duration::from_millis(50),
            ping_jitter: Duration::from_millis(5),
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let (address, handle, task) = start(options, 2000).await;
    let mut clients = Vec::new();
    for (format, compressed) in [
        (WireFormat::Native, false),
        (WireFormat::Native, true),
        (WireFormat::Gob, false),
        (WireFormat::Gob, true),
    ] {
        let client = Client::connect(
            &address,
            client_config(format, compressed),
            ClientOptions::default(),
        )
        .await
        .unwrap();
        clients.push((client, BTreeMap::new()));
    }
    let snapshot = expected(handle.cache().unwrap());
    for (client, view) in &mut clients {
        let status = run_until(client, view, |view, status| {
            status == Some(SyncStatus::InSync) && *view == snapshot
        })
        .await;
        assert_eq!(status, Some(SyncStatus::InSync));
        assert!(client.bytes_read() > 0);
    }
    // Live changes, including deletions and a status flip.
    for record in synthetic::changes(2000, 100, 2) {
        match record {
            syncproto::records::Record::Update(update) => {
                handle.apply([update]);
            }
            syncproto::records::Record::Status(status) => handle.set_status(status),
        }
    }
    let after = expected(handle.cache().unwrap());
    for (client, view) in &mut clients {
        run_until(client, view, |view, _| *view == after).await;
    }
    // Let pings go by, reading meanwhile, until the server has counted two
    // pongs per connection: the connections stay up and every one answers.
    timeout(LIMIT, async {
        while handle.stats().pongs < 8 {
            for (client, view) in &mut clients {
                // `next_event` is cancel-safe: a read either happened or not.
                if let Ok(event) = timeout(Duration::from_millis(10), client.next_event()).await {
                    match event.unwrap() {
                        Some(ClientEvent::Updates(updates)) => {
                            updates.iter().for_each(|update| update.apply_to(view));
                        }
                        Some(ClientEvent::Closed(reason)) => panic!("closed: {reason}"),
                        _ => {}
                    }
                }
            }
        }
    })
    .await
    .expect("pongs did not arrive");
    for (client, view) in &mut clients {
        handle.apply([SerializedUpdate::upsert("/calico/v1/config/Last", "1", "1")]);
        run_until(client, view, |view, _| {
            view.contains_key("/calico/v1/config/Last")
        })
        .await;
    }
    let stats = handle.stats();
    assert_eq!(stats.handshakes, 4);
    assert_eq!(handle.connection_count(), 4);

    // Graceful shutdown: the server returns, clients see a clean close.
    handle.shutdown();
    timeout(LIMIT, task).await.unwrap().unwrap();
    for (client, _) in &mut clients {
        let last = timeout(LIMIT, async {
            loop {
                if let Some(ClientEvent::Closed(reason)) = client.next_event().await.unwrap() {
                    return reason;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(last, CloseReason::PeerClosed);
    }
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = Client::connect(&address, ClientConfig::default(), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&address), "{error}");
    assert!(matches!(
        error,
        syncproto_tokio::ConnectError::Connect { .. }
    ));
}

/// Close reasons quote what clients send (here an unknown syncer's name);
/// however many and however long, the server's count of them stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reasons_from_clients_are_counted_in_bounded_space() {
    let (address, handle, _task) = start(ServerOptions::default(), 10).await;
    let clients = 80;
    for index in 0..clients {
        let config = ClientConfig {
            syncer_type: SyncerType::Other(format!("{index}-{}", "x".repeat(10_000))),
            ..client_config(WireFormat::Native, false)
        };
        let mut client = Client::connect(&address, config, ClientOptions::default())
            .await
            .unwrap();
        timeout(LIMIT, async {
            while let Ok(Some(event)) = client.next_event().await {
                assert!(!matches!(event, ClientEvent::Updates(_)), "served");
            }
        })
        .await
        .expect("the server kept a refused client");
    }
    // Counted once each connection's task is over.
    let reasons = timeout(LIMIT, async {
        loop {
            let stats = handle.stats();
            if stats.closed == clients {
                return stats.close_reasons;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("not every connection was counted");
    assert_eq!(reasons.len(), 64);
    assert!(
        reasons
            .iter()
            .all(|(reason, _)| reason.chars().count() <= 201)
    );
    assert_eq!(reasons.get(CloseReasons::OTHER), clients - 63);
}
