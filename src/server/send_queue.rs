//! What a server connection sends next, in order: the snapshot in batches,
//! its closing status, then live updates and status changes.
//!
//! Messages are produced lazily, one at a time, when the connection has room
//! to send: the snapshot is pulled from its iterator batch by batch rather
//! than queued whole, and only live changes the caller pushes wait here.
//!
//! Live changes go out as upstream's server sends them
//! (`typha/pkg/syncserver/sync_server.go`, `sendDeltaUpdatesToClient`):
//! each batch the caller hands over (one `send_updates` call, split only
//! when it exceeds the batch limits) is one `KVs` message; when the client
//! lags — batches are waiting behind the one being sent — whole batches
//! are coalesced into one message until it holds at least `batch_size`
//! updates (so at most about twice that), and a batch is never split
//! across messages. Statuses are sent only when they differ from the last
//! one sent, which starts as `WaitForDatastore`: that status is never sent.

use std::collections::VecDeque;
use std::fmt;

use crate::error::UsageError;
use crate::message::{Checksum, Message, SerializedUpdate, SyncStatus};

/// A snapshot source: any iterator of updates, in key order.
pub(crate) type SnapshotFeed = Box<dyn Iterator<Item = SerializedUpdate> + Send>;

enum Snapshot {
    NotGiven,
    Streaming {
        feed: SnapshotFeed,
        /// An update taken from the feed that did not fit the last batch.
        carry: Option<SerializedUpdate>,
        status: SyncStatus,
    },
    Sent,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Snapshot::NotGiven => f.write_str("NotGiven"),
            Snapshot::Streaming { status, .. } => write!(f, "Streaming(then {status})"),
            Snapshot::Sent => f.write_str("Sent"),
        }
    }
}

/// What a [`SendQueue`] hands out.
#[derive(Debug)]
pub(crate) enum Next {
    /// A message to send.
    Message(Message),
    /// Every snapshot update has been handed out (the snapshot's status
    /// comes next).
    EndOfSnapshot,
}

#[derive(Debug)]
enum Outgoing {
    Updates(Vec<SerializedUpdate>, usize),
    Status(SyncStatus),
    Checksum(Checksum),
}

/// The ordered source of a server connection's data messages.
#[derive(Debug)]
pub(crate) struct SendQueue {
    snapshot: Snapshot,
    backlog: VecDeque<Outgoing>,
    backlog_bytes: usize,
    last_status: SyncStatus,
    /// Updates per snapshot message.
    snapshot_batch_size: usize,
    /// Updates per live batch, and the count past which lagging batches
    /// stop being coalesced.
    batch_size: usize,
    batch_bytes: usize,
}

impl SendQueue {
    /// A queue that batches at most `batch_size` updates and about
    /// `batch_bytes` bytes per message.
    pub(crate) fn new(batch_size: usize, batch_bytes: usize) -> SendQueue {
        let batch_size = batch_size.max(1);
        SendQueue {
            snapshot: Snapshot::NotGiven,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            // As upstream's server: nothing to announce until the status
            // leaves WaitForDatastore.
            last_status: SyncStatus::WaitForDatastore,
            snapshot_batch_size: batch_size,
            batch_size,
            batch_bytes: batch_bytes.max(1),
        }
    }

    /// Changes how many updates a snapshot message holds (upstream sends
    /// larger batches in a compressed snapshot; live batches stay as they
    /// are).
    pub(crate) fn set_snapshot_batch_size(&mut self, batch_size: usize) {
        self.snapshot_batch_size = batch_size.max(1);
    }

    pub(crate) fn set_snapshot(
        &mut self,
        feed: SnapshotFeed,
        status: SyncStatus,
    ) -> Result<(), UsageError> {
        if !matches!(self.snapshot, Snapshot::NotGiven) {
            return Err(UsageError::SnapshotAlreadySent);
        }
        self.snapshot = Snapshot::Streaming {
            feed,
            carry: None,
            status,
        };
        Ok(())
    }

    pub(crate) fn push_updates(
        &mut self,
        updates: Vec<SerializedUpdate>,
    ) -> Result<(), UsageError> {
        if matches!(self.snapshot, Snapshot::NotGiven) {
            return Err(UsageError::SnapshotNotSent);
        }
        // An empty value is a deletion on every wire: send it as one.
        let mut updates = updates
            .into_iter()
            .map(SerializedUpdate::normalized)
            .peekable();
        while updates.peek().is_some() {
            let (batch, bytes) = take_batch(&mut updates, self.batch_size, self.batch_bytes);
            self.backlog_bytes += bytes;
            self.backlog.push_back(Outgoing::Updates(batch, bytes));
        }
        Ok(())
    }

    pub(crate) fn push_status(&mut self, status: SyncStatus) -> Result<(), UsageError> {
        if matches!(self.snapshot, Snapshot::NotGiven) {
            return Err(UsageError::SnapshotNotSent);
        }
        self.backlog.push_back(Outgoing::Status(status));
        Ok(())
    }

