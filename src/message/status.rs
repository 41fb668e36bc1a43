//! The datastore sync status carried by the `SyncStatus` message.

use std::fmt;

/// How far the server's view of the datastore is from complete.
///
/// Carried by [`Message::SyncStatus`](crate::Message::SyncStatus); the wire
/// value is the `u8` discriminant, as upstream's `api.SyncStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SyncStatus {
    /// The server is waiting for its datastore to become ready (wire value 0).
    WaitForDatastore = 0,
    /// The server is (re)loading the datastore; data may be incomplete (wire value 1).
    ResyncInProgress = 1,
    /// The server holds a complete, current snapshot (wire value 2).
    InSync = 2,
}

impl SyncStatus {
    /// Every status, in wire-value order.
    pub const ALL: [SyncStatus; 3] = [
        SyncStatus::WaitForDatastore,
        SyncStatus::ResyncInProgress,
        SyncStatus::InSync,
    ];

    /// The value sent on the wire.
    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// Interprets a wire value; `None` for a value upstream does not define.
    pub fn from_wire(value: u8) -> Option<SyncStatus> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// Upstream's display name (`wait-for-ready`, `resync`, `in-sync`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::WaitForDatastore => "wait-for-ready",
            SyncStatus::ResyncInProgress => "resync",
            SyncStatus::InSync => "in-sync",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_unknown_values_are_rejected() {
        for status in SyncStatus::ALL {
            assert_eq!(SyncStatus::from_wire(status.to_wire()), Some(status));
        }
        assert_eq!(SyncStatus::from_wire(3), None);
        assert_eq!(SyncStatus::from_wire(255), None);
    }

    #[test]
    fn display_names_match_upstream() {
        let names: Vec<String> = SyncStatus::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["wait-for-ready", "resync", "in-sync"]);
    }
}
