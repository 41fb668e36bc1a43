//! Both halves of upstream's `V3ResourceVersion` contract.
//!
//! A v3 resource carries its Kubernetes resource version inside its value
//! (`metadata.resourceVersion`), and the version changes on every write,
//! so two otherwise identical writes would never compare equal and no-op
//! squashing could never drop one. Upstream's server therefore moves the
//! version into `SerializedUpdate.V3ResourceVersion` and sends the value
//! with the version blanked (`typha/pkg/syncproto/sync_proto.go`,
//! `SerializeUpdate`: `obj.SetResourceVersion("")` before marshalling,
//! and `resourceVersion` is `omitempty`, so the member disappears); its
//! client writes the version back into the parsed object (`ToUpdate`:
//! `obj.SetResourceVersion(fmt.Sprint(s.V3ResourceVersion))`, even when
//! empty).

use bytes::Bytes;

use super::json_object::{Members, as_str, object_value, string_value};
use crate::message::SerializedUpdate;

/// The prefix of every v3 resource key (upstream's `ResourceKey`).
const V3_RESOURCE_PREFIX: &str = "/calico/resources/v3/";

/// Whether `key` names a v3 resource (`/calico/resources/v3/…`), whose
/// value carries a `metadata.resourceVersion`.
pub fn is_v3_resource_key(key: &str) -> bool {
    key.starts_with(V3_RESOURCE_PREFIX)
}

impl SerializedUpdate {
    /// What upstream's server does to a v3 resource before sending it
    /// (`SerializeUpdate`): moves `metadata.resourceVersion` out of the JSON
    /// value into [`v3_resource_version`](Self::v3_resource_version) and
    /// removes it from the value, so that writes that change only the
    /// version are no-ops
    /// ([`would_be_no_op`](Self::would_be_no_op)). Every other byte of the
    /// value stays as it was (members in order, values verbatim; the object
    /// is rewritten compactly).
    ///
    /// Call it on each update before handing it to a
    /// [`SnapshotCache`](crate::fanout::SnapshotCache) or a server
    /// connection, as `syncproto serve` does. It returns whether it moved a
    /// version; it leaves alone anything but a v3 resource key
    /// ([`is_v3_resource_key`]) whose
    /// value is a JSON object with a string `metadata.resourceVersion`.
    pub fn move_resource_version_out(&mut self) -> bool {
        if !is_v3_resource_key(&self.key) {
            return false;
        }
        let Some((value, version)) = self.value.as_deref().and_then(without_version) else {
            return false;
        };
        self.value = Some(Bytes::from(value));
        self.v3_resource_version = version.into();
        true
    }

    /// The value as the application should see it, with
    /// [`v3_resource_version`](Self::v3_resource_version) written back into
    /// a v3 resource's `metadata.resourceVersion`, as upstream's client does
    /// (`ToUpdate`) — the other half of
    /// [`move_resource_version_out`](Self::move_resource_version_out).
    ///
    /// As upstream, the version is written even when empty: an empty one
    /// removes any `resourceVersion` the value carried (Go's object then
    /// holds `""`, which its encoder omits). A value that is not a JSON
    /// object, or the key of anything but a v3 resource, comes back as it
    /// is. `None` for a deletion. The bytes are shared unless rewritten.
    pub fn value_with_resource_version(&self) -> Option<Bytes> {
        let value = self.effective_value()?;
        if !is_v3_resource_key(&self.key) {
            return Some(value.clone());
        }
        Some(
            with_version(value, &self.v3_resource_version)
                .map_or_else(|| value.clone(), Bytes::from),
        )
    }
}

/// `value` without `metadata.resourceVersion`, and that version; `None`
/// when `value` is not an object with a string version in its metadata.
fn without_version(value: &[u8]) -> Option<(Vec<u8>, String)> {
    let top = Members::parse(value)?;
    let metadata = Members::parse(top.get("metadata")?.get().as_bytes())?;
    let version = as_str(metadata.get("resourceVersion")?)?;
    let metadata = object_value(metadata.render_with("resourceVersion", None))?;
    Some((top.render_with("metadata", Some(&metadata)), version))
}

