//! What a server driver reports, in one shape for every driver: running
//! totals ([`ServerStats`]) and one [`ConnectionReport`] per connection as
//! it ends. The machines keep the per-connection figures; drivers add what
//! only they know (addresses, sockets, durations) and keep the totals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::ServerConnection;
use crate::codec::WireFormat;
use crate::message::{ClientHello, CompressionAlgorithm};

/// Counts of what a server driver has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted (TCP).
    pub accepted: u64,
    /// Failed `accept` calls (out of file descriptors, say).
    pub accept_errors: u64,
    /// Connections refused during the TLS handshake or identity check.
    pub tls_rejected: u64,
    /// Connections shed to get back under the connection limit.
    pub shed: u64,
    /// Connections that completed the protocol handshake.
    pub handshakes: u64,
    /// Pongs received, across all connections.
    pub pongs: u64,
    /// Connections that ended, for any reason.
    pub closed: u64,
    /// Of those, the ones that ended because something went wrong (see
    /// [`CloseReason::is_error`](crate::CloseReason::is_error); every I/O
    /// error counts).
    pub closed_with_error: u64,
    /// Bytes read from clients.
    pub bytes_read: u64,
    /// Bytes written to clients.
    pub bytes_written: u64,
    /// Connections that ended, by reason.
    pub close_reasons: CloseReasons,
}

impl ServerStats {
    /// Counts a connection that ended as `report` says.
    pub fn record_close(&mut self, report: &ConnectionReport) {
        self.closed += 1;
        if report.is_error {
            self.closed_with_error += 1;
        }
        self.close_reasons.record(report.reason.clone());
    }
}

/// Connections counted by why they ended (the `CloseReason`'s text, or the
/// I/O error's).
///
/// Reasons can quote the peer (its hello's strings, its certificate's
/// names), so this stays bounded whatever clients send: a reason is cut to
/// its first 200 characters (and marked with `…`), and once 63 distinct
/// reasons are counted, connections ending for any new one are counted
/// under [`OTHER`](Self::OTHER): at most 64 keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReasons(HashMap<String, u64>);

impl CloseReasons {
    /// The key counting connections that ended for reasons beyond the first
    /// 63 distinct ones.
    pub const OTHER: &'static str = "(other reasons)";
    /// The longest reason kept as a key, in characters.
    const MAX_CHARS: usize = 200;
    /// The most keys, the catch-all one included.
    const MAX_KEYS: usize = 64;

    /// Counts one connection that ended for `reason`.
    pub fn record(&mut self, mut reason: String) {
        if let Some((cut, _)) = reason.char_indices().nth(Self::MAX_CHARS) {
            reason.truncate(cut);
            reason.push('…');
        }
        // One place is kept for the catch-all, so that it can always be added.
        if !self.0.contains_key(&reason) && self.0.len() >= Self::MAX_KEYS - 1 {
            reason = Self::OTHER.to_owned();
        }
        *self.0.entry(reason).or_default() += 1;
    }

    /// How many connections ended for `reason` (as counted: cut, or under
    /// [`OTHER`](Self::OTHER)).
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// Every reason and its count.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0
            .iter()
            .map(|(reason, count)| (reason.as_str(), *count))
    }

    /// How many distinct reasons are counted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one connection did, reported by a driver when it ends: for logs,
/// metrics and tests that need more than the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionReport {
    /// The connection's id (sent to the client as `ServerConnID`).
    pub id: u64,
    /// The client's address, when the driver knows it.
    pub peer: Option<SocketAddr>,
    /// The client's hello, if the handshake got that far.
    pub hello: Option<ClientHello>,
    /// The wire format the client spoke, once known.
    pub wire_format: Option<WireFormat>,
    /// The compression negotiated, if any.
    pub compression: Option<CompressionAlgorithm>,
    /// Why it ended: the `CloseReason`'s text, or the driver's (an I/O
    /// error, a refused TLS handshake). A graceful stop the client saw
    /// through ends with "closed locally".
    pub reason: String,
    /// Whether it ended because something went wrong.
    pub is_error: bool,
    /// How long it lasted, when the driver measured it.
    pub duration: Duration,
    /// Pings sent (they start once the snapshot is out).
    pub pings_sent: u64,
    /// Pongs received.
    pub pongs_received: u64,
    /// Pings still unanswered when it ended.
    pub unanswered_pings: usize,
    /// Bytes the machine handed out to be written.
    pub bytes_sent: u64,
}

impl ConnectionReport {
    /// A report for a connection that ended before it had a machine (a
    /// refused TLS handshake, say): an error, with nothing else known.
    pub fn early(id: u64, peer: Option<SocketAddr>, reason: impl Into<String>) -> Self {
        ConnectionReport {
            id,
            peer,
            hello: None,
            wire_format: None,
            compression: None,
            reason: reason.into(),
            is_error: true,
            duration: Duration::ZERO,
            pings_sent: 0,
            pongs_received: 0,
            unanswered_pings: 0,
            bytes_sent: 0,
        }
    }
}

impl ServerConnection {
    /// What this connection did, for its driver to report when it ends:
    /// the close reason once closed (else "closed", for a driver that gave
    /// up on it), the hello and negotiation, pings and bytes. The driver
    /// fills in the peer and duration, and replaces the reason when the
    /// socket failed first.
    pub fn report(&self, id: u64) -> ConnectionReport {
        let (reason, is_error) = match self.close_reason() {
            Some(reason) => (reason.to_string(), reason.is_error()),
            None => ("closed".to_owned(), false),
        };
        ConnectionReport {
            id,
            peer: None,
            hello: self.client_hello().cloned(),
            wire_format: self.wire_format(),
            compression: self.compression().cloned(),
            reason,
            is_error,
            duration: Duration::ZERO,
            pings_sent: self.pings_sent(),
            pongs_received: self.pongs_received(),
            unanswered_pings: self.unanswered_pings(),
            bytes_sent: self.bytes_sent(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let mut reasons = CloseReasons::default();
        // Two bytes a character: a cut by bytes could split one.
        reasons.record(format!("hello {}", "é".repeat(1 << 20)));
        let (reason, count) = reasons.iter().next().unwrap();
        assert_eq!(count, 1);
        assert_eq!(reason.chars().count(), CloseReasons::MAX_CHARS + 1);
        assert!(reason.starts_with("hello éé") && reason.ends_with("é…"));
    }

    #[test]
    fn reasons_beyond_the_limit_are_counted_together() {
        let mut reasons = CloseReasons::default();
        for round in 0..2 {
            for index in 0..100 {
                reasons.record(format!("reason {index}"));
            }
            assert_eq!(reasons.len(), CloseReasons::MAX_KEYS, "round {round}");
        }
        assert_eq!(reasons.iter().map(|(_, count)| count).sum::<u64>(), 200);
        assert_eq!(reasons.get("reason 0"), 2);
        assert_eq!(reasons.get("reason 62"), 2);
        assert_eq!(reasons.get(CloseReasons::OTHER), 2 * 37);
    }
}
