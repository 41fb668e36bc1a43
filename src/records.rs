//! The JSON-lines record format: one update (or status change) per line,
//! as the command-line tool reads and writes it and the Go reference peer
//! shares it.
//!
//! ```text
//! {"key":"/calico/v1/config/X","value":"text","revision":"123","ttl_ns":0,"type":"new"}
//! {"key":"/calico/v1/host/h/config/Y","value_base64":"AP8=","revision":17}
//! {"key":"/calico/v1/Ready","value":null,"revision":{"go_type":"uint8","text":"7"},"type":"deleted"}
//! {"status":"in-sync"}
//! ```
//!
//! - `key` is required. `value` is UTF-8 text or `null` (a deletion);
//!   `value_base64` carries a value that is not UTF-8 (never both). An
//!   empty value is a deletion too, and is read as `null`: gob cannot carry
//!   one, so no client of a server could hold it (see
//!   [`SerializedUpdate`]).
//! - `revision` is absent for none; a JSON string is a Go `string`, a JSON
//!   integer an `int64`, and `{"go_type":…,"text":…}` any Go basic type,
//!   the text in Go's `%v` form.
//! - `ttl_ns` defaults to 0, `type` (`unknown`, `new`, `updated`,
//!   `deleted`) to `new`, `v3_resource_version` to empty.
//! - A line with only `status` (`wait-for-ready`, `resync`, `in-sync`) is a
//!   status change. Blank lines are skipped; unknown fields are errors.
//!
//! Parsing and rendering only: reading files is the caller's business.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::message::{Revision, SerializedUpdate, SyncStatus, UpdateType};

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An update.
    Update(SerializedUpdate),
    /// A sync status change.
    Status(SyncStatus),
}

/// Why a line is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a JSON object of the record format (including unknown fields).
    #[error("not a record: {0}")]
    Json(String),
    /// Neither a `key` nor a `status`.
    #[error("a record needs a \"key\" (or is a \"status\" line)")]
    MissingKey,
    /// A status line with other fields.
    #[error("a status line has no other fields")]
    StatusWithFields,
    /// Both `value` and `value_base64`.
    #[error("give \"value\" or \"value_base64\", not both")]
    BothValues,
    /// `value_base64` that is not base64.
    #[error("\"value_base64\" is not valid base64: {0}")]
    BadBase64(String),
    /// A revision that is not a string, an integer or a typed object.
    #[error("bad revision: {0}")]
    BadRevision(String),
    /// An unknown `type`.
    #[error("unknown update type {0:?} (expected unknown, new, updated or deleted)")]
    BadType(String),
    /// An unknown `status`.
    #[error("unknown status {0:?} (expected wait-for-ready, resync or in-sync)")]
    BadStatus(String),
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a JSON object with a \"key\" (or a \"status\")"
)]
struct RawRecord {
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    value_base64: Option<String>,
    revision: Option<Value>,
    ttl_ns: Option<i64>,
    #[serde(rename = "type")]
    update_type: Option<String>,
    v3_resource_version: Option<String>,
    status: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Parses one line: `Ok(None)` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Record>, RecordError> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let raw: RawRecord =
        serde_json::from_str(line).map_err(|error| RecordError::Json(error.to_string()))?;
    if let Some(status) = raw.status {
        let only_status = raw.key.is_none()
            && raw.value.is_none()
            && raw.value_base64.is_none()
            && raw.revision.is_none()
            && raw.ttl_ns.is_none()
            && raw.update_type.is_none()
            && raw.v3_resource_version.is_none();
        if !only_status {
            return Err(RecordError::StatusWithFields);
        }
        return status_from_name(&status).map(|s| Some(Record::Status(s)));
    }
    let key = raw.key.ok_or(RecordError::MissingKey)?;
    let value = match (raw.value, raw.value_base64) {
        (Some(_), Some(_)) => return Err(RecordError::BothValues),
        (Some(text), None) => text.map(Bytes::from),
        (None, Some(encoded)) => {
            Some(Bytes::from(STANDARD.decode(encoded).map_err(|error| {
                RecordError::BadBase64(error.to_string())
            })?))
        }
        (None, None) => None,
    };
    let update_type = match raw.update_type.as_deref() {
        None | Some("new") => UpdateType::New,
        Some("updated") => UpdateType::Updated,
        Some("deleted") => UpdateType::Deleted,
        Some("unknown") => UpdateType::Unknown,
        Some(other) => return Err(RecordError::BadType(other.to_owned())),
    };
    Ok(Some(Record::Update(SerializedUpdate {
        key: key.into(),
        // A deletion carries no value, whatever the line says; an empty
        // value is a deletion.
        value: if update_type == UpdateType::Deleted {
            None
        } else {
            value.filter(|value| !value.is_empty())
        },
        revision: raw.revision.map_or(Ok(Revision::Nil), revision_from_json)?,
        v3_resource_version: raw.v3_resource_version.unwrap_or_default().into(),
        ttl_nanos: raw.ttl_ns.unwrap_or(0),
        update_type,
    })))
}

