//! TLS as upstream deployments use it, with certificates generated here:
//! the server requires a client certificate from its CA (and optionally a
//! CN or URI SAN), the client checks the server the same way.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

mod support;

use rustls_pki_types::ServerName;
use support::Ca;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto_tokio::tls::{self, Identity, PeerRequirement};
use syncproto_tokio::{Client, ClientOptions, ConnectError, Server, ServerHandle, ServerOptions};
use tokio::time::timeout;

fn cn(name: &str) -> PeerRequirement {
    PeerRequirement {
        common_name: Some(name.to_owned()),
        uri_san: None,
    }
}

async fn tls_server(ca: &Ca, server_cn: &str, require: PeerRequirement) -> (String, ServerHandle) {
    let updates = [SerializedUpdate::upsert("/calico/v1/config/A", "1", "1")];
    tls_server_with(ca, server_cn, require, updates).await
}

/// A TLS server whose datastore holds `updates`, in sync.
async fn tls_server_with(
    ca: &Ca,
    server_cn: &str,
    require: PeerRequirement,
    updates: impl IntoIterator<Item = SerializedUpdate>,
) -> (String, ServerHandle) {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = std::time::Instant::now();
    cache.apply(now, updates);
    cache.set_status(now, SyncStatus::InSync);
    let config = tls::server_config(ca.leaf(server_cn, None), &[ca.der()]).unwrap();
    let options = ServerOptions {
        tls: Some((config, require)),
        ..ServerOptions::default()
    };
    let server = Server::bind("127.0.0.1:0", cache, options).await.unwrap();
    let address = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    tokio::spawn(server.run());
    (address, handle)
}

fn client_options(identity: Option<Identity>, ca: &Ca, require: PeerRequirement) -> ClientOptions {
    let config = tls::client_config(identity, &[ca.der()], require).unwrap();
    ClientOptions {
        tls: Some((config, ServerName::try_from("localhost").unwrap())),
        ..ClientOptions::default()
    }
}

/// Connects and reads until in sync (`Ok`) or until the connection ends
/// (`Err` with what ended it).
async fn sync(address: &str, options: ClientOptions) -> Result<(), String> {
    let config = ClientConfig {
        key_parser: None,
        ..ClientConfig::default()
    };
    let mut client = Client::connect(address, config, options)
        .await
        .map_err(|e| e.to_string())?;
    timeout(Duration::from_secs(10), async {
        loop {
            match client.next_event().await {
                Ok(Some(ClientEvent::Status(SyncStatus::InSync))) => return Ok(()),
                Ok(Some(ClientEvent::Closed(reason))) => return Err(reason.to_string()),
                Ok(Some(_)) => {}
                Ok(None) => return Err("finished".to_owned()),
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "timed out".to_owned())?
}

#[tokio::test]
async fn mutual_tls_with_matching_common_names_syncs() {
    let ca = Ca::new("cluster CA");
    let (address, handle) = tls_server(&ca, "typha", cn("felix")).await;
    let options = client_options(Some(ca.leaf("felix", None)), &ca, cn("typha"));
    sync(&address, options).await.unwrap();
    assert_eq!(handle.stats().tls_rejected, 0);
}

#[tokio::test]
async fn a_uri_san_satisfies_the_requirement_too() {
    let ca = Ca::new("cluster CA");
    let require = PeerRequirement {
        common_name: Some("felix".to_owned()),
        uri_san: Some("spiffe://cluster/ns/calico/sa/felix".to_owned()),
    };
    let (address, _handle) = tls_server(&ca, "typha", require).await;
    let identity = ca.leaf("node-7", Some("spiffe://cluster/ns/calico/sa/felix"));
    sync(&address, client_options(Some(identity), &ca, cn("typha")))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_requirement_the_client_checks_the_host_name() {
    let ca = Ca::new("cluster CA");
    let (address, _handle) = tls_server(&ca, "typha", PeerRequirement::default()).await;
    // The server certificate names localhost, which the client dials.
    sync(
        &address,
        client_options(
            Some(ca.leaf("felix", None)),
            &ca,
            PeerRequirement::default(),
        ),
    )
    .await
    .unwrap();
}

/// `count` keys with `size`-byte values that snappy cannot shrink much
/// (hex of a pseudo-random sequence), so that the compressed snapshot is
/// far larger than rustls's 64 KiB send buffer.
fn incompressible(count: usize, size: usize) -> Vec<SerializedUpdate> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|index| {
            let mut value: String = (0..size.div_ceil(16))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{state:016x}")
                })
                .collect();
            value.truncate(size);
            SerializedUpdate::upsert(
                format!("/calico/v1/config/Key{index:05}"),
                value,
                format!("{index}"),
            )
        })
        .collect()
}

