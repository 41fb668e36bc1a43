//! The server's running totals, kept in atomics so that every connection
//! task counts without a lock; read out as the core's
//! [`syncproto::server::ServerStats`], the shape every driver
//! reports and the metrics are read from.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use syncproto::codec::WireFormat;
use syncproto::metrics::{
    Histogram, KVS_PER_MESSAGE_BOUNDS, LATENCY_BOUNDS_NANOS, SNAPSHOT_BOUNDS_NANOS,
};
use syncproto::server::{ConnectionReport, SendStats, ServerStats};

#[derive(Debug)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) accept_errors: AtomicU64,
    pub(super) tls_rejected: AtomicU64,
    pub(super) shed: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) pongs: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    /// By wire format (native, gob) and negotiated compression.
    bytes_written: [[AtomicU64; 2]; 2],
    streaming: AtomicU64,
    messages_sent: AtomicU64,
    kvs_messages_sent: AtomicU64,
    kvs_sent: AtomicU64,
    checksums_sent: AtomicU64,
    kvs_per_message: AtomicHistogram,
    ping_round_trips: AtomicHistogram,
    snapshot_send_times: AtomicHistogram,
    /// What only a connection's end adds: closes and their reasons.
    closes: Mutex<ServerStats>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            accepted: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            tls_rejected: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: Default::default(),
            streaming: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            kvs_messages_sent: AtomicU64::new(0),
            kvs_sent: AtomicU64::new(0),
            checksums_sent: AtomicU64::new(0),
            kvs_per_message: AtomicHistogram::new(KVS_PER_MESSAGE_BOUNDS),
            ping_round_trips: AtomicHistogram::new(LATENCY_BOUNDS_NANOS),
            snapshot_send_times: AtomicHistogram::new(SNAPSHOT_BOUNDS_NANOS),
            closes: Mutex::new(ServerStats::default()),
        }
    }
}

impl Counters {
    /// Counts a connection whose handshake completed.
    pub(super) fn record_connected(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        self.streaming.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a pong and, if it answered a ping, its round trip.
    pub(super) fn record_pong(&self, round_trip: Option<Duration>) {
        self.pongs.fetch_add(1, Ordering::Relaxed);
        if let Some(round_trip) = round_trip {
            self.ping_round_trips.observe(nanos(round_trip));
        }
    }

    /// Counts a snapshot handed out in `took`.
    pub(super) fn record_snapshot_sent(&self, took: Duration) {
        self.snapshot_send_times.observe(nanos(took));
    }

    /// Adds what a connection sent since it was last asked.
    pub(super) fn record_sent(&self, sent: &SendStats) {
        if sent.messages == 0 {
            return;
        }
        self.messages_sent
            .fetch_add(sent.messages, Ordering::Relaxed);
        self.kvs_messages_sent
            .fetch_add(sent.kvs_messages, Ordering::Relaxed);
        self.kvs_sent.fetch_add(sent.kvs, Ordering::Relaxed);
        self.checksums_sent
            .fetch_add(sent.checksums, Ordering::Relaxed);
        self.kvs_per_message.add(&sent.kvs_per_message);
    }

    /// Counts bytes written to a connection speaking `format` (native until
    /// known), with or without negotiated compression.
    pub(super) fn record_written(&self, format: Option<WireFormat>, compressed: bool, bytes: u64) {
        let format = match format {
            Some(WireFormat::Gob) => 1,
            _ => 0,
        };
        self.bytes_written[format][usize::from(compressed)].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a connection that ended.
    pub(super) fn record_close(&self, report: &ConnectionReport) {
        if report.connected {
            self.streaming.fetch_sub(1, Ordering::Relaxed);
        }
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
        for (format, row) in self.bytes_written.iter().enumerate() {
            for (compressed, bytes) in row.iter().enumerate() {
                stats.bytes_written_by_stream[format][compressed] = load(bytes);
            }
        }
        stats.bytes_written = stats.bytes_written_by_stream.iter().flatten().sum();
        stats.streaming = load(&self.streaming);
        stats.sent.messages = load(&self.messages_sent);
        stats.sent.kvs_messages = load(&self.kvs_messages_sent);
        stats.sent.kvs = load(&self.kvs_sent);
        stats.sent.checksums = load(&self.checksums_sent);
        stats.sent.kvs_per_message = self.kvs_per_message.snapshot();
        stats.ping_round_trips = self.ping_round_trips.snapshot();
        stats.snapshot_send_times = self.snapshot_send_times.snapshot();
        stats
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A [`Histogram`] that tasks add to without a lock. Read while others
/// write, its buckets, sum and count may disagree by the observations in
/// flight; each is exact on its own.
#[derive(Debug)]
struct AtomicHistogram {
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        // The bucket `Histogram::observe` would pick: the first bound at or
        // above the value, else the overflow.
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a histogram over the same bounds.
    fn add(&self, histogram: &Histogram) {
        for (total, count) in self.counts.iter().zip(histogram.counts()) {
            if *count > 0 {
                total.fetch_add(*count, Ordering::Relaxed);
            }
        }
        self.sum.fetch_add(histogram.sum(), Ordering::Relaxed);
        self.count.fetch_add(histogram.count(), Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        let counts = self
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        let sum = self.sum.load(Ordering::Relaxed);
        let count = self.count.load(Ordering::Relaxed);
        Histogram::from_counts(self.bounds, counts, sum, count)
            .unwrap_or_else(|| Histogram::new(self.bounds))
    }
}
