//! What a [`ClientConnection`](super::ClientConnection) reports to its
//! application: owned events from the queue, or events handed to a
//! callback with their updates borrowed from the bytes received.

use crate::close::CloseReason;
use crate::key::KeyError;
use crate::message::{
    ByteString, MessageKind, SerializedUpdate, SerializedUpdateRef, ServerHello, SyncStatus,
};

use super::ChecksumReport;

/// What a [`ClientConnection`](super::ClientConnection) reports to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the handshake.
    Connected(ServerHello),
    /// The server's sync status. The first event of every connection is
    /// `Status(ResyncInProgress)`, as upstream clients report on start.
    Status(SyncStatus),
    /// One `KVs` message's updates, in order (possibly none), minus those
    /// whose keys the key parser rejected.
    Updates(Vec<SerializedUpdate>),
    /// An update was dropped because its key did not parse (upstream's
    /// `ErrBadKey`); the connection goes on.
    Dropped {
        /// The rejected key.
        key: ByteString,
        /// Why the key parser rejected it.
        reason: KeyError,
    },
    /// The server sent something a client ignores, as upstream's does: a
    /// `Pong`, `Ack` or `ClientHello` (messages only a client sends), or a
    /// `DecoderRestart` naming a compression algorithm this crate does not
    /// know (acknowledged, and the stream goes on as it was). Counted by
    /// [`ClientConnection::ignored_messages`](super::ClientConnection::ignored_messages); the connection goes on.
    Ignored(MessageKind),
    /// The server's snapshot checksum was compared with the checksum of
    /// what this connection received before it (only when both sides
    /// negotiated checksums: see [`ClientConfig::checksums`](super::ClientConfig::checksums)). A mismatch
    /// is reported, not acted on: what to do about it is the caller's (a
    /// [`Session`](crate::session::Session) reconnects as upstream does).
    Checksum(ChecksumReport),
    /// The connection is over; this is the last event.
    Closed(CloseReason),
}

/// An event as [`ClientConnection::handle_input_borrowed`](super::ClientConnection::handle_input_borrowed)
/// hands it to its callback: a `KVs` message's updates borrow the bytes
/// received (no copy and no allocation per update); any other event is the
/// owned [`ClientEvent`] that [`poll_event`](super::ClientConnection::poll_event)
/// would have returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEventRef<'a> {
    /// What [`ClientEvent::Updates`] holds, borrowed: valid only during
    /// the callback, so copy what must outlive it
    /// ([`SerializedUpdateRef::to_update`]).
    Updates(&'a [SerializedUpdateRef<'a>]),
    /// Any other event. Never [`ClientEvent::Updates`].
    Other(ClientEvent),
}

impl ClientEventRef<'_> {
    /// The owned event, equal to what
    /// [`handle_input`](super::ClientConnection::handle_input) would have
    /// queued.
    pub fn to_event(&self) -> ClientEvent {
        match self {
            ClientEventRef::Updates(updates) => {
                ClientEvent::Updates(updates.iter().map(SerializedUpdateRef::to_update).collect())
            }
            ClientEventRef::Other(event) => event.clone(),
        }
    }
}

impl PartialEq<ClientEvent> for ClientEventRef<'_> {
    fn eq(&self, other: &ClientEvent) -> bool {
        match (self, other) {
            (ClientEventRef::Updates(borrowed), ClientEvent::Updates(owned)) => {
                borrowed.len() == owned.len()
                    && borrowed
                        .iter()
                        .zip(owned)
                        .all(|(borrowed, owned)| borrowed == owned)
            }
            (ClientEventRef::Other(event), other) => event == other,
            _ => false,
        }
    }
}
