//! One timer heap for all of a loop's connections, invalidated lazily.
//!
//! A connection remembers the deadline of its live heap entry (`armed`).
//! Re-arming pushes a new entry only when the deadline moves earlier; an
//! entry whose deadline no longer matches its connection's `armed` value is
//! stale and skipped when popped. When a live entry comes due the caller
//! checks the machine's current deadline and re-arms, which re-pushes it if
//! it moved later. So a deadline that moves later on every read (a client's
//! read timeout) costs nothing until it would have fired.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Which connection an entry belongs to: its slab index and its serial
/// (indices are reused; serials are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Owner {
    pub(crate) slot: usize,
    pub(crate) serial: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Owner)>>,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers::default()
    }

    /// Makes sure `owner` is woken at `deadline` (or earlier). `armed` is
    /// the owner's record of its live entry.
    pub(crate) fn arm(
        &mut self,
        armed: &mut Option<Instant>,
        owner: Owner,
        deadline: Option<Instant>,
    ) {
        match deadline {
            None => *armed = None,
            // An entry at or before the deadline exists; when it fires the
            // owner re-arms for the real deadline.
            Some(due) if armed.is_some_and(|at| at <= due) => {}
            Some(due) => {
                self.heap.push(Reverse((due, owner)));
                *armed = Some(due);
            }
        }
    }

    /// The earliest entry's deadline (possibly a stale entry's: waking for
    /// it early is harmless).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Takes the next entry due at `now`, stale or not: the caller checks
    /// it against the owner's `armed` record.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner)> {
        match self.heap.peek() {
            Some(Reverse((due, _))) if *due <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops stale entries once they outnumber live connections, so that
    /// closed connections and deadlines that moved earlier do not pile up
    /// (a closed connection's entry could otherwise wait for minutes).
    pub(crate) fn compact_if_needed(
        &mut self,
        live_connections: usize,
        mut is_live: impl FnMut(Instant, Owner) -> bool,
    ) {
        if self.heap.len() <= 2 * live_connections + 1024 {
            return;
        }
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse((due, owner))| is_live(*due, *owner))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Owner, Timers};

    #[test]
    fn later_deadlines_reuse_the_armed_entry() {
        let start = Instant::now();
        let owner = Owner { slot: 0, serial: 1 };
        let mut timers = Timers::new();
        let mut armed = None;
        timers.arm(&mut armed, owner, Some(start + Duration::from_secs(5)));
        for later in 6..100 {
            timers.arm(&mut armed, owner, Some(start + Duration::from_secs(later)));
        }
        assert_eq!(timers.len(), 1);
        timers.arm(&mut armed, owner, Some(start + Duration::from_secs(1)));
        assert_eq!(timers.len(), 2);
        assert_eq!(armed, Some(start + Duration::from_secs(1)));
        assert_eq!(timers.next_deadline(), armed);
        assert_eq!(timers.pop_due(start), None);
        let (due, popped) = timers.pop_due(start + Duration::from_secs(2)).unwrap();
        assert_eq!((due, popped), (start + Duration::from_secs(1), owner));
        // The entry at 5 s is now stale (armed says 1 s).
        let (due, _) = timers.pop_due(start + Duration::from_secs(10)).unwrap();
        assert_ne!(Some(due), armed);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn compaction_drops_stale_entries() {
        let start = Instant::now();
        let mut timers = Timers::new();
        for slot in 0..3000 {
            let mut armed = None;
            let owner = Owner {
                slot,
                serial: slot as u64,
            };
            timers.arm(&mut armed, owner, Some(start + Duration::from_secs(60)));
        }
        timers.compact_if_needed(10, |_, owner| owner.slot < 10);
        assert_eq!(timers.len(), 10);
    }
}
