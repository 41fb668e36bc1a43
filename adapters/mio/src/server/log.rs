//! The server's log lines, through `tracing` (the application installs the
//! subscriber; without one every line and span costs a check of a global
//! flag): a span per connection, a line when it is accepted and one when
//! it ends with everything its report says, and warnings that would repeat
//! for every connection of a flood limited to a few per minute per kind.
//! The same lines, fields and levels as the tokio driver's, so that one
//! log pipeline reads both.

use std::net::SocketAddr;
use std::time::Instant;

use syncproto::codec::WireFormat;
use syncproto::message::{ClientHello, CompressionAlgorithm};
use syncproto::server::{Admit, ConnectionReport, WarningLimiter};
use tracing::Span;
use tracing::field::{Empty, display};

/// The span every line about connection `id` is logged in: its id and
/// peer from the start, what the client said of itself once the handshake
/// is done ([`handshake_done`]). Call when the connection is accepted.
pub(super) fn connection_span(id: u64, peer: SocketAddr) -> Span {
    tracing::info_span!(
        "connection",
        id,
        %peer,
        hostname = Empty,
        syncer = Empty,
        client_version = Empty,
        client_conn_id = Empty,
        wire = Empty,
        compression = Empty,
    )
}

/// Logs a connection accepted (inside its span).
pub(super) fn accepted() {
    tracing::info!("connection accepted");
}

/// Records what the client said of itself on its connection's span (so
/// that every later line carries it) and logs the handshake at `debug`.
pub(super) fn handshake_done(
    span: &Span,
    hello: &ClientHello,
    wire_format: WireFormat,
    compression: Option<&CompressionAlgorithm>,
) {
    span.record("hostname", display(&hello.hostname));
    span.record("syncer", display(&hello.syncer_type));
    span.record("client_version", display(&hello.version));
    span.record("client_conn_id", hello.client_conn_id);
    span.record("wire", wire_format.as_str());
    span.record("compression", compression_name(compression));
    let _entered = span.enter();
    tracing::debug!("handshake done");
}

fn compression_name(compression: Option<&CompressionAlgorithm>) -> &str {
    compression.map_or("none", CompressionAlgorithm::as_str)
}

/// Logs a connection that ended (call inside its span): at `info` when it
/// ended well, at `warn` when something went wrong (limited per kind of
/// reason by `limiter`; beyond the limit at `debug`, and counted in a
/// later summary). The line carries everything the report knows, the
/// hello of a refused client included, so that it stands alone.
pub(super) fn closed(report: &ConnectionReport, limiter: &mut WarningLimiter, now: Instant) {
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
    match limiter.admit(report.kind, now) {
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
pub(super) fn accept_failed(error: &std::io::Error, limiter: &mut WarningLimiter, now: Instant) {
    match limiter.admit("accept_error", now) {
        Admit::Log { suppressed_before } => {
            tracing::warn!(%error, suppressed_before, "accepting a connection failed");
        }
        Admit::Suppress => tracing::debug!(%error, "accepting a connection failed"),
    }
}