fn status_from_name(name: &str) -> Result<SyncStatus, RecordError> {
    SyncStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == name)
        .ok_or_else(|| RecordError::BadStatus(name.to_owned()))
}

fn revision_from_json(value: Value) -> Result<Revision, RecordError> {
    let bad = |why: &str| RecordError::BadRevision(why.to_owned());
    match value {
        Value::Null => Ok(Revision::Nil),
        Value::String(text) => Ok(Revision::String(text.into())),
        Value::Number(number) => number
            .as_i64()
            .map(Revision::Int64)
            .ok_or_else(|| bad("a bare number must be an int64; use {\"go_type\":…,\"text\":…}")),
        Value::Object(object) => {
            let field = |name: &str| object.get(name).and_then(Value::as_str);
            let (Some(go_type), Some(text)) = (field("go_type"), field("text")) else {
                return Err(bad(
                    "an object revision needs \"go_type\" and \"text\" strings",
                ));
            };
            typed_revision(go_type, text).ok_or_else(|| {
                RecordError::BadRevision(format!("{text:?} is not a valid {go_type}"))
            })
        }
        _ => Err(bad(
            "expected a string, an integer or {\"go_type\":…,\"text\":…}",
        )),
    }
}

/// Parses `text` (Go's `%v` form) as the Go basic type `go_type`.
fn typed_revision(go_type: &str, text: &str) -> Option<Revision> {
    Some(match go_type {
        "string" => Revision::String(text.into()),
        "bool" => Revision::Bool(text.parse().ok()?),
        "int" => Revision::Int(text.parse().ok()?),
        "int8" => Revision::Int8(text.parse().ok()?),
        "int16" => Revision::Int16(text.parse().ok()?),
        "int32" => Revision::Int32(text.parse().ok()?),
        "int64" => Revision::Int64(text.parse().ok()?),
        "uint" => Revision::Uint(text.parse().ok()?),
        "uint8" => Revision::Uint8(text.parse().ok()?),
        "uint16" => Revision::Uint16(text.parse().ok()?),
        "uint32" => Revision::Uint32(text.parse().ok()?),
        "uint64" => Revision::Uint64(text.parse().ok()?),
        "uintptr" => Revision::Uintptr(text.parse().ok()?),
        "float32" => Revision::Float32(text.parse().ok()?),
        "float64" => Revision::Float64(text.parse().ok()?),
        "complex64" => {
            let (re, im) = split_complex(text)?;
            Revision::Complex64(re.parse().ok()?, im.parse().ok()?)
        }
        "complex128" => {
            let (re, im) = split_complex(text)?;
            Revision::Complex128(re.parse().ok()?, im.parse().ok()?)
        }
        _ => return None,
    })
}

/// Splits Go's `(re+imi)` into its two parts.
fn split_complex(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('(')?.strip_suffix("i)")?;
    // The imaginary part starts at the last sign that does not follow an
    // exponent marker (and is not the real part's own sign).
    let split = inner
        .char_indices()
        .skip(1)
        .filter(|(at, c)| (*c == '+' || *c == '-') && !inner[..*at].ends_with(['e', 'E']))
        .map(|(at, _)| at)
        .last()?;
    Some((&inner[..split], &inner[split..]))
}

/// The record form of a revision: absent for none, a JSON string for a Go
/// `string`, a JSON integer for an `int64`, else `{"go_type","text"}`.
pub fn revision_to_json(revision: &Revision) -> Option<Value> {
    match revision {
        Revision::Nil => None,
        Revision::String(text) => Some(Value::String(text.to_string())),
        Revision::Int64(value) => Some(json!(value)),
        other => Some(json!({"go_type": other.go_type_name(), "text": other.to_string()})),
    }
}

