//! Prometheus metrics for a [`Server`](crate::Server) (feature `metrics`),
//! encoded by `prometheus-client` from what the server already counts
//! ([`ServerHandle::stats`] and its cache's
//! [`stats`](syncproto::fanout::SnapshotCache::stats)) at each scrape:
//! nothing is counted twice, and an application that wants the numbers
//! without Prometheus reads those structs instead.
//!
//! Upstream Typha's names are used where the meaning is the same (the
//! README's "Operating it" section has the table). Two differences follow
//! from the exposition format, not from the meaning: `prometheus-client`
//! writes OpenMetrics, whose counter samples end in `_total`
//! (`typha_connections_accepted_total`), and upstream's summaries are
//! histograms here (their `_sum` and `_count` mean the same).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use syncproto::codec::WireFormat;
use syncproto::message::SyncStatus;
use syncproto::metrics::Histogram;

use crate::ServerHandle;

/// A registry holding `server`'s metrics: serve it with
/// [`endpoints::serve`](crate::endpoints::serve), or register more of the
/// application's own beside them.
pub fn registry(server: &ServerHandle) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerMetrics::new(server.clone())));
    registry
}

/// Encodes `registry` in the OpenMetrics text format, as `/metrics`
/// serves it.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The `prometheus-client` collector reading a server's totals at each
/// scrape.
#[derive(Debug)]
pub struct ServerMetrics {
    server: ServerHandle,
}

impl ServerMetrics {
    /// Metrics for `server`.
    pub fn new(server: ServerHandle) -> ServerMetrics {
        ServerMetrics { server }
    }
}

