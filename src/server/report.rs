//! What a server driver reports, in one shape for every driver: running
//! totals ([`ServerStats`]) and one [`ConnectionReport`] per connection as
//! it ends. The machines keep the per-connection figures; drivers add what
//! only they know (addresses, sockets, durations) and keep the totals.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use super::{SendStats, ServerConnection};
use crate::codec::WireFormat;
use crate::message::{ClientHello, CompressionAlgorithm};
use crate::metrics::{Histogram, LATENCY_BOUNDS_NANOS, SNAPSHOT_BOUNDS_NANOS};

/// Counts of what a server driver has done since it started: what its
/// metrics are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Connections that ended, by the kind of reason
    /// ([`ConnectionReport::kind`]).
    pub closed_by_kind: BTreeMap<&'static str, u64>,
    /// Connections that ended on a protocol error, by its kind
    /// ([`ProtocolError::label`](crate::error::ProtocolError::label)).
    pub protocol_errors: BTreeMap<&'static str, u64>,
    /// Connections that ended on undecodable input, by its kind
    /// ([`DecodeError::label`](crate::error::DecodeError::label)).
    pub decode_errors: BTreeMap<&'static str, u64>,
    /// Connections past the handshake and not yet ended (a current value,
    /// not a total).
    pub streaming: u64,
    /// What the connections sent: messages, updates per `KVs` message,
    /// checksums.
    pub sent: SendStats,
    /// Bytes written, by the connection's wire format and whether it
    /// negotiated compression: see [`bytes_written_as`](Self::bytes_written_as).
    pub bytes_written_by_stream: [[u64; 2]; 2],
    /// Ping round trips, in nanoseconds.
    pub ping_round_trips: Histogram,
    /// Time from a connection's handshake to the end of its snapshot, in
    /// nanoseconds.
    pub snapshot_send_times: Histogram,
}

impl Default for ServerStats {
    fn default() -> ServerStats {
        ServerStats {
            accepted: 0,
            accept_errors: 0,
            tls_rejected: 0,
            shed: 0,
            handshakes: 0,
            pongs: 0,
            closed: 0,
            closed_with_error: 0,
            bytes_read: 0,
            bytes_written: 0,
            close_reasons: CloseReasons::default(),
            closed_by_kind: BTreeMap::new(),
            protocol_errors: BTreeMap::new(),
            decode_errors: BTreeMap::new(),
            streaming: 0,
            sent: SendStats::default(),
            bytes_written_by_stream: [[0; 2]; 2],
            ping_round_trips: Histogram::new(LATENCY_BOUNDS_NANOS),
            snapshot_send_times: Histogram::new(SNAPSHOT_BOUNDS_NANOS),
        }
    }
}

impl ServerStats {
    /// Counts a connection that ended as `report` says.
    pub fn record_close(&mut self, report: &ConnectionReport) {
        if report.connected {
            self.streaming = self.streaming.saturating_sub(1);
        }
        self.closed += 1;
        if report.is_error {
            self.closed_with_error += 1;
        }
        self.close_reasons.record(report.reason.clone());
        *self.closed_by_kind.entry(report.kind).or_default() += 1;
        if let Some(kind) = report.protocol_error {
            *self.protocol_errors.entry(kind).or_default() += 1;
        }
        if let Some(kind) = report.decode_error {
            *self.decode_errors.entry(kind).or_default() += 1;
        }
    }

    /// Counts a connection whose handshake completed
    /// ([`ServerEvent::Connected`](super::ServerEvent::Connected)).
    pub fn record_connected(&mut self) {
        self.handshakes += 1;
        self.streaming += 1;
    }

    /// Counts a pong ([`ServerEvent::Pong`](super::ServerEvent::Pong)) and
    /// its round trip.
    pub fn record_pong(&mut self, round_trip: Option<Duration>) {
        self.pongs += 1;
        if let Some(round_trip) = round_trip {
            self.ping_round_trips.observe_duration(round_trip);
        }
    }

    /// Counts a snapshot handed out
    /// ([`ServerEvent::SnapshotSent`](super::ServerEvent::SnapshotSent)).
    pub fn record_snapshot_sent(&mut self, took: Duration) {
        self.snapshot_send_times.observe_duration(took);
    }

    /// Adds what a connection sent
    /// ([`ServerConnection::take_send_stats`](super::ServerConnection::take_send_stats)).
    pub fn record_sent(&mut self, sent: &SendStats) {
        self.sent.merge(sent);
    }

