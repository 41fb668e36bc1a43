//! The server's running totals, kept in atomics so that every connection
//! task counts without a lock; read out as the core's
//! [`ServerStats`](syncproto::server::ServerStats), the shape every driver
//! reports.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use syncproto::server::{ConnectionReport, ServerStats};

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) accept_errors: AtomicU64,
    pub(super) tls_rejected: AtomicU64,
    pub(super) shed: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) pongs: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    /// What only a connection's end adds: closes and their reasons.
    pub(super) closes: Mutex<ServerStats>,
}

impl Counters {
    /// Counts a connection that ended.
    pub(super) fn record_close(&self, report: &ConnectionReport) {
        self.closes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record_close(report);
    }

    /// The totals so far.
    pub(super) fn snapshot(&self) -> ServerStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut stats = self
            .closes
            .lock()
            .map(|closes| closes.clone())
            .unwrap_or_default();
        stats.accepted = load(&self.accepted);
        stats.accept_errors = load(&self.accept_errors);
        stats.tls_rejected = load(&self.tls_rejected);
        stats.shed = load(&self.shed);
        stats.handshakes = load(&self.handshakes);
        stats.pongs = load(&self.pongs);
        stats.bytes_read = load(&self.bytes_read);
        stats.bytes_written = load(&self.bytes_written);
        stats
    }
}
