//! Time as the caller passes it in: the core never reads a clock.

use std::time::Instant;

use crate::message::Timestamp;

/// The current time, read by the caller from its own clocks and passed to
/// every `handle_*` call of a connection.
///
/// `instant` drives deadlines (compare with what `poll_timeout` returns);
/// `wall` is the wall-clock time the protocol puts in pings and pongs.
/// Simulators and tests can advance both freely; the machines only require
/// that `instant` never goes backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
    pub instant: Instant,
    /// Wall-clock time, for the timestamps sent on the wire.
    pub wall: Timestamp,
}

impl Now {
    /// Pairs a monotonic instant with the wall-clock time read at (about) the
    /// same moment.
    pub fn new(instant: Instant, wall: Timestamp) -> Now {
        Now { instant, wall }
    }

    /// Pairs a monotonic instant with a `SystemTime` the caller read (the
    /// core reads no clock): what a driver on real clocks passes. A system
    /// clock outside Go's time range cannot happen on a working machine; if
    /// it did, pings would carry the zero time, which a pong still echoes,
    /// so the connection keeps working.
    pub fn from_std(instant: Instant, wall: std::time::SystemTime) -> Now {
        Now {
            instant,
            wall: Timestamp::from_system_time(wall).unwrap_or(Timestamp::ZERO),
        }
    }
}
