//! Messages that borrow the frame they were decoded from: what the
//! decoders' borrowing API (`decode_borrowed`) hands a callback.
//!
//! A decoder's owning API (`decode`) copies every key, value and string out
//! of its frame, so that an update an application keeps costs what it holds
//! and does not pin the frame (see [`SerializedUpdate`]). A consumer that
//! applies each update and drops it at once (a relay, a checksum, a tool
//! printing or counting a capture) pays for copies it never keeps. The
//! borrowing API hands it [`SerializedUpdateRef`]s instead: slices of the
//! frame, no allocation and no reference count per update, valid for the
//! callback's duration. Copy out what must outlive it
//! ([`SerializedUpdateRef::to_update`]).

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use super::{Message, MessageKind, Revision, SerializedUpdate, UpdateType};

/// A [`Revision`] whose string, if it is one, borrows the frame it was
/// decoded from. The variants mirror [`Revision`]'s, one per Go basic type.
///
/// Displays as [`Revision`] does (Go's `%v`), and compares as it does
/// (floats by bit pattern, every NaN equal to every other of its type).
#[derive(Debug, Clone, Copy, Default)]
pub enum RevisionRef<'a> {
    /// No revision (a nil interface on the wire).
    #[default]
    Nil,
    /// Go `string`, the common case.
    String(&'a str),
    /// Go `bool`.
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `int8`.
    Int8(i8),
    /// Go `int16`.
    Int16(i16),
    /// Go `int32`.
    Int32(i32),
    /// Go `int64`.
    Int64(i64),
    /// Go `uint`.
    Uint(u64),
    /// Go `uint8`.
    Uint8(u8),
    /// Go `uint16`.
    Uint16(u16),
    /// Go `uint32`.
    Uint32(u32),
    /// Go `uint64`.
    Uint64(u64),
    /// Go `uintptr`.
    Uintptr(u64),
    /// Go `float32`.
    Float32(f32),
    /// Go `float64`.
    Float64(f64),
    /// Go `complex64` (real, imaginary).
    Complex64(f32, f32),
    /// Go `complex128` (real, imaginary).
    Complex128(f64, f64),
}

impl RevisionRef<'_> {
    /// The owned [`Revision`]: a string is copied; nothing else allocates.
    pub fn to_revision(&self) -> Revision {
        match *self {
            RevisionRef::String(text) => Revision::String(ByteString::from(text)),
            other => other.scalar(),
        }
    }

    /// Any revision but a string, owned (which allocates nothing); `Nil`
    /// for a string.
    fn scalar(self) -> Revision {
        match self {
            RevisionRef::Nil | RevisionRef::String(_) => Revision::Nil,
            RevisionRef::Bool(value) => Revision::Bool(value),
            RevisionRef::Int(value) => Revision::Int(value),
            RevisionRef::Int8(value) => Revision::Int8(value),
            RevisionRef::Int16(value) => Revision::Int16(value),
            RevisionRef::Int32(value) => Revision::Int32(value),
            RevisionRef::Int64(value) => Revision::Int64(value),
            RevisionRef::Uint(value) => Revision::Uint(value),
            RevisionRef::Uint8(value) => Revision::Uint8(value),
            RevisionRef::Uint16(value) => Revision::Uint16(value),
            RevisionRef::Uint32(value) => Revision::Uint32(value),
            RevisionRef::Uint64(value) => Revision::Uint64(value),
            RevisionRef::Uintptr(value) => Revision::Uintptr(value),
            RevisionRef::Float32(value) => Revision::Float32(value),
            RevisionRef::Float64(value) => Revision::Float64(value),
            RevisionRef::Complex64(re, im) => Revision::Complex64(re, im),
            RevisionRef::Complex128(re, im) => Revision::Complex128(re, im),
        }
    }
}

