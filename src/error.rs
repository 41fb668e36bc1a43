//! The crate's errors, split by who is at fault (as rustls does):
//!
//! - [`DecodeError`]: the bytes a peer sent are not a valid stream.
//! - [`ProtocolError`]: the bytes were valid, but the peer broke the
//!   protocol (wrong message at the wrong time, refused negotiation, …).
//! - [`UsageError`]: the caller asked for something this crate cannot do
//!   (a message too large for the configured limit, an invalid config, …).
//!
//! All are `#[non_exhaustive]`: new failure modes may be added.

use crate::message::{MessageKind, SyncerType, TimestampError};

/// The bytes received are not a valid message stream.
///
/// Once a decoder has returned an error the stream is out of step and the
/// decoder keeps returning [`DecodeError::Failed`]: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream does not start with the native-format preamble (is the
    /// peer speaking gob, TLS, or something else?).
    #[error("bad preamble: expected {expected:02x?}, got {found:02x?}")]
    BadPreamble {
        /// The preamble this decoder expects.
        expected: &'static [u8],
        /// The bytes received in its place (as far as they were read).
        found: Vec<u8>,
    },
    /// The preamble names a framing version this crate does not implement.
    #[error("unsupported native framing version {0}")]
    UnsupportedFramingVersion(u8),
    /// A frame's length prefix is not a valid varint of at most 5 bytes.
    /// (A valid prefix over the frame limit is [`FrameTooLarge`](Self::FrameTooLarge).)
    #[error("malformed frame length prefix")]
    MalformedLength,
    /// A frame is longer than the configured maximum; rejected from its
    /// length prefix, before anything was buffered for it.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// The length the prefix announced.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended mid-frame with {buffered} bytes of it buffered")]
    Truncated {
        /// How many bytes of the unfinished frame (or its header) had arrived.
        buffered: usize,
    },
    /// A frame is empty: it has no message tag.
    #[error("empty frame")]
    EmptyFrame,
    /// A frame's message tag is not a valid varint.
    #[error("malformed message tag")]
    MalformedTag,
    /// A frame's message tag is not one this crate knows. Fatal, as
    /// upstream: a sender must not send message types its peer did not
    /// advertise.
    #[error("unknown message tag {0}")]
    UnknownMessageTag(u64),
    /// A message's body does not parse.
    #[error("malformed {message} body: {reason}")]
    MalformedBody {
        /// Which message was being decoded.
        message: MessageKind,
        /// What the body parser reported.
        reason: String,
    },
    /// A `KVs` message claims more updates than any sender batches
    /// ([`MAX_UPDATES_PER_MESSAGE`](crate::codec::MAX_UPDATES_PER_MESSAGE)):
    /// refused before decoding them, as each decoded update takes far more
    /// memory than its smallest encoding.
    #[error("a KVs message of {count} updates, over the limit of {max}")]
    TooManyUpdates {
        /// The count the message claims.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A message's body parsed but bytes were left over in its frame.
    #[error("{count} unexpected trailing bytes after {message}")]
    TrailingBytes {
        /// Which message was decoded.
        message: MessageKind,
        /// How many bytes were left over.
        count: usize,
    },
    /// A sync status outside upstream's 0..=2.
    #[error("invalid sync status {0}")]
    InvalidSyncStatus(u8),
    /// An update type outside upstream's 0..=3.
    #[error("invalid update type {0}")]
    InvalidUpdateType(u8),
    /// A timestamp that does not represent a valid Go `time.Time`.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(#[from] TimestampError),
    /// A message that never travels in the direction this decoder reads.
    #[error("{0} is never sent in this direction")]
    WrongDirection(MessageKind),
    /// The gob stream is malformed.
    #[error("gob: {0}")]
    Gob(#[from] crate::codec::gob::GobError),
    /// The snappy framing of a compressed stream is malformed.
    #[error("snappy: {0}")]
    Snappy(#[from] crate::codec::snappy::SnappyError),
    /// A decoder restart could not be applied (a stream decoder following
    /// restarts by itself).
    #[error("cannot restart the decoder: {0}")]
    Restart(Box<ProtocolError>),
    /// The decoder already failed on this stream; it cannot resynchronise.
    #[error("decoder already failed on this stream")]
    Failed,
}

/// The peer sent well-formed messages but broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The peer's bytes did not decode.
    #[error("undecodable input from peer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a message that is not allowed at this point.
    #[error("unexpected {got} while {expected}")]
    UnexpectedMessage {
        /// What the receiver was waiting for, in words.
        expected: &'static str,
        /// What arrived.
        got: MessageKind,
    },
    /// The server answered with a different syncer type than requested.
    #[error("asked for the {requested} syncer, server answered {answered}")]
    SyncerTypeMismatch {
        /// The syncer the client asked for.
        requested: SyncerType,
        /// The syncer the server's hello named.
        answered: SyncerType,
    },
    /// The client asked for a syncer this server does not serve.
    #[error("syncer type {0} is not served here")]
    UnsupportedSyncerType(SyncerType),
    /// The peer lacks a feature this side's policy requires.
    #[error("peer does not support required feature: {0}")]
    MissingFeature(&'static str),
    /// Compressed data followed a decoder restart inside the same chunk, so
    /// it belongs to no stream.
    #[error("data after a decoder restart in the same compressed chunk")]
    DataAfterRestart,
    /// The peer asked for a compression algorithm this side does not offer.
    #[error("unsupported compression algorithm {0:?}")]
    UnsupportedCompression(String),
}

/// The caller asked for something this crate cannot do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A message carries more of something than any peer of this crate
    /// accepts ([`MAX_UPDATES_PER_MESSAGE`](crate::codec::MAX_UPDATES_PER_MESSAGE)
    /// updates, or 16 compression algorithms in a hello), so it is refused
    /// rather than sent to be refused.
    #[error("{message} carries {count} {what}, over the limit of {max} a peer accepts")]
    OverPeerLimit {
        /// The message being encoded.
        message: MessageKind,
        /// What there is too much of.
        what: &'static str,
        /// How many it carries.
        count: usize,
        /// The most a peer accepts.
        max: usize,
    },
    /// An encoded message would exceed the configured frame limit.
    #[error("encoded {message} of {len} bytes exceeds the {max}-byte frame limit")]
    FrameTooLarge {
        /// The message being encoded.
        message: MessageKind,
        /// Its encoded size.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// A server connection was given a second snapshot.
    #[error("the snapshot was already given to this connection")]
    SnapshotAlreadySent,
    /// A server connection was given updates before its snapshot.
    #[error("updates must follow the snapshot")]
    SnapshotNotSent,
    /// A server connection following a snapshot cache was handed data
    /// directly; its data comes from the cache.
    #[error("this connection follows a snapshot cache; apply changes to the cache")]
    FollowingCache,
    /// The connection is stopping (after
    /// [`ServerConnection::stop_sending`](crate::server::ServerConnection::stop_sending)):
    /// nothing more can be given to it.
    #[error("connection is stopping; nothing more is sent")]
    Stopping,
    /// The connection is closed; nothing more can be sent or received.
    #[error("connection is closed")]
    Closed,
}

impl DecodeError {
    /// A short, stable name for the kind of error (`snake_case`), for
    /// metrics labels and logs: the detail is in the error's text.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::BadPreamble { .. } => "bad_preamble",
            DecodeError::UnsupportedFramingVersion(_) => "unsupported_framing_version",
            DecodeError::MalformedLength => "malformed_length",
            DecodeError::FrameTooLarge { .. } => "frame_too_large",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::EmptyFrame => "empty_frame",
            DecodeError::MalformedTag => "malformed_tag",
            DecodeError::UnknownMessageTag(_) => "unknown_message_tag",
            DecodeError::MalformedBody { .. } => "malformed_body",
            DecodeError::TooManyUpdates { .. } => "too_many_updates",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::InvalidSyncStatus(_) => "invalid_sync_status",
            DecodeError::InvalidUpdateType(_) => "invalid_update_type",
            DecodeError::InvalidTimestamp(_) => "invalid_timestamp",
            DecodeError::WrongDirection(_) => "wrong_direction",
            DecodeError::Gob(_) => "gob",
            DecodeError::Snappy(_) => "snappy",
            DecodeError::Restart(_) => "restart",
            DecodeError::Failed => "failed",
        }
    }
}

impl ProtocolError {
    /// A short, stable name for the kind of error (`snake_case`), for
    /// metrics labels and logs; an undecodable input is `decode`.
    pub fn label(&self) -> &'static str {
        match self {
            ProtocolError::Decode(_) => "decode",
            ProtocolError::UnexpectedMessage { .. } => "unexpected_message",
            ProtocolError::SyncerTypeMismatch { .. } => "syncer_type_mismatch",
            ProtocolError::UnsupportedSyncerType(_) => "unsupported_syncer_type",
            ProtocolError::MissingFeature(_) => "missing_feature",
            ProtocolError::DataAfterRestart => "data_after_restart",
            ProtocolError::UnsupportedCompression(_) => "unsupported_compression",
        }
    }
}
