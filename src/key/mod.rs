//! The datastore key model: what a [`SerializedUpdate`]'s key path means,
//! and how its value is encoded.
//!
//! Upstream's client turns each update into a typed `KVPair`: it parses the
//! key path (an unknown path is dropped and logged, the connection stays
//! up), parses the value by the key's type, and renders the revision as
//! text. This module does the same: [`Key::parse`] (or any [`KeyParser`])
//! turns a path into a [`Key`], [`Key::to_path`] renders it back, and
//! [`ParsedUpdate::new`] pairs the key with the update's [`Value`], whose
//! bytes stay as they arrived until the application asks for text or JSON.
//!
//! ```
//! use syncproto::key::{Key, ParsedUpdate, ValueKind};
//! use syncproto::message::SerializedUpdate;
//!
//! let path = "/calico/v1/host/node-1/workload/kubernetes/ns%2fpod/endpoint/eth0";
//! let key = Key::parse(path)?;
//! assert_eq!(
//!     key,
//!     Key::WorkloadEndpoint {
//!         hostname: "node-1".into(),
//!         orchestrator: "kubernetes".into(),
//!         workload: "ns/pod".into(),
//!         endpoint: "eth0".into(),
//!     }
//! );
//! assert_eq!(key.to_path(), path);
//! assert_eq!(key.value_kind(), ValueKind::Json);
//!
//! let update = SerializedUpdate::upsert(path, r#"{"name":"cali1234"}"#, "17");
//! let parsed = ParsedUpdate::new(key, update);
//! #[derive(serde::Deserialize)]
//! struct Endpoint<'a> {
//!     name: &'a str,
//! }
//! let value = parsed.value.as_ref().expect("not a deletion");
//! assert_eq!(value.json::<Endpoint<'_>>()?.name, "cali1234");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Grammar
//!
//! Paths are upstream's "default paths" (libcalico-go
//! `lib/backend/model`, `KeyFromDefaultPath`). Segments are counted after
//! the leading `/`; *escaped* fields are unescaped when parsed and escaped
//! when rendered, *verbatim* fields are taken as they are — each as upstream
//! treats that field when parsing.
//!
//! | path | [`Key`] | fields | value |
//! |---|---|---|---|
//! | `/calico/v1/config/<name>` | [`GlobalConfig`](Key::GlobalConfig) | name verbatim, may contain `/` | text |
//! | `/calico/v1/host/<host>/config/<name>` | [`HostConfig`](Key::HostConfig) | host escaped; name verbatim, may contain `/` | text |
//! | `/calico/v1/host/<host>/metadata` | [`HostMetadata`](Key::HostMetadata) | host verbatim | JSON |
//! | `/calico/v1/host/<host>/bird_ip` | [`HostIp`](Key::HostIp) | host escaped | text |
//! | `/calico/v1/host/<host>/wireguard` | [`Wireguard`](Key::Wireguard) | host escaped | JSON |
//! | `/calico/v1/host/<host>/workload/<orch>/<workload>/endpoint/<endpoint>` | [`WorkloadEndpoint`](Key::WorkloadEndpoint) | all escaped | JSON |
//! | `/calico/v1/host/<host>/endpoint/<endpoint>` | [`HostEndpoint`](Key::HostEndpoint) | all escaped | JSON |
//! | `/calico/v1/policy/<kind>/<namespace>/<name>` | [`Policy`](Key::Policy) | all escaped; namespace empty for global kinds | JSON |
//! | `/calico/v1/policy/tier/<tier>/policy/<name>` | [`LegacyPolicy`](Key::LegacyPolicy) | all escaped | JSON |
//! | `/calico/v1/policy/tier/<tier>/metadata` | [`Tier`](Key::Tier) | escaped | JSON |
//! | `/calico/v1/policy/profile/<name>/rules` | [`ProfileRules`](Key::ProfileRules) | escaped | JSON |
//! | `/calico/v1/policy/profile/<name>/labels` | [`ProfileLabels`](Key::ProfileLabels) | escaped | JSON |
//! | `/calico/v1/netset/<name>` | [`NetworkSet`](Key::NetworkSet) | escaped | JSON |
//! | `/calico/v1/Ready` | [`Ready`](Key::Ready) | — | text (`true`/`false`) |
//! | `/calico/v1/ipam/v<4\|6>/pool/<cidr>` | [`IpPool`](Key::IpPool) | CIDR with `-` for `/` | JSON |
//! | `/calico/ipam/v2/assignment/ipv<4\|6>/block/<cidr>` | [`Block`](Key::Block) | CIDR | JSON |
//! | `/calico/ipam/v2/host/<host>/ipv<4\|6>/block/<cidr>` | [`BlockAffinity`](Key::BlockAffinity) | host verbatim; CIDR | JSON |
//! | `/calico/ipam/v2/handle/<id>` | [`IpamHandle`](Key::IpamHandle) | verbatim | JSON |
//! | `/calico/bgp/v1/global/<name>` | [`GlobalBgpConfig`](Key::GlobalBgpConfig) | verbatim, may contain `/` | text |
//! | `/calico/bgp/v1/host/<node>/<name>` | [`NodeBgpConfig`](Key::NodeBgpConfig) | node verbatim; name verbatim, may contain `/` | text |
//! | `/calico/resources/v3/projectcalico.org/<plural>/<name>` | [`Resource`](Key::Resource) | name escaped; plural from [`ResourceKind`], which must be global | JSON |
//! | `/calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>` | [`Resource`](Key::Resource) | all escaped; the kind must be namespaced | JSON |
//! | `/calico/felix/v1/host/<host>/endpoint/<endpoint>` | [`HostEndpointStatus`](Key::HostEndpointStatus) | host verbatim; endpoint escaped | JSON |
//! | `/calico/felix/v2/<region>/host/<host>/status` | [`ActiveStatusReport`](Key::ActiveStatusReport) | verbatim | JSON |
//! | `/calico/felix/v2/<region>/host/<host>/last_reported_status` | [`LastStatusReport`](Key::LastStatusReport) | verbatim | JSON |
//! | `/calico/felix/v2/<region>/host/<host>/workload/<orch>/<workload>/endpoint/<endpoint>` | [`WorkloadEndpointStatus`](Key::WorkloadEndpointStatus) | region, host verbatim; the rest escaped | JSON |
//!
//! # Escaping
//!
//! Upstream escapes a name for a path segment as `%` → `%25` then `/` →
//! `%2f` ([`escape_name`]), and reverses it when parsing
//! ([`unescape_name`]). It does so per field, and not always symmetrically:
//! its parser unescapes the hostname of workload and host endpoints, host
//! config, BIRD IP and Wireguard keys, tier names (in tier and legacy
//! policy keys), modern policy kinds, namespaces and names, and v3
//! namespaces and names, but its renderer writes those
//! fields unescaped. Such names cannot hold `%` or `/` in a working cluster
//! (they are DNS-style names), so the two agree on every real key; where
//! they could differ this crate escapes when rendering, which is what makes
//! `render(parse(path)) == path`.
//!
//! # Canonical paths only
//!
//! Every path a server sends is one upstream rendered from a key, so this
//! parser accepts exactly the paths that rendering can produce, and
//! `Key::parse(p)?.to_path() == p` for every `p` it accepts. Upstream's
//! parser is more lenient in ways that would break that, and here refuses:
//!
//! - a missing leading `/` (tolerated upstream for most `/calico/v1` keys);
//! - a `%` that does not start `%25` or `%2f` (upstream passes it through);
//! - trailing segments after a profile's `rules`/`labels` or a
//!   `last_reported_status` (upstream ignores them);
//! - empty names, which upstream parses but refuses to render;
//! - a CIDR not written as upstream writes it (host bits set, `-08`,
//!   upper-case IPv6), or whose `v4`/`ipv6` segment names the other family
//!   (upstream accepts any character there).
//!
//! Block affinities are parsed for the `host` affinity type only, as
//! upstream's `KeyFromDefaultPath` dispatches only `/calico/ipam/v2/host/…`.
//! Calico Enterprise keys (`/calico/v1/licensekey/…`, remote-cluster
//! `/cluster/<name>/…` prefixes) are not known.

