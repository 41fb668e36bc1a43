//! The connection loops over in-memory transports that misbehave on
//! purpose, to pin down what real sockets and TLS do only now and then.

use std::collections::BTreeMap;
use std::time::Duration;

use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus};
use tokio::io::{BufWriter, DuplexStream};
use tokio::time::timeout;

use crate::io::BoxedTransport;
use crate::{Client, ClientOptions, Server, ServerHandle, ServerOptions};

/// A bound on a hung test, not a measure of speed.
const HUNG: Duration = Duration::from_secs(60);

/// A server (not accepting: connections are handed to it directly) whose
/// datastore holds `keys` keys, in sync.
async fn server(options: ServerOptions, keys: usize) -> ServerHandle {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = std::time::Instant::now();
    cache.apply(
        now,
        (0..keys).map(|index| {
            SerializedUpdate::upsert(
                format!("/calico/v1/config/Key{index:05}"),
                format!("value {index}"),
                format!("{index}"),
            )
        }),
    );
    cache.set_status(now, SyncStatus::InSync);
    let server = Server::bind("127.0.0.1:0", cache, options).await.unwrap();
    server.handle()
}

fn client_config() -> ClientConfig {
    ClientConfig {
        // Compression adds the handshake where each side waits for the
        // other: the client's acknowledgements, the server's restarts.
        compression: vec![CompressionAlgorithm::Snappy],
        key_parser: None,
        ..ClientConfig::default()
    }
}

/// Holds what is written until flushed (or until its 8 KiB buffer is
/// full), as TLS holds encrypted output when the socket is full.
fn holding(stream: DuplexStream) -> BoxedTransport {
    Box::new(BufWriter::new(stream))
}

/// Reads until in sync; the client's view then.
async fn sync(client: &mut Client) -> BTreeMap<syncproto::message::ByteString, bytes::Bytes> {
    let mut view = BTreeMap::new();
    timeout(HUNG, async {
        loop {
            match client.next_event().await.unwrap() {
                Some(ClientEvent::Updates(updates)) => {
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
    view
}

/// Each side goes quiet while it waits for the other (the server for an
/// acknowledgement, the client for the next message), so each must flush
/// what it wrote or both wait forever.
#[tokio::test]
async fn both_sides_flush_what_the_transport_holds() {
    let handle = server(ServerOptions::default(), 50).await;
    let (near, far) = tokio::io::duplex(1 << 20);
    let serving = handle.clone();
    tokio::spawn(async move { serving.serve_transport(holding(near)).await });
    let mut client =
        Client::over(holding(far), client_config(), &ClientOptions::default()).unwrap();
    let view = sync(&mut client).await;
    assert_eq!(view.len(), 50);
}
