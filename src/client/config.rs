//! How a client connection presents itself and what it tolerates.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::{DEFAULT_MAX_SERVER_MESSAGE_LEN, WireFormat};
use crate::key::{DefaultKeyParser, KeyParser};
use crate::message::{CompressionAlgorithm, SyncerType};

/// Upstream Felix's read timeout: a client that receives no complete
/// message (not even a ping) for this long gives the connection up.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a [`ClientConnection`](super::ClientConnection) needs to know
/// before it starts. `ClientConfig::default()` behaves like a modern
/// upstream Felix (syncer `felix`, modern policy keys, decoder restart with
/// snappy, upstream's key grammar), speaking the native format.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent as `ClientHello.Hostname`.
    pub hostname: String,
    /// Sent as `ClientHello.Info`.
    pub info: String,
    /// Sent as `ClientHello.Version`.
    pub version: String,
    /// The syncer to ask for; the server must echo it.
    pub syncer_type: SyncerType,
    /// The wire format to speak.
    pub wire_format: WireFormat,
    /// Advertise that the decoder can be restarted mid-stream.
    pub supports_decoder_restart: bool,
    /// Compression algorithms to offer, most preferred first.
    pub compression: Vec<CompressionAlgorithm>,
    /// Advertise support for modern policy keys (the newest upstream server
    /// refuses clients without it).
    pub supports_modern_policy_keys: bool,
    /// Upgrade legacy policy keys (`/calico/v1/policy/tier/<tier>/policy/<name>`,
    /// sent by servers before upstream's key change) to modern ones, moving
    /// the tier into the value, before delivering them, as upstream's client
    /// does ([`SerializedUpdate::upgrade_legacy_policy_key`](crate::message::SerializedUpdate::upgrade_legacy_policy_key)).
    /// Off by default, so that updates are delivered as the server sent
    /// them (what a relay forwarding them needs).
    pub upgrade_legacy_policy_keys: bool,
    /// Ask for snapshot checksums and check each against the state received
    /// (upstream's newest generation, DESIGN.md §1b): each comparison is
    /// reported as a [`ClientEvent::Checksum`](super::ClientEvent::Checksum).
    /// `None` does not ask. While a server that agreed to send checksums is
    /// connected, the client keeps about 32 bytes per live key (a hash of
    /// the key and its digest) and hashes each update it receives (see
    /// BENCHMARKS.md for the cost); otherwise nothing.
    pub checksums: Option<ChecksumCheck>,
    /// Refuse servers that do not send node resource updates (the newest
    /// upstream client does; a v3.2.5 server never does, so off by default).
    pub require_node_resource_updates: bool,
    /// Sent as `ClientHello.ClientConnID`, to correlate logs on both sides.
    pub connection_id: u64,
    /// Give the connection up after this long without receiving a complete
    /// message (upstream: per message, from the end of the last one).
    pub read_timeout: Duration,
    /// The largest message accepted from the server.
    pub max_message_len: usize,
    /// Checks each update's key ([`KeyParser::validate`]); an update whose
    /// key it rejects is dropped and reported with a `Dropped` event, as
    /// upstream clients do (that is how mixed-version clusters stay up).
    /// `None` delivers every key unchecked. The default knows upstream's key
    /// grammar and allocates nothing for a key it accepts.
    pub key_parser: Option<Arc<dyn KeyParser>>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            hostname: String::new(),
            info: "syncproto".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            syncer_type: SyncerType::Felix,
            wire_format: WireFormat::Native,
            supports_decoder_restart: true,
            compression: vec![CompressionAlgorithm::Snappy],
            supports_modern_policy_keys: true,
            upgrade_legacy_policy_keys: false,
            checksums: Some(ChecksumCheck::default()),
            require_node_resource_updates: false,
            connection_id: 0,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_message_len: DEFAULT_MAX_SERVER_MESSAGE_LEN,
            key_parser: Some(Arc::new(DefaultKeyParser)),
        }
    }
}

/// How a client compares a server's snapshot checksum with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCheck {
    /// Compare only the entry counts, as upstream does against a peer of
    /// another version, which may serialise values differently. Off by
    /// default: this client checks the bytes as it received them, so a full
    /// comparison holds across versions.
    pub count_only: bool,
}
