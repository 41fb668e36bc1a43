//! Why a path is not a key.

use std::fmt;

/// How many `/`-separated segments a kind of key has (the leading `/` does
/// not start a segment: `/calico/v1/Ready` has 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentCount {
    /// Exactly this many.
    Exactly(usize),
    /// This many or more (keys whose last field may contain `/`).
    AtLeast(usize),
    /// Either of two counts (global or namespaced v3 resources).
    Either(usize, usize),
}

impl fmt::Display for SegmentCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentCount::Exactly(n) => write!(f, "{n}"),
            SegmentCount::AtLeast(n) => write!(f, "at least {n}"),
            SegmentCount::Either(a, b) => write!(f, "{a} or {b}"),
        }
    }
}

/// A path that is not a key, and why.
///
/// Returned by [`Key::parse`](super::Key::parse) and by a
/// [`KeyParser`](super::KeyParser). A client drops the update whose key
/// failed to parse and reports the error; the connection stays up (this is
/// how upstream keeps mixed-version clusters running).
///
/// Every variant that comes from parsing carries the offending path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The path does not start with `/`. Every path upstream renders does;
    /// upstream's parser tolerates its absence for some older key kinds.
    #[error("key path does not start with '/': {path:?}")]
    MissingLeadingSlash {
        /// The path.
        path: String,
    },
    /// No kind of key lives under this path's prefix.
    #[error("unknown key prefix: {path:?}")]
    UnknownPrefix {
        /// The path.
        path: String,
    },
    /// A fixed segment of the path is not what the key kind requires.
    #[error("{kind} key: expected {expected}, found {found:?} in {path:?}")]
    UnexpectedSegment {
        /// The kind of key (or family of keys) being parsed.
        kind: &'static str,
        /// What could stand there, in words.
        expected: &'static str,
        /// The segment found instead.
        found: String,
        /// The path.
        path: String,
    },
    /// The path has the wrong number of segments for its kind of key.
    #[error("{kind} key: expected {expected} segments, got {got}: {path:?}")]
    WrongSegmentCount {
        /// The kind of key (or family of keys) being parsed.
        kind: &'static str,
        /// How many segments that kind has.
        expected: SegmentCount,
        /// How many the path has.
        got: usize,
        /// The path.
        path: String,
    },
    /// A name segment is empty (upstream refuses to render such a key).
    #[error("{kind} key: empty {field}: {path:?}")]
    EmptySegment {
        /// The kind of key being parsed.
        kind: &'static str,
        /// Which field the segment holds.
        field: &'static str,
        /// The path.
        path: String,
    },
    /// An escaped name segment holds a `%` that does not start `%25` or
    /// `%2f`.
    #[error("invalid escape at byte {offset} of {path:?} (only %25 and %2f are defined)")]
    BadEscape {
        /// Byte offset of the offending `%` within the path.
        offset: usize,
        /// The path.
        path: String,
    },
    /// A v3 resource path names a resource plural this crate does not know.
    #[error("unknown v3 resource plural {plural:?}: {path:?}")]
    UnknownPlural {
        /// The plural found.
        plural: String,
        /// The path.
        path: String,
    },
    /// A namespaced v3 resource kind in a path without a namespace segment.
    #[error("{kind} is namespaced but the path has no namespace: {path:?}")]
    MissingNamespace {
        /// The resource kind.
        kind: &'static str,
        /// The path.
        path: String,
    },
    /// A global (cluster-scoped) v3 resource kind in a path with a
    /// namespace segment.
    #[error("{kind} is not namespaced but the path has a namespace: {path:?}")]
    UnexpectedNamespace {
        /// The resource kind.
        kind: &'static str,
        /// The path.
        path: String,
    },
    /// A CIDR segment (`<address>-<prefix length>`) does not parse.
    #[error("invalid CIDR {segment:?} ({reason}): {path:?}")]
    InvalidCidr {
        /// The segment.
        segment: String,
        /// What is wrong with it.
        reason: &'static str,
        /// The path.
        path: String,
    },
    /// A CIDR segment parses but is not written the way upstream renders it
    /// (host bits set, or a non-canonical address spelling), so it would not
    /// render back to the same path.
    #[error("CIDR {segment:?} is not in canonical form (expected {canonical:?}): {path:?}")]
    NonCanonicalCidr {
        /// The segment.
        segment: String,
        /// How upstream would write the same network.
        canonical: String,
        /// The path.
        path: String,
    },
    /// The IP-version segment (`v4`, `ipv6`, …) does not match the CIDR.
    #[error("version segment {segment:?} does not match CIDR {cidr}: {path:?}")]
    IpVersionMismatch {
        /// The version segment.
        segment: String,
        /// The CIDR, as parsed.
        cidr: String,
        /// The path.
        path: String,
    },
    /// A custom [`KeyParser`](super::KeyParser) refused the path.
    #[error("{0}")]
    Custom(String),
}
