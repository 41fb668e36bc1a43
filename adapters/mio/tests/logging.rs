//! The server's log (issue 16): every connection leaves a line when it is
//! accepted and one when it ends, with the reason, in a span naming the
//! connection; a refused client's line says what it asked for. The lines
//! are captured by a `tracing-subscriber` writing to a buffer, and checked
//! against the reports the server hands its event handler.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncproto::client::ClientConfig;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{SerializedUpdate, SyncStatus, SyncerType};
use syncproto::server::{ConnectionReport, ServerConfig};
use syncproto_mio::{Client, Server, ServerLoopEvent};
use tracing_subscriber::fmt::MakeWriter;

const LIMIT: Duration = Duration::from_secs(20);

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A server whose reports are collected, on a cache with one key.
fn server(config: ServerConfig) -> (Server, Arc<Mutex<Vec<ConnectionReport>>>) {
    let cache = SnapshotCache::new(CacheConfig::default());
    let now = Instant::now();
    cache.apply(
        now,
        [SerializedUpdate::upsert("/calico/v1/config/A", "1", "1")],
    );
    cache.set_status(now, SyncStatus::InSync);
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), cache, config).unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    server.set_event_handler(move |event| {
        if let ServerLoopEvent::Closed { report, .. } = event {
            sink.lock().unwrap().push(report.clone());
        }
    });
    (server, reports)
}

/// Runs `server` (and `client`, if any) until `done`, all in this thread
/// so that the thread's default subscriber sees every line.
fn run_until(
    server: &mut Server,
    mut client: Option<&mut Client>,
    mut done: impl FnMut(&Server, Option<&Client>) -> bool,
) {
    let give_up = Instant::now() + LIMIT;
    while !done(server, client.as_deref()) {
        assert!(Instant::now() < give_up, "timed out");
        server.run_once(Some(Duration::from_millis(5))).unwrap();
        if let Some(client) = client.as_mut() {
            client.run_once(Some(Duration::ZERO)).unwrap();
        }
    }
}

/// The lines logged in connection `id`'s span.
fn lines_of(lines: &[String], id: u64) -> Vec<String> {
    let span = format!("connection{{id={id} ");
    lines
        .iter()
        .filter(|line| line.contains(&span))
        .cloned()
        .collect()
}

/// Checks the accept line and the close line of `report`'s connection:
/// the close line at `level`, with the reason, its kind, the duration and
/// what was sent. Returns the close line.
fn check_lines(lines: &[String], report: &ConnectionReport, level: &str) -> String {
    let mine = lines_of(lines, report.id);
    let peer = report.peer.unwrap();
    assert!(
        mine.iter().any(|line| line.contains(" INFO ")
            && line.contains("connection accepted")
            && line.contains(&format!("peer={peer}"))),
        "no accept line for {}: {mine:#?}",
        report.id
    );
    let closed: Vec<_> = mine
        .iter()
        .filter(|line| line.contains("connection closed"))
        .collect();
    assert_eq!(closed.len(), 1, "{mine:#?}");
    let line = closed[0].clone();
    for expected in [
        format!(" {level} "),
        format!("reason={}", report.reason),
        format!("kind=\"{}\"", report.kind),
        format!("duration_ms={}", report.duration.as_millis()),
        format!("messages={}", report.messages_sent),
        format!("kvs={}", report.kvs_sent),
        format!("bytes={}", report.bytes_sent),
    ] {
        assert!(line.contains(&expected), "{expected:?} not in {line}");
    }
    line
}

fn subscriber(sink: &Captured) -> impl tracing::Subscriber + Send + Sync + use<> {
    tracing_subscriber::fmt()
        .with_writer(sink.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .finish()
}

#[test]
fn a_client_asking_for_a_syncer_not_served_is_logged_with_what_it_asked() {
    let sink = Captured::default();
    tracing::subscriber::with_default(subscriber(&sink), || {
        let (mut server, reports) = server(ServerConfig {
            syncer_types: vec![SyncerType::Felix],
            ..ServerConfig::default()
        });
        let asked = SyncerType::Bgp;
        let hostname = "node-7";
        let mut client = Client::connect(
            server.local_addr(),
            ClientConfig {
                hostname: hostname.to_owned(),
                syncer_type: asked.clone(),
                ..ClientConfig::default()
            },
        )
        .unwrap();
        run_until(&mut server, Some(&mut client), |_, _| {
            !reports.lock().unwrap().is_empty()
        });
        let report = reports.lock().unwrap()[0].clone();
        assert!(report.is_error && !report.connected, "{report:?}");
        let line = check_lines(&sink.lines(), &report, "WARN");
        // What the refused client sent is in the line.
        assert!(line.contains(&format!("syncer=\"{asked}\"")), "{line}");
        assert!(line.contains(&format!("hostname=\"{hostname}\"")), "{line}");
    });
}

#[test]
fn a_client_that_never_says_hello_is_logged_with_the_timeout() {
    let sink = Captured::default();
    tracing::subscriber::with_default(subscriber(&sink), || {
        let (mut server, reports) = server(ServerConfig {
            handshake_timeout: Duration::from_millis(100),
            ..ServerConfig::default()
        });
        let silent = TcpStream::connect(server.local_addr()).unwrap();
        let address = silent.local_addr().unwrap();
        silent.set_nonblocking(true).unwrap();
        // The client closes once it has seen the server's clean end of
        // stream (the server lingers until then).
        let mut silent = Some(silent);
        run_until(&mut server, None, |_, _| {
            if let Some(socket) = silent.as_mut() {
                match socket.read(&mut [0u8; 16]) {
                    Ok(0) => silent = None,
                    Ok(n) => panic!("{n} bytes to a client that never said hello"),
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(error) => panic!("not a clean end of stream: {error}"),
                }
            }
            !reports.lock().unwrap().is_empty()
        });
        assert!(silent.is_none(), "reported before the client saw the end");
        let report = reports.lock().unwrap()[0].clone();
        assert_eq!(report.kind, "handshake_timeout", "{report:?}");
        assert_eq!(report.peer, Some(address));
        let line = check_lines(&sink.lines(), &report, "WARN");
        // No hello: nothing about the client but its address.
        assert!(line.contains("hostname=\"\""), "{line}");
    });
}

#[test]
fn a_served_client_is_logged_with_what_it_said_on_its_span() {
    let sink = Captured::default();
    tracing::subscriber::with_default(subscriber(&sink), || {
        let (mut server, reports) = server(ServerConfig::default());
        let hostname = "node-8";
        let mut client = Client::connect(
            server.local_addr(),
            ClientConfig {
                hostname: hostname.to_owned(),
                ..ClientConfig::default()
            },
        )
        .unwrap();
        run_until(&mut server, Some(&mut client), |_, client| {
            client.is_some_and(|client| client.state().is_in_sync())
        });
        server.shutdown();
        run_until(&mut server, Some(&mut client), |server, _| {
            server.is_finished()
        });
        let report = reports.lock().unwrap()[0].clone();
        assert!(!report.is_error && report.connected, "{report:?}");
        assert!(report.kvs_sent > 0);
        let lines = sink.lines();
        let line = check_lines(&lines, &report, "INFO");
        // The handshake put the client's hostname and syncer on the span,
        // so the lines after it carry them, the close line among them.
        let span_fields = format!("hostname={hostname} syncer=felix");
        assert!(line.contains(&span_fields), "{line}");
        assert!(
            lines_of(&lines, report.id)
                .iter()
                .any(|line| line.contains("DEBUG")
                    && line.contains("handshake done")
                    && line.contains(&span_fields)),
            "{lines:#?}"
        );
    });
}