/// Renders an update as one line (no trailing newline). With `with_type`,
/// the update type is included; without it (a state listing), deletions
/// should not be rendered at all.
pub fn update_to_line(update: &SerializedUpdate, with_type: bool) -> String {
    let mut object = Map::new();
    object.insert("key".into(), Value::String(update.key.to_string()));
    match update.effective_value() {
        None => {
            object.insert("value".into(), Value::Null);
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                object.insert("value".into(), Value::String(text.to_owned()));
            }
            Err(_) => {
                object.insert("value_base64".into(), Value::String(STANDARD.encode(bytes)));
            }
        },
    }
    if let Some(revision) = revision_to_json(&update.revision) {
        object.insert("revision".into(), revision);
    }
    object.insert("ttl_ns".into(), json!(update.ttl_nanos));
    if !update.v3_resource_version.is_empty() {
        object.insert(
            "v3_resource_version".into(),
            Value::String(update.v3_resource_version.to_string()),
        );
    }
    if with_type {
        let name = match update.update_type {
            UpdateType::Unknown => "unknown",
            UpdateType::New => "new",
            UpdateType::Updated => "updated",
            UpdateType::Deleted => "deleted",
        };
        object.insert("type".into(), Value::String(name.into()));
    }
    Value::Object(object).to_string()
}

/// Renders a status change as one line.
pub fn status_to_line(status: SyncStatus) -> String {
    json!({"status": status.as_str()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(line: &str) -> SerializedUpdate {
        match parse_line(line) {
            Ok(Some(Record::Update(update))) => update,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn every_field_parses() {
        let parsed = update(
            r#"{"key":"/k","value":"v","revision":"7","ttl_ns":5,"type":"updated","v3_resource_version":"9"}"#,
        );
        assert_eq!(
            parsed,
            SerializedUpdate {
                key: "/k".into(),
                value: Some(Bytes::from_static(b"v")),
                revision: Revision::String("7".into()),
                v3_resource_version: "9".into(),
                ttl_nanos: 5,
                update_type: UpdateType::Updated,
            }
        );
        let minimal = update(r#"{"key":"/k"}"#);
        assert_eq!(minimal.update_type, UpdateType::New);
        assert_eq!((minimal.value, minimal.revision), (None, Revision::Nil));
    }

    #[test]
    fn revisions_of_every_form_round_trip() {
        for revision in [
            Revision::Nil,
            Revision::String("abc".into()),
            Revision::Int64(-5),
            Revision::Int(42),
            Revision::Int8(-128),
            Revision::Uint64(u64::MAX),
            Revision::Uintptr(9),
            Revision::Bool(true),
            Revision::Float32(0.1),
            Revision::Float64(1e6),
            Revision::Float64(-2.5e-7),
            Revision::Complex128(1.0, -2.5),
            Revision::Complex64(-1e-7, 3.0),
        ] {
            let original = SerializedUpdate {
                key: "/k".into(),
                revision: revision.clone(),
                ..SerializedUpdate::default()
            };
            let line = update_to_line(&original, true);
            assert_eq!(update(&line).revision, revision, "{line}");
        }
    }

    #[test]
    fn binary_values_use_base64() {
        let original = SerializedUpdate::upsert("/k", vec![0u8, 0xff, 0x80], "1");
        let line = update_to_line(&original, true);
        assert!(line.contains(r#""value_base64":"AP+A""#), "{line}");
        assert_eq!(update(&line).value, original.value);
    }

    #[test]
    fn status_lines_and_blank_lines() {
        assert_eq!(parse_line("  "), Ok(None));
        assert_eq!(
            parse_line(r#"{"status":"resync"}"#),
            Ok(Some(Record::Status(SyncStatus::ResyncInProgress)))
        );
        assert_eq!(
            parse_line(&status_to_line(SyncStatus::InSync)),
            Ok(Some(Record::Status(SyncStatus::InSync)))
        );
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert!(matches!(parse_line("{"), Err(RecordError::Json(_))));
        assert!(matches!(
            parse_line(r#"{"key":"/k","colour":"red"}"#),
            Err(RecordError::Json(_))
        ));
        assert_eq!(parse_line(r#"{"value":"v"}"#), Err(RecordError::MissingKey));
        assert_eq!(
            parse_line(r#"{"status":"in-sync","key":"/k"}"#),
            Err(RecordError::StatusWithFields)
        );
        assert_eq!(
            parse_line(r#"{"key":"/k","value":"a","value_base64":"YQ=="}"#),
            Err(RecordError::BothValues)
        );
        assert!(matches!(
            parse_line(r#"{"key":"/k","value_base64":"!!"}"#),
            Err(RecordError::BadBase64(_))
        ));
        assert!(matches!(
            parse_line(r#"{"key":"/k","revision":1.5}"#),
            Err(RecordError::BadRevision(_))
        ));
        assert!(matches!(
            parse_line(r#"{"key":"/k","revision":{"go_type":"int8","text":"300"}}"#),
            Err(RecordError::BadRevision(_))
        ));
        assert_eq!(
            parse_line(r#"{"key":"/k","type":"gone"}"#),
            Err(RecordError::BadType("gone".into()))
        );
        assert_eq!(
            parse_line(r#"{"status":"done"}"#),
            Err(RecordError::BadStatus("done".into()))
        );
    }
}
