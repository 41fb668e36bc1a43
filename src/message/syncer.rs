//! Which syncer (which slice of the datastore) a client asks the server for.

use std::fmt;

/// The kind of syncer a client requests in its hello and the server echoes.
///
/// Upstream sends this as a string; an empty string (what a v3.2.5 peer
/// implicitly sends, since it lacks the field) means [`SyncerType::Felix`].
/// Names this crate does not know are kept verbatim in [`SyncerType::Other`]
/// so that a server can refuse them with a precise reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SyncerType {
    /// Felix's full syncer (`"felix"`, or the empty string from old peers).
    #[default]
    Felix,
    /// The BGP daemon's syncer, used by confd (`"bgp"`).
    Bgp,
    /// The tunnel-IP allocator's syncer (`"tunnel-ip-allocation"`).
    TunnelIpAllocation,
    /// The node-status agent's syncer (`"node-status"`).
    NodeStatus,
    /// A name this crate does not know, kept as sent.
    Other(String),
}

impl SyncerType {
    /// The syncer types upstream defines, in upstream's order.
    pub const KNOWN: [SyncerType; 4] = [
        SyncerType::Felix,
        SyncerType::Bgp,
        SyncerType::TunnelIpAllocation,
        SyncerType::NodeStatus,
    ];

    /// Interprets the wire string; the empty string means [`SyncerType::Felix`].
    pub fn from_wire(name: &str) -> SyncerType {
        match name {
            "" | "felix" => SyncerType::Felix,
            "bgp" => SyncerType::Bgp,
            "tunnel-ip-allocation" => SyncerType::TunnelIpAllocation,
            "node-status" => SyncerType::NodeStatus,
            other => SyncerType::Other(other.to_owned()),
        }
    }

    /// The string sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            SyncerType::Felix => "felix",
            SyncerType::Bgp => "bgp",
            SyncerType::TunnelIpAllocation => "tunnel-ip-allocation",
            SyncerType::NodeStatus => "node-status",
            SyncerType::Other(name) => name,
        }
    }

    /// Whether this is one of the upstream syncer types.
    pub fn is_known(&self) -> bool {
        !matches!(self, SyncerType::Other(_))
    }
}

impl fmt::Display for SyncerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_name_means_felix() {
        assert_eq!(SyncerType::from_wire(""), SyncerType::Felix);
    }

    #[test]
    fn known_names_round_trip() {
        for syncer in SyncerType::KNOWN {
            assert_eq!(SyncerType::from_wire(syncer.as_str()), syncer);
            assert!(syncer.is_known());
        }
    }

    #[test]
    fn unknown_names_are_kept_verbatim() {
        let syncer = SyncerType::from_wire("Felix ");
        assert_eq!(syncer, SyncerType::Other("Felix ".into()));
        assert_eq!(syncer.as_str(), "Felix ");
        assert!(!syncer.is_known());
    }
}
