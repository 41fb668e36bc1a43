//! The handshake: `ClientHello` and the server's `ServerHello` answer.

use std::fmt;

use super::SyncerType;

/// A compression algorithm named in the handshake or a decoder restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompressionAlgorithm {
    /// Snappy's framing format (`"snappy"`), the one upstream implements.
    Snappy,
    /// A name this crate does not implement, kept as sent.
    Other(String),
}

impl CompressionAlgorithm {
    /// Interprets a wire name (`"snappy"`, anything else kept verbatim).
    pub fn from_wire(name: &str) -> CompressionAlgorithm {
        match name {
            "snappy" => CompressionAlgorithm::Snappy,
            other => CompressionAlgorithm::Other(other.to_owned()),
        }
    }

    /// The name sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            CompressionAlgorithm::Snappy => "snappy",
            CompressionAlgorithm::Other(name) => name,
        }
    }
}

impl fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first message of a connection, client to server (upstream's
/// `MsgClientHello`): who the client is, which syncer it wants and which
/// optional features it supports.
///
/// Fields a peer's version lacks read as their zero value; the v3.2.5 field
/// set is `hostname`, `info` and `version` only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The client's host name.
    pub hostname: String,
    /// Free-form information about the client (upstream: "felix").
    pub info: String,
    /// The client's software version.
    pub version: String,
    /// The syncer the client asks for.
    pub syncer_type: SyncerType,
    /// Whether the client can restart its decoder mid-stream (needed for
    /// the compressed snapshot).
    pub supports_decoder_restart: bool,
    /// The compression algorithms the client accepts, most preferred first.
    pub supported_compression_algorithms: Vec<CompressionAlgorithm>,
    /// Whether the client understands the modern policy key format; the
    /// newest upstream server refuses clients that do not.
    pub supports_modern_policy_keys: bool,
    /// An identifier the client chose for this connection, for logs.
    pub client_conn_id: u64,
    /// Whether the client wants snapshot checksums
    /// ([`Checksum`](super::Checksum) messages): upstream's newest
    /// generation (DESIGN.md §1b).
    pub supports_checksum: bool,
    /// The native-format protocol version the client speaks; 0 from a gob
    /// peer, which has no such field (see
    /// [`NATIVE_PROTOCOL_VERSION`](crate::codec::native::NATIVE_PROTOCOL_VERSION)).
    pub protocol_version: u32,
}

/// The server's answer to [`ClientHello`] (upstream's `MsgServerHello`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// The server's software version.
    pub version: String,
    /// The syncer the server will run for this client (an echo of the
    /// request; a v3.2.5 server sends none, which means Felix).
    pub syncer_type: SyncerType,
    /// Whether the server sends node resource updates; the newest upstream
    /// client refuses servers that do not.
    pub supports_node_resource_updates: bool,
    /// An identifier the server chose for this connection, for logs.
    pub server_conn_id: u64,
    /// Whether the server will send snapshot checksums: true only when the
    /// client asked for them.
    pub supports_checksum: bool,
    /// The native-format protocol version the server speaks; 0 from a gob
    /// peer.
    pub protocol_version: u32,
}
