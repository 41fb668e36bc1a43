//! The client's side of snapshot checksums (DESIGN.md §1b): the checksum
//! of everything received on this connection, kept incrementally, and the
//! comparison when the server's `Checksum` arrives.
//!
//! The client hashes updates as they arrived, before any key is dropped by
//! the key parser or rewritten by the legacy-policy-key upgrade: the
//! server's checksum covers what it sent. Because messages are handled in
//! order, everything the server sent before its `Checksum` has been
//! accounted for when the comparison runs.

use std::collections::HashMap;
use std::time::Instant;

use super::config::ChecksumCheck;
use crate::checksum::{StateChecksum, entry_digest};
use xxhash_rust::xxh3::xxh3_128;

use crate::message::{Checksum, SerializedUpdateRef};

/// One comparison of the server's checksum with the client's, reported as
/// [`ClientEvent::Checksum`](super::ClientEvent::Checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumReport {
    /// What the server sent: its state after everything it sent before.
    pub server: StateChecksum,
    /// The client's own checksum of everything it received before it.
    pub local: StateChecksum,
    /// Whether they agree (counts only, with
    /// [`ChecksumCheck::count_only`]).
    pub verified: bool,
    /// Mismatches in a row on this connection, this one included (0 when
    /// verified).
    pub consecutive_mismatches: u32,
    /// When the server's checksum was handled (the `now` of that
    /// `handle_input`), for rate-limiting what a mismatch triggers.
    pub received_at: Instant,
}

/// The checksum of what one connection received, by key.
#[derive(Debug)]
pub(crate) struct ReceivedState {
    check: ChecksumCheck,
    /// Each live key's digest, by a 128-bit hash of the key (xxh3, seed
    /// 0): about 32 bytes per key, and no key kept alive. Two keys would
    /// have to collide in all 128 bits to be confused, which no datastore
    /// comes near (a peer forging collisions gains nothing: it chooses the
    /// checksums it sends anyway). The table's own hasher is std's
    /// randomly keyed one, so forged keys cannot crowd one bucket.
    digests: HashMap<u128, u64>,
    state: StateChecksum,
    consecutive_mismatches: u32,
}

impl ReceivedState {
    pub(crate) fn new(check: ChecksumCheck) -> ReceivedState {
        ReceivedState {
            check,
            digests: HashMap::new(),
            state: StateChecksum::default(),
            consecutive_mismatches: 0,
        }
    }

    /// Accounts for updates as received (an empty value is a deletion).
    /// A write that changes nothing, or a deletion of an absent key,
    /// changes nothing.
    pub(crate) fn apply<'u>(&mut self, updates: impl IntoIterator<Item = SerializedUpdateRef<'u>>) {
        for update in updates {
            let new = update
                .effective_value()
                .map(|value| entry_digest(update.key.as_bytes(), value));
            let key = xxh3_128(update.key.as_bytes());
            let old = match new {
                Some(digest) => self.digests.insert(key, digest),
                None => self.digests.remove(&key),
            };
            if old != new {
                self.state.replace(old, new);
            }
        }
    }

    /// The checksum of what was received so far.
    pub(crate) fn state(&self) -> StateChecksum {
        self.state
    }

    /// Compares the server's checksum with what was received before it.
    pub(crate) fn check(&mut self, server: Checksum, now: Instant) -> ChecksumReport {
        let server = StateChecksum::from(server);
        let verified = match self.check.count_only {
            true => server.kv_count == self.state.kv_count,
            false => server == self.state,
        };
        self.consecutive_mismatches = match verified {
            true => 0,
            false => self.consecutive_mismatches.saturating_add(1),
        };
        ChecksumReport {
            server,
            local: self.state,
            verified,
            consecutive_mismatches: self.consecutive_mismatches,
            received_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Revision, SerializedUpdate};

    fn apply(received: &mut ReceivedState, updates: &[SerializedUpdate]) {
        received.apply(updates.iter().map(SerializedUpdate::borrowed));
    }

    fn update(key: &str, value: &str) -> SerializedUpdate {
        SerializedUpdate::upsert(key.to_string(), value.to_string(), Revision::Nil)
    }

    #[test]
    fn no_op_writes_and_absent_deletions_change_nothing() {
        let mut received = ReceivedState::new(ChecksumCheck::default());
        apply(&mut received, &[update("a", "1"), update("b", "2")]);
        let before = received.state();
        apply(&mut received, &[update("a", "1"), update("c", "")]);
        assert_eq!(received.state(), before);
        apply(&mut received, &[update("b", "")]);
        let mut expected = StateChecksum::default();
        expected.replace(None, Some(entry_digest(b"a", b"1")));
        assert_eq!(received.state(), expected);
    }

    #[test]
    fn mismatches_are_counted_in_a_row_and_reset_when_verified() {
        let now = Instant::now();
        let mut received = ReceivedState::new(ChecksumCheck::default());
        apply(&mut received, &[update("a", "1")]);
        let good = Checksum::from(received.state());
        let bad = Checksum {
            checksum: good.checksum ^ 1,
            ..good
        };
        let runs: Vec<(bool, u32)> = [bad, bad, good, bad]
            .into_iter()
            .map(|sent| {
                let report = received.check(sent, now);
                (report.verified, report.consecutive_mismatches)
            })
            .collect();
        assert_eq!(runs, [(false, 1), (false, 2), (true, 0), (false, 1)]);
        let mut counts = ReceivedState::new(ChecksumCheck { count_only: true });
        apply(&mut counts, &[update("a", "1")]);
        assert!(counts.check(bad, now).verified);
    }
}
