//! The driver contract (`syncproto-driver-contract`) run against the mio
//! drivers: the server's loop on a thread of its own, taking commands
//! between iterations (woken by its `Notifier`), and the reconnecting
//! client's loop on another, sending its session's events over a channel.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use syncproto::client::ClientConfig;
use syncproto::server::{ConnectionReport, ServerStats};
use syncproto::session::{Backoff, SessionEvent};
use syncproto_driver_contract::{
    ClientUnderTest, Driver, ServerSetup, ServerUnderTest, driver_contract_tests,
};
use syncproto_mio::{Notifier, ReconnectingClient, Server, ServerLoopEvent};

struct Mio;

/// How long a loop waits for work before looking at its commands again
/// (the server's is woken for them; the client's is not).
const TICK: Duration = Duration::from_millis(5);

/// What the server's thread does between iterations.
enum ServerCommand {
    Stats(mpsc::Sender<ServerStats>),
    ConnectionCount(mpsc::Sender<usize>),
    Shutdown,
}

struct MioServer {
    address: SocketAddr,
    notifier: Notifier,
    commands: mpsc::Sender<ServerCommand>,
    thread: JoinHandle<Vec<ConnectionReport>>,
}

impl MioServer {
    /// Has the loop's thread answer `command`.
    fn ask<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> ServerCommand) -> T {
        let (reply, answer) = mpsc::channel();
        self.commands.send(command(reply)).unwrap();
        self.notifier.wake().unwrap();
        answer.recv().unwrap()
    }
}

impl ServerUnderTest for MioServer {
    fn address(&self) -> SocketAddr {
        self.address
    }

    fn notify(&self) {
        self.notifier.notify().unwrap();
    }

    fn connection_count(&self) -> usize {
        self.ask(ServerCommand::ConnectionCount)
    }

    fn stats(&self) -> ServerStats {
        self.ask(ServerCommand::Stats)
    }

    fn shutdown(self: Box<Self>) -> Vec<ConnectionReport> {
        self.commands.send(ServerCommand::Shutdown).unwrap();
        self.notifier.wake().unwrap();
        self.thread.join().unwrap()
    }
}

/// Runs `server` until it has been shut down and every connection is
/// gone; the report of every connection it served.
fn serve(mut server: Server, commands: mpsc::Receiver<ServerCommand>) -> Vec<ConnectionReport> {
    let (closed, reports) = mpsc::channel();
    server.set_event_handler(move |event| {
        if let ServerLoopEvent::Closed { report, .. } = event {
            closed.send(report.clone()).unwrap();
        }
    });
    while !server.is_finished() {
        server.run_once(Some(TICK)).unwrap();
        while let Ok(command) = commands.try_recv() {
            match command {
                ServerCommand::Stats(reply) => reply.send(server.stats()).unwrap(),
                ServerCommand::ConnectionCount(reply) => {
                    reply.send(server.connection_count()).unwrap();
                }
                ServerCommand::Shutdown => server.shutdown(),
            }
        }
    }
    drop(server);
    reports.iter().collect()
}

struct MioClient {
    disconnect: mpsc::Sender<()>,
    events: mpsc::Receiver<SessionEvent>,
}

impl ClientUnderTest for MioClient {
    fn next_event(&mut self, limit: Duration) -> Option<SessionEvent> {
        self.events.recv_timeout(limit).ok()
    }

    fn disconnect(&mut self) {
        let _ = self.disconnect.send(());
    }
}

impl Driver for Mio {
    fn start_server(setup: ServerSetup) -> Box<dyn ServerUnderTest> {
        let address = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut server = Server::bind(address, setup.cache, setup.config).unwrap();
        if let Some(max) = setup.max_connections {
            server.set_connection_limit(max, setup.shed_interval);
        }
        let address = server.local_addr();
        let notifier = server.notifier();
        let (commands, receive) = mpsc::channel();
        let thread = std::thread::spawn(move || serve(server, receive));
        Box::new(MioServer {
            address,
            notifier,
            commands,
            thread,
        })
    }

    fn start_client(
        address: SocketAddr,
        config: ClientConfig,
        backoff: Backoff,
    ) -> Box<dyn ClientUnderTest> {
        let (disconnect, disconnects) = mpsc::channel();
        let (send, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut client = ReconnectingClient::connect(address, config, backoff, 7).unwrap();
            loop {
                client.run_once(Some(TICK)).unwrap();
                while let Some(event) = client.poll_event() {
                    if send.send(event).is_err() {
                        return; // the test is over
                    }
                }
                match disconnects.try_recv() {
                    Ok(()) => client.disconnect(),
                    Err(mpsc::TryRecvError::Empty) => {}
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
        });
        Box::new(MioClient { disconnect, events })
    }
}

driver_contract_tests!(Mio);