impl Collector for ServerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.server.stats();
        let out = &mut encoder;

        // Upstream's names (typha/pkg/syncserver/sync_server.go,
        // snap_precalc.go; typha/pkg/snapcache/cache.go).
        counter(
            out,
            "typha_connections_accepted",
            "Total number of connections accepted over time.",
            stats.accepted,
        )?;
        counter(
            out,
            "typha_connections_dropped",
            "Total number of connections dropped to get back under the connection limit.",
            stats.shed,
        )?;
        gauge(
            out,
            "typha_connections_active",
            "Number of open client connections, including connections that are still in the handshake.",
            stats.accepted.saturating_sub(stats.closed),
        )?;
        gauge(
            out,
            "typha_connections_streaming",
            "Number of client connections that completed the handshake and are streaming data.",
            stats.streaming,
        )?;
        histogram(
            out,
            "typha_ping_latency",
            "Round-trip ping latency to client, in seconds.",
            &stats.ping_round_trips,
            NANOS,
        )?;
        histogram(
            out,
            "typha_kvs_per_msg",
            "Number of KV pairs sent in each message.",
            &stats.sent.kvs_per_message,
            1.0,
        )?;
        histogram(
            out,
            "typha_client_snapshot_send_secs",
            "How long it took to send the initial snapshot to each client.",
            &stats.snapshot_send_times,
            NANOS,
        )?;
        // Per cache: one, or one per syncer type (labelled `syncer`, as
        // upstream labels them).
        let caches: Vec<CacheFigures> = self
            .server
            .caches()
            .into_iter()
            .map(|(syncer, cache)| CacheFigures {
                syncer: syncer.map(|syncer| syncer.as_str().to_owned()),
                in_sync: cache.status() == SyncStatus::InSync,
                stats: cache.stats(),
            })
            .collect();
        per_cache(
            out,
            ("typha_cache_size", MetricType::Gauge),
            "Current number of key/value pairs contained in the cache of the datastore.",
            &caches,
            |cache| cache.stats.keys as u64,
        )?;
        per_cache(
            out,
            ("typha_breadcrumb_seq_number", MetricType::Gauge),
            "Current (server-local) sequence number; number of snapshot deltas processed.",
            &caches,
            |cache| cache.stats.sequence,
        )?;
        // OpenMetrics adds `_total`: the sample is upstream's name.
        per_cache(
            out,
            ("typha_updates", MetricType::Counter),
            "Total number of updates received from the datastore.",
            &caches,
            |cache| cache.stats.updates_logged + cache.stats.no_ops_skipped,
        )?;
        per_cache(
            out,
            ("typha_updates_skipped", MetricType::Counter),
            "Total number of updates skipped as duplicates.",
            &caches,
            |cache| cache.stats.no_ops_skipped,
        )?;
        per_cache_histogram(
            out,
            "typha_breadcrumb_size",
            "Number of KVs recorded in each change batch.",
            &caches,
            |cache| &cache.stats.change_batch_sizes,
        )?;
        per_cache(
            out,
            ("typha_snapshots_generated", MetricType::Counter),
            "Number of snapshot generations frozen.",
            &caches,
            |cache| cache.stats.generations_built,
        )?;
        per_cache(
            out,
            ("typha_snapshot_raw_bytes", MetricType::Gauge),
            "Size of the most recently built compressed snapshot, before compression.",
            &caches,
            |cache| cache.stats.last_snapshot_raw_bytes,
        )?;
        per_cache(
            out,
            ("typha_snapshot_compressed_bytes", MetricType::Gauge),
            "Size of the most recently built compressed snapshot, after compression.",
            &caches,
            |cache| cache.stats.last_snapshot_compressed_bytes,
        )?;
        per_cache(
            out,
            ("syncproto_in_sync", MetricType::Gauge),
            "1 when the served data is in sync with its datastore.",
            &caches,
            |cache| u64::from(cache.in_sync),
        )?;
        per_cache(
            out,
            ("syncproto_cache_updates_encoded", MetricType::Counter),
            "Times the cache encoded an update (once per wire format, whatever the number of clients).",
            &caches,
            |cache| cache.stats.updates_encoded,
        )?;
        per_cache(
            out,
            ("syncproto_cache_outputs_built", MetricType::Counter),
            "Shared messages the cache built (change batches, snapshot batches, compressed snapshots).",
            &caches,
            |cache| cache.stats.outputs_built,
        )?;
        per_cache(
            out,
            ("syncproto_cache_log_length", MetricType::Gauge),
            "Changes held in the cache's log for clients still catching up.",
            &caches,
            |cache| cache.stats.log_len as u64,
        )?;
        per_cache(
            out,
            ("syncproto_cache_subscriptions", MetricType::Gauge),
            "Connections following the cache.",
            &caches,
            |cache| cache.stats.subscriptions as u64,
        )?;
        let encoded: u64 = caches.iter().map(|cache| cache.stats.updates_encoded).sum();
        gauge(
            out,
            "syncproto_cache_encodes_saved",
            "Updates sent without being encoded again: updates sent minus updates encoded.",
            stats.sent.kvs.saturating_sub(encoded),
        )?;

        // Ours.
        counter(
            out,
            "syncproto_handshakes",
            "Connections that completed the protocol handshake.",
            stats.handshakes,
        )?;
        counter(
            out,
            "syncproto_tls_rejected",
            "Connections refused during the TLS handshake or the client identity check.",
            stats.tls_rejected,
        )?;
        counter(
            out,
            "syncproto_accept_errors",
            "Failed accept calls.",
            stats.accept_errors,
        )?;
        labelled_counter(
            out,
            "syncproto_connections_closed",
            "Connections that ended, by kind of reason.",
            "reason",
            stats.closed_by_kind.iter().map(|(kind, n)| (*kind, *n)),
        )?;
        labelled_counter(
            out,
            "syncproto_protocol_errors",
            "Connections that ended on a protocol error, by kind.",
            "kind",
            stats.protocol_errors.iter().map(|(kind, n)| (*kind, *n)),
        )?;
        labelled_counter(
            out,
            "syncproto_decode_errors",
            "Connections that ended on undecodable input, by kind.",
            "kind",
            stats.decode_errors.iter().map(|(kind, n)| (*kind, *n)),
        )?;
        bytes_written(out, &stats)?;
        counter(
            out,
            "syncproto_bytes_read",
            "Bytes read from clients.",
            stats.bytes_read,
        )?;
        counter(
            out,
            "syncproto_messages_sent",
            "Messages sent to clients, of every kind.",
            stats.sent.messages,
        )?;
        counter(
            out,
            "syncproto_kvs_sent",
            "Updates sent to clients in KVs messages.",
            stats.sent.kvs,
        )?;
        counter(
            out,
            "syncproto_checksums_sent",
            "Snapshot checksums sent to clients that asked for them.",
            stats.sent.checksums,
        )?;
        counter(out, "syncproto_pongs", "Pongs received.", stats.pongs)?;
        Ok(())
    }
}

