//! One key/value change as the server serialises it: `SerializedUpdate`.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use super::Revision;
use crate::gofmt;

/// What kind of change an update is (upstream's `api.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum UpdateType {
    /// The sender did not say (wire value 0).
    #[default]
    Unknown = 0,
    /// The key is new (wire value 1).
    New = 1,
    /// The key existed and its value changed (wire value 2).
    Updated = 2,
    /// The key was deleted (wire value 3).
    Deleted = 3,
}

impl UpdateType {
    /// Every update type, in wire-value order.
    pub const ALL: [UpdateType; 4] = [
        UpdateType::Unknown,
        UpdateType::New,
        UpdateType::Updated,
        UpdateType::Deleted,
    ];

    /// The value sent on the wire.
    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// Interprets a wire value; `None` for a value upstream does not define.
    pub fn from_wire(value: u8) -> Option<UpdateType> {
        Self::ALL.get(usize::from(value)).copied()
    }
}

/// One key/value pair and the syncer's metadata about it, in the datastore's
/// serialised ("default path") form: upstream's `SerializedUpdate`.
///
/// The value stays as raw bytes (JSON for most resources, plain text for
/// config keys); `None` is a deletion. When decoded, the key, the value and
/// any string are detached from the buffer they were read from, so that
/// keeping an update keeps alive only what it holds (a value of 64 KiB or
/// more that is most of its message is shared with it instead).
///
/// **An empty value is a deletion too.** gob omits zero-valued fields, so a
/// present but empty value never reaches a Go peer: Go decodes it as nil and
/// upstream Felix treats the update as a deletion (DESIGN.md §1a). So that
/// every client of one server holds the same state, whatever its wire
/// format, this crate applies the same rule everywhere: both decoders hand
/// out `None` for an empty value, both encoders send `Some(empty)` as no
/// value, the fan-out cache deletes the key, and [`apply_to`](Self::apply_to),
/// [`is_deletion`](Self::is_deletion) and
/// [`would_be_no_op`](Self::would_be_no_op) read an empty value as `None`.
/// [`normalized`](Self::normalized) makes the rule explicit on an update
/// built by hand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SerializedUpdate {
    /// The key as a datastore default path, e.g.
    /// `/calico/v1/host/node-1/workload/kubernetes/ns%2fpod/endpoint/eth0`.
    pub key: ByteString,
    /// The serialised value, `None` for a deletion.
    pub value: Option<Bytes>,
    /// The datastore revision of this change.
    pub revision: Revision,
    /// The Kubernetes resource version of a v3 resource, moved out of the
    /// value so that identical resources serialise identically (empty when
    /// unused or sent by a v3.2.5 peer).
    pub v3_resource_version: ByteString,
    /// Time to live in nanoseconds (Go's `time.Duration`); 0 for none.
    pub ttl_nanos: i64,
    /// What kind of change this is.
    pub update_type: UpdateType,
}

impl SerializedUpdate {
    /// An update that sets `key` to `value` (update type [`UpdateType::Updated`]).
    pub fn upsert(
        key: impl Into<ByteString>,
        value: impl Into<Bytes>,
        revision: impl Into<Revision>,
    ) -> Self {
        SerializedUpdate {
            key: key.into(),
            value: Some(value.into()),
            revision: revision.into(),
            update_type: UpdateType::Updated,
            ..SerializedUpdate::default()
        }
    }

    /// An update that deletes `key` (no value, update type [`UpdateType::Deleted`]).
    pub fn deletion(key: impl Into<ByteString>, revision: impl Into<Revision>) -> Self {
        SerializedUpdate {
            key: key.into(),
            revision: revision.into(),
            update_type: UpdateType::Deleted,
            ..SerializedUpdate::default()
        }
    }

    /// Whether this update deletes its key: it carries no value, or an
    /// empty one (see the type's docs).
    pub fn is_deletion(&self) -> bool {
        self.effective_value().is_none()
    }

    /// The value a receiver ends up holding: `None` for a deletion,
    /// including an empty value (see the type's docs).
    pub fn effective_value(&self) -> Option<&Bytes> {
        self.value.as_ref().filter(|value| !value.is_empty())
    }

    /// This update with an empty value replaced by `None`, the form every
    /// decoder hands out and every peer ends up holding. The update type
    /// is kept, as a Go peer keeps it.
    pub fn normalized(mut self) -> SerializedUpdate {
        if self.value.as_ref().is_some_and(Bytes::is_empty) {
            self.value = None;
        }
        self
    }

    /// Applies this update to a key → value view of the datastore (what a
    /// client builds from its `Updates` events): a value sets its key, no
    /// value (or an empty one) deletes it.
    pub fn apply_to(&self, view: &mut std::collections::BTreeMap<ByteString, Bytes>) {
        match self.effective_value() {
            Some(value) => {
                view.insert(self.key.clone(), value.clone());
            }
            None => {
                view.remove(&self.key);
            }
        }
    }

    /// A rough size of this update once encoded (either wire format), for
    /// batching and queue accounting.
    pub(crate) fn estimated_encoded_len(&self) -> usize {
        let revision = match &self.revision {
            Revision::String(text) => text.len(),
            _ => 16,
        };
        self.key.len()
            + self.value.as_ref().map_or(0, |value| value.len())
            + self.v3_resource_version.len()
            + revision
            + 24
    }