mod cidr;
mod error;
mod escape;
mod parse;
mod path;
mod raw;
mod render;
mod resource;
mod value;

use std::fmt;
use std::str::FromStr;

pub use cidr::Cidr;
pub use error::{KeyError, SegmentCount};
pub use escape::{InvalidEscape, escape_name, unescape_name};
pub use resource::ResourceKind;
pub use value::{ParsedUpdate, Value, ValueError, ValueKind};

#[cfg(doc)]
use crate::message::SerializedUpdate;

/// The text of a name field of a [`Key`] (a hostname, a workload, a
/// policy's name…): a string that keeps up to 24 bytes inline, without a
/// heap allocation, and otherwise behaves as a `String` (it derefs to
/// `str`, compares, orders and hashes as its text, and converts from and
/// into `String` and `&str`).
///
/// Why not `String`: parsing a key allocated one `String` per name field,
/// four for a workload endpoint, and that was a quarter to a half of what
/// [`Key::parse`] cost; most names (orchestrators, endpoint and interface
/// names, namespaces, policy, profile and setting names) are short enough
/// to be kept inline. Build one with `.into()` from a `&str` or `String`,
/// or [`Name::new`]; read it as a `&str` (`as_str`, or deref).
pub type Name = compact_str::CompactString;

/// A parsed datastore key: one variant per kind of key upstream sends.
///
/// Fields hold names unescaped. [`Key::parse`] and [`Key::to_path`] convert
/// to and from the path form; the [module documentation](self) lists every
/// path and which fields are escaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Key {
    /// A global Felix setting, `/calico/v1/config/<name>` (upstream
    /// `GlobalConfigKey`). Text value.
    GlobalConfig {
        /// The setting's name, e.g. `LogSeverityScreen`; may contain `/`.
        name: Name,
    },
    /// A per-host Felix setting, `/calico/v1/host/<hostname>/config/<name>`
    /// (upstream `HostConfigKey`). Text value.
    HostConfig {
        /// The host the setting applies to.
        hostname: Name,
        /// The setting's name; may contain `/`.
        name: Name,
    },
    /// A host's existence marker, `/calico/v1/host/<hostname>/metadata`
    /// (upstream `HostMetadataKey`). JSON value.
    HostMetadata {
        /// The host (not escaped, as upstream).
        hostname: Name,
    },
    /// A host's BIRD IP, `/calico/v1/host/<hostname>/bird_ip` (upstream
    /// `HostIPKey`). Text value: an IP address.
    HostIp {
        /// The host.
        hostname: Name,
    },
    /// A node's Wireguard settings, `/calico/v1/host/<hostname>/wireguard`
    /// (upstream `WireguardKey`). JSON value.
    Wireguard {
        /// The node.
        hostname: Name,
    },
    /// A workload endpoint,
    /// `/calico/v1/host/<hostname>/workload/<orchestrator>/<workload>/endpoint/<endpoint>`
    /// (upstream `WorkloadEndpointKey`). JSON value.
    WorkloadEndpoint {
        /// The host the workload runs on.
        hostname: Name,
        /// The orchestrator, e.g. `kubernetes`.
        orchestrator: Name,
        /// The workload, e.g. `namespace/pod` (escaped as `namespace%2fpod`).
        workload: Name,
        /// The endpoint, e.g. `eth0`.
        endpoint: Name,
    },
    /// A host endpoint, `/calico/v1/host/<hostname>/endpoint/<endpoint>`
    /// (upstream `HostEndpointKey`). JSON value.
    HostEndpoint {
        /// The host.
        hostname: Name,
        /// The endpoint's name.
        endpoint: Name,
    },
    /// A policy in upstream's modern form,
    /// `/calico/v1/policy/<kind>/<namespace>/<name>` (upstream `PolicyKey`,
    /// v3.32 on; servers require clients that understand it). JSON value.
    Policy {
        /// The policy kind, e.g. `NetworkPolicy`, `GlobalNetworkPolicy`,
        /// `StagedNetworkPolicy`, `KubernetesNetworkPolicy`. Not `tier` or
        /// `profile`, which those segments mean instead.
        kind: Name,
        /// The namespace; empty for global kinds.
        namespace: Name,
        /// The policy's name.
        name: Name,
    },
    /// A policy in the form servers before v3.32 send,
    /// `/calico/v1/policy/tier/<tier>/policy/<name>`. JSON value. See
    /// [`Key::legacy_policy_as_modern`] for the modern key upstream infers.
    LegacyPolicy {
        /// The tier the policy belongs to.
        tier: Name,
        /// The policy's name, `namespace/name` for namespaced policies, with
        /// upstream's kind prefixes (`knp.default.`, `staged:`, `kcnp.`).
        name: Name,
    },
    /// A policy tier, `/calico/v1/policy/tier/<name>/metadata` (upstream
    /// `TierKey`). JSON value.
    Tier {
        /// The tier's name.
        name: Name,
    },
    /// A profile's rules, `/calico/v1/policy/profile/<name>/rules` (upstream
    /// `ProfileRulesKey`). JSON value.
    ProfileRules {
        /// The profile's name, e.g. `kns.default`.
        name: Name,
    },
    /// A profile's labels, `/calico/v1/policy/profile/<name>/labels`
    /// (upstream `ProfileLabelsKey`). JSON value.
    ProfileLabels {
        /// The profile's name.
        name: Name,
    },
    /// A network set, `/calico/v1/netset/<name>` (upstream `NetworkSetKey`).
    /// JSON value.
    NetworkSet {
        /// The set's name, `namespace/name` for namespaced sets.
        name: Name,
    },
    /// The datastore's ready flag, `/calico/v1/Ready` (upstream
    /// `ReadyFlagKey`). Text value, `true` when ready ([`Value::flag`]).
    Ready,
    /// An IP pool, `/calico/v1/ipam/v<version>/pool/<cidr>` (upstream
    /// `IPPoolKey`). JSON value.
    IpPool {
        /// The pool's network.
        cidr: Cidr,
    },
    /// An IPAM allocation block,
    /// `/calico/ipam/v2/assignment/ipv<version>/block/<cidr>` (upstream
    /// `BlockKey`). JSON value.
    Block {
        /// The block's network.
        cidr: Cidr,
    },
    /// A host's claim on an IPAM block,
    /// `/calico/ipam/v2/host/<hostname>/ipv<version>/block/<cidr>` (upstream
    /// `BlockAffinityKey` with affinity type `host`). JSON value; an empty
    /// value reads as `{}` ([`ParsedUpdate::new`]).
    BlockAffinity {
        /// The host holding the block (not escaped, as upstream).
        hostname: Name,
        /// The block's network.
        cidr: Cidr,
    },
    /// An IPAM handle, `/calico/ipam/v2/handle/<handle>` (upstream
    /// `IPAMHandleKey`). JSON value.
    IpamHandle {
        /// The handle's id (not escaped, as upstream).
        handle: Name,
    },
    /// A global BGP setting, `/calico/bgp/v1/global/<name>` (upstream
    /// `GlobalBGPConfigKey`). Text value.
    GlobalBgpConfig {
        /// The setting's name, e.g. `as_num`; may contain `/`.
        name: Name,
    },
    /// A per-node BGP setting, `/calico/bgp/v1/host/<node>/<name>` (upstream
    /// `NodeBGPConfigKey`). Text value.
    NodeBgpConfig {
        /// The node (not escaped, as upstream).
        node: Name,
        /// The setting's name, e.g. `ip_addr_v4`; may contain `/`.
        name: Name,
    },
    /// A v3 resource,
    /// `/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`
    /// (upstream `ResourceKey`). JSON value.
    Resource {
        /// The resource's kind.
        kind: ResourceKind,
        /// The namespace: `Some` exactly when the kind is namespaced.
        namespace: Option<Name>,
        /// The resource's name.
        name: Name,
    },
    /// A host endpoint's status as Felix reports it,
    /// `/calico/felix/v1/host/<hostname>/endpoint/<endpoint>` (upstream
    /// `HostEndpointStatusKey`). JSON value.
    HostEndpointStatus {
        /// The host (not escaped, as upstream).
        hostname: Name,
        /// The endpoint's name.
        endpoint: Name,
    },
    /// A workload endpoint's status as Felix reports it,
    /// `/calico/felix/v2/<region>/host/<hostname>/workload/<orchestrator>/<workload>/endpoint/<endpoint>`
    /// (upstream `WorkloadEndpointStatusKey`). JSON value.
    WorkloadEndpointStatus {
        /// The region segment as written, e.g. `region-Europe` or
        /// `no-region` (not escaped, as upstream).
        region: Name,
        /// The host (not escaped, as upstream).
        hostname: Name,
        /// The orchestrator.
        orchestrator: Name,
        /// The workload.
        workload: Name,
        /// The endpoint.
        endpoint: Name,
    },
    /// Felix's live status report,
    /// `/calico/felix/v2/<region>/host/<hostname>/status` (upstream
    /// `ActiveStatusReportKey`). JSON value.
    ActiveStatusReport {
        /// The region segment as written (`no-region` when there is none).
        region: Name,
        /// The host.
        hostname: Name,
    },
    /// Felix's last status report before it stopped,
    /// `/calico/felix/v2/<region>/host/<hostname>/last_reported_status`
    /// (upstream `LastStatusReportKey`). JSON value.
    LastStatusReport {
        /// The region segment as written.
        region: Name,
        /// The host.
        hostname: Name,
    },
    /// A key this enum does not model, kept as its path. The default parser
    /// never produces it; a custom [`KeyParser`] can, to deliver keys it
    /// accepts but this crate does not know (or to keep every key rather
    /// than drop the unknown ones). Renders as `path`, unchanged.
    Other {
        /// The path, as received.
        path: String,
        /// How its value is encoded, as the parser decided.
        value_kind: ValueKind,
    },
}