impl Revision {
    /// This revision as a [`RevisionRef`] borrowing its string: to compare
    /// an owned revision with a borrowed one, or to hand owned data to
    /// code written for the borrowing API.
    pub fn borrowed(&self) -> RevisionRef<'_> {
        match self {
            Revision::Nil => RevisionRef::Nil,
            Revision::String(text) => RevisionRef::String(text),
            Revision::Bool(value) => RevisionRef::Bool(*value),
            Revision::Int(value) => RevisionRef::Int(*value),
            Revision::Int8(value) => RevisionRef::Int8(*value),
            Revision::Int16(value) => RevisionRef::Int16(*value),
            Revision::Int32(value) => RevisionRef::Int32(*value),
            Revision::Int64(value) => RevisionRef::Int64(*value),
            Revision::Uint(value) => RevisionRef::Uint(*value),
            Revision::Uint8(value) => RevisionRef::Uint8(*value),
            Revision::Uint16(value) => RevisionRef::Uint16(*value),
            Revision::Uint32(value) => RevisionRef::Uint32(*value),
            Revision::Uint64(value) => RevisionRef::Uint64(*value),
            Revision::Uintptr(value) => RevisionRef::Uintptr(*value),
            Revision::Float32(value) => RevisionRef::Float32(*value),
            Revision::Float64(value) => RevisionRef::Float64(*value),
            Revision::Complex64(re, im) => RevisionRef::Complex64(*re, *im),
            Revision::Complex128(re, im) => RevisionRef::Complex128(*re, *im),
        }
    }
}

impl PartialEq for RevisionRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (RevisionRef::String(a), RevisionRef::String(b)) => a == b,
            (RevisionRef::String(_), _) | (_, RevisionRef::String(_)) => false,
            (a, b) => a.scalar() == b.scalar(),
        }
    }
}

impl Eq for RevisionRef<'_> {}

impl PartialEq<Revision> for RevisionRef<'_> {
    fn eq(&self, other: &Revision) -> bool {
        *self == other.borrowed()
    }
}

impl fmt::Display for RevisionRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RevisionRef::String(text) => f.write_str(text),
            other => fmt::Display::fmt(&other.scalar(), f),
        }
    }
}

/// One update as the borrowing API hands it out: a [`SerializedUpdate`]
/// whose key, value and strings are slices of the frame being decoded.
///
/// Decoders hand these out already normalised, as the owning API's
/// updates: an empty value is `None` (a deletion), and every string is
/// checked UTF-8. [`to_update`](Self::to_update) gives the owned update the
/// owning API would have given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SerializedUpdateRef<'a> {
    /// The key as a datastore default path.
    pub key: &'a str,
    /// The serialised value, `None` for a deletion.
    pub value: Option<&'a [u8]>,
    /// The datastore revision of this change.
    pub revision: RevisionRef<'a>,
    /// The Kubernetes resource version of a v3 resource (empty when unused).
    pub v3_resource_version: &'a str,
    /// Time to live in nanoseconds (Go's `time.Duration`); 0 for none.
    pub ttl_nanos: i64,
    /// What kind of change this is.
    pub update_type: UpdateType,
}

impl SerializedUpdateRef<'_> {
    /// An owned copy, equal to what the owning API decodes: call it for
    /// the updates that must outlive the callback. Each part is copied
    /// into an allocation of its own size.
    pub fn to_update(&self) -> SerializedUpdate {
        SerializedUpdate {
            key: ByteString::from(self.key),
            value: self.value.map(Bytes::copy_from_slice),
            revision: self.revision.to_revision(),
            v3_resource_version: ByteString::from(self.v3_resource_version),
            ttl_nanos: self.ttl_nanos,
            update_type: self.update_type,
        }
    }

    /// Whether this update deletes its key: no value, or an empty one.
    pub fn is_deletion(&self) -> bool {
        self.effective_value().is_none()
    }

    /// The value a receiver ends up holding: `None` for a deletion,
    /// including an empty value.
    pub fn effective_value(&self) -> Option<&[u8]> {
        self.value.filter(|value| !value.is_empty())
    }
}

impl SerializedUpdate {
    /// This update as a [`SerializedUpdateRef`] borrowing its parts: to
    /// compare with a borrowed update, or to hand owned updates to code
    /// written for the borrowing API.
    pub fn borrowed(&self) -> SerializedUpdateRef<'_> {
        SerializedUpdateRef {
            key: &self.key,
            value: self.value.as_deref(),
            revision: self.revision.borrowed(),
            v3_resource_version: &self.v3_resource_version,
            ttl_nanos: self.ttl_nanos,
            update_type: self.update_type,
        }
    }
}

