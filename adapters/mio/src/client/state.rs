//! What a client of a [`Clients`](super::Clients) loop has received, and
//! the loop's counters.

use std::collections::BTreeMap;

use bytes::Bytes;
use syncproto::client::{ChecksumReport, ClientEvent};
use syncproto::message::{ByteString, ServerHello, SyncStatus};
use syncproto::session::Session;

use crate::Disconnect;

/// What one client has received: the datastore view its updates built,
/// the last sync status, the server's hello, and how it ended. A
/// reconnecting client ([`Clients::connect_reconnecting`](super::Clients::connect_reconnecting))
/// also has its [`Session`]: the datastore across connections.
#[derive(Debug, Default)]
pub struct ClientState {
    pub(super) view: BTreeMap<ByteString, Bytes>,
    pub(super) status: Option<SyncStatus>,
    pub(super) server_hello: Option<ServerHello>,
    pub(super) updates_messages: u64,
    pub(super) dropped_keys: u64,
    pub(super) ignored_messages: u64,
    pub(super) last_checksum: Option<ChecksumReport>,
    pub(super) closed: Option<Disconnect>,
    pub(super) session: Option<Session>,
}

/// The state of a client that has no slot (never seen in practice: a
/// `Client` never removes its one client).
pub(super) static NO_STATE: ClientState = ClientState {
    view: BTreeMap::new(),
    status: None,
    server_hello: None,
    updates_messages: 0,
    dropped_keys: 0,
    ignored_messages: 0,
    last_checksum: None,
    closed: None,
    session: None,
};

impl ClientState {
    /// The datastore as received: every key the updates set, with its
    /// value (an update with a value inserts, one without removes). Empty
    /// for a reconnecting client, whose datastore is its
    /// [`session`](Self::session)'s view (which survives reconnects).
    pub fn view(&self) -> &BTreeMap<ByteString, Bytes> {
        &self.view
    }

    /// The last sync status the current connection received
    /// (`ResyncInProgress` from the start, as upstream clients report;
    /// `None` while a reconnecting client is between connections).
    pub fn status(&self) -> Option<SyncStatus> {
        self.status
    }

    /// Whether a connection is open and its last status was `InSync`.
    pub fn is_in_sync(&self) -> bool {
        self.closed.is_none() && self.status == Some(SyncStatus::InSync)
    }

    /// The server's hello, once the (current connection's) handshake is
    /// done.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.server_hello.as_ref()
    }

    /// How many `KVs` messages arrived.
    pub fn updates_messages(&self) -> u64 {
        self.updates_messages
    }

    /// How many updates were dropped because their keys did not parse.
    pub fn dropped_keys(&self) -> u64 {
        self.dropped_keys
    }

    /// How many messages the client ignored (see
    /// [`ClientEvent::Ignored`]).
    pub fn ignored_messages(&self) -> u64 {
        self.ignored_messages
    }

    /// The last snapshot checksum comparison (see
    /// [`ClientEvent::Checksum`]), when the server sends checksums.
    pub fn last_checksum(&self) -> Option<&ChecksumReport> {
        self.last_checksum.as_ref()
    }

    /// Why the client ended, once it has. A reconnecting client ends only
    /// when closed ([`Clients::close`](super::Clients::close)); the
    /// connections it loses on the way are reported by its session
    /// ([`SessionEvent::Reconnecting`](syncproto::session::SessionEvent::Reconnecting)).
    pub fn closed(&self) -> Option<&Disconnect> {
        self.closed.as_ref()
    }

    /// Whether the client has not ended (it is connecting, connected, or
    /// waiting to reconnect).
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// A reconnecting client's session: the datastore as its application
    /// has been told it across connections
    /// ([`Session::view`]), its status, whether it is connected. Its
    /// events are taken with
    /// [`Clients::poll_session_event`](super::Clients::poll_session_event).
    /// `None` for a client of one connection.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Applies one event of the current connection (the caller handles
    /// `Closed`).
    pub(super) fn record(&mut self, event: &ClientEvent, stats: &mut ClientsStats) {
        match event {
            ClientEvent::Updates(updates) => {
                self.updates_messages += 1;
                // A session keeps the view of a reconnecting client.
                if self.session.is_none() {
                    for update in updates {
                        update.apply_to(&mut self.view);
                    }
                }
            }
            ClientEvent::Status(status) => self.set_status(Some(*status), stats),
            ClientEvent::Connected(hello) => self.server_hello = Some(hello.clone()),
            ClientEvent::Dropped { .. } => self.dropped_keys += 1,
            ClientEvent::Ignored(_) => self.ignored_messages += 1,
            ClientEvent::Checksum(report) => self.last_checksum = Some(*report),
            ClientEvent::Closed(_) => {}
        }
    }

    /// Sets the status, keeping the count of clients in sync.
    pub(super) fn set_status(&mut self, status: Option<SyncStatus>, stats: &mut ClientsStats) {
        let was = self.status == Some(SyncStatus::InSync);
        let is = status == Some(SyncStatus::InSync);
        match (was, is) {
            (false, true) => stats.in_sync += 1,
            (true, false) => stats.in_sync -= 1,
            _ => {}
        }
        self.status = status;
    }
}

/// Counters over all clients of a [`Clients`](super::Clients) loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientsStats {
    /// Connections started (every attempt of a reconnecting client
    /// counts).
    pub started: u64,
    /// Connections open now (connecting or connected).
    pub open: usize,
    /// Open connections whose last status is `InSync`.
    pub in_sync: usize,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Of those, closed because something went wrong.
    pub closed_with_error: u64,
    /// Bytes read from servers.
    pub bytes_read: u64,
    /// Bytes written to servers.
    pub bytes_written: u64,
}