impl Key {
    /// Parses a path with upstream's grammar (see the
    /// [module documentation](self)); an error says what is wrong with it.
    /// Never panics, whatever the input.
    pub fn parse(path: &str) -> Result<Key, KeyError> {
        parse::parse(path)
    }

    /// Checks a path as [`Key::parse`] does, without building the key:
    /// `Ok` exactly when `Key::parse` would succeed, and otherwise the same
    /// error. Allocates nothing unless the path is refused (the error holds
    /// it). Never panics, whatever the input.
    ///
    /// ```
    /// use syncproto::key::Key;
    ///
    /// let path = "/calico/v1/host/node-1/workload/k8s/ns%2fpod/endpoint/eth0";
    /// assert!(Key::validate_path(path).is_ok());
    /// let bad = "/calico/v1/host/node-1/workload/k8s/ns%2Fpod/endpoint/eth0";
    /// assert_eq!(Key::validate_path(bad), Key::parse(bad).map(|_| ()));
    /// ```
    pub fn validate_path(path: &str) -> Result<(), KeyError> {
        parse::check(path).map(|_| ())
    }

    /// The key's path, with names escaped where upstream's parser unescapes
    /// them. For every key [`Key::parse`] returns, parsing the result gives
    /// the same key back; for a key built by hand, [`Key::validate`] says
    /// whether that holds.
    pub fn to_path(&self) -> String {
        render::render(self)
    }

