//! One upstream connection of a relay: a [`ReconnectingClient`] for one
//! syncer type, feeding that syncer's cache with only the changes (its
//! session hides reconnects), keeping the cache's status honest while the
//! upstream is away, and recording how it is doing.

use std::sync::{Arc, Mutex, OnceLock};

use syncproto::client::ClientConfig;
use syncproto::fanout::SnapshotCache;
use syncproto::message::{SyncStatus, SyncerType};
use syncproto::session::{Backoff, ChecksumPolicy, SessionEvent};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{ClientOptions, ReconnectingClient, ServerHandle};

/// How a relay connects upstream (the same for every syncer type).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamConfig {
    pub(crate) address: String,
    pub(crate) client: ClientConfig,
    pub(crate) options: ClientOptions,
    pub(crate) backoff: Backoff,
    pub(crate) checksum_policy: ChecksumPolicy,
}

/// How one upstream connection is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamStatus {
    /// A connection is up and past its handshake.
    pub connected: bool,
    /// The last status the upstream sent (through the session: a
    /// reconnect's own statuses are hidden until its snapshot ends).
    pub status: Option<SyncStatus>,
    /// Connections lost or refused so far.
    pub reconnects: u64,
    /// Changes applied to the cache (reconnects' resends that changed
    /// nothing are not counted: the session drops them).
    pub updates: u64,
    /// Upstream snapshot checksums that matched what was received.
    pub checksums_verified: u64,
    /// And those that did not.
    pub checksum_mismatches: u64,
    /// Connections dropped because the checksums kept disagreeing.
    pub forced_resyncs: u64,
    /// When the upstream last sent something that reached the cache.
    pub last_change: Option<Instant>,
    /// Since when the data has not been in sync with the upstream (`None`
    /// while it is).
    pub out_of_sync_since: Option<Instant>,
    /// Why the last connection ended, if one did.
    pub last_error: Option<String>,
}

/// The state of an upstream, shared between its task and the relay.
pub(crate) type SharedStatus = Arc<Mutex<UpstreamStatus>>;

pub(crate) fn lock(status: &SharedStatus) -> std::sync::MutexGuard<'_, UpstreamStatus> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the upstream connection for `syncer` until `stop` turns true,
/// applying what it receives to `cache` and waking the server's
/// connections (once the server exists, in `server`).
pub(crate) async fn run(
    syncer: SyncerType,
    config: UpstreamConfig,
    cache: SnapshotCache,
    status: SharedStatus,
    server: Arc<OnceLock<ServerHandle>>,
    mut stop: watch::Receiver<bool>,
) {
    let client = ClientConfig {
        syncer_type: syncer.clone(),
        // Forwarded as received: the downstream client judges the keys,
        // and upgrades legacy policy keys if it wants to.
        key_parser: None,
        upgrade_legacy_policy_keys: false,
        ..config.client
    };
    let mut upstream = ReconnectingClient::new(
        config.address.clone(),
        client,
        config.options,
        config.backoff,
    );
    upstream.set_checksum_policy(config.checksum_policy);
    lock(&status).out_of_sync_since = Some(Instant::now());
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let event = tokio::select! {
            event = upstream.next_event() => event,
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let resynced = matches!(event, SessionEvent::Resynced);
        apply(&syncer, &cache, &status, event);
        {
            let session = upstream.session();
            // The resync after a reconnect is over: the data is current
            // again, in whatever status the upstream is in (the session
            // does not report a status it reported before the loss).
            if resynced
                && let Some(current) = session.status()
                && cache.status() != current
            {
                let now = Instant::now();
                cache.set_status(now.into_std(), current);
                let mut status = lock(&status);
                status.status = Some(current);
                status.out_of_sync_since = match current {
                    SyncStatus::InSync => None,
                    _ => status.out_of_sync_since.or(Some(now)),
                };
                tracing::info!(%syncer, status = %current, "upstream resynced");
            }
            let mut status = lock(&status);
            status.connected = session.is_connected();
            status.checksums_verified = session.checksums_verified();
            status.checksum_mismatches = session.checksum_mismatches();
            status.forced_resyncs = session.forced_resyncs();
        }
        if let Some(server) = server.get() {
            server.notify();
        }
    }
}

/// Applies one session event to the cache and the status.
fn apply(syncer: &SyncerType, cache: &SnapshotCache, status: &SharedStatus, event: SessionEvent) {
    let now = Instant::now();
    match event {
        SessionEvent::Updates(updates) => {
            let count = updates.len() as u64;
            cache.apply(now.into_std(), updates);
            let mut status = lock(status);
            status.updates += count;
            status.last_change = Some(now);
        }
        SessionEvent::Status(new) => {
            cache.set_status(now.into_std(), new);
            let mut status = lock(status);
            status.status = Some(new);
            status.last_change = Some(now);
            status.out_of_sync_since = match new {
                SyncStatus::InSync => None,
                _ => status.out_of_sync_since.or(Some(now)),
            };
            tracing::info!(%syncer, status = %new, "upstream status");
        }
        SessionEvent::Reconnecting {
            reason,
            attempt,
            delay,
        } => {
            // Serve what is held, but not as in sync: downstream clients
            // stay connected and see the resync, then only the changes.
            if cache.status() == SyncStatus::InSync {
                cache.set_status(now.into_std(), SyncStatus::ResyncInProgress);
            }
            let mut status = lock(status);
            status.reconnects += 1;
            status.connected = false;
            status.out_of_sync_since = status.out_of_sync_since.or(Some(now));
            status.last_error = Some(reason.clone());
            tracing::warn!(%syncer, %reason, attempt, ?delay, "upstream connection lost");
        }
        SessionEvent::Checksum(report) if !report.verified => {
            tracing::warn!(
                %syncer,
                server = format!("{:#018x}/{}", report.server.checksum, report.server.kv_count),
                received = format!("{:#018x}/{}", report.local.checksum, report.local.kv_count),
                consecutive = report.consecutive_mismatches,
                "upstream snapshot checksum mismatch"
            );
        }
        SessionEvent::Checksum(_) => {}
        // Handled with the session (its status is the one to restore).
        SessionEvent::Resynced => {}
        // The relay parses no keys, so nothing is dropped.
        SessionEvent::Dropped { .. } => {}
    }
}