    pub(crate) fn push_checksum(&mut self, checksum: Checksum) -> Result<(), UsageError> {
        if matches!(self.snapshot, Snapshot::NotGiven) {
            return Err(UsageError::SnapshotNotSent);
        }
        self.backlog.push_back(Outgoing::Checksum(checksum));
        Ok(())
    }

    /// Bytes of live updates waiting to be sent (the snapshot is not
    /// counted: it is pulled from the caller's iterator as it goes).
    pub(crate) fn queued_bytes(&self) -> usize {
        self.backlog_bytes
    }

    /// Whether the snapshot has been given and handed out, and nothing
    /// queued after it remains.
    pub(crate) fn is_drained(&self) -> bool {
        self.snapshot_sent() && self.backlog.is_empty()
    }

    /// Whether a snapshot has been given (sent or not).
    pub(crate) fn snapshot_given(&self) -> bool {
        !matches!(self.snapshot, Snapshot::NotGiven)
    }

    /// Whether the snapshot has been given and fully handed out.
    pub(crate) fn snapshot_sent(&self) -> bool {
        matches!(self.snapshot, Snapshot::Sent)
    }

    /// What to send next, if anything: snapshot batches, the end of the
    /// snapshot (once), its status, then queued changes. Statuses equal to
    /// the last one sent are skipped.
    pub(crate) fn next(&mut self) -> Option<Next> {
        if let Some(next) = self.next_snapshot_item() {
            return Some(next);
        }
        if !self.snapshot_sent() {
            return None;
        }
        while let Some(outgoing) = self.backlog.pop_front() {
            match outgoing {
                Outgoing::Updates(mut updates, mut bytes) => {
                    self.backlog_bytes -= bytes;
                    // Batches waiting behind this one: the client lags, so
                    // coalesce whole batches into this message.
                    while updates.len() < self.batch_size
                        && let Some((next, next_bytes)) = self.pop_batch_fitting(&updates, bytes)
                    {
                        updates.extend(next);
                        bytes += next_bytes;
                    }
                    return Some(Next::Message(Message::Kvs(updates)));
                }
                Outgoing::Status(status) => {
                    if let Some(message) = self.status_message(status) {
                        return Some(Next::Message(message));
                    }
                }
                Outgoing::Checksum(checksum) => {
                    return Some(Next::Message(Message::Checksum(checksum)));
                }
            }
        }
        None
    }

    /// Takes the next queued batch if it is updates that fit in one
    /// message with `updates` (`bytes` so far).
    fn pop_batch_fitting(
        &mut self,
        updates: &[SerializedUpdate],
        bytes: usize,
    ) -> Option<(Vec<SerializedUpdate>, usize)> {
        let Some(Outgoing::Updates(next, next_bytes)) = self.backlog.front() else {
            return None;
        };
        let fits = bytes + next_bytes <= self.batch_bytes
            && updates.len() + next.len() <= crate::codec::MAX_UPDATES_PER_MESSAGE;
        if !fits {
            return None;
        }
        let Some(Outgoing::Updates(next, next_bytes)) = self.backlog.pop_front() else {
            return None;
        };
        self.backlog_bytes -= next_bytes;
        Some((next, next_bytes))
    }

    fn next_snapshot_item(&mut self) -> Option<Next> {
        let (batch_size, batch_bytes) = (self.snapshot_batch_size, self.batch_bytes);
        let Snapshot::Streaming {
            feed,
            carry,
            status,
        } = &mut self.snapshot
        else {
            return None;
        };
        let status = *status;
        let batch = {
            let mut source = carry.take().into_iter().chain(feed.by_ref()).peekable();
            let (batch, _) = take_batch(&mut source, batch_size, batch_bytes);
            // The batch may have stopped at an update it peeked at (or at its
            // count): keep the next one for the following batch.
            let leftover = source.next();
            *carry = leftover;
            batch
        };
        if !batch.is_empty() {
            return Some(Next::Message(Message::Kvs(batch)));
        }
        self.snapshot = Snapshot::Sent;
        // The snapshot's status goes first among the queued changes, sent
        // like any other only if it differs from the last one sent.
        self.backlog.push_front(Outgoing::Status(status));
        Some(Next::EndOfSnapshot)
    }

    fn status_message(&mut self, status: SyncStatus) -> Option<Message> {
        if self.last_status == status {
            return None;
        }
        self.last_status = status;
        Some(Message::SyncStatus(status))
    }
}

/// Takes updates off the front of `updates` while the batch has fewer than
/// `max_count` entries and stays under `max_bytes` (a batch always takes at
/// least one update, however large).
fn take_batch(
    updates: &mut std::iter::Peekable<impl Iterator<Item = SerializedUpdate>>,
    max_count: usize,
    max_bytes: usize,
) -> (Vec<SerializedUpdate>, usize) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.len() < max_count {
        let Some(next) = updates.peek() else { break };
        let len = next.estimated_encoded_len();
        if !batch.is_empty() && bytes + len > max_bytes {
            break;
        }
        bytes += len;
        batch.extend(updates.next());
    }
    (batch, bytes)
}