    /// How the key's value is encoded: text for Felix and BGP config, the
    /// ready flag and BIRD IPs, JSON for everything else.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            Key::GlobalConfig { .. }
            | Key::HostConfig { .. }
            | Key::HostIp { .. }
            | Key::Ready
            | Key::GlobalBgpConfig { .. }
            | Key::NodeBgpConfig { .. } => ValueKind::Text,
            Key::Other { value_kind, .. } => *value_kind,
            _ => ValueKind::Json,
        }
    }

    /// A short name for the kind of key, for logs and metrics
    /// (`"workload endpoint"`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Key::GlobalConfig { .. } => "global config",
            Key::HostConfig { .. } => "host config",
            Key::HostMetadata { .. } => "host metadata",
            Key::HostIp { .. } => "host IP",
            Key::Wireguard { .. } => "wireguard",
            Key::WorkloadEndpoint { .. } => "workload endpoint",
            Key::HostEndpoint { .. } => "host endpoint",
            Key::Policy { .. } => "policy",
            Key::LegacyPolicy { .. } => "legacy policy",
            Key::Tier { .. } => "tier",
            Key::ProfileRules { .. } => "profile rules",
            Key::ProfileLabels { .. } => "profile labels",
            Key::NetworkSet { .. } => "network set",
            Key::Ready => "ready flag",
            Key::IpPool { .. } => "IP pool",
            Key::Block { .. } => "IPAM block",
            Key::BlockAffinity { .. } => "block affinity",
            Key::IpamHandle { .. } => "IPAM handle",
            Key::GlobalBgpConfig { .. } => "global BGP config",
            Key::NodeBgpConfig { .. } => "node BGP config",
            Key::Resource { .. } => "v3 resource",
            Key::HostEndpointStatus { .. } => "host endpoint status",
            Key::WorkloadEndpointStatus { .. } => "workload endpoint status",
            Key::ActiveStatusReport { .. } => "Felix status report",
            Key::LastStatusReport { .. } => "Felix last status report",
            Key::Other { .. } => "other",
        }
    }

    /// Checks that the key renders to a path that parses back to the same
    /// key — true of every parsed key; for a key built by hand it fails when
    /// a field breaks the grammar: an empty name, a `/` in a field upstream
    /// does not escape, a [`Key::Policy`] kind of `tier` or `profile`, a
    /// [`Key::Resource`] namespace that does not match its kind. Not
    /// meaningful for [`Key::Other`], which is always accepted.
    pub fn validate(&self) -> Result<(), KeyError> {
        if let Key::Other { .. } = self {
            return Ok(());
        }
        let path = self.to_path();
        let parsed = Key::parse(&path)?;
        if &parsed == self {
            Ok(())
        } else {
            Err(KeyError::Custom(format!(
                "{} key renders to {path:?}, which parses as a different key",
                self.kind_name()
            )))
        }
    }

    /// The modern [`Key::Policy`] that upstream (v3.32 on) infers from a
    /// [`Key::LegacyPolicy`] sent by an older server; `None` for any other
    /// key. The tier is not part of the modern key (upstream moves it into
    /// the value).
    ///
    /// The kind comes from the name: with a namespace (`ns/name`), a
    /// `knp.default.` prefix means `KubernetesNetworkPolicy`,
    /// `staged:knp.default.` `StagedKubernetesNetworkPolicy`, `staged:`
    /// `StagedNetworkPolicy`, and none `NetworkPolicy`; without one,
    /// `staged:` means `StagedGlobalNetworkPolicy`, `kcnp.`
    /// `KubernetesClusterNetworkPolicy`, and none `GlobalNetworkPolicy`.
    /// The prefix is removed from the name.
    pub fn legacy_policy_as_modern(&self) -> Option<Key> {
        let Key::LegacyPolicy { name, .. } = self else {
            return None;
        };
        let (namespace, name, prefixes): (&str, &str, &[(&str, &str)]) = match name.split_once('/')
        {
            Some((namespace, name)) => (
                namespace,
                name,
                &[
                    ("knp.default.", "KubernetesNetworkPolicy"),
                    ("staged:knp.default.", "StagedKubernetesNetworkPolicy"),
                    ("staged:", "StagedNetworkPolicy"),
                ],
            ),
            None => (
                "",
                name,
                &[
                    ("staged:", "StagedGlobalNetworkPolicy"),
                    ("kcnp.", "KubernetesClusterNetworkPolicy"),
                ],
            ),
        };
        let default_kind = if namespace.is_empty() {
            "GlobalNetworkPolicy"
        } else {
            "NetworkPolicy"
        };
        let (kind, name) = prefixes
            .iter()
            .find_map(|(prefix, kind)| name.strip_prefix(prefix).map(|rest| (*kind, rest)))
            .unwrap_or((default_kind, name));
        Some(Key::Policy {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// Displays the key's path ([`Key::to_path`]).
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_path())
    }
}

