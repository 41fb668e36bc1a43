//! Liveness: the server's `Ping` and the client's `Pong`.

use super::Timestamp;

/// A liveness probe, server to client (upstream's `MsgPing`). The client
/// must answer at once with a [`Pong`] echoing `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ping {
    /// When the server sent the ping, by the server's clock.
    pub timestamp: Timestamp,
}

/// The answer to a [`Ping`], client to server (upstream's `MsgPong`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pong {
    /// The [`Ping::timestamp`] being answered, echoed unchanged.
    pub ping_timestamp: Timestamp,
    /// When the client answered, by the client's clock ([`Timestamp::ZERO`]
    /// from upstream clients, which leave it unset).
    pub pong_timestamp: Timestamp,
}