    /// Whether sending this update to a peer that has already been sent
    /// `previous` (for the same key) would change nothing it holds:
    /// upstream's `WouldBeNoOp`, which a server uses to squash redundant
    /// updates.
    ///
    /// The rules, as upstream: the revision and the v3 resource version are
    /// ignored on both sides; a `previous` of type [`UpdateType::New`] counts
    /// as [`UpdateType::Updated`] (an update may be squashed into a create);
    /// everything else (key, value, TTL, type) must be equal, an empty
    /// value counting as none (it is a deletion on every wire). A deletion
    /// is compared like anything else: one deletion following another is a
    /// no-op here, and it is the caller that decides whether deletions must
    /// always pass.
    pub fn would_be_no_op(&self, previous: &SerializedUpdate) -> bool {
        let previous_type = match previous.update_type {
            UpdateType::New => UpdateType::Updated,
            other => other,
        };
        self.update_type == previous_type
            && self.key == previous.key
            && self.effective_value() == previous.effective_value()
            && self.ttl_nanos == previous.ttl_nanos
    }
}

/// Renders as upstream's `String()`:
/// `SerializedUpdate<Key:…, Value:…, Revision:…, TTL:…, UpdateType:…>`, with
/// the value as (lossily decoded) text, the TTL as a Go duration and the
/// update type as its number.
impl fmt::Display for SerializedUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self
            .value
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        write!(
            f,
            "SerializedUpdate<Key:{}, Value:{}, Revision:{}, TTL:",
            self.key, value, self.revision
        )?;
        gofmt::write_duration(f, self.ttl_nanos)?;
        write!(f, ", UpdateType:{}>", self.update_type.to_wire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SerializedUpdate {
        SerializedUpdate {
            key: "/calico/v1/config/LogSeverityScreen".into(),
            value: Some(Bytes::from_static(b"Info")),
            revision: Revision::from("10"),
            v3_resource_version: "77".into(),
            ttl_nanos: 0,
            update_type: UpdateType::Updated,
        }
    }

    #[test]
    fn identical_update_is_a_no_op() {
        assert!(sample().would_be_no_op(&sample()));
    }

    #[test]
    fn revision_and_resource_version_are_ignored() {
        let mut next = sample();
        next.revision = Revision::Int64(11);
        next.v3_resource_version = "78".into();
        assert!(next.would_be_no_op(&sample()));
    }

    #[test]
    fn previous_new_counts_as_updated() {
        let mut previous = sample();
        previous.update_type = UpdateType::New;
        assert!(sample().would_be_no_op(&previous));
    }

    #[test]
    fn new_after_updated_is_not_a_no_op() {
        // Only the previous side is normalised, as upstream.
        let mut next = sample();
        next.update_type = UpdateType::New;
        assert!(!next.would_be_no_op(&sample()));
        let mut previous = sample();
        previous.update_type = UpdateType::New;
        assert!(!next.would_be_no_op(&previous));
    }

    #[test]
    fn changed_value_key_ttl_or_type_is_not_a_no_op() {
        let mut value = sample();
        value.value = Some(Bytes::from_static(b"Debug"));
        let mut key = sample();
        key.key = format!("{}X", key.key).into();
        let mut ttl = sample();
        ttl.ttl_nanos = 1;
        let mut kind = sample();
        kind.update_type = UpdateType::Unknown;
        for changed in [value, key, ttl, kind] {
            assert!(!changed.would_be_no_op(&sample()), "{changed}");
            assert!(!sample().would_be_no_op(&changed), "{changed}");
        }
    }

    #[test]
    fn an_empty_value_is_a_deletion() {
        let mut empty = sample();
        empty.value = Some(Bytes::new());
        let mut deleted = sample();
        deleted.value = None;
        assert!(empty.is_deletion());
        assert!(empty.would_be_no_op(&deleted));
        assert!(deleted.would_be_no_op(&empty));
        assert!(!empty.would_be_no_op(&sample()));
        assert_eq!(empty.clone().normalized(), deleted);
        let mut view = std::collections::BTreeMap::new();
        sample().apply_to(&mut view);
        empty.apply_to(&mut view);
        assert!(view.is_empty(), "an empty value deletes the key");
    }

    #[test]
    fn repeated_deletion_is_a_no_op_by_the_raw_rule() {
        let delete = SerializedUpdate::deletion("/calico/v1/Ready", "5");
        let again = SerializedUpdate::deletion("/calico/v1/Ready", "6");
        assert!(again.would_be_no_op(&delete));
        assert!(!again.would_be_no_op(&sample()));
    }

    #[test]
    fn display_matches_upstream_string() {
        let mut update = sample();
        update.ttl_nanos = 1_500_000_000;
        assert_eq!(
            update.to_string(),
            "SerializedUpdate<Key:/calico/v1/config/LogSeverityScreen, Value:Info, \
             Revision:10, TTL:1.5s, UpdateType:2>"
        );
        let deletion = SerializedUpdate::deletion("/calico/v1/Ready", Revision::Nil);
        assert_eq!(
            deletion.to_string(),
            "SerializedUpdate<Key:/calico/v1/Ready, Value:, Revision:<nil>, TTL:0s, UpdateType:3>"
        );
    }

    #[test]
    fn update_type_wire_values() {
        for kind in UpdateType::ALL {
            assert_eq!(UpdateType::from_wire(kind.to_wire()), Some(kind));
        }
        assert_eq!(UpdateType::from_wire(4), None);
    }
}
