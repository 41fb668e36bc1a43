//! How a server connection negotiates and paces a client.

use std::time::Duration;

use crate::codec::{DEFAULT_MAX_CLIENT_MESSAGE_LEN, DEFAULT_MAX_SERVER_MESSAGE_LEN, WireFormat};
use crate::error::UsageError;
use crate::message::{CompressionAlgorithm, SyncerType};

/// Upstream's handshake timeout: how long a client has to send its hello.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream's ping interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream's pong timeout: how long a ping may stay unanswered.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(60);
/// Upstream's number of KVs per uncompressed snapshot message.
pub const DEFAULT_SNAPSHOT_BATCH_SIZE: usize = 100;
/// Upstream's number of KVs per message in a compressed snapshot.
pub const DEFAULT_COMPRESSED_SNAPSHOT_BATCH_SIZE: usize = 1000;
/// How long a client has to acknowledge a decoder restart.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How many bytes of updates may wait for a client that does not read.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 << 20;
/// Upstream's `ChecksumInterval`: the least time between two snapshot
/// checksums sent after changes.
pub const DEFAULT_CHECKSUM_INTERVAL: Duration = Duration::from_secs(30);

/// Everything a [`ServerConnection`](super::ServerConnection) needs to know
/// before a client connects. `ServerConfig::default()` uses upstream's
/// timings and serves every upstream syncer type in either wire format.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Sent as `ServerHello.Version`.
    pub version: String,
    /// The wire format to speak; `None` detects it from the client's first
    /// byte, so one listener serves gob and native clients.
    pub wire_format: Option<WireFormat>,
    /// The syncer types this server serves; a client asking for another is
    /// refused.
    pub syncer_types: Vec<SyncerType>,
    /// Refuse clients that lack modern policy key support, as the newest
    /// upstream server does (on by default): such a client drops every
    /// modern policy key (`/calico/v1/policy/<kind>/<namespace>/<name>`).
    /// The refusal closes the connection without a reply, as upstream's,
    /// with [`ProtocolError::MissingFeature`](crate::ProtocolError::MissingFeature)
    /// as the reason.
    ///
    /// Turn it off to serve older clients (v3.2.5's, say) from data that
    /// holds only legacy keys. Such a client is still never silently sent a
    /// key it would drop: if a modern policy key is about to reach it, its
    /// connection is closed with the same reason instead.
    pub require_modern_policy_keys: bool,
    /// Sent as `ServerHello.SupportsNodeResourceUpdates`.
    pub supports_node_resource_updates: bool,
    /// Compression algorithms this server may use, most preferred first.
    /// When the client supports decoder restarts and offers one of them,
    /// the snapshot and everything after it are compressed (upstream's
    /// compressed-snapshot handshake). Only snappy is implemented.
    pub compression: Vec<CompressionAlgorithm>,
    /// KVs per snapshot message when the snapshot is compressed.
    pub compressed_snapshot_batch_size: usize,
    /// How long a client has to acknowledge a decoder restart.
    pub ack_timeout: Duration,
    /// Sent as `ServerHello.ServerConnID`.
    pub connection_id: u64,
    /// How long a client has to complete its `ClientHello`.
    pub handshake_timeout: Duration,
    /// Mean time between pings.
    pub ping_interval: Duration,
    /// Each ping interval is drawn uniformly from `ping_interval ± ping_jitter`.
    pub ping_jitter: Duration,
    /// How long a ping may stay unanswered before the client is dropped.
    pub pong_timeout: Duration,
    /// Seeds the ping jitter, so that runs are reproducible.
    pub rng_seed: u64,
    /// KVs per uncompressed snapshot message, and per batch of live
    /// updates (upstream's snapshot cache batches its changes by 100); a
    /// lagging client gets waiting batches coalesced until a message holds
    /// at least this many.
    pub snapshot_batch_size: usize,
    /// The largest message accepted from the client.
    pub max_client_message_len: usize,
    /// The largest message sent to the client (what its decoder accepts).
    pub max_server_message_len: usize,
    /// Bytes of updates that may wait for a client that is not reading
    /// before it is disconnected.
    pub max_queued_bytes: usize,
    /// Snapshot checksums (upstream's newest generation, DESIGN.md §1b) for
    /// clients that ask for them: `Some(interval)` answers their hello
    /// with `supports_checksum` and sends one right after the in-sync that
    /// ends the initial sync, then at most once per `interval` after a
    /// batch of changes, each describing the state after what was just
    /// sent. A connection following a cache does this by itself; one given
    /// its data by hand sends what
    /// [`send_checksum`](super::ServerConnection::send_checksum) gives it.
    /// `None` never offers them.
    pub checksum_interval: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            wire_format: None,
            syncer_types: SyncerType::KNOWN.to_vec(),
            require_modern_policy_keys: true,
            supports_node_resource_updates: true,
            compression: vec![CompressionAlgorithm::Snappy],
            compressed_snapshot_batch_size: DEFAULT_COMPRESSED_SNAPSHOT_BATCH_SIZE,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            connection_id: 0,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_jitter: DEFAULT_PING_INTERVAL / 10,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            rng_seed: 0,
            snapshot_batch_size: DEFAULT_SNAPSHOT_BATCH_SIZE,
            max_client_message_len: DEFAULT_MAX_CLIENT_MESSAGE_LEN,
            max_server_message_len: DEFAULT_MAX_SERVER_MESSAGE_LEN,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            checksum_interval: Some(DEFAULT_CHECKSUM_INTERVAL),
        }
    }
}

