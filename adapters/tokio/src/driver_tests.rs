//! The connection loops over in-memory transports that misbehave on
//! purpose, to pin down what real sockets and TLS do only now and then.
//!
//! Every test runs on tokio's paused clock: the drivers sleep on it, so
//! timeouts and lingers pass as soon as nothing else can happen, and a
//! test waits for the event it needs rather than for a while.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use syncproto::CloseReason;
use syncproto::client::{ClientConfig, ClientEvent, ClientEventRef};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::server::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, DuplexStream, ReadBuf};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::io::BoxedTransport;
use crate::{Client, ClientOptions, Server, ServerHandle, ServerOptions};

/// A bound on a hung test, not a measure of speed.
const HUNG: Duration = Duration::from_secs(60);

/// Options for a server that pings every few milliseconds and never gives
/// up on a pong, so that a client always has something to read.
fn chatty() -> ServerOptions {
    ServerOptions {
        config: ServerConfig {
            ping_interval: Duration::from_millis(20),
            ping_jitter: Duration::from_millis(2),
            pong_timeout: Duration::from_secs(3600),
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    }
}

/// A server (not accepting: connections are handed to it directly) whose
/// datastore holds `keys` keys, in sync.
async fn server(options: ServerOptions, keys: usize) -> ServerHandle {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = crate::now().instant;
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

/// What a [`Faulty`] transport's writes do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    /// Writes go through.
    #[default]
    Works,
    /// Writes, flushes and shutdowns never complete, as on a socket (or
    /// TLS over one) whose peer stopped reading; reads go on.
    Jammed,
    /// Writes, flushes and shutdowns fail, as after the peer reset the
    /// connection; reads go on.
    Broken,
}

/// The switch on a [`Faulty`] transport's writing side.
#[derive(Debug, Default)]
struct Fault {
    mode: Mutex<Mode>,
    /// Writes and flushes tried while broken.
    failed: AtomicUsize,
    /// Writes tried while jammed (each stays pending).
    jammed: AtomicUsize,
}

impl Fault {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    fn jammed_writes(&self) -> usize {
        self.jammed.load(Ordering::SeqCst)
    }
}

/// How many failed writes a [`Mode::Broken`] transport returns before it
/// hangs instead.
const RETRIES_BEFORE_HANGING: usize = 100;

/// A transport whose writing side fails on demand.
struct Faulty {
    inner: DuplexStream,
    fault: Arc<Fault>,
}

impl Faulty {
    fn wrap(inner: DuplexStream) -> (BoxedTransport, Arc<Fault>) {
        let fault = Arc::new(Fault::default());
        let transport = Faulty {
            inner,
            fault: Arc::clone(&fault),
        };
        (Box::new(transport), fault)
    }

    /// Counts a write or flush that is about to fail. (A shutdown is not
    /// counted: a client tries one as it finishes, whatever happened.)
    fn count_failure(&self) {
        if *self.fault.mode.lock().unwrap() == Mode::Broken {
            self.fault.failed.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// What a write-side call does now: `None` to go through.
    fn fault<T>(&self) -> Option<Poll<std::io::Result<T>>> {
        match *self.fault.mode.lock().unwrap() {
            Mode::Works => None,
            // Never woken: nothing will ever change, as far as the caller
            // can tell, so only its own timers get it going again.
            Mode::Jammed => Some(Poll::Pending),
            // Past a few failures, hang instead: a caller that retries
            // without end would otherwise spin the test's only thread
            // forever, where this way the count it left says what it did.
            Mode::Broken if self.fault.failed() > RETRIES_BEFORE_HANGING => Some(Poll::Pending),
            Mode::Broken => Some(Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))),
        }
    }
}

impl AsyncRead for Faulty {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Faulty {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.count_failure();
        if *self.fault.mode.lock().unwrap() == Mode::Jammed {
            self.fault.jammed.fetch_add(1, Ordering::SeqCst);
        }
        match self.fault() {
            Some(outcome) => outcome,
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.count_failure();
        match self.fault() {
            Some(outcome) => outcome,
            None => Pin::new(&mut self.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.fault() {
            Some(outcome) => outcome,
            None => Pin::new(&mut self.inner).poll_shutdown(cx),
        }
    }
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

/// A server of 50 keys serving one connection whose server-side transport
/// fails on demand, and an in-sync client on it; the server's task returns
/// why the connection ended.
async fn synced_over_faulty_server(
    options: ServerOptions,
) -> (ServerHandle, JoinHandle<String>, Client, Arc<Fault>) {
    let handle = server(options, 50).await;
    let (near, far) = tokio::io::duplex(1 << 20);
    let (transport, fault) = Faulty::wrap(near);
    let serving = handle.clone();
    let served = tokio::spawn(async move { serving.serve_transport(transport).await });
    let mut client =
        Client::over(Box::new(far), client_config(), &ClientOptions::default()).unwrap();
    sync(&mut client).await;
    (handle, served, client, fault)
}

/// Each side goes quiet while it waits for the other (the server for an
/// acknowledgement, the client for the next message), so each must flush
/// what it wrote or both wait forever.
#[tokio::test(start_paused = true)]
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

/// On TLS, shutting down writes; to a client that stopped reading that
/// never completes, and must not hold the server's graceful shutdown.
#[tokio::test(start_paused = true)]
async fn a_server_shutdown_does_not_wait_for_a_jammed_socket() {
    let (handle, served, _client, fault) =
        synced_over_faulty_server(ServerOptions::default()).await;
    fault.set(Mode::Jammed);
    handle.shutdown();
    let reason = timeout(HUNG, served)
        .await
        .expect("the connection outlived the shutdown")
        .unwrap();
    assert_eq!(reason, "closed locally");
}

/// The same for a client closing its connection.
#[tokio::test(start_paused = true)]
async fn a_client_close_does_not_wait_for_a_jammed_socket() {
    let handle = server(ServerOptions::default(), 50).await;
    let (near, far) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move { handle.serve_transport(Box::new(near)).await });
    let (transport, fault) = Faulty::wrap(far);
    let mut client = Client::over(transport, client_config(), &ClientOptions::default()).unwrap();
    sync(&mut client).await;
    fault.set(Mode::Jammed);
    client.close();
    // Events queued before the close (the checksum after the snapshot's
    // in-sync) still come first.
    let closed = timeout(HUNG, async {
        loop {
            match client.next_event().await.unwrap() {
                Some(ClientEvent::Closed(reason)) => return reason,
                Some(_) => {}
                None => panic!("no Closed event"),
            }
        }
    })
    .await
    .expect("closing waited for the jammed socket");
    assert_eq!(closed, syncproto::CloseReason::Local);
}

/// A write stuck while pings keep arriving still times out: the timeout
/// counts from the last progress, not from the last read.
#[tokio::test(start_paused = true)]
async fn a_client_write_times_out_while_reads_go_on() {
    let handle = server(chatty(), 50).await;
    let (near, far) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move { handle.serve_transport(Box::new(near)).await });
    let (transport, fault) = Faulty::wrap(far);
    let options = ClientOptions {
        write_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let mut client = Client::over(transport, client_config(), &options).unwrap();
    sync(&mut client).await;
    // The next pong cannot go out; the pings keep coming in.
    fault.set(Mode::Jammed);
    let error = timeout(HUNG, async {
        loop {
            match client.next_event().await {
                Ok(Some(ClientEvent::Closed(reason))) => panic!("closed: {reason}"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("client finished"),
                Err(error) => return error,
            }
        }
    })
    .await
    .expect("the stuck write never timed out");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
}

/// After a write fails the client reads on (the server may have said why
/// it went), but does not try to write again: that would fail at once,
/// round and round.
#[tokio::test(start_paused = true)]
async fn a_client_does_not_retry_a_failed_write() {
    let handle = server(chatty(), 50).await;
    let (near, far) = tokio::io::duplex(1 << 20);
    let serving = handle.clone();
    tokio::spawn(async move { serving.serve_transport(Box::new(near)).await });
    let (transport, fault) = Faulty::wrap(far);
    let mut client = Client::over(transport, client_config(), &ClientOptions::default()).unwrap();
    sync(&mut client).await;
    // The next pong fails.
    fault.set(Mode::Broken);
    timeout(HUNG, async {
        while fault.failed() == 0 {
            // Pings come as no event: give up waiting for one now and then
            // to look (reading again is harmless).
            let _ = timeout(Duration::from_millis(50), client.next_event()).await;
        }
    })
    .await
    .expect("no pong was tried");
    // The server goes; its end of stream ends the client.
    handle.shutdown();
    timeout(HUNG, async {
        while let Ok(Some(event)) = client.next_event().await {
            assert!(!matches!(event, ClientEvent::Updates(_)), "{event:?}");
        }
    })
    .await
    .expect("the client did not see the server go");
    assert_eq!(fault.failed(), 1);
}

/// A server connection whose message is stuck in a jammed transport when
/// it closes (here: the client goes, so reads end) gives that message
/// LINGER to finish rather than the whole write timeout, and stops reading
/// the ended stream meanwhile.
#[tokio::test(start_paused = true)]
async fn a_closed_server_connection_does_not_wait_out_the_write_timeout() {
    let options = ServerOptions {
        write_timeout: Duration::from_secs(3600),
        ..ServerOptions::default()
    };
    let (handle, served, client, fault) = synced_over_faulty_server(options).await;
    fault.set(Mode::Jammed);
    // A change the server starts sending, and cannot finish.
    handle.cache().unwrap().apply(
        crate::now().instant,
        [SerializedUpdate::upsert(
            "/calico/v1/config/Late",
            "1",
            "99",
        )],
    );
    handle.notify();
    // The server has started writing it and is stuck.
    timeout(HUNG, async {
        while fault.jammed_writes() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server never tried to write the change");
    drop(client);
    let reason = timeout(HUNG, served)
        .await
        .expect("the connection waited on its jammed write")
        .unwrap();
    assert_eq!(reason, "peer closed the connection");
}

/// Configuration mistakes fail the bind, before any client connects.
#[tokio::test(start_paused = true)]
async fn bind_refuses_an_unusable_configuration() {
    let small_limit = ServerOptions {
        config: ServerConfig {
            max_server_message_len: 1 << 20,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let large_batches = SnapshotCache::new(CacheConfig {
        max_message_len: 2 << 20,
        ..CacheConfig::default()
    });
    let error = Server::bind("127.0.0.1:0", large_batches, small_limit)
        .await
        .expect_err("a cache batching past the connection limit was accepted");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("max_message_len"), "{error}");
    let no_pings = ServerOptions {
        config: ServerConfig {
            ping_interval: Duration::ZERO,
            ..ServerConfig::default()
        },
        ..ServerOptions::default()
    };
    let cache = SnapshotCache::new(CacheConfig::default());
    let error = Server::bind("127.0.0.1:0", cache, no_pings)
        .await
        .expect_err("a zero ping interval was accepted");
    assert!(error.to_string().contains("ping_interval"), "{error}");
}

/// A client taking its events borrowed (`next_events_borrowed`) ends with
/// the view an owning client ends with, and sees the server's close as its
/// final event, after which it reports that nothing more will come.
#[tokio::test(start_paused = true)]
async fn a_client_taking_borrowed_events_syncs_and_sees_the_close() {
    let handle = server(ServerOptions::default(), 500).await;
    let connect = |handle: &ServerHandle| {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let serving = handle.clone();
        tokio::spawn(async move { serving.serve_transport(Box::new(near)).await });
        Client::over(Box::new(far), client_config(), &ClientOptions::default()).unwrap()
    };
    let mut owning = connect(&handle);
    let expected = sync(&mut owning).await;
    assert_eq!(expected.len(), 500);

    let mut borrowing = connect(&handle);
    let mut view = BTreeMap::new();
    let mut in_sync = false;
    let mut closed = None;
    timeout(HUNG, async {
        while !in_sync {
            let more = borrowing
                .next_events_borrowed(|event| match event {
                    ClientEventRef::Updates(updates) => {
                        for update in updates {
                            update.to_update().apply_to(&mut view);
                        }
                    }
                    ClientEventRef::Other(ClientEvent::Status(SyncStatus::InSync)) => {
                        in_sync = true
                    }
                    ClientEventRef::Other(ClientEvent::Closed(reason)) => {
                        panic!("closed: {reason}")
                    }
                    ClientEventRef::Other(_) => {}
                })
                .await
                .unwrap();
            assert!(more);
        }
    })
    .await
    .expect("the borrowing client never reached in-sync");
    assert_eq!(view, expected);

    handle.shutdown();
    timeout(HUNG, async {
        while borrowing
            .next_events_borrowed(|event| {
                if let ClientEventRef::Other(ClientEvent::Closed(reason)) = event {
                    closed = Some(reason);
                }
            })
            .await
            .unwrap()
        {}
    })
    .await
    .expect("the borrowing client never saw the close");
    assert_eq!(closed, Some(CloseReason::PeerClosed));
    assert!(
        !borrowing
            .next_events_borrowed(|_| panic!("an event after the last"))
            .await
            .unwrap()
    );
}

/// A client with a small socket receive buffer syncs a snapshot many times
/// its size over a real loopback socket, and a refused connection with one
/// is reported as a connect error. (Real sockets: the real clock.)
#[tokio::test]
async fn a_client_with_a_small_receive_buffer_connects_and_syncs() {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = crate::now().instant;
    cache.apply(
        now,
        (0..5_000).map(|index| {
            SerializedUpdate::upsert(
                format!("/calico/v1/config/Key{index:05}"),
                format!("value {index:0>100}"),
                format!("{index}"),
            )
        }),
    );
    cache.set_status(now, SyncStatus::InSync);
    let server = Server::bind("127.0.0.1:0", cache, ServerOptions::default())
        .await
        .unwrap();
    let address = server.local_addr().unwrap().to_string();
    let handle = server.handle();
    let task = tokio::spawn(server.run());
    let options = ClientOptions {
        receive_buffer: Some(16 * 1024),
        ..ClientOptions::default()
    };
    // Uncompressed, so that the bytes read are the snapshot's size.
    let config = ClientConfig {
        compression: Vec::new(),
        ..client_config()
    };
    let mut client = Client::connect(&address, config, options.clone())
        .await
        .unwrap();
    assert_eq!(sync(&mut client).await.len(), 5_000);
    assert!(client.bytes_read() > 16 * 1024 * 10);
    handle.shutdown();
    let _ = task.await;
    // The server is gone: its port refuses.
    let refused = Client::connect(&address, client_config(), options).await;
    assert!(
        matches!(refused, Err(crate::client::ConnectError::Connect { .. })),
        "{refused:?}"
    );
}