/// `value` with `metadata.resourceVersion` set to `version` (removed when
/// empty); `None` when there is nothing to change or `value` is not an
/// object.
fn with_version(value: &[u8], version: &str) -> Option<Vec<u8>> {
    let top = Members::parse(value)?;
    let new_version = (!version.is_empty()).then(|| string_value(version));
    let metadata = match top.get("metadata") {
        Some(raw) => {
            let metadata = Members::parse(raw.get().as_bytes())?;
            let current = metadata.get("resourceVersion");
            if current.is_none() && new_version.is_none() {
                return None;
            }
            metadata.render_with("resourceVersion", new_version.as_deref())
        }
        None => {
            let version = new_version?;
            Members::parse(b"{}")?.render_with("resourceVersion", Some(&version))
        }
    };
    let metadata = object_value(metadata)?;
    Some(top.render_with("metadata", Some(&metadata)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/calico/resources/v3/projectcalico.org/networkpolicies/ns/p";

    fn update(value: &str) -> SerializedUpdate {
        SerializedUpdate::upsert(KEY, value.to_owned(), "5")
    }

    #[test]
    fn the_version_moves_out_and_back() {
        let original = r#"{"kind":"NetworkPolicy","metadata":{"name":"p","resourceVersion":"123","uid":"u"},"spec":{"order":1.50}}"#;
        let mut sent = update(original);
        assert!(sent.move_resource_version_out());
        assert_eq!(sent.v3_resource_version, "123");
        assert_eq!(
            sent.value.as_deref(),
            Some(
                &br#"{"kind":"NetworkPolicy","metadata":{"name":"p","uid":"u"},"spec":{"order":1.50}}"#[..]
            )
        );
        let restored = sent.value_with_resource_version().unwrap();
        let restored: serde_json::Value = serde_json::from_slice(&restored).unwrap();
        let original: serde_json::Value = serde_json::from_str(original).unwrap();
        assert_eq!(restored, original);
    }

    #[test]
    fn writes_that_change_only_the_version_become_no_ops() {
        let mut first = update(r#"{"metadata":{"name":"p","resourceVersion":"1"},"spec":{}}"#);
        let mut second = update(r#"{"metadata":{"name":"p","resourceVersion":"2"},"spec":{}}"#);
        assert!(!second.would_be_no_op(&first));
        first.move_resource_version_out();
        second.move_resource_version_out();
        assert!(second.would_be_no_op(&first));
    }

    #[test]
    fn anything_else_is_left_alone() {
        let plain = r#"{"metadata":{"resourceVersion":"1"}}"#;
        let mut other_key = SerializedUpdate::upsert("/calico/v1/config/X", plain, "1");
        assert!(!other_key.move_resource_version_out());
        assert_eq!(other_key.value.as_deref(), Some(plain.as_bytes()));
        for value in [
            "not json",
            "[1,2]",
            r#"{"spec":{}}"#,
            r#"{"metadata":"x"}"#,
            r#"{"metadata":{"resourceVersion":7}}"#,
        ] {
            let mut same = update(value);
            assert!(!same.move_resource_version_out(), "{value}");
            assert_eq!(same.value.as_deref(), Some(value.as_bytes()));
            assert_eq!(same.v3_resource_version, "");
        }
        assert_eq!(
            SerializedUpdate::deletion(KEY, "1").value_with_resource_version(),
            None
        );
    }

    #[test]
    fn an_empty_version_is_written_back_as_absent() {
        let mut update = update(r#"{"metadata":{"name":"p","resourceVersion":"9"}}"#);
        update.v3_resource_version = "".into();
        assert_eq!(
            update.value_with_resource_version().as_deref(),
            Some(&br#"{"metadata":{"name":"p"}}"#[..])
        );
        let mut bare = super::tests::update(r#"{"spec":{}}"#);
        bare.v3_resource_version = "4".into();
        assert_eq!(
            bare.value_with_resource_version().as_deref(),
            Some(&br#"{"spec":{},"metadata":{"resourceVersion":"4"}}"#[..])
        );
        bare.v3_resource_version = "".into();
        assert_eq!(
            bare.value_with_resource_version().as_deref(),
            Some(&br#"{"spec":{}}"#[..])
        );
    }
}