impl PartialEq<SerializedUpdate> for SerializedUpdateRef<'_> {
    fn eq(&self, other: &SerializedUpdate) -> bool {
        *self == other.borrowed()
    }
}

/// A decoded message as the borrowing API hands it out: a `KVs` message's
/// updates borrowing the frame, any other message owned (they are rare and
/// small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A batch of updates (upstream's `MsgKVs`), possibly empty.
    Kvs(&'a [SerializedUpdateRef<'a>]),
    /// Any other message. Decoders never put a [`Message::Kvs`] here.
    Other(Message),
}

impl MessageRef<'_> {
    /// Which message this is.
    pub fn kind(&self) -> MessageKind {
        match self {
            MessageRef::Kvs(_) => MessageKind::Kvs,
            MessageRef::Other(message) => message.kind(),
        }
    }

    /// The owned message, equal to what the owning API decodes (updates
    /// copied by [`SerializedUpdateRef::to_update`]).
    pub fn to_message(&self) -> Message {
        match self {
            MessageRef::Kvs(updates) => {
                Message::Kvs(updates.iter().map(SerializedUpdateRef::to_update).collect())
            }
            MessageRef::Other(message) => message.clone(),
        }
    }
}

impl PartialEq<Message> for MessageRef<'_> {
    fn eq(&self, other: &Message) -> bool {
        match (self, other) {
            (MessageRef::Kvs(borrowed), Message::Kvs(owned)) => {
                borrowed.len() == owned.len() && borrowed.iter().zip(owned).all(|(a, b)| a == b)
            }
            (MessageRef::Other(message), other) => message == other,
            (MessageRef::Kvs(_), _) => false,
        }
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
            ttl_nanos: 5,
            update_type: UpdateType::Updated,
        }
    }

    #[test]
    fn borrowed_and_back_is_the_same_update() {
        let owned = sample();
        let borrowed = owned.borrowed();
        assert_eq!(borrowed, owned);
        assert_eq!(borrowed.to_update(), owned);
        assert!(!borrowed.is_deletion());
        let mut other = sample();
        other.key = "/calico/v1/config/Other".into();
        assert_ne!(borrowed, other);
    }

    #[test]
    fn revisions_compare_and_display_as_owned_ones() {
        let revisions = [
            Revision::Nil,
            Revision::from("12"),
            Revision::Int(12),
            Revision::Int64(12),
            Revision::Uint8(12),
            Revision::Float32(f32::NAN),
            Revision::Float64(1e6),
            Revision::Complex64(0.1, 1e6),
        ];
        for (i, a) in revisions.iter().enumerate() {
            assert_eq!(a.borrowed().to_revision(), *a);
            assert_eq!(a.borrowed().to_string(), a.to_string());
            for (j, b) in revisions.iter().enumerate() {
                assert_eq!(a.borrowed() == b.borrowed(), i == j, "{a:?} {b:?}");
                assert_eq!(a.borrowed() == *b, a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn an_empty_value_is_a_deletion() {
        let update = SerializedUpdateRef {
            value: Some(b""),
            ..SerializedUpdateRef::default()
        };
        assert!(update.is_deletion());
        assert_eq!(update.effective_value(), None);
    }

    #[test]
    fn messages_compare_with_owned_ones() {
        let owned = sample();
        let updates = [owned.borrowed()];
        let kvs = MessageRef::Kvs(&updates);
        assert_eq!(kvs.kind(), MessageKind::Kvs);
        assert_eq!(kvs, Message::Kvs(vec![sample()]));
        assert_eq!(kvs.to_message(), Message::Kvs(vec![sample()]));
        assert_ne!(kvs, Message::Kvs(vec![]));
        assert_ne!(kvs, Message::Ack);
        let ack = MessageRef::Other(Message::Ack);
        assert_eq!(ack, Message::Ack);
        assert_eq!(ack.kind(), MessageKind::Ack);
        assert_ne!(ack, Message::Kvs(vec![]));
    }
}