/// Parses a path ([`Key::parse`]).
impl FromStr for Key {
    type Err = KeyError;

    fn from_str(path: &str) -> Result<Key, KeyError> {
        Key::parse(path)
    }
}

/// Decides which keys a client delivers to its application.
///
/// The client machine calls [`KeyParser::validate`] on every update's key:
/// an `Ok` lets the update through, to be parsed by the application
/// ([`KeyParser::parse`], then [`ParsedUpdate::new`]) when it wants the
/// typed key; an `Err` makes the client drop the update and report the
/// error, keeping the connection up, as upstream does with keys it does not
/// know.
///
/// [`DefaultKeyParser`] knows upstream's grammar. Supply your own to accept
/// fewer keys (filter early), or more: a path this crate does not model can
/// be delivered as [`Key::Other`], and wrapping [`DefaultKeyParser`] with a
/// fallback to [`Key::Other`] keeps every key instead of dropping any.
pub trait KeyParser: Send + Sync + fmt::Debug {
    /// Parses `path`; an `Err` makes the client drop the update and report
    /// it.
    fn parse(&self, path: &str) -> Result<Key, KeyError>;

    /// Checks `path` without keeping the key: what the client calls on
    /// every update. Must accept exactly what [`KeyParser::parse`] accepts,
    /// with the same error otherwise. The provided implementation calls
    /// `parse` and drops the key; override it when checking can be cheaper
    /// than building (as [`DefaultKeyParser`] does: it allocates nothing
    /// for a key it accepts).
    fn validate(&self, path: &str) -> Result<(), KeyError> {
        self.parse(path).map(|_| ())
    }
}

