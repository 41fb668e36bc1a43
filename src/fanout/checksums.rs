//! When a connection following the cache sends snapshot checksums, as
//! upstream's server does (typha/DESIGN.md, "Snapshot integrity checking";
//! DESIGN.md §1b): right after the in-sync status that ends the initial
//! sync, then after a batch of changes at most once per interval, each
//! describing the state after what was just sent.

use std::time::{Duration, Instant};

use crate::checksum::StateChecksum;
use crate::message::SyncStatus;

/// One connection's checksum schedule.
#[derive(Debug, Clone)]
pub(crate) struct ChecksumSchedule {
    interval: Duration,
    /// The initial sync has ended (an in-sync status went out).
    synced: bool,
    last_sent: Option<Instant>,
    /// A checksum to send before anything else.
    due: Option<StateChecksum>,
}

impl ChecksumSchedule {
    pub(crate) fn new(interval: Duration) -> ChecksumSchedule {
        ChecksumSchedule {
            interval,
            synced: false,
            last_sent: None,
            due: None,
        }
    }

    /// `status` went out, the state being `checksum`: the first in-sync
    /// ends the initial sync, and its checksum follows at once.
    pub(crate) fn status_sent(
        &mut self,
        status: SyncStatus,
        checksum: StateChecksum,
        now: Instant,
    ) {
        if status == SyncStatus::InSync && !self.synced {
            self.synced = true;
            self.schedule(checksum, now);
        }
    }

    /// Changes went out, the state being `checksum` after them.
    pub(crate) fn changes_sent(&mut self, checksum: StateChecksum, now: Instant) {
        let waited = self
            .last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if self.synced && waited {
            self.schedule(checksum, now);
        }
    }

    fn schedule(&mut self, checksum: StateChecksum, now: Instant) {
        self.due = Some(checksum);
        self.last_sent = Some(now);
    }

    /// The checksum to send next, if one is due.
    pub(crate) fn take_due(&mut self) -> Option<StateChecksum> {
        self.due.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_initial_sync_then_at_most_once_per_interval() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let state = |count| StateChecksum {
            checksum: count as u64,
            kv_count: count,
        };
        let mut schedule = ChecksumSchedule::new(Duration::from_secs(30));
        // Not before the initial sync.
        schedule.changes_sent(state(1), at(0));
        schedule.status_sent(SyncStatus::ResyncInProgress, state(1), at(0));
        assert_eq!(schedule.take_due(), None);
        schedule.status_sent(SyncStatus::InSync, state(2), at(1));
        assert_eq!(schedule.take_due(), Some(state(2)));
        // Changes soon after: none; 30 s later: the state after them.
        schedule.changes_sent(state(3), at(10));
        assert_eq!(schedule.take_due(), None);
        schedule.changes_sent(state(4), at(31));
        assert_eq!(schedule.take_due(), Some(state(4)));
        // A later in-sync (after a resync) does not send one by itself.
        schedule.status_sent(SyncStatus::InSync, state(5), at(40));
        assert_eq!(schedule.take_due(), None);
    }
}
