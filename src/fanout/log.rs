//! The change log: every accepted change with its sequence number and the
//! time it was applied, trimmed from the front.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::batch::ChangeBatch;
use crate::checksum::StateChecksum;
use crate::message::SyncStatus;

/// One accepted change: a batch of updates, or a status change.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Batch(Arc<ChangeBatch>),
    Status(SyncStatus),
}

#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub(crate) at: Instant,
    pub(crate) change: Change,
    /// The datastore's checksum once this change is applied.
    pub(crate) checksum: StateChecksum,
}

/// Changes numbered from 1; entries before `first_seq` have been trimmed.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    entries: VecDeque<LogEntry>,
    /// The sequence number of `entries[0]` (or of the next change, when
    /// the log is empty).
    first_seq: u64,
}

impl ChangeLog {
    pub(crate) fn new() -> ChangeLog {
        ChangeLog {
            entries: VecDeque::new(),
            first_seq: 1,
        }
    }

    /// Appends a change, after which the datastore's checksum is
    /// `checksum`; returns its sequence number.
    pub(crate) fn append(&mut self, at: Instant, change: Change, checksum: StateChecksum) -> u64 {
        self.entries.push_back(LogEntry {
            at,
            change,
            checksum,
        });
        self.last_seq()
    }

    /// The sequence number of the newest change (0 before any).
    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64 - 1
    }

    /// When the newest change was applied, if any is held.
    pub(crate) fn latest_at(&self) -> Option<Instant> {
        self.entries.back().map(|entry| entry.at)
    }

    /// The oldest sequence number still held.
    pub(crate) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry numbered `seq`, if it is still held.
    pub(crate) fn get(&self, seq: u64) -> Option<&LogEntry> {
        let index = seq.checked_sub(self.first_seq)?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// Drops entries from the front while `droppable(seq, entry)` says so.
    pub(crate) fn trim_front(&mut self, mut droppable: impl FnMut(u64, &LogEntry) -> bool) {
        while let Some(front) = self.entries.front() {
            if !droppable(self.first_seq, front) {
                break;
            }
            self.entries.pop_front();
            self.first_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_one_and_trims_from_the_front() {
        let now = Instant::now();
        let mut log = ChangeLog::new();
        assert_eq!(log.last_seq(), 0);
        for _ in 0..5 {
            log.append(
                now,
                Change::Status(SyncStatus::InSync),
                StateChecksum::default(),
            );
        }
        assert_eq!((log.first_seq(), log.last_seq(), log.len()), (1, 5, 5));
        log.trim_front(|seq, _| seq < 3);
        assert_eq!((log.first_seq(), log.last_seq(), log.len()), (3, 5, 3));
        assert!(log.get(2).is_none() && log.get(3).is_some() && log.get(6).is_none());
        log.trim_front(|_, _| true);
        assert_eq!((log.first_seq(), log.last_seq(), log.len()), (6, 5, 0));
        assert_eq!(
            log.append(
                now,
                Change::Status(SyncStatus::InSync),
                StateChecksum::default()
            ),
            6
        );
    }
}
