//! A client machine on its own thread over a blocking socket: what the
//! contract tests connect to a server under test, with a switch to stop
//! reading (a client whose socket fills up).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::message::{ByteString, CompressionAlgorithm, SyncStatus};
use syncproto::{CloseReason, Now};

use crate::HUNG;

/// What a [`BlockingClient`] received, once its connection ended.
#[derive(Debug)]
pub struct Ended {
    /// Why it ended.
    pub reason: CloseReason,
    /// The datastore its updates built.
    pub view: BTreeMap<ByteString, Bytes>,
    /// Every status, the machine's initial one included.
    pub statuses: Vec<SyncStatus>,
}

#[derive(Debug, Default)]
struct Progress {
    connected: bool,
    statuses: Vec<SyncStatus>,
    pings_answered: u64,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
    paused: AtomicBool,
}

/// A client connection driven on its own thread until the server ends it.
#[derive(Debug)]
pub struct BlockingClient {
    shared: Arc<Shared>,
    thread: JoinHandle<Ended>,
}

fn now() -> Now {
    Now::from_std(Instant::now(), SystemTime::now())
}

impl BlockingClient {
    /// Connects to `address` speaking `format` (offering snappy when
    /// `compressed`) and runs until the connection ends.
    pub fn start(address: SocketAddr, format: WireFormat, compressed: bool) -> BlockingClient {
        let config = ClientConfig {
            wire_format: format,
            compression: match compressed {
                true => vec![CompressionAlgorithm::Snappy],
                false => Vec::new(),
            },
            key_parser: None,
            ..ClientConfig::default()
        };
        let shared = Arc::new(Shared::default());
        let running = Arc::clone(&shared);
        let thread = std::thread::spawn(move || run(address, config, &running));
        BlockingClient { shared, thread }
    }

    fn wait(&self, what: &str, mut done: impl FnMut(&Progress) -> bool) {
        let mut progress = self.shared.progress.lock().unwrap();
        let give_up = Instant::now() + HUNG;
        while !done(&progress) {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "waited too long for {what}");
            progress = self.shared.changed.wait_timeout(progress, left).unwrap().0;
        }
    }

    /// Waits until the handshake is done.
    pub fn wait_for_connected(&self) {
        self.wait("the handshake", |progress| progress.connected);
    }

    /// Waits until the server has sent `status`.
    pub fn wait_for_status(&self, status: SyncStatus) {
        self.wait(&format!("status {status}"), |progress| {
            progress.connected && progress.statuses.last() == Some(&status)
        });
    }

    /// Waits until the client has answered `pings` pings.
    pub fn wait_for_pings(&self, pings: u64) {
        self.wait(&format!("{pings} pings"), |progress| {
            progress.pings_answered >= pings
        });
    }

    /// Stops reading (the socket fills up; pongs stop too).
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Reads again.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Waits for the connection to end; what it received.
    pub fn join(self) -> Ended {
        self.thread.join().unwrap()
    }
}

fn run(address: SocketAddr, config: ClientConfig, shared: &Shared) -> Ended {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut client = ClientConnection::new(config, now()).unwrap();
    let mut view = BTreeMap::new();
    let mut statuses = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let give_up = Instant::now() + HUNG;
    loop {
        assert!(Instant::now() < give_up, "the connection did not end");
        while let Some(bytes) = client.poll_transmit() {
            // A server that went away may refuse the last pong.
            let _ = stream.write_all(&bytes);
        }
        if shared.paused.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        match stream.read(&mut buffer) {
            Ok(0) => client.handle_eof(now()),
            Ok(n) => client.handle_input(now(), &buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => client.handle_eof(now()),
            Err(error) => panic!("read: {error}"),
        }
        if client
            .poll_timeout()
            .is_some_and(|due| due <= Instant::now())
        {
            client.handle_timeout(now());
        }
        let mut progressed = false;
        if client.pings_answered() > 0 {
            let mut progress = shared.progress.lock().unwrap();
            if progress.pings_answered != client.pings_answered() {
                progress.pings_answered = client.pings_answered();
                progressed = true;
            }
        }
        while let Some(event) = client.poll_event() {
            progressed = true;
            match event {
                ClientEvent::Updates(updates) => {
                    updates.iter().for_each(|update| update.apply_to(&mut view));
                }
                ClientEvent::Status(status) => statuses.push(status),
                ClientEvent::Connected(_) => shared.progress.lock().unwrap().connected = true,
                ClientEvent::Closed(reason) => {
                    // Owed pongs after a clean end.
                    while let Some(bytes) = client.poll_transmit() {
                        let _ = stream.write_all(&bytes);
                    }
                    shared.changed.notify_all();
                    return Ended {
                        reason,
                        view,
                        statuses,
                    };
                }
                ClientEvent::Dropped { .. }
                | ClientEvent::Ignored(_)
                | ClientEvent::Checksum(_) => {}
            }
        }
        if progressed {
            shared.progress.lock().unwrap().statuses = statuses.clone();
            shared.changed.notify_all();
        }
    }
}
