//! The server's log lines (through `tracing`; the application installs the
//! subscriber): one when a connection is accepted, one when it ends with
//! everything its report says, and warnings that would repeat for every
//! connection of a flood limited to a few per minute per kind.

use std::sync::Mutex;

use syncproto::codec::WireFormat;
use syncproto::message::{ClientHello, CompressionAlgorithm};
use syncproto::server::{Admit, ConnectionReport};
use tokio::time::Instant;

/// Logs a connection accepted (inside its span, which names its id and
/// peer, and after the handshake the client: [`handshake_done`]).
pub(super) fn accepted() {
    tracing::info!("connection accepted");
}

/// Records what the client's hello said and what was negotiated on the
/// connection's span (declared with these fields empty), so that every
/// line from then on names the client; then logs the handshake at `debug`.
/// Call once the machine reports the connection established.
pub(super) fn handshake_done(
    hello: &ClientHello,
    wire_format: WireFormat,
    compression: Option<&CompressionAlgorithm>,
) {
    let span = tracing::Span::current();
    span.record("hostname", hello.hostname.as_str());
    span.record("syncer", hello.syncer_type.as_str());
    span.record("client_version", hello.version.as_str());
    span.record("client_conn_id", hello.client_conn_id);
    span.record("wire", wire_format.as_str());
    span.record("compression", compression_name(compression));
    tracing::debug!("handshake done");
}

/// The compression as the logs name it (`none` without).
fn compression_name(algorithm: Option<&CompressionAlgorithm>) -> &str {
    algorithm.map_or("none", CompressionAlgorithm::as_str)
}

/// Logs a connection that ended: at `info` when it ended well, at `warn`
/// when something went wrong (limited per kind of reason by `limiter`;
/// beyond the limit at `debug`, and counted in a later summary).
pub(super) fn closed(report: &ConnectionReport, limiter: &WarningLimiter) {
    let hello = report.hello.as_ref();
    let peer = report.peer.map(|peer| peer.to_string()).unwrap_or_default();
    let hostname = hello.map_or("", |hello| hello.hostname.as_str());
    let syncer = hello.map_or("", |hello| hello.syncer_type.as_str());
    let client_version = hello.map_or("", |hello| hello.version.as_str());
    let client_conn_id = hello.map_or(0, |hello| hello.client_conn_id);
    let wire = report.wire_format.map_or("", WireFormat::as_str);
    let compression = compression_name(report.compression.as_ref());
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                id = report.id,
                peer,
                hostname,
                syncer,
                client_version,
                client_conn_id,
                wire,
                compression,
                reason = %report.reason,
                kind = report.kind,
                duration_ms,
                messages = report.messages_sent,
                kvs = report.kvs_sent,
                bytes = report.bytes_sent,
                "connection closed"
            )
        };
    }
    if !report.is_error {
        line!(info);
        return;
    }
    match limiter.admit(report.kind, Instant::now()) {
        Admit::Log { suppressed_before } => {
            if suppressed_before > 0 {
                tracing::warn!(
                    kind = report.kind,
                    suppressed = suppressed_before,
                    "{suppressed_before} more connections ended with {} in the last minute (logged at debug)",
                    report.kind
                );
            }
            line!(warn);
        }
        Admit::Suppress => line!(debug),
    }
}

/// Logs a failed `accept` (limited like the warnings of connections).
pub(super) fn accept_failed(error: &std::io::Error, limiter: &WarningLimiter) {
    match limiter.admit("accept_error", Instant::now()) {
        Admit::Log { suppressed_before } => {
            tracing::warn!(%error, suppressed_before, "accepting a connection failed")
        }
        Admit::Suppress => tracing::debug!(%error, "accepting a connection failed"),
    }
}

/// The server's [`syncproto::server::WarningLimiter`], shared by its
/// connection tasks.
#[derive(Debug, Default)]
pub(super) struct WarningLimiter(Mutex<syncproto::server::WarningLimiter>);

impl WarningLimiter {
    /// Whether a warning of `kind` at `now` is logged.
    pub(super) fn admit(&self, kind: &'static str, now: Instant) -> Admit {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(kind, now.into_std())
    }
}
