//! The protocol's messages and the values they carry, independent of any
//! wire format.
//!
//! Field sets are upstream's newest; a peer of an older generation simply
//! leaves the newer fields at their zero value (see DESIGN.md §1).

mod borrowed;
mod checksum;
mod hello;
mod ping;
mod restart;
mod revision;
mod status;
mod syncer;
mod timestamp;
mod update;

use std::fmt;

/// An immutable UTF-8 string over `bytes::Bytes`: what keys, resource
/// versions and string revisions are, cheap to clone and to share (the
/// fan-out cache shares each key between its state and its log).
pub use bytestring::ByteString;

pub use borrowed::{MessageRef, RevisionRef, SerializedUpdateRef};
pub use checksum::Checksum;
pub use hello::{ClientHello, CompressionAlgorithm, ServerHello};
pub use ping::{Ping, Pong};
pub use restart::DecoderRestart;
pub use revision::Revision;
pub use status::SyncStatus;
pub use syncer::SyncerType;
pub use timestamp::{FixedOffset, GO_SECONDS_AT_UNIX_EPOCH, Timestamp, TimestampError, Zone};
pub use update::{SerializedUpdate, UpdateType};

/// One protocol message, in either direction.
///
/// Client to server: [`ClientHello`], [`Pong`], [`Ack`](Message::Ack).
/// Server to client: everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Opens the handshake (client → server).
    ClientHello(ClientHello),
    /// Answers the handshake (server → client).
    ServerHello(ServerHello),
    /// A batch of key/value updates, possibly empty (server → client;
    /// upstream's `MsgKVs`).
    Kvs(Vec<SerializedUpdate>),
    /// The server's sync status changed (server → client).
    SyncStatus(SyncStatus),
    /// A liveness probe (server → client).
    Ping(Ping),
    /// The answer to a ping (client → server).
    Pong(Pong),
    /// The following bytes start a new stream (server → client).
    DecoderRestart(DecoderRestart),
    /// Acknowledges a decoder restart (client → server; upstream's `MsgACK`).
    Ack,
    /// The server's snapshot checksum (server → client, only when both
    /// hellos said so; upstream's `MsgChecksum`).
    Checksum(Checksum),
}

impl Message {
    /// Which message this is, without its contents.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::ClientHello(_) => MessageKind::ClientHello,
            Message::ServerHello(_) => MessageKind::ServerHello,
            Message::Kvs(_) => MessageKind::Kvs,
            Message::SyncStatus(_) => MessageKind::SyncStatus,
            Message::Ping(_) => MessageKind::Ping,
            Message::Pong(_) => MessageKind::Pong,
            Message::DecoderRestart(_) => MessageKind::DecoderRestart,
            Message::Ack => MessageKind::Ack,
            Message::Checksum(_) => MessageKind::Checksum,
        }
    }
}

/// The kind of a [`Message`], for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// [`Message::ClientHello`].
    ClientHello,
    /// [`Message::ServerHello`].
    ServerHello,
    /// [`Message::Kvs`].
    Kvs,
    /// [`Message::SyncStatus`].
    SyncStatus,
    /// [`Message::Ping`].
    Ping,
    /// [`Message::Pong`].
    Pong,
    /// [`Message::DecoderRestart`].
    DecoderRestart,
    /// [`Message::Ack`].
    Ack,
    /// [`Message::Checksum`].
    Checksum,
}

impl MessageKind {
    /// Upstream's Go type name for the message (`MsgClientHello`, …).
    pub fn go_name(self) -> &'static str {
        match self {
            MessageKind::ClientHello => "MsgClientHello",
            MessageKind::ServerHello => "MsgServerHello",
            MessageKind::Kvs => "MsgKVs",
            MessageKind::SyncStatus => "MsgSyncStatus",
            MessageKind::Ping => "MsgPing",
            MessageKind::Pong => "MsgPong",
            MessageKind::DecoderRestart => "MsgDecoderRestart",
            MessageKind::Ack => "MsgACK",
            MessageKind::Checksum => "MsgChecksum",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name())
    }
}
