//! Values as the application receives them: the raw bytes, typed by their
//! key, parsed only on request.

use bytes::Bytes;
use serde::Deserialize;

use super::Key;
use crate::message::{SerializedUpdate, UpdateType};

/// How a key's value is encoded (upstream's raw-string, raw-bool and raw-IP
/// value types are all [`ValueKind::Text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueKind {
    /// Plain text, not JSON: Felix and BGP config values (`"Info"`), the
    /// ready flag (`"true"`), a host's BIRD IP (`"10.0.0.1"`).
    Text,
    /// A JSON document (everything else).
    Json,
}

/// A value is not what its kind says it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A [`ValueKind::Json`] value is not well-formed JSON.
    #[error("value is not valid JSON: {0}")]
    InvalidJson(String),
}

/// A key's value as the server sent it: the raw bytes (shared with the
/// buffer they were decoded from, never copied) and how they are encoded.
///
/// Nothing is parsed until asked for: [`Value::text`] views the bytes as a
/// `&str`, [`Value::json`] deserializes them straight into the caller's
/// serde type (borrowing `&str` fields from the bytes where the type
/// allows), [`Value::json_value`] builds a [`serde_json::Value`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value {
    kind: ValueKind,
    bytes: Bytes,
}

impl Value {
    /// A value of `kind` holding `bytes`.
    pub fn new(kind: ValueKind, bytes: Bytes) -> Value {
        Value { kind, bytes }
    }

    /// How the value is encoded, as its key dictates.
    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    /// The raw bytes, always available whatever the kind.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives up the raw bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The bytes as text, without copying; an error when they are not
    /// UTF-8 (upstream, in Go, would carry such bytes as a string
    /// regardless: use [`Value::bytes`] to see them).
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.bytes)
    }

    /// Reads the value as upstream reads a boolean such as the
    /// [`Key::Ready`] flag: true exactly when the bytes are `true`.
    pub fn flag(&self) -> bool {
        self.bytes.as_ref() == b"true"
    }

    /// Deserializes the bytes as JSON into `T`, straight from the held
    /// bytes: no intermediate copy, and a `T` with `&str` fields (or
    /// `&RawValue` ones, with serde_json's `raw_value` feature) borrows them
    /// from the value.
    ///
    /// Works whatever the [`ValueKind`]; a text value is rarely valid JSON.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.bytes)
    }

    /// Parses the bytes as a generic JSON document.
    pub fn json_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.bytes)
    }

    /// Checks the value as upstream's `ParseValue` would, short of knowing
    /// the target type: a JSON value must be well-formed JSON (checked
    /// without building anything); a text value is always accepted.
    ///
    /// Upstream delivers a value that fails to parse as no value (and logs
    /// it); a client can do the same with this check.
    pub fn validate(&self) -> Result<(), ValueError> {
        match self.kind {
            ValueKind::Text => Ok(()),
            ValueKind::Json => serde_json::from_slice::<serde::de::IgnoredAny>(&self.bytes)
                .map(drop)
                .map_err(|e| ValueError::InvalidJson(e.to_string())),
        }
    }
}

/// One update with its key parsed: what a client delivers to its
/// application in place of the wire's [`SerializedUpdate`] (upstream's
/// client-side `KVPair`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// The parsed key.
    pub key: Key,
    /// The value, typed by the key; `None` for a deletion.
    pub value: Option<Value>,
    /// The datastore revision, rendered as text (upstream's client does the
    /// same with whatever basic type the server sent).
    pub revision: String,
    /// The Kubernetes resource version of a v3 resource (empty when unused).
    pub v3_resource_version: String,
    /// Time to live in nanoseconds; 0 for none.
    pub ttl_nanos: i64,
    /// What kind of change this is.
    pub update_type: UpdateType,
}

impl ParsedUpdate {
    /// Pairs `update` with its parsed `key` (see
    /// [`KeyParser`](super::KeyParser)). The value's bytes move across
    /// without a copy.
    ///
    /// An empty value is a deletion, as on the wire (see
    /// [`SerializedUpdate`]), with one exception kept from upstream's value
    /// parser: an empty [`Key::BlockAffinity`] value (written before
    /// affinities had a state) is read as `{}`. (Decoded updates never carry
    /// an empty value; this matters for updates built by hand.)
    pub fn new(key: Key, update: SerializedUpdate) -> ParsedUpdate {
        let kind = key.value_kind();
        let value = match update.value {
            Some(bytes) if bytes.is_empty() && matches!(key, Key::BlockAffinity { .. }) => {
                Some(Value::new(kind, Bytes::from_static(b"{}")))
            }
            Some(bytes) if bytes.is_empty() => None,
            other => other.map(|bytes| Value::new(kind, bytes)),
        };
        ParsedUpdate {
            revision: update.revision.to_string(),
            key,
            value,
            v3_resource_version: update.v3_resource_version.to_string(),
            ttl_nanos: update.ttl_nanos,
            update_type: update.update_type,
        }
    }

    /// Whether this update deletes its key.
    pub fn is_deletion(&self) -> bool {
        self.value.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Revision;

    #[test]
    fn text_and_flag() {
        let value = Value::new(ValueKind::Text, Bytes::from_static(b"true"));
        assert_eq!(value.text(), Ok("true"));
        assert!(value.flag());
        assert!(!Value::new(ValueKind::Text, Bytes::from_static(b"True")).flag());
        assert!(
            Value::new(ValueKind::Text, Bytes::from_static(b"\xff"))
                .text()
                .is_err()
        );
        assert_eq!(
            Value::new(ValueKind::Text, Bytes::from_static(b"\xff")).validate(),
            Ok(())
        );
    }

    #[test]
    fn validate_checks_json_syntax_only() {
        let good = Value::new(ValueKind::Json, Bytes::from_static(b"{\"a\":[1,2]}"));
        assert_eq!(good.validate(), Ok(()));
        let bad = Value::new(ValueKind::Json, Bytes::from_static(b"{\"a\":"));
        assert!(matches!(bad.validate(), Err(ValueError::InvalidJson(_))));
    }

    #[test]
    fn parsed_update_moves_bytes_and_renders_revision() {
        let bytes = Bytes::from_static(b"{\"state\":\"confirmed\"}");
        let mut update = SerializedUpdate::upsert("/calico/v1/Ready", bytes.clone(), "7");
        update.revision = Revision::Int64(42);
        let parsed = ParsedUpdate::new(Key::Ready, update);
        assert_eq!(parsed.revision, "42");
        assert_eq!(
            parsed.value.as_ref().map(|v| v.kind()),
            Some(ValueKind::Text)
        );
        let held = parsed.value.map(Value::into_bytes);
        assert_eq!(held.as_ref().map(|b| b.as_ptr()), Some(bytes.as_ptr()));
    }

    #[test]
    fn empty_block_affinity_reads_as_empty_object() {
        let key = Key::parse("/calico/ipam/v2/host/h1/ipv4/block/10.0.0.0-26");
        let Ok(key) = key else { panic!("{key:?}") };
        let parsed = ParsedUpdate::new(key, SerializedUpdate::upsert("k", Bytes::new(), "1"));
        assert_eq!(
            parsed.value.map(|v| v.into_bytes()),
            Some(Bytes::from_static(b"{}"))
        );
        let deleted = ParsedUpdate::new(Key::Ready, SerializedUpdate::deletion("k", "2"));
        assert!(deleted.is_deletion());
    }
}
