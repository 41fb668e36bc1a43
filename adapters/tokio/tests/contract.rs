//! The driver contract (`syncproto-driver-contract`) run against the tokio
//! drivers: the server and the reconnecting client, each on a runtime of
//! its own thread.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use syncproto::client::ClientConfig;
use syncproto::server::{ConnectionReport, ServerStats};
use syncproto::session::{Backoff, SessionEvent};
use syncproto_driver_contract::{
    ClientUnderTest, Driver, ServerSetup, ServerUnderTest, driver_contract_tests,
};
use syncproto_tokio::{ClientOptions, ReconnectingClient, Server, ServerHandle, ServerOptions};

struct Tokio;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct TokioServer {
    address: SocketAddr,
    handle: ServerHandle,
    reports: Arc<Mutex<Vec<ConnectionReport>>>,
    thread: JoinHandle<()>,
}

impl ServerUnderTest for TokioServer {
    fn address(&self) -> SocketAddr {
        self.address
    }

    fn notify(&self) {
        self.handle.notify();
    }

    fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    fn stats(&self) -> ServerStats {
        self.handle.stats()
    }

    fn shutdown(self: Box<Self>) -> Vec<ConnectionReport> {
        self.handle.shutdown();
        self.thread.join().unwrap();
        std::mem::take(&mut *self.reports.lock().unwrap())
    }
}

enum Command {
    Disconnect,
}

struct TokioClient {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    events: mpsc::Receiver<SessionEvent>,
}

impl ClientUnderTest for TokioClient {
    fn next_event(&mut self, limit: Duration) -> Option<SessionEvent> {
        self.events.recv_timeout(limit).ok()
    }

    fn disconnect(&mut self) {
        let _ = self.commands.send(Command::Disconnect);
    }
}

impl Driver for Tokio {
    fn start_server(setup: ServerSetup) -> Box<dyn ServerUnderTest> {
        let reports: Arc<Mutex<Vec<ConnectionReport>>> = Arc::default();
        let collected = Arc::clone(&reports);
        let options = ServerOptions {
            config: setup.config,
            max_connections: setup.max_connections,
            shed_interval: setup.shed_interval,
            on_connection_closed: Some(Arc::new(move |report: &ConnectionReport| {
                collected.lock().unwrap().push(report.clone());
            })),
            ..ServerOptions::default()
        };
        let (started, bound) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let server = Server::bind("127.0.0.1:0", setup.cache, options)
                    .await
                    .unwrap();
                started
                    .send((server.local_addr().unwrap(), server.handle()))
                    .unwrap();
                server.run().await.unwrap();
            });
        });
        let (address, handle) = bound.recv().unwrap();
        Box::new(TokioServer {
            address,
            handle,
            reports,
            thread,
        })
    }

    fn start_client(
        address: SocketAddr,
        config: ClientConfig,
        backoff: Backoff,
    ) -> Box<dyn ClientUnderTest> {
        let (commands, mut receive) = tokio::sync::mpsc::unbounded_channel();
        let (send, events) = mpsc::channel();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut client = ReconnectingClient::new(
                    address.to_string(),
                    config,
                    ClientOptions::default(),
                    backoff,
                );
                loop {
                    tokio::select! {
                        command = receive.recv() => match command {
                            Some(Command::Disconnect) => client.disconnect(),
                            // The test is over.
                            None => return,
                        },
                        event = client.next_event() => {
                            if send.send(event).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        });
        Box::new(TokioClient { commands, events })
    }
}

driver_contract_tests!(Tokio);
