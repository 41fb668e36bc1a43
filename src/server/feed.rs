//! What a server connection sends, coming in: a snapshot cache to follow,
//! or a snapshot and changes handed over by the caller; and the step by
//! step production of the next message from either.

use super::send_queue::{Next, SendQueue};
use super::{Feed, ServerConnection, State, Step};
use crate::close::CloseReason;
use crate::codec::WireFormat;
use crate::error::UsageError;
use crate::fanout::{Flavour, Pull, Subscription};
use crate::message::{Checksum, Message, SerializedUpdate, SyncStatus};
use std::time::Instant;

impl ServerConnection {
    /// Makes the connection follow a shared
    /// [`SnapshotCache`](crate::fanout::SnapshotCache) instead of being
    /// handed a snapshot: it sends the subscription's snapshot, then every
    /// change the cache logs, from shared pre-encoded bytes. Call once,
    /// instead of [`send_snapshot`](Self::send_snapshot), after
    /// [`ServerEvent::Connected`](super::ServerEvent::Connected) or before it. A client that falls as far
    /// behind as the cache's limit is disconnected
    /// ([`CloseReason::FellBehind`]).
    ///
    /// The cache batches changes for its
    /// [`max_message_len`](crate::fanout::CacheConfig::max_message_len), so
    /// a cache whose limit is above this connection's
    /// `max_server_message_len` is refused
    /// ([`UsageError::InvalidConfig`]). A message from the cache that is
    /// still too large for the client (one update over the limit) closes
    /// the connection with [`CloseReason::Usage`], as
    /// [`send_updates`](Self::send_updates) does.
    pub fn follow(&mut self, subscription: Subscription) -> Result<(), UsageError> {
        self.check_open()?;
        self.config.check_cache(subscription.cache_config())?;
        match &self.feed {
            Feed::Manual(queue) if !queue.snapshot_given() => {
                self.feed = Feed::Cache(Box::new(subscription));
                Ok(())
            }
            _ => Err(UsageError::SnapshotAlreadySent),
        }
    }

    /// Gives the connection the datastore snapshot to send (in key order),
    /// and the sync status to send once it has gone out. Call once, after
    /// [`ServerEvent::Connected`](super::ServerEvent::Connected) (or before it, for a server with a single
    /// datastore: it waits for the handshake). The iterator is pulled one
    /// batch at a time as the client reads.
    pub fn send_snapshot<I>(&mut self, snapshot: I, status: SyncStatus) -> Result<(), UsageError>
    where
        I: IntoIterator<Item = SerializedUpdate>,
        I::IntoIter: Send + 'static,
    {
        self.check_open()?;
        self.manual_queue()?
            .set_snapshot(Box::new(snapshot.into_iter()), status)
    }

    /// Queues one batch of live updates, to follow the snapshot and earlier
    /// changes. As upstream sends a change batch, it goes out as one `KVs`
    /// message, split only if it holds more than `snapshot_batch_size`
    /// updates or about half of `max_server_message_len` bytes; when the
    /// client lags, waiting batches are coalesced into one message (never
    /// splitting one) until it holds at least `snapshot_batch_size`. An
    /// empty value is sent as a deletion (see
    /// [`SerializedUpdate`]). If the queue passes `max_queued_bytes`, the
    /// client is disconnected with [`CloseReason::SlowReader`] (reported as
    /// an event, not an error).
    pub fn send_updates(&mut self, updates: Vec<SerializedUpdate>) -> Result<(), UsageError> {
        self.check_open()?;
        self.manual_queue()?.push_updates(updates)?;
        self.enforce_queue_limit();
        Ok(())
    }

    /// Queues a sync status change; it is sent only if it differs from the
    /// last status sent when its turn comes.
    pub fn send_status(&mut self, status: SyncStatus) -> Result<(), UsageError> {
        self.check_open()?;
        self.manual_queue()?.push_status(status)
    }

    pub(super) fn manual_queue(&mut self) -> Result<&mut SendQueue, UsageError> {
        match &mut self.feed {
            Feed::Manual(queue) => Ok(queue),
            Feed::Cache(_) => Err(UsageError::FollowingCache),
        }
    }

    pub(super) fn check_open(&self) -> Result<(), UsageError> {
        match self.state {
            State::Closed => Err(UsageError::Closed),
            _ if self.draining => Err(UsageError::Stopping),
            _ => Ok(()),
        }
    }

    pub(super) fn enforce_queue_limit(&mut self) {
        let queued = self.queued_bytes();
        if queued > self.config.max_queued_bytes {
            self.finish(CloseReason::SlowReader {
                queued,
                limit: self.config.max_queued_bytes,
            });
        }
    }

    /// Bytes waiting to be sent: encoded output not yet taken plus queued
    /// live updates (the snapshot's remainder is not counted).
    pub fn queued_bytes(&self) -> usize {
        let queued = match &self.feed {
            Feed::Manual(queue) => queue.queued_bytes(),
            Feed::Cache(_) => 0,
        };
        self.ready_bytes + queued
    }

    /// Whether everything given to the connection has been handed out by
    /// [`poll_transmit`](Self::poll_transmit): the snapshot (once given), its
    /// status and every queued change, with no decoder restart awaiting its
    /// acknowledgement. After [`stop_sending`](Self::stop_sending): whether
    /// what was ready has been handed out, the driver's signal to
    /// half-close the socket once its own buffers are written.
    pub fn is_flushed(&self) -> bool {
        if self.draining {
            return self.state != State::Closed && self.ready.is_empty();
        }
        let drained = match &self.feed {
            Feed::Manual(queue) => queue.is_drained(),
            Feed::Cache(subscription) => subscription.is_caught_up(),
        };
        self.state == State::Syncing && self.ready.is_empty() && drained
    }

    /// Queues a snapshot checksum (see [`crate::checksum`]) describing the
    /// state after everything given before it, for a connection given its
    /// data by hand: call right after the in-sync status that ends the
    /// initial sync, and after changes as often as
    /// [`checksum_interval`](super::ServerConfig::checksum_interval)
    /// allows. Dropped, never sent, when the client did not negotiate
    /// checksums (so it is harmless to call for every connection). A
    /// connection following a cache sends its own.
    pub fn send_checksum(&mut self, checksum: Checksum) -> Result<(), UsageError> {
        self.check_open()?;
        self.manual_queue()?.push_checksum(checksum)
    }

    /// What the feed offers next, if anything, at `now`.
    pub(super) fn next_step(&mut self, now: Instant) -> Option<Step> {
        match &mut self.feed {
            Feed::Manual(queue) => loop {
                match queue.next()? {
                    // Only to a client that negotiated them (the caller
                    // may queue them before the handshake is done).
                    Next::Message(Message::Checksum(_)) if !self.checksums => continue,
                    Next::Message(message) => return Some(Step::Message(message)),
                    Next::EndOfSnapshot => return Some(Step::EndOfSnapshot),
                }
            },
            Feed::Cache(subscription) => {
                let flavour = Flavour {
                    format: self.wire_format.unwrap_or(WireFormat::Native),
                    compressed: self.stream_compressed,
                };
                if self.checksums
                    && let Some(interval) = self.config.checksum_interval
                {
                    subscription.send_checksums(interval);
                }
                match subscription.pull(flavour, self.compression.is_some(), now) {
                    Pull::Output(output) => Some(Step::Output(output)),
                    Pull::EndOfSnapshot => Some(Step::EndOfSnapshot),
                    Pull::Idle => None,
                }
            }
        }
    }
}