/// After the compressed snapshot the server writes nothing until the
/// client acknowledges its end. If the end sat in the TLS layer's buffer
/// (written into it while the socket was full, never flushed), the client
/// would never see it and both sides would wait for the other. Whether the
/// socket is full at that moment is up to the kernel, so this catches a
/// missing flush only now and then; the driver's unit tests pin it down
/// with a transport that always holds output until flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_compressed_snapshot_arrives_whole_over_tls() {
    let ca = Ca::new("cluster CA");
    let (address, handle) =
        tls_server_with(&ca, "typha", cn("felix"), incompressible(10000, 400)).await;
    let config = ClientConfig {
        compression: vec![CompressionAlgorithm::Snappy],
        key_parser: None,
        ..ClientConfig::default()
    };
    let options = client_options(Some(ca.leaf("felix", None)), &ca, cn("typha"));
    let mut client = Client::connect(&address, config, options).await.unwrap();
    let mut view = BTreeMap::new();
    let mut paused = false;
    // A bound on a hung test, not a measure of speed.
    timeout(Duration::from_secs(120), async {
        loop {
            match client.next_event().await.unwrap() {
                Some(ClientEvent::Updates(updates)) => {
                    if !paused {
                        // Stop reading until the server is a mebibyte
                        // ahead of what was read: the socket buffers fill
                        // and its writes (and TLS's) start to block, as
                        // with a slow client.
                        paused = true;
                        while handle.stats().bytes_written < client.bytes_read() + (1 << 20) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    for update in updates {
                        update.apply_to(&mut view);
                    }
                }
                Some(ClientEvent::Status(SyncStatus::InSync)) => return,
                Some(ClientEvent::Closed(reason)) => panic!("closed: {reason}"),
                Some(_) => {}
                None => panic!("client finished"),
            }
        }
    })
    .await
    .expect("the client never reached in-sync");
    let expected: BTreeMap<_, _> = handle
        .cache()
        .unwrap()
        .snapshot_updates()
        .into_iter()
        .filter_map(|update| Some((update.key, update.value?)))
        .collect();
    assert_eq!(view.len(), 10000);
    assert!(
        view == expected,
        "the client's view differs from the server's"
    );
}

/// Waits for the server to count a rejected TLS client.
async fn assert_rejected(handle: &ServerHandle, outcome: Result<(), String>) {
    assert!(outcome.is_err(), "client synced");
    timeout(Duration::from_secs(5), async {
        while handle.stats().tls_rejected == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("server did not reject");
}

#[tokio::test]
async fn the_server_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("cluster CA");
    let (address, handle) = tls_server(&ca, "typha", cn("felix")).await;
    let outcome = sync(&address, client_options(None, &ca, cn("typha"))).await;
    assert_rejected(&handle, outcome).await;
}

#[tokio::test]
async fn the_server_refuses_a_client_certificate_from_another_ca() {
    let ca = Ca::new("cluster CA");
    let rogue = Ca::new("rogue CA");
    let (address, handle) = tls_server(&ca, "typha", cn("felix")).await;
    let outcome = sync(
        &address,
        client_options(Some(rogue.leaf("felix", None)), &ca, cn("typha")),
    )
    .await;
    assert_rejected(&handle, outcome).await;
}

#[tokio::test]
async fn the_server_refuses_a_client_with_the_wrong_common_name() {
    let ca = Ca::new("cluster CA");
    let (address, handle) = tls_server(&ca, "typha", cn("felix")).await;
    let outcome = sync(
        &address,
        client_options(Some(ca.leaf("intruder", None)), &ca, cn("typha")),
    )
    .await;
    assert_rejected(&handle, outcome).await;
    let reasons = handle.stats().close_reasons;
    assert!(
        reasons
            .iter()
            .any(|(reason, _)| reason.contains("identity refused") && reason.contains("intruder")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn the_client_refuses_a_server_with_the_wrong_common_name() {
    let ca = Ca::new("cluster CA");
    let (address, _handle) = tls_server(&ca, "impostor", cn("felix")).await;
    let config = ClientConfig::default();
    let error = Client::connect(
        &address,
        config,
        client_options(Some(ca.leaf("felix", None)), &ca, cn("typha")),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ConnectError::Tls { .. }), "{error}");
    assert!(error.to_string().contains("impostor"), "{error}");
}

#[tokio::test]
async fn the_client_refuses_a_server_from_an_unknown_ca() {
    let ca = Ca::new("cluster CA");
    let other = Ca::new("other CA");
    let (address, _handle) = tls_server(&ca, "typha", cn("felix")).await;
    let options = client_options(Some(other.leaf("felix", None)), &other, cn("typha"));
    let error = Client::connect(&address, ClientConfig::default(), options)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Tls { .. }), "{error}");
}

#[test]
fn unreadable_files_are_reported_with_their_path() {
    let missing = std::path::Path::new("/nonexistent/cert.pem");
    let error = tls::load_certificates(missing).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/cert.pem"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let error = tls::load_certificates(&empty).unwrap_err();
    assert!(error.to_string().contains("no PEM certificates"), "{error}");
}
