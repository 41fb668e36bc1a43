//! A client that stays connected, hiding reconnects from its application.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::key::KeyError;
use syncproto::message::{ByteString, Revision, SerializedUpdate, SyncStatus, UpdateType};

use crate::client::{Client, ClientOptions};

/// What a [`ReconnectingClient`] reports: the datastore as one continuous
/// stream, whatever happened to the connections underneath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// Changes to apply, in order.
    Updates(Vec<SerializedUpdate>),
    /// The server's sync status changed.
    Status(SyncStatus),
    /// An update was dropped because its key did not parse.
    Dropped {
        /// The rejected key.
        key: ByteString,
        /// Why.
        reason: KeyError,
    },
    /// The connection was lost and a new one will be tried after `delay`:
    /// for logs only; the data stream goes on unaffected.
    Reconnecting {
        /// What ended the last connection (or why connecting failed).
        reason: String,
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// How long until the next attempt.
        delay: Duration,
    },
}

/// Exponential backoff with jitter between reconnection attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt number `attempt` (from 1): doubling from
    /// `initial` up to `max`, then scaled by a random factor in [0.5, 1] so
    /// that clients cut off together do not all return together.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = doubled.min(self.max);
        let factor = 0.5 + (random % 1000) as f64 / 2000.0;
        capped.mul_f64(factor)
    }
}

/// Where the current connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not connected.
    Down,
    /// Connected, handshake not done yet; `first` if the application has
    /// never been told anything (then nothing is hidden).
    Starting { first: bool },
    /// Reconnected, receiving the new snapshot: the keys it held so far.
    Resyncing(BTreeSet<ByteString>),
    /// Past the snapshot (or on the first connection).
    Live,
}

/// A client that reconnects with [`Backoff`] when its connection is lost,
/// and hides the reconnect from the application: after a new connection's
/// snapshot, it reports the keys that did not come back as deletions, and
/// it suppresses snapshot updates that change nothing the application
/// holds (upstream Felix only recently learnt to do this). Statuses are
/// reported only when they change.
pub struct ReconnectingClient {
    address: String,
    config: ClientConfig,
    options: ClientOptions,
    backoff: Backoff,
    current: Option<Client>,
    phase: Phase,
    /// What the application holds.
    view: BTreeMap<ByteString, SerializedUpdate>,
    /// The last status the application was told.
    last_status: Option<SyncStatus>,
    /// Events decided but not yet returned.
    queued: VecDeque<SyncEvent>,
    failures: u32,
    random: u64,
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("address", &self.address)
            .field("phase", &self.phase)
            .field("keys", &self.view.len())
            .finish_non_exhaustive()
    }
}

impl ReconnectingClient {
    /// A client for `address` (`host:port`); it connects on the first
    /// [`next_event`](Self::next_event).
    pub fn new(
        address: impl Into<String>,
        config: ClientConfig,
        options: ClientOptions,
        backoff: Backoff,
    ) -> Self {
        // Only the jitter is random; it need not be reproducible.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
            | 1;
        ReconnectingClient {
            address: address.into(),
            config,
            options,
            backoff,
            current: None,
            phase: Phase::Down,
            view: BTreeMap::new(),
            last_status: None,
            queued: VecDeque::new(),
            failures: 0,
            random: seed,
        }
    }

    /// The datastore as the application has been told it.
    pub fn view(&self) -> &BTreeMap<ByteString, SerializedUpdate> {
        &self.view
    }

    /// Drops the current connection (as if it had failed): for tests and
    /// for callers that want to move to another server.
    pub fn disconnect(&mut self) {
        if let Some(client) = self.current.as_mut() {
            client.close();
        }
    }