impl ServerConfig {
    /// This template as the configuration of the connection numbered `id`:
    /// `connection_id` is `id` (what the client sees as `ServerConnID`),
    /// and `rng_seed` is the template's mixed with `id`, so that the
    /// connections' ping jitter is reproducible but not in lock step. What
    /// every driver gives each connection it accepts.
    pub fn for_connection(&self, id: u64) -> ServerConfig {
        let mut seed = crate::rng::SplitMix64::new(self.rng_seed ^ id);
        ServerConfig {
            connection_id: id,
            rng_seed: seed.next(),
            ..self.clone()
        }
    }

    /// Checks that connections with this configuration can follow a cache
    /// configured with `cache`: the cache batches messages for its
    /// `max_message_len`, which must not be above what this configuration
    /// sends. [`ServerConnection::follow`](super::ServerConnection::follow)
    /// checks it; drivers check it once, at start-up.
    pub fn check_cache(&self, cache: &crate::fanout::CacheConfig) -> Result<(), UsageError> {
        match cache.max_message_len > self.max_server_message_len {
            true => Err(UsageError::InvalidConfig(
                "the cache's max_message_len is above the connection's max_server_message_len",
            )),
            false => Ok(()),
        }
    }

    /// Checks that the values can work together
    /// ([`ServerConnection::new`](super::ServerConnection::new) does this
    /// too); drivers can check a template once, up front.
    pub fn validate(&self) -> Result<(), UsageError> {
        use crate::codec::MAX_UPDATES_PER_MESSAGE;
        use crate::error::UsageError::InvalidConfig;
        let checks = [
            (
                self.handshake_timeout.is_zero(),
                "handshake_timeout must be positive",
            ),
            (
                self.ping_interval.is_zero(),
                "ping_interval must be positive",
            ),
            (
                self.ping_jitter >= self.ping_interval,
                "ping_jitter must be below ping_interval",
            ),
            (
                self.pong_timeout <= self.ping_interval + self.ping_jitter,
                "pong_timeout must be longer than ping_interval + ping_jitter \
                 (or a client answering every ping would time out)",
            ),
            (
                self.snapshot_batch_size == 0,
                "snapshot_batch_size must be positive",
            ),
            (
                self.snapshot_batch_size > MAX_UPDATES_PER_MESSAGE,
                "snapshot_batch_size must be at most MAX_UPDATES_PER_MESSAGE (100 000)",
            ),
            (
                self.compressed_snapshot_batch_size > MAX_UPDATES_PER_MESSAGE,
                "compressed_snapshot_batch_size must be at most MAX_UPDATES_PER_MESSAGE (100 000)",
            ),
            (
                self.max_client_message_len == 0,
                "max_client_message_len must be positive",
            ),
            (
                self.max_server_message_len == 0,
                "max_server_message_len must be positive",
            ),
        ];
        match checks.iter().find(|(failed, _)| *failed) {
            Some((_, reason)) => Err(InvalidConfig(reason)),
            None => Ok(()),
        }
    }
}
