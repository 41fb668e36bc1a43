//! Policy keys across the 2025 key change: modern keys name a policy by
//! kind, namespace and name; servers before it send the legacy form by tier
//! and name, which upstream's client upgrades
//! (`libcalico-go/lib/backend/model/policy.go`: `LegacyPolicyKey.Upgrade`,
//! and its `parseValue`, which sets the policy's `Tier` from the key).

use bytes::Bytes;

use super::json_object::{Members, string_value};
use crate::key::Key;
use crate::message::SerializedUpdate;

const POLICY_PREFIX: &str = "/calico/v1/policy/";
const LEGACY_POLICY_PREFIX: &str = "/calico/v1/policy/tier/";

/// Whether `key` is a policy in the modern form,
/// `/calico/v1/policy/<kind>/<namespace>/<name>`: what a client that did
/// not say `SupportsModernPolicyKeys` cannot parse and would drop.
pub fn is_modern_policy_key(key: &str) -> bool {
    key.strip_prefix(POLICY_PREFIX).is_some_and(|rest| {
        let mut segments = rest.split('/');
        let kind = segments.next().unwrap_or_default();
        // Tiers and profiles share the prefix but are not policies.
        kind != "tier" && kind != "profile" && segments.count() == 2
    })
}

/// Whether [`SerializedUpdate::upgrade_legacy_policy_key`] may change an
/// update with this key: every other key it leaves as it is, so a caller
/// holding borrowed updates copies only these.
pub(crate) fn may_be_legacy_policy_key(key: &str) -> bool {
    key.starts_with(LEGACY_POLICY_PREFIX)
}

impl SerializedUpdate {
    /// What upstream's client does with a legacy policy key
    /// (`/calico/v1/policy/tier/<tier>/policy/<name>`, sent by servers
    /// before the key change): the key becomes the modern one
    /// ([`Key::legacy_policy_as_modern`]) and, since the modern key has no
    /// tier, the tier moves into the value's `tier` member (a JSON object
    /// keeps its other members in order; anything else is left as it is).
    /// Any other update comes back unchanged.
    ///
    /// [`ClientConfig::upgrade_legacy_policy_keys`](crate::client::ClientConfig::upgrade_legacy_policy_keys)
    /// makes the client machine do this to everything it delivers.
    pub fn upgrade_legacy_policy_key(mut self) -> SerializedUpdate {
        if !may_be_legacy_policy_key(&self.key) {
            return self;
        }
        let Ok(legacy @ Key::LegacyPolicy { .. }) = Key::parse(&self.key) else {
            return self;
        };
        let (Key::LegacyPolicy { tier, .. }, Some(modern)) =
            (&legacy, legacy.legacy_policy_as_modern())
        else {
            return self;
        };
        self.key = modern.to_path().into();
        if let Some(value) = self.effective_value()
            && let Some(members) = Members::parse(value)
        {
            let tier = string_value(tier);
            self.value = Some(Bytes::from(members.render_with("tier", Some(&tier))));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_policy_keys_are_told_from_the_rest() {
        for key in [
            "/calico/v1/policy/NetworkPolicy/ns/p",
            "/calico/v1/policy/GlobalNetworkPolicy//p",
        ] {
            assert!(is_modern_policy_key(key), "{key}");
        }
        for key in [
            "/calico/v1/policy/tier/default/policy/p",
            "/calico/v1/policy/tier/default/metadata",
            "/calico/v1/policy/profile/p/rules",
            "/calico/v1/policy/NetworkPolicy/ns",
            "/calico/v1/config/X",
        ] {
            assert!(!is_modern_policy_key(key), "{key}");
        }
    }

    #[test]
    fn legacy_keys_upgrade_with_the_tier_in_the_value() {
        let legacy = SerializedUpdate::upsert(
            "/calico/v1/policy/tier/t1/policy/ns1%2fknp.default.p",
            r#"{"order":10,"selector":"all()"}"#,
            "3",
        );
        let upgraded = legacy.upgrade_legacy_policy_key();
        assert_eq!(
            upgraded.key,
            "/calico/v1/policy/KubernetesNetworkPolicy/ns1/p"
        );
        assert_eq!(
            upgraded.value.as_deref(),
            Some(&br#"{"order":10,"selector":"all()","tier":"t1"}"#[..])
        );
        let global = SerializedUpdate::deletion("/calico/v1/policy/tier/default/policy/g", "4")
            .upgrade_legacy_policy_key();
        assert_eq!(global.key, "/calico/v1/policy/GlobalNetworkPolicy//g");
        assert_eq!(global.value, None);
    }

    #[test]
    fn other_keys_pass_unchanged() {
        for update in [
            SerializedUpdate::upsert("/calico/v1/config/X", "1", "1"),
            SerializedUpdate::upsert("/calico/v1/policy/tier/t1/metadata", "{}", "1"),
            SerializedUpdate::upsert("/calico/v1/policy/NetworkPolicy/ns/p", "{}", "1"),
        ] {
            assert_eq!(update.clone().upgrade_legacy_policy_key(), update);
        }
    }
}
