//! The change chain: every accepted change as a breadcrumb, linked to the
//! next one through an `Arc`, as upstream's snapshot cache does
//! (`typha/pkg/snapcache/cache.go`, `Breadcrumb.Next`).
//!
//! Only the cache's writer (under its mutex) appends; readers follow the
//! links without any lock. A crumb is immutable once linked, except for
//! its `next` link, which is set exactly once. Nothing trims the chain: a
//! crumb is freed as soon as nobody holds it or a crumb before it, so the
//! chain holds exactly what the slowest reader (or the latest snapshot
//! generation) still needs, and a reader that stops reading is disconnected
//! at its fall-behind deadline, releasing what it held.

use std::sync::{Arc, OnceLock};
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

/// One link of the chain: change number `seq` and the link to the next.
#[derive(Debug)]
pub(crate) struct Crumb {
    pub(crate) seq: u64,
    pub(crate) at: Instant,
    /// `None` only for the chain's origin (sequence number 0), which stands
    /// for the empty datastore and is never sent.
    pub(crate) change: Option<Change>,
    /// The datastore's checksum once this change is applied.
    pub(crate) checksum: StateChecksum,
    next: OnceLock<Arc<Crumb>>,
}

impl Crumb {
    /// The start of a chain: the empty datastore, sequence number 0.
    pub(crate) fn origin(at: Instant) -> Arc<Crumb> {
        Arc::new(Crumb {
            seq: 0,
            at,
            change: None,
            checksum: StateChecksum::default(),
            next: OnceLock::new(),
        })
    }

    /// The change after this one, once it has been appended. Lock-free.
    pub(crate) fn next(&self) -> Option<&Arc<Crumb>> {
        self.next.get()
    }

    /// Appends `change` after this crumb, which must be the newest; returns
    /// the new newest crumb. Only the cache's writer calls this, holding
    /// the cache's mutex, so the link is always free.
    pub(crate) fn append(
        &self,
        at: Instant,
        change: Change,
        checksum: StateChecksum,
    ) -> Arc<Crumb> {
        let crumb = Arc::new(Crumb {
            seq: self.seq + 1,
            at,
            change: Some(change),
            checksum,
            next: OnceLock::new(),
        });
        // Cannot fail: the writer holds the mutex and appends only to the
        // newest crumb, whose link nobody else sets.
        let _ = self.next.set(Arc::clone(&crumb));
        crumb
    }
}

impl Drop for Crumb {
    /// Frees the rest of the chain that only this crumb held, one link at a
    /// time: the default recursive drop would overflow the stack on a long
    /// chain (a laggard disconnected a million changes behind).
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(crumb) = next {
            next = match Arc::into_inner(crumb) {
                Some(mut crumb) => crumb.next.take(),
                None => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(crumb: &Crumb, at: Instant) -> Arc<Crumb> {
        crumb.append(
            at,
            Change::Status(SyncStatus::InSync),
            StateChecksum::default(),
        )
    }

    #[test]
    fn numbers_from_the_origin_and_links_forward() {
        let now = Instant::now();
        let origin = Crumb::origin(now);
        let mut newest = Arc::clone(&origin);
        for _ in 0..5 {
            newest = status(&newest, now);
        }
        assert_eq!(newest.seq, 5);
        let mut seen = Vec::new();
        let mut at = &origin;
        while let Some(next) = at.next() {
            seen.push(next.seq);
            at = next;
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        assert!(newest.next().is_none());
    }

    #[test]
    fn a_crumb_nobody_holds_is_freed_with_what_only_it_held() {
        let now = Instant::now();
        let origin = Crumb::origin(now);
        let second = status(&status(&origin, now), now);
        let weak = Arc::downgrade(&second);
        drop(second);
        assert!(weak.upgrade().is_some(), "still linked from the origin");
        drop(origin);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn dropping_a_long_chain_does_not_recurse() {
        let now = Instant::now();
        let origin = Crumb::origin(now);
        let mut newest = Arc::clone(&origin);
        for _ in 0..1_000_000 {
            newest = status(&newest, now);
        }
        drop(newest);
        drop(origin);
    }
}
