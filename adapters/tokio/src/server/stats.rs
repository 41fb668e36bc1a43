//! What a server reports: running totals ([`ServerStats`]) and one
//! [`ConnectionReport`] per connection as it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use syncproto::codec::WireFormat;
use syncproto::message::{ClientHello, CompressionAlgorithm};

/// Counts of what a server has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted (TCP).
    pub accepted: u64,
    /// Connections refused during the TLS handshake or identity check.
    pub tls_rejected: u64,
    /// Connections shed to get back under the connection limit.
    pub shed: u64,
    /// Connections that completed the protocol handshake.
    pub handshakes: u64,
    /// Pings answered, across all connections.
    pub pongs: u64,
    /// Connections that ended, by reason (the `CloseReason`'s text, or the
    /// I/O error's).
    ///
    /// Reasons can quote the peer (its hello's strings, its certificate's
    /// names), so the map is bounded whatever clients send: a reason is cut
    /// to its first 200 characters (and marked with `…`), and once 63
    /// distinct reasons are counted, connections ending for any new one are
    /// counted under [`OTHER_CLOSE_REASONS`](Self::OTHER_CLOSE_REASONS):
    /// at most 64 keys.
    pub closed: HashMap<String, u64>,
}

impl ServerStats {
    /// The key in [`closed`](Self::closed) counting connections that ended
    /// for reasons beyond the first 63 distinct ones.
    pub const OTHER_CLOSE_REASONS: &'static str = "(other reasons)";
}

/// The longest close reason kept as a key, in characters.
const MAX_CLOSE_REASON_CHARS: usize = 200;
/// The most keys in [`ServerStats::closed`], the catch-all one included.
const MAX_CLOSE_REASONS: usize = 64;

/// Counts a connection that ended for `reason`, within the bounds
/// [`ServerStats::closed`] documents.
pub(super) fn count_close(closed: &mut HashMap<String, u64>, mut reason: String) {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_CLOSE_REASON_CHARS) {
        reason.truncate(cut);
        reason.push('…');
    }
    // One place is kept for the catch-all, so that it can always be added.
    if !closed.contains_key(&reason) && closed.len() >= MAX_CLOSE_REASONS - 1 {
        reason = ServerStats::OTHER_CLOSE_REASONS.to_owned();
    }
    *closed.entry(reason).or_default() += 1;
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) tls_rejected: AtomicU64,
    pub(super) shed: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) pongs: AtomicU64,
    pub(super) closed: Mutex<HashMap<String, u64>>,
}

/// What one connection did, handed to
/// [`ServerOptions::on_connection_closed`](super::ServerOptions::on_connection_closed)
/// when it ends: for logs, metrics and tests that need more than the
/// totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReport {
    /// The connection's id (also sent to the client as `ServerConnID`).
    pub id: u64,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The client's hello, if the handshake got that far.
    pub hello: Option<ClientHello>,
    /// The wire format the client spoke, once known.
    pub wire_format: Option<WireFormat>,
    /// The compression negotiated, if any.
    pub compression: Option<CompressionAlgorithm>,
    /// Why it ended (the `CloseReason`'s text, or the I/O error's). A
    /// graceful shutdown that the client saw through ends with "closed
    /// locally".
    pub reason: String,
    /// How long it lasted.
    pub duration: Duration,
    /// Pings sent (they start once the snapshot is out).
    pub pings_sent: u64,
    /// Pongs received.
    pub pongs_received: u64,
    /// Pings still unanswered when it ended.
    pub unanswered_pings: usize,
}

impl ConnectionReport {
    /// A report for a connection that ended before the protocol started
    /// (a refused TLS handshake, say).
    pub(super) fn early(
        id: u64,
        peer: Option<SocketAddr>,
        reason: String,
        duration: Duration,
    ) -> Self {
        ConnectionReport {
            id,
            peer,
            hello: None,
            wire_format: None,
            compression: None,
            reason,
            duration,
            pings_sent: 0,
            pongs_received: 0,
            unanswered_pings: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let mut closed = HashMap::new();
        // Two bytes a character: a cut by bytes could split one.
        count_close(&mut closed, format!("hello {}", "é".repeat(1 << 20)));
        let (reason, count) = closed.iter().next().unwrap();
        assert_eq!(*count, 1);
        assert_eq!(reason.chars().count(), MAX_CLOSE_REASON_CHARS + 1);
        assert!(reason.starts_with("hello éé") && reason.ends_with("é…"));
    }

    #[test]
    fn close_reasons_beyond_the_limit_are_counted_together() {
        let mut closed = HashMap::new();
        for round in 0..2 {
            for index in 0..100 {
                count_close(&mut closed, format!("reason {index}"));
            }
            assert_eq!(closed.len(), MAX_CLOSE_REASONS, "round {round}");
        }
        assert_eq!(closed.values().sum::<u64>(), 200);
        assert_eq!(closed["reason 0"], 2);
        assert_eq!(closed["reason 62"], 2);
        assert_eq!(closed[ServerStats::OTHER_CLOSE_REASONS], 2 * 37);
    }
}
