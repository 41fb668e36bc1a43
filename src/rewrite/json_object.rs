//! Editing one member of a JSON object while every other byte stays as it
//! was: the members keep their order and their values' exact text.
//!
//! Upstream moves a v3 resource's `metadata.resourceVersion` out of the
//! value by re-marshalling a Go struct, which writes members in field order
//! and omits the empty version. Removing the member in place from a value
//! Go wrote gives the same bytes; re-serialising through a map would sort
//! the members and change the bytes that no-op squashing compares.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's members in order, each value as its original text.
#[derive(Debug)]
pub(crate) struct Members<'a> {
    members: Vec<(String, &'a RawValue)>,
}

/// An owned replacement for one member's value.
pub(crate) type NewValue = Box<RawValue>;

impl<'a> Members<'a> {
    /// The members of `text` if it is one JSON object, `None` otherwise
    /// (not JSON, or JSON of another kind).
    pub(crate) fn parse(text: &'a [u8]) -> Option<Members<'a>> {
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let members = deserializer.deserialize_map(MembersVisitor).ok()?;
        deserializer.end().ok()?;
        Some(Members { members })
    }

    /// The text of member `name` (the last, if it repeats: a Go decoder
    /// keeps the last).
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// Renders the object compactly (members in order, values verbatim),
    /// with member `name` removed (`None`) or replaced by `value` (added at
    /// the end when absent).
    pub(crate) fn render_with(&self, name: &str, value: Option<&RawValue>) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.members
                .iter()
                .map(|(key, raw)| key.len() + raw.get().len() + 4)
                .sum::<usize>()
                + value.map_or(0, |raw| raw.get().len() + name.len() + 4)
                + 2,
        );
        out.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, key: &str, raw: &RawValue| {
            if !first {
                out.push(b',');
            }
            first = false;
            put_string(out, key);
            out.push(b':');
            out.extend_from_slice(raw.get().as_bytes());
        };
        let mut replaced = false;
        for (key, raw) in &self.members {
            if key != name {
                put(&mut out, key, raw);
            } else if let Some(value) = value
                && !replaced
            {
                put(&mut out, key, value);
                replaced = true;
            }
        }
        if let Some(value) = value
            && !replaced
        {
            put(&mut out, name, value);
        }
        out.push(b'}');
        out
    }
}

/// A JSON string holding `text`.
pub(crate) fn string_value(text: &str) -> NewValue {
    // Serialising a string cannot fail.
    serde_json::value::to_raw_value(text).unwrap_or_default()
}

/// Wraps rendered object bytes (from [`Members::render_with`]) as a value
/// for another object.
pub(crate) fn object_value(rendered: Vec<u8>) -> Option<NewValue> {
    RawValue::from_string(String::from_utf8(rendered).ok()?).ok()
}

/// The text of a JSON string value, `None` for any other kind of value.
pub(crate) fn as_str(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    // serde_json escapes as Go's encoder does for these purposes (quotes,
    // backslashes, control characters; not HTML characters).
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(members)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_text() {
        let text = br#"{"b": 1.50, "a":{"x" : [1, 2]},"c":"\u00e9"}"#;
        let members = Members::parse(text).unwrap();
        assert_eq!(members.get("a").unwrap().get(), r#"{"x" : [1, 2]}"#);
        assert_eq!(
            members.render_with("none", None),
            br#"{"b":1.50,"a":{"x" : [1, 2]},"c":"\u00e9"}"#
        );
        assert_eq!(
            members.render_with("a", None),
            br#"{"b":1.50,"c":"\u00e9"}"#
        );
        let version = string_value("7");
        assert_eq!(
            members.render_with("a", Some(&version)),
            br#"{"b":1.50,"a":"7","c":"\u00e9"}"#
        );
        assert_eq!(
            members.render_with("z", Some(&version)),
            br#"{"b":1.50,"a":{"x" : [1, 2]},"c":"\u00e9","z":"7"}"#
        );
    }

    #[test]
    fn only_objects_parse() {
        for text in [&b"[1]"[..], b"\"x\"", b"null", b"{", b"{} x", b"", b"\xff"] {
            assert!(Members::parse(text).is_none(), "{text:?}");
        }
        assert!(Members::parse(b" {} ").is_some());
    }

    #[test]
    fn strings_are_escaped_without_html_escapes() {
        let value = string_value("a\"<b>\n");
        assert_eq!(value.get(), r#""a\"<b>\n""#);
        assert_eq!(as_str(&value).as_deref(), Some("a\"<b>\n"));
        assert_eq!(as_str(&string_value("")).as_deref(), Some(""));
        assert!(as_str(&object_value(b"{}".to_vec()).unwrap()).is_none());
    }
}
