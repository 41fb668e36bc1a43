//! Upstream's snapshot checksum (typha/DESIGN.md, "Snapshot integrity
//! checking"; DESIGN.md §1b): a digest of a datastore that a server sends
//! and a client compares with its own, so that a client can prove the state
//! it rebuilt equals the server's.
//!
//! Each live entry's digest is `xxhash64(len(key) as u64 little-endian ‖
//! key ‖ value)` (seed 0) over the key and value bytes as they travel; the
//! store's checksum is the XOR of its entries' digests, with the number of
//! entries beside it. XOR makes it incremental: an insert XORs the new
//! entry's digest in, a deletion XORs the old one out, a replacement both;
//! a write that changes nothing and a deletion of an absent key change
//! nothing.

use xxhash_rust::xxh64::Xxh64;

/// The digest of one live entry: `xxhash64(u64-LE(len(key)) ‖ key ‖ value)`.
pub fn entry_digest(key: &[u8], value: &[u8]) -> u64 {
    let mut hasher = Xxh64::new(0);
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(value);
    hasher.digest()
}

/// A datastore's checksum and entry count, maintained incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateChecksum {
    /// The XOR of every live entry's [`entry_digest`].
    pub checksum: u64,
    /// How many entries are live.
    pub kv_count: i64,
}

impl StateChecksum {
    /// Accounts for a change from `old` (the entry's previous digest, if it
    /// was live) to `new` (its digest now, if it is live).
    pub fn replace(&mut self, old: Option<u64>, new: Option<u64>) {
        if let Some(old) = old {
            self.checksum ^= old;
            self.kv_count -= 1;
        }
        if let Some(new) = new {
            self.checksum ^= new;
            self.kv_count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's golden vectors (DESIGN.md §1b).
    #[test]
    fn entry_digests_match_upstreams_golden_vectors() {
        for (key, value, digest) in [
            ("", "", 0x34c9_6acd_cadb_1bbb_u64),
            ("a", "", 0xbd16_98ea_da10_e1c3),
            ("", "a", 0xcb1a_3b8d_d9fb_e162),
            ("ab", "c", 0x4b60_7981_3954_9d1d),
            ("a", "bc", 0x4142_39d9_9b92_288c),
        ] {
            assert_eq!(
                entry_digest(key.as_bytes(), value.as_bytes()),
                digest,
                "({key:?}, {value:?})"
            );
        }
    }

    #[test]
    fn changes_undo_each_other_whatever_the_order() {
        let a = entry_digest(b"a", b"1");
        let b = entry_digest(b"b", b"2");
        let b2 = entry_digest(b"b", b"3");
        let mut forward = StateChecksum::default();
        forward.replace(None, Some(a));
        forward.replace(None, Some(b));
        forward.replace(Some(b), Some(b2));
        let mut other = StateChecksum::default();
        other.replace(None, Some(b2));
        other.replace(None, Some(a));
        assert_eq!(forward, other);
        forward.replace(Some(a), None);
        forward.replace(Some(b2), None);
        assert_eq!(forward, StateChecksum::default());
    }
}