/// One cache's figures, and the syncer type it serves (none: the one
/// cache of a server made with `Server::bind`).
struct CacheFigures {
    syncer: Option<String>,
    in_sync: bool,
    stats: syncproto::fanout::CacheStats,
}

impl CacheFigures {
    fn labels(&self) -> Vec<(&'static str, &str)> {
        self.syncer
            .iter()
            .map(|syncer| ("syncer", syncer.as_str()))
            .collect()
    }
}

/// A counter or gauge with one sample per cache.
fn per_cache(
    out: &mut DescriptorEncoder<'_>,
    (name, kind): (&str, MetricType),
    help: &str,
    caches: &[CacheFigures],
    value: impl Fn(&CacheFigures) -> u64,
) -> Result<(), std::fmt::Error> {
    let encode = |sample: MetricEncoder<'_>, cache: &CacheFigures| match kind {
        MetricType::Counter => ConstCounter::new(value(cache)).encode(sample),
        _ => ConstGauge::new(i64::try_from(value(cache)).unwrap_or(i64::MAX)).encode(sample),
    };
    let mut family = out.encode_descriptor(name, help, None, kind)?;
    match caches {
        // The one cache of a one-cache server: no label (not `{}`).
        [one] if one.syncer.is_none() => encode(family, one),
        _ => caches
            .iter()
            .try_for_each(|cache| encode(family.encode_family(&cache.labels())?, cache)),
    }
}

/// A histogram with one sample set per cache.
fn per_cache_histogram(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    caches: &[CacheFigures],
    histogram: impl Fn(&CacheFigures) -> &Histogram,
) -> Result<(), std::fmt::Error> {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Histogram)?;
    match caches {
        [one] if one.syncer.is_none() => encode_histogram(family, histogram(one), 1.0),
        _ => caches.iter().try_for_each(|cache| {
            encode_histogram(
                family.encode_family(&cache.labels())?,
                histogram(cache),
                1.0,
            )
        }),
    }
}

/// Nanoseconds to seconds.
const NANOS: f64 = 1e-9;

fn counter(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn labelled_counter<'a>(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, value)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Bytes written, by wire format and whether compression was negotiated.
fn bytes_written(
    out: &mut DescriptorEncoder<'_>,
    stats: &syncproto::server::ServerStats,
) -> Result<(), std::fmt::Error> {
    let mut family = out.encode_descriptor(
        "syncproto_bytes_written",
        "Bytes written to clients, by wire format and negotiated compression.",
        None,
        MetricType::Counter,
    )?;
    for format in [WireFormat::Native, WireFormat::Gob] {
        for (compressed, compression) in [(false, "none"), (true, "snappy")] {
            let labels = [("wire", format.as_str()), ("compression", compression)];
            let bytes = stats.bytes_written_as(format, compressed);
            ConstCounter::new(bytes).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// A histogram whose values are scaled by `scale` (nanoseconds to seconds)
/// on the way out.
fn histogram(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    histogram: &Histogram,
    scale: f64,
) -> Result<(), std::fmt::Error> {
    let metric = out.encode_descriptor(name, help, None, MetricType::Histogram)?;
    encode_histogram(metric, histogram, scale)
}

fn encode_histogram(
    mut metric: MetricEncoder<'_>,
    histogram: &Histogram,
    scale: f64,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = histogram
        .bounds()
        .iter()
        .zip(histogram.counts())
        .map(|(bound, count)| (*bound as f64 * scale, *count))
        .collect();
    let overflow = histogram.counts().last().copied().unwrap_or(0);
    // `f64::MAX` is how prometheus-client writes `le="+Inf"`.
    buckets.push((f64::MAX, overflow));
    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        histogram.sum() as f64 * scale,
        histogram.count(),
        &buckets,
        None,
    )
}
