//! A relay: a fan-out [`Server`] whose data comes from another server (an
//! upstream Typha, or another relay) as a client, as upstream's chained
//! mode does (DESIGN.md §1b).
//!
//! - One upstream connection per syncer type that downstream clients ask
//!   for, opened on first demand and kept, each feeding its own
//!   [`SnapshotCache`]; clients of a syncer type are served from it, in
//!   either wire format.
//! - Keys and values are forwarded as received (no key parsing).
//! - While an upstream reconnects, its downstream clients stay connected:
//!   they see `ResyncInProgress`, then only what changed meanwhile
//!   (deletions for keys that vanished, through the core's
//!   [`Session`](syncproto::session::Session)), then `InSync` — never a
//!   full resend. Upstream failures back off with jitter.
//! - The upstream's snapshot checksums are verified (a mismatch that
//!   persists forces a resync, as upstream); the relay sends its own
//!   downstream, which agree with them because the values are the bytes
//!   received.
//! - Ready when it accepts connections and every opened upstream is in
//!   sync ([`RelayHandle::is_ready`]).

mod metrics;
mod upstream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use syncproto::client::ClientConfig;
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::SyncerType;
use syncproto::session::{Backoff, ChecksumPolicy};
use tokio::net::ToSocketAddrs;
use tokio::sync::watch;

use crate::{CacheSource, ClientOptions, Server, ServerHandle, ServerOptions};

#[cfg(feature = "metrics")]
pub use metrics::RelayMetrics;
pub use upstream::UpstreamStatus;
use upstream::{SharedStatus, UpstreamConfig};

/// How a [`Relay`] connects upstream and serves downstream.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The upstream server's address, `host:port`.
    pub upstream: String,
    /// The template of the upstream connections' configuration (the
    /// syncer type is set per connection; keys are not parsed). Gob by
    /// default, to talk to an upstream Typha.
    pub upstream_client: ClientConfig,
    /// The upstream connections' TLS and timeouts.
    pub upstream_options: ClientOptions,
    /// The wait between upstream connection attempts.
    pub backoff: Backoff,
    /// What an upstream checksum mismatch does.
    pub checksum_policy: ChecksumPolicy,
    /// The caches' configuration (one per syncer type).
    pub cache: CacheConfig,
    /// The downstream server's options (its `config.syncer_types` are
    /// the syncer types it relays).
    pub server: ServerOptions,
}

impl RelayOptions {
    /// Options relaying `upstream`, with every default: gob upstream
    /// (what a Typha speaks), both wire formats downstream.
    pub fn new(upstream: impl Into<String>) -> RelayOptions {
        RelayOptions {
            upstream: upstream.into(),
            upstream_client: ClientConfig {
                wire_format: syncproto::codec::WireFormat::Gob,
                hostname: "syncproto-relay".to_owned(),
                info: "syncproto relay".to_owned(),
                ..ClientConfig::default()
            },
            upstream_options: ClientOptions::default(),
            backoff: Backoff::default(),
            checksum_policy: ChecksumPolicy::default(),
            cache: CacheConfig::default(),
            server: ServerOptions::default(),
        }
    }
}

/// The upstream connections, one per syncer type asked for: the relay's
/// [`CacheSource`].
struct Upstreams {
    config: UpstreamConfig,
    cache_config: CacheConfig,
    open: Mutex<BTreeMap<SyncerType, (SnapshotCache, SharedStatus)>>,
    /// Set once the server exists: what the upstream tasks wake.
    server: Arc<OnceLock<ServerHandle>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("upstream", &self.config.address)
            .field("open", &self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Upstreams {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<SyncerType, (SnapshotCache, SharedStatus)>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn statuses(&self) -> Vec<(SyncerType, UpstreamStatus)> {
        self.lock()
            .iter()
            .map(|(syncer, (_, status))| (syncer.clone(), upstream::lock(status).clone()))
            .collect()
    }
}

impl CacheSource for Upstreams {
    fn cache_for(&self, syncer: &SyncerType) -> Option<SnapshotCache> {
        let mut open = self.lock();
        if let Some((cache, _)) = open.get(syncer) {
            return Some(cache.clone());
        }
        // First demand: open the upstream connection for this syncer.
        let cache = SnapshotCache::new(self.cache_config.clone());
        let status = SharedStatus::default();
        tracing::info!(%syncer, upstream = %self.config.address, "opening an upstream connection");
        tokio::spawn(upstream::run(
            syncer.clone(),
            self.config.clone(),
            cache.clone(),
            Arc::clone(&status),
            Arc::clone(&self.server),
            self.stop.subscribe(),
        ));
        open.insert(syncer.clone(), (cache.clone(), status));
        Some(cache)
    }

    fn open_caches(&self) -> Vec<(SyncerType, SnapshotCache)> {
        self.lock()
            .iter()
            .map(|(syncer, (cache, _))| (syncer.clone(), cache.clone()))
            .collect()
    }

    fn cache_config(&self) -> CacheConfig {
        self.cache_config.clone()
    }
}

/// A relay bound to its downstream port; nothing runs until
/// [`run`](Self::run).
#[derive(Debug)]
pub struct Relay {
    server: Server,
    handle: RelayHandle,
}

/// A control handle on a [`Relay`]: its upstreams' state, readiness,
/// shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    server: ServerHandle,
    upstreams: Arc<Upstreams>,
}

impl Relay {
    /// Binds `listen` for downstream clients. Fails as
    /// [`Server::bind`] does (an unusable configuration is
    /// [`std::io::ErrorKind::InvalidInput`]).
    pub async fn bind(listen: impl ToSocketAddrs, options: RelayOptions) -> std::io::Result<Relay> {
        let upstreams = Arc::new(Upstreams {
            config: UpstreamConfig {
                address: options.upstream,
                client: options.upstream_client,
                options: options.upstream_options,
                backoff: options.backoff,
                checksum_policy: options.checksum_policy,
            },
            cache_config: options.cache,
            open: Mutex::new(BTreeMap::new()),
            server: Arc::new(OnceLock::new()),
            stop: watch::Sender::new(false),
        });
        let source: Arc<dyn CacheSource> = upstreams.clone();
        let server = Server::bind_by_syncer(listen, source, options.server).await?;
        let _ = upstreams.server.set(server.handle());
        let handle = RelayHandle {
            server: server.handle(),
            upstreams,
        };
        Ok(Relay { server, handle })
    }

    /// The downstream address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.server.local_addr()
    }

    /// A handle to watch and stop the relay.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Serves downstream clients (opening upstreams as they ask) until
    /// [`RelayHandle::shutdown`]; then ends every downstream connection
    /// gracefully, closes the upstreams and returns.
    pub async fn run(self) -> std::io::Result<()> {
        let served = self.server.run().await;
        self.handle.upstreams.stop.send_replace(true);
        served
    }
}

impl RelayHandle {
    /// The downstream server (its stats, caches and connection count).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Every upstream opened so far, by syncer type, and how it is doing.
    pub fn upstreams(&self) -> Vec<(SyncerType, UpstreamStatus)> {
        self.upstreams.statuses()
    }

    /// Whether the relay accepts connections and every opened upstream
    /// is in sync (a relay nobody asked anything of yet is ready).
    pub fn is_ready(&self) -> bool {
        self.server.is_ready()
    }

    /// Stops accepting, ends every downstream connection gracefully, then
    /// closes the upstreams; [`Relay::run`] returns when that is done.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }
}
