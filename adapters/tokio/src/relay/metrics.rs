//! A relay's own metrics (feature `metrics`): how each upstream
//! connection is doing, labelled by syncer type, beside the downstream
//! server's ([`crate::metrics`]).

#[cfg(feature = "metrics")]
pub use enabled::RelayMetrics;

#[cfg(feature = "metrics")]
mod enabled {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Registry;
    use syncproto::message::SyncStatus;
    use tokio::time::Instant;

    use super::super::{RelayHandle, UpstreamStatus};

    /// The `prometheus-client` collector reading a relay's upstreams at
    /// each scrape.
    #[derive(Debug)]
    pub struct RelayMetrics {
        relay: RelayHandle,
    }

    impl RelayMetrics {
        /// Metrics for `relay`'s upstreams.
        pub fn new(relay: RelayHandle) -> RelayMetrics {
            RelayMetrics { relay }
        }

        /// A registry holding the relay's downstream server metrics and its
        /// upstream metrics.
        pub fn registry(relay: &RelayHandle) -> Registry {
            let mut registry = crate::metrics::registry(relay.server());
            registry.register_collector(Box::new(RelayMetrics::new(relay.clone())));
            registry
        }
    }

    /// One upstream metric: its name, help, type and value.
    type Figure = (
        &'static str,
        &'static str,
        MetricType,
        fn(&UpstreamStatus, Instant) -> f64,
    );

    const FIGURES: &[Figure] = &[
        (
            "syncproto_upstream_connected",
            "1 while the upstream connection is up and past its handshake.",
            MetricType::Gauge,
            |status, _| f64::from(u8::from(status.connected)),
        ),
        (
            "syncproto_upstream_in_sync",
            "1 while the data from the upstream is in sync.",
            MetricType::Gauge,
            |status, _| f64::from(u8::from(status.status == Some(SyncStatus::InSync))),
        ),
        (
            "syncproto_upstream_reconnects",
            "Upstream connections lost or refused.",
            MetricType::Counter,
            |status, _| status.reconnects as f64,
        ),
        (
            "syncproto_upstream_updates",
            "Changes received from the upstream and applied.",
            MetricType::Counter,
            |status, _| status.updates as f64,
        ),
        (
            "syncproto_upstream_checksums_verified",
            "Upstream snapshot checksums that matched what was received.",
            MetricType::Counter,
            |status, _| status.checksums_verified as f64,
        ),
        (
            "syncproto_upstream_checksum_mismatches",
            "Upstream snapshot checksums that did not match what was received.",
            MetricType::Counter,
            |status, _| status.checksum_mismatches as f64,
        ),
        (
            "syncproto_upstream_forced_resyncs",
            "Upstream connections dropped because the checksums kept disagreeing.",
            MetricType::Counter,
            |status, _| status.forced_resyncs as f64,
        ),
        (
            "syncproto_upstream_seconds_since_change",
            "Seconds since the upstream last sent a change or status.",
            MetricType::Gauge,
            |status, now| {
                status.last_change.map_or(f64::NAN, |at| {
                    now.saturating_duration_since(at).as_secs_f64()
                })
            },
        ),
        (
            "syncproto_upstream_out_of_sync_seconds",
            "Seconds the data from the upstream has not been in sync (0 while it is).",
            MetricType::Gauge,
            |status, now| {
                status.out_of_sync_since.map_or(0.0, |since| {
                    now.saturating_duration_since(since).as_secs_f64()
                })
            },
        ),
    ];

    impl Collector for RelayMetrics {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let upstreams = self.relay.upstreams();
            let now = Instant::now();
            for (name, help, kind, value) in FIGURES {
                let mut family = encoder.encode_descriptor(name, help, None, *kind)?;
                for (syncer, status) in &upstreams {
                    let labels = [("syncer", syncer.as_str())];
                    let sample = family.encode_family(&labels)?;
                    let value = value(status, now);
                    match kind {
                        MetricType::Counter => ConstCounter::new(value as u64).encode(sample)?,
                        // Whole numbers as integers (`1`, not `1.0`).
                        _ if value.fract() == 0.0 => {
                            ConstGauge::new(value as i64).encode(sample)?
                        }
                        _ => ConstGauge::new(value).encode(sample)?,
                    }
                }
            }
            Ok(())
        }
    }
}
