//! A client that stays connected, hiding reconnects from its application:
//! the core's [`Session`] over successive [`Client`] connections.

use std::collections::BTreeMap;
use std::time::SystemTime;

use syncproto::client::ClientConfig;
use syncproto::message::{ByteString, SerializedUpdate};
use syncproto::session::{Backoff, ChecksumPolicy, Session, SessionEvent};

use crate::client::{Client, ClientOptions};

/// A client that reconnects with [`Backoff`] when its connection is lost,
/// and hides the reconnect from the application as the core's [`Session`]
/// does: after a new connection's snapshot, the keys that did not come back
/// are reported as deletions, and nothing that changes nothing is
/// reported.
pub struct ReconnectingClient {
    address: String,
    config: ClientConfig,
    options: ClientOptions,
    current: Option<Client>,
    session: Session,
    /// The next attempt waits out the backoff.
    waiting: bool,
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("address", &self.address)
            .field("connected", &self.current.is_some())
            .field("keys", &self.session.view().len())
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
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64);
        ReconnectingClient {
            address: address.into(),
            config,
            options,
            current: None,
            session: Session::new(backoff, seed),
            waiting: false,
        }
    }

    /// Sets what a snapshot checksum mismatch does (by default, upstream's:
    /// resync after three in a row, at most once per ten minutes). See
    /// [`Session::set_checksum_policy`].
    pub fn set_checksum_policy(&mut self, policy: ChecksumPolicy) {
        self.session.set_checksum_policy(policy);
    }

    /// The session underneath: whether a connection is up, the last
    /// status, checksum results, forced resyncs.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The datastore as the application has been told it.
    pub fn view(&self) -> &BTreeMap<ByteString, SerializedUpdate> {
        self.session.view()
    }

    /// Drops the current connection (as if it had failed): for tests and
    /// for callers that want to move to another server.
    pub fn disconnect(&mut self) {
        if let Some(client) = self.current.as_mut() {
            client.close();
        }
    }

    /// The next event; never ends (it reconnects until dropped).
    pub async fn next_event(&mut self) -> SessionEvent {
        loop {
            if let Some(event) = self.session.poll_event() {
                return event;
            }
            let Some(client) = self.current.as_mut() else {
                self.connect().await;
                continue;
            };
            match client.next_event().await {
                Ok(Some(event)) => {
                    let closed = matches!(event, syncproto::client::ClientEvent::Closed(_));
                    self.session.handle_event(event);
                    // Its checksum policy dropping the connection: the
                    // client's `Closed` comes next.
                    if self.session.take_forced_resync() {
                        client.close();
                    }
                    if closed {
                        self.lost();
                    }
                }
                Ok(None) => {
                    self.session.connection_lost("connection finished");
                    self.lost();
                }
                Err(error) => {
                    self.session.connection_lost(error.to_string());
                    self.lost();
                }
            }
        }
    }

    fn lost(&mut self) {
        self.current = None;
        self.waiting = true;
    }

    /// Connects, waiting out the backoff after a loss.
    async fn connect(&mut self) {
        if std::mem::take(&mut self.waiting) {
            tokio::time::sleep(self.session.retry_delay()).await;
        }
        self.session.connection_started();
        match Client::connect(&self.address, self.config.clone(), self.options.clone()).await {
            Ok(client) => self.current = Some(client),
            Err(error) => {
                self.session.connection_lost(error.to_string());
                self.waiting = true;
            }
        }
    }
}