    /// Bytes written to connections speaking `format`, with or without
    /// negotiated compression.
    pub fn bytes_written_as(&self, format: WireFormat, compressed: bool) -> u64 {
        self.bytes_written_by_stream[stream_index(format)][usize::from(compressed)]
    }

    /// Counts `bytes` written to a connection speaking `format` (unknown
    /// until its first byte: counted as native), with or without negotiated
    /// compression.
    pub fn record_written(&mut self, format: Option<WireFormat>, compressed: bool, bytes: u64) {
        let format = format.unwrap_or(WireFormat::Native);
        self.bytes_written += bytes;
        self.bytes_written_by_stream[stream_index(format)][usize::from(compressed)] += bytes;
    }
}

fn stream_index(format: WireFormat) -> usize {
    match format {
        WireFormat::Native => 0,
        WireFormat::Gob => 1,
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
    /// The client's hello, if it arrived (a refused client's too).
    pub hello: Option<ClientHello>,
    /// Whether the handshake completed (the hello was accepted).
    pub connected: bool,
    /// The wire format the client spoke, once known.
    pub wire_format: Option<WireFormat>,
    /// The compression negotiated, if any.
    pub compression: Option<CompressionAlgorithm>,
    /// Why it ended: the `CloseReason`'s text, or the driver's (an I/O
    /// error, a refused TLS handshake). A graceful stop the client saw
    /// through ends with "closed locally".
    pub reason: String,
    /// The kind of reason, for metrics labels: the
    /// [`CloseReason::label`](crate::CloseReason::label), or the driver's
    /// (`io_error`, `tls_rejected`, `shed`, …).
    pub kind: &'static str,
    /// For a protocol error, its kind.
    pub protocol_error: Option<&'static str>,
    /// For undecodable input, its kind.
    pub decode_error: Option<&'static str>,
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
    /// Messages handed out, of every kind.
    pub messages_sent: u64,
    /// Updates handed out in `KVs` messages.
    pub kvs_sent: u64,
}

impl ConnectionReport {
    /// A report for a connection that ended before it had a machine (a
    /// refused TLS handshake, say): an error of `kind`, with nothing else
    /// known.
    pub fn early(
        id: u64,
        peer: Option<SocketAddr>,
        kind: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        ConnectionReport {
            id,
            peer,
            hello: None,
            connected: false,
            wire_format: None,
            compression: None,
            reason: reason.into(),
            kind,
            protocol_error: None,
            decode_error: None,
            is_error: true,
            duration: Duration::ZERO,
            pings_sent: 0,
            pongs_received: 0,
            unanswered_pings: 0,
            bytes_sent: 0,
            messages_sent: 0,
            kvs_sent: 0,
        }
    }

    /// Replaces the reason with an I/O error's (the socket failed before
    /// the machine ended): "I/O error: …", kind `io_error`.
    pub fn set_io_error(&mut self, error: &std::io::Error) {
        self.reason = format!("I/O error: {error}");
        self.kind = "io_error";
        self.protocol_error = None;
        self.decode_error = None;
        self.is_error = true;
    }
}

impl ServerConnection {
    /// What this connection did, for its driver to report when it ends:
    /// the close reason once closed (else "closed", for a driver that gave
    /// up on it), the hello and negotiation, pings and bytes. The driver
    /// fills in the peer and duration, and replaces the reason when the
    /// socket failed first.
    pub fn report(&self, id: u64) -> ConnectionReport {
        let (reason, is_error, kind, (protocol_error, decode_error)) = match self.close_reason() {
            Some(reason) => (
                reason.to_string(),
                reason.is_error(),
                reason.label(),
                reason.error_labels(),
            ),
            None => ("closed".to_owned(), false, "closed", (None, None)),
        };
        ConnectionReport {
            id,
            peer: None,
            hello: self.client_hello().cloned(),
            connected: self.is_connected(),
            wire_format: self.wire_format(),
            compression: self.compression().cloned(),
            reason,
            kind,
            protocol_error,
            decode_error,
            is_error,
            duration: Duration::ZERO,
            pings_sent: self.pings_sent(),
            pongs_received: self.pongs_received(),
            unanswered_pings: self.unanswered_pings(),
            bytes_sent: self.bytes_sent(),
            messages_sent: self.send_stats().messages,
            kvs_sent: self.send_stats().kvs,
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
