//! Snapshot integrity: `Checksum` (upstream's newest `MsgChecksum`).

use crate::checksum::StateChecksum;

/// The server's checksum of the datastore as of everything it sent before
/// this message (upstream's `MsgChecksum`, server to client, only to a
/// client whose hello asked for it). See [`crate::checksum`] for how it is
/// computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Checksum {
    /// The XOR of every live entry's digest.
    pub checksum: u64,
    /// How many entries are live.
    pub kv_count: i64,
}

impl From<StateChecksum> for Checksum {
    fn from(state: StateChecksum) -> Checksum {
        Checksum {
            checksum: state.checksum,
            kv_count: state.kv_count,
        }
    }
}

impl From<Checksum> for StateChecksum {
    fn from(message: Checksum) -> StateChecksum {
        StateChecksum {
            checksum: message.checksum,
            kv_count: message.kv_count,
        }
    }
}
