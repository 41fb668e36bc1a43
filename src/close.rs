//! Why a connection ended: the payload of the final event of every machine.

use std::time::Duration;

use crate::error::{ProtocolError, UsageError};

/// Which liveness deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The server did not receive a complete `ClientHello` in time.
    Handshake,
    /// The server's oldest unanswered ping went unanswered for too long.
    Pong,
    /// The client received nothing at all for too long.
    Read,
    /// The server waited too long for the `Ack` of a decoder restart.
    Ack,
}

/// Why a connection closed. Carried by the final event a machine emits;
/// after it the machine emits and transmits nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The caller closed the connection.
    #[error("closed locally")]
    Local,
    /// The peer ended the stream cleanly, between messages.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The peer broke the protocol (including sending undecodable bytes).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A liveness deadline expired.
    #[error("{kind:?} timeout after {after:?}")]
    TimedOut {
        /// Which deadline.
        kind: TimeoutKind,
        /// The configured timeout that expired.
        after: Duration,
    },
    /// The server's queue for a client that does not read passed its limit.
    #[error("client not reading: {queued} bytes queued, limit {limit}")]
    SlowReader {
        /// Bytes waiting to be sent.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A client following a snapshot cache fell as far behind the
    /// datastore as the cache allows: a change waited `limit` for it.
    #[error("client fell {limit:?} or more behind the datastore")]
    FellBehind {
        /// The cache's fall-behind limit.
        limit: Duration,
    },
    /// The machine could not send what the caller gave it (for example an
    /// update larger than the frame limit).
    #[error(transparent)]
    Usage(#[from] UsageError),
}

impl CloseReason {
    /// Whether the connection ended because something went wrong (anything
    /// but a local close or a clean close by the peer).
    pub fn is_error(&self) -> bool {
        !matches!(self, CloseReason::Local | CloseReason::PeerClosed)
    }

    /// A short, stable name for why the connection ended (`snake_case`),
    /// for metrics labels and logs: `local`, `peer_closed`, `protocol`
    /// (see [`ProtocolError::label`] for which), `handshake_timeout`,
    /// `pong_timeout`, `read_timeout`, `ack_timeout`, `slow_reader`,
    /// `fell_behind`, `usage`.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Local => "local",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::TimedOut { kind, .. } => match kind {
                TimeoutKind::Handshake => "handshake_timeout",
                TimeoutKind::Pong => "pong_timeout",
                TimeoutKind::Read => "read_timeout",
                TimeoutKind::Ack => "ack_timeout",
            },
            CloseReason::SlowReader { .. } => "slow_reader",
            CloseReason::FellBehind { .. } => "fell_behind",
            CloseReason::Usage(_) => "usage",
        }
    }

    /// For a protocol error, its [`ProtocolError::label`]; for undecodable
    /// input, also the [`DecodeError::label`](crate::error::DecodeError::label).
    pub fn error_labels(&self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            CloseReason::Protocol(ProtocolError::Decode(error)) => {
                (Some("decode"), Some(error.label()))
            }
            CloseReason::Protocol(error) => (Some(error.label()), None),
            _ => (None, None),
        }
    }
}