/// Upstream's key grammar: [`Key::parse`]. What a client uses unless told
/// otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultKeyParser;

impl KeyParser for DefaultKeyParser {
    fn parse(&self, path: &str) -> Result<Key, KeyError> {
        Key::parse(path)
    }

    /// [`Key::validate_path`]: no allocation for a key it accepts.
    fn validate(&self, path: &str) -> Result<(), KeyError> {
        Key::validate_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(name: &str) -> Option<Key> {
        Key::LegacyPolicy {
            tier: "default".into(),
            name: name.into(),
        }
        .legacy_policy_as_modern()
    }

    fn modern(kind: &str, namespace: &str, name: &str) -> Option<Key> {
        Some(Key::Policy {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    #[test]
    fn legacy_policy_names_map_to_modern_kinds() {
        assert_eq!(legacy("ns/allow"), modern("NetworkPolicy", "ns", "allow"));
        assert_eq!(
            legacy("ns/knp.default.allow"),
            modern("KubernetesNetworkPolicy", "ns", "allow")
        );
        assert_eq!(
            legacy("ns/staged:knp.default.allow"),
            modern("StagedKubernetesNetworkPolicy", "ns", "allow")
        );
        assert_eq!(
            legacy("ns/staged:allow"),
            modern("StagedNetworkPolicy", "ns", "allow")
        );
        assert_eq!(legacy("allow"), modern("GlobalNetworkPolicy", "", "allow"));
        assert_eq!(
            legacy("staged:allow"),
            modern("StagedGlobalNetworkPolicy", "", "allow")
        );
        assert_eq!(
            legacy("kcnp.allow"),
            modern("KubernetesClusterNetworkPolicy", "", "allow")
        );
        assert_eq!(Key::Ready.legacy_policy_as_modern(), None);
    }

    #[test]
    fn validate_catches_hand_built_keys_that_do_not_round_trip() {
        assert_eq!(Key::Ready.validate(), Ok(()));
        let bad = [
            Key::GlobalConfig {
                name: Name::default(),
            },
            Key::HostMetadata {
                hostname: "a/b".into(),
            },
            Key::Policy {
                kind: "tier".into(),
                namespace: "x".into(),
                name: "metadata".into(),
            },
            Key::Resource {
                kind: ResourceKind::NetworkPolicy,
                namespace: None,
                name: "p".into(),
            },
            Key::Resource {
                kind: ResourceKind::Tier,
                namespace: Some("ns".into()),
                name: "t".into(),
            },
        ];
        for key in bad {
            assert!(key.validate().is_err(), "{key:?}");
        }
        let other = Key::Other {
            path: "whatever".into(),
            value_kind: ValueKind::Text,
        };
        assert_eq!(other.validate(), Ok(()));
        assert_eq!(other.value_kind(), ValueKind::Text);
        assert_eq!(other.to_path(), "whatever");
    }

    #[test]
    fn default_parser_is_the_grammar() {
        let parser: &dyn KeyParser = &DefaultKeyParser;
        assert_eq!(parser.parse("/calico/v1/Ready"), Ok(Key::Ready));
        assert_eq!("/calico/v1/Ready".parse::<Key>(), Ok(Key::Ready));
        assert_eq!(Key::Ready.to_string(), "/calico/v1/Ready");
        assert!(parser.parse("/calico/v1/Unready").is_err());
    }
}