    /// The next event; never ends (it reconnects until dropped).
    pub async fn next_event(&mut self) -> SyncEvent {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return event;
            }
            let Some(client) = self.current.as_mut() else {
                self.connect().await;
                continue;
            };
            let reason = match client.next_event().await {
                Ok(Some(ClientEvent::Closed(reason))) => reason.to_string(),
                Ok(Some(event)) => {
                    self.translate(event);
                    continue;
                }
                Ok(None) => "connection finished".to_owned(),
                Err(error) => error.to_string(),
            };
            self.current = None;
            self.phase = Phase::Down;
            self.schedule_retry(reason);
        }
    }

    /// Connects, waiting out the backoff after failures.
    async fn connect(&mut self) {
        if self.failures > 0 {
            let delay = self.backoff.delay(self.failures, self.random);
            tokio::time::sleep(delay).await;
        }
        match Client::connect(&self.address, self.config.clone(), self.options.clone()).await {
            Ok(client) => {
                self.current = Some(client);
                self.phase = Phase::Starting {
                    first: self.last_status.is_none(),
                };
            }
            Err(error) => self.schedule_retry(error.to_string()),
        }
    }

    fn schedule_retry(&mut self, reason: String) {
        self.failures += 1;
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let delay = self.backoff.delay(self.failures, self.random);
        self.queued.push_back(SyncEvent::Reconnecting {
            reason,
            attempt: self.failures,
            delay,
        });
    }

    /// Turns a connection's event into what the application should see.
    fn translate(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connected(_) => {
                self.failures = 0;
                self.phase = match self.phase {
                    Phase::Starting { first: false } => Phase::Resyncing(BTreeSet::new()),
                    _ => Phase::Live,
                };
            }
            ClientEvent::Dropped { key, reason } => {
                self.queued.push_back(SyncEvent::Dropped { key, reason })
            }
            ClientEvent::Updates(updates) => {
                let updates = self.apply(updates);
                if !updates.is_empty() {
                    self.queued.push_back(SyncEvent::Updates(updates));
                }
            }
            ClientEvent::Status(status) => self.status(status),
            // Closed is handled by the caller.
            _ => {}
        }
    }

    /// Applies updates to the view; while resyncing, drops those that
    /// change nothing and remembers which keys came back.
    fn apply(&mut self, updates: Vec<SerializedUpdate>) -> Vec<SerializedUpdate> {
        let mut out = Vec::with_capacity(updates.len());
        for update in updates {
            let mut hidden = false;
            if let Phase::Resyncing(seen) = &mut self.phase {
                seen.insert(update.key.clone());
                hidden = self
                    .view
                    .get(&update.key)
                    .is_some_and(|held| unchanged(&update, held));
            }
            match &update.value {
                Some(_) => {
                    self.view.insert(update.key.clone(), update.clone());
                }
                None => {
                    self.view.remove(&update.key);
                }
            }
            if !hidden {
                out.push(update);
            }
        }
        out
    }

    /// Handles a status. A new connection's own initial status is hidden
    /// on reconnects; the first status after a reconnect's snapshot ends
    /// it, so the keys the snapshot did not resend are reported deleted.
    fn status(&mut self, status: SyncStatus) {
        match std::mem::replace(&mut self.phase, Phase::Live) {
            Phase::Starting { first: false } => {
                self.phase = Phase::Starting { first: false };
                return;
            }
            Phase::Starting { first: true } => self.phase = Phase::Starting { first: true },
            Phase::Resyncing(seen) => {
                let gone: Vec<ByteString> = self
                    .view
                    .keys()
                    .filter(|key| !seen.contains(*key))
                    .cloned()
                    .collect();
                if !gone.is_empty() {
                    let deletions = gone
                        .into_iter()
                        .map(|key| {
                            self.view.remove(&key);
                            SerializedUpdate::deletion(key, Revision::Nil)
                        })
                        .collect();
                    self.queued.push_back(SyncEvent::Updates(deletions));
                }
            }
            Phase::Down | Phase::Live => {}
        }
        if self.last_status != Some(status) {
            self.last_status = Some(status);
            self.queued.push_back(SyncEvent::Status(status));
        }
    }
}

/// Whether `update` would change nothing for an application holding
/// `held`: the same value and TTL (revisions and update types may differ:
/// a snapshot resends every key as new).
fn unchanged(update: &SerializedUpdate, held: &SerializedUpdate) -> bool {
    let as_update = |u: &SerializedUpdate| SerializedUpdate {
        update_type: UpdateType::Updated,
        ..u.clone()
    };
    as_update(update).would_be_no_op(&as_update(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let backoff = Backoff::default();
        for (attempt, nominal) in [(1, 500), (2, 1000), (3, 2000), (10, 30_000), (40, 30_000)] {
            for random in [0, 499, 999] {
                let delay = backoff.delay(attempt, random).as_millis() as u64;
                assert!(
                    (nominal / 2..=nominal).contains(&delay),
                    "attempt {attempt}: {delay} ms"
                );
            }
        }
    }
}
