//! Property tests of [`Session`]: random datastore scripts with
//! disconnects at any point (mid-snapshot included) and reconnects to a
//! server that moved on meanwhile. Whenever a session is live and in sync,
//! the application's view (built only from the session's events) equals
//! the server's datastore; and no event the application is handed changes
//! nothing.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::harness::{Link, Pair};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::client::ClientConfig;
use syncproto::codec::WireFormat;
use syncproto::message::{ByteString, CompressionAlgorithm, SerializedUpdate, SyncStatus};
use syncproto::server::ServerConfig;
use syncproto::session::{Backoff, Session, SessionEvent};

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, u8),
    Delete(u8),
    Status(SyncStatus),
    /// Let this many milliseconds of the link's latency pass (bytes in
    /// flight arrive partly).
    Advance(u8),
    /// The connection drops, whatever was in flight; a new one follows.
    Disconnect,
    /// Everything in flight arrives.
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, any::<u8>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        3 => (0u8..24).prop_map(Op::Delete),
        2 => prop_oneof![
            Just(SyncStatus::InSync),
            Just(SyncStatus::ResyncInProgress),
            Just(SyncStatus::WaitForDatastore),
        ]
        .prop_map(Op::Status),
        3 => (0u8..20).prop_map(Op::Advance),
        2 => Just(Op::Disconnect),
        3 => Just(Op::Settle),
    ]
}

fn key(index: u8) -> ByteString {
    format!("/calico/v1/config/Key{index:02}").into()
}

/// The server side of the script: the datastore and its status.
struct Datastore {
    state: BTreeMap<ByteString, Bytes>,
    status: SyncStatus,
    revision: u64,
}

/// The application: what it built from the session's events alone.
#[derive(Default)]
struct Application {
    view: BTreeMap<ByteString, Bytes>,
}

impl Application {
    fn apply(&mut self, event: SessionEvent) -> Result<(), TestCaseError> {
        if let SessionEvent::Updates(updates) = event {
            for update in updates {
                let changed = match update.effective_value() {
                    Some(value) => {
                        self.view.insert(update.key.clone(), value.clone()) != Some(value.clone())
                    }
                    None => self.view.remove(&update.key).is_some(),
                };
                prop_assert!(changed, "a no-op was delivered: {update}");
            }
        }
        Ok(())
    }
}

/// One connection of the session, and how many of its events were fed.
struct Connection {
    pair: Pair,
    fed: usize,
}

struct Run {
    datastore: Datastore,
    session: Session,
    application: Application,
    connection: Connection,
    format: WireFormat,
    compressed: bool,
}

impl Run {
    fn connect(&mut self) {
        self.session.connection_started();
        self.connection = connection(&self.datastore, self.format, self.compressed);
    }

    /// Feeds the connection's new events to the session and the session's
    /// to the application.
    fn feed(&mut self) -> Result<(), TestCaseError> {
        let connection = &mut self.connection;
        for event in connection.pair.client_events[connection.fed..]
            .iter()
            .cloned()
        {
            self.session.handle_event(event);
        }
        connection.fed = connection.pair.client_events.len();
        while let Some(event) = self.session.poll_event() {
            self.application.apply(event)?;
        }
        Ok(())
    }
}

fn connection(datastore: &Datastore, format: WireFormat, compressed: bool) -> Connection {
    let client = ClientConfig {
        wire_format: format,
        compression: match compressed {
            true => vec![CompressionAlgorithm::Snappy],
            false => Vec::new(),
        },
        ..ClientConfig::default()
    };
    let link = Link {
        latency: Duration::from_millis(3),
        max_chunk: Some(40),
        seed: datastore.revision,
    };
    let mut pair = Pair::new(client, ServerConfig::default(), link);
    pair.settle();
    let snapshot: Vec<SerializedUpdate> = datastore
        .state
        .iter()
        .map(|(key, value)| SerializedUpdate::upsert(key.clone(), value.clone(), "1"))
        .collect();
    pair.server
        .send_snapshot(snapshot, datastore.status)
        .unwrap();
    pair.pump();
    Connection { pair, fed: 0 }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_live_in_sync_session_holds_the_servers_datastore_and_reports_only_changes(
        initial in vec((0u8..24, any::<u8>()), 0..30),
        ops in vec(op(), 0..60),
        native in any::<bool>(),
        compressed in any::<bool>(),
    ) {
        let datastore = Datastore {
            state: initial
                .into_iter()
                .map(|(k, v)| (key(k), Bytes::from(vec![v; 3])))
                .collect(),
            status: SyncStatus::InSync,
            revision: 0,
        };
        let format = if native { WireFormat::Native } else { WireFormat::Gob };
        let mut session = Session::new(Backoff::default(), 1);
        session.connection_started();
        let connection = connection(&datastore, format, compressed);
        let mut run = Run {
            datastore,
            session,
            application: Application::default(),
            connection,
            format,
            compressed,
        };
        for op in ops {
            run.datastore.revision += 1;
            let revision = format!("{}", run.datastore.revision);
            let server = &mut run.connection.pair.server;
            match op {
                Op::Upsert(k, v) => {
                    let value = Bytes::from(vec![v; 3]);
                    run.datastore.state.insert(key(k), value.clone());
                    server.send_updates(vec![SerializedUpdate::upsert(key(k), value, revision)]).unwrap();
                }
                Op::Delete(k) => {
                    run.datastore.state.remove(&key(k));
                    server.send_updates(vec![SerializedUpdate::deletion(key(k), revision)]).unwrap();
                }
                Op::Status(status) => {
                    run.datastore.status = status;
                    server.send_status(status).unwrap();
                }
                Op::Advance(ms) => run.connection.pair.run_for(Duration::from_millis(u64::from(ms))),
                Op::Disconnect => {
                    // Whatever is still in flight is lost with the socket.
                    run.connection.pair.client.close();
                    run.connection.pair.pump();
                    run.feed()?;
                    prop_assert!(run.session.retry_delay() > Duration::ZERO);
                    run.connect();
                }
                Op::Settle => run.connection.pair.settle(),
            }
            run.connection.pair.pump();
            run.feed()?;
            let live_in_sync = run.session.is_connected()
                && !run.session.is_resyncing()
                && run.session.status() == Some(SyncStatus::InSync)
                && run.datastore.status == SyncStatus::InSync;
            if live_in_sync && matches!(op, Op::Settle) {
                prop_assert_eq!(&run.application.view, &run.datastore.state);
            }
            // The application's view is always the session's.
            let session_view: BTreeMap<ByteString, Bytes> = run
                .session
                .view()
                .iter()
                .filter_map(|(key, update)| Some((key.clone(), update.effective_value()?.clone())))
                .collect();
            prop_assert_eq!(&run.application.view, &session_view);
        }
        // In the end, once in sync and settled, the view is the datastore.
        run.datastore.status = SyncStatus::InSync;
        run.connection.pair.server.send_status(SyncStatus::InSync).unwrap();
        run.connection.pair.settle();
        run.feed()?;
        if run.session.is_connected() {
            prop_assert!(!run.session.is_resyncing());
            prop_assert_eq!(&run.application.view, &run.datastore.state);
        }
    }
}
