//! The datastore key model: every upstream key pattern parsed and rendered
//! back, malformed paths refused with the right reason, escaping and
//! rendering round-trips as properties, and values handed out without
//! copies.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use bytes::Bytes;
use proptest::prelude::*;
use serde::Deserialize;
use syncproto::key::{
    Cidr, DefaultKeyParser, Key, KeyError, KeyParser, ParsedUpdate, ResourceKind, SegmentCount,
    Value, ValueKind, escape_name, unescape_name,
};
use syncproto::message::{Revision, SerializedUpdate, UpdateType};

fn s(text: &str) -> String {
    text.to_owned()
}

fn cidr(text: &str) -> Cidr {
    let (addr, len) = text.split_once('/').unwrap();
    Cidr::new(addr.parse::<IpAddr>().unwrap(), len.parse().unwrap()).unwrap()
}

/// Real-looking paths of every kind, with the key each must parse to.
fn valid_paths() -> Vec<(&'static str, Key)> {
    vec![
        (
            "/calico/v1/config/LogSeverityScreen",
            Key::GlobalConfig {
                name: s("LogSeverityScreen"),
            },
        ),
        (
            "/calico/v1/config/foo/bar%zz",
            Key::GlobalConfig {
                name: s("foo/bar%zz"),
            },
        ),
        (
            "/calico/v1/host/node-1/config/IptablesBackend",
            Key::HostConfig {
                hostname: s("node-1"),
                name: s("IptablesBackend"),
            },
        ),
        (
            "/calico/v1/host/node%2f1/config/a/b",
            Key::HostConfig {
                hostname: s("node/1"),
                name: s("a/b"),
            },
        ),
        (
            "/calico/v1/host/node-1/metadata",
            Key::HostMetadata {
                hostname: s("node-1"),
            },
        ),
        (
            "/calico/v1/host/50%25/metadata",
            Key::HostMetadata {
                hostname: s("50%25"),
            },
        ),
        (
            "/calico/v1/host/node-1/bird_ip",
            Key::HostIp {
                hostname: s("node-1"),
            },
        ),
        (
            "/calico/v1/host/node-1/wireguard",
            Key::Wireguard {
                hostname: s("node-1"),
            },
        ),
        (
            "/calico/v1/host/node-1/workload/kubernetes/ns%2fpod/endpoint/eth0",
            Key::WorkloadEndpoint {
                hostname: s("node-1"),
                orchestrator: s("kubernetes"),
                workload: s("ns/pod"),
                endpoint: s("eth0"),
            },
        ),
        (
            "/calico/v1/host/foobar/workload/open%2fstack/work%2fload/endpoint/end%2fpoint",
            Key::WorkloadEndpoint {
                hostname: s("foobar"),
                orchestrator: s("open/stack"),
                workload: s("work/load"),
                endpoint: s("end/point"),
            },
        ),
        (
            "/calico/v1/host/node-1/endpoint/eth0%252f",
            Key::HostEndpoint {
                hostname: s("node-1"),
                endpoint: s("eth0%2f"),
            },
        ),
        (
            "/calico/v1/policy/NetworkPolicy/prod/allow-dns",
            Key::Policy {
                kind: s("NetworkPolicy"),
                namespace: s("prod"),
                name: s("allow-dns"),
            },
        ),
        (
            "/calico/v1/policy/GlobalNetworkPolicy//deny-all",
            Key::Policy {
                kind: s("GlobalNetworkPolicy"),
                namespace: s(""),
                name: s("deny-all"),
            },
        ),
        (
            "/calico/v1/policy/tier/default/policy/biff%2fbop",
            Key::LegacyPolicy {
                tier: s("default"),
                name: s("biff/bop"),
            },
        ),
        (
            "/calico/v1/policy/tier/security/metadata",
            Key::Tier {
                name: s("security"),
            },
        ),
        (
            "/calico/v1/policy/profile/kns.default/rules",
            Key::ProfileRules {
                name: s("kns.default"),
            },
        ),
        (
            "/calico/v1/policy/profile/foo%2fbar/labels",
            Key::ProfileLabels { name: s("foo/bar") },
        ),
        (
            "/calico/v1/netset/ns%2fblocklist",
            Key::NetworkSet {
                name: s("ns/blocklist"),
            },
        ),
        ("/calico/v1/Ready", Key::Ready),
        (
            "/calico/v1/ipam/v4/pool/10.0.0.0-8",
            Key::IpPool {
                cidr: cidr("10.0.0.0/8"),
            },
        ),
        (
            "/calico/v1/ipam/v6/pool/fd00:1::-64",
            Key::IpPool {
                cidr: cidr("fd00:1::/64"),
            },
        ),
        (
            "/calico/ipam/v2/assignment/ipv4/block/192.168.10.64-26",
            Key::Block {
                cidr: cidr("192.168.10.64/26"),
            },
        ),
        (
            "/calico/ipam/v2/assignment/ipv6/block/fd00::a00-122",
            Key::Block {
                cidr: cidr("fd00::a00/122"),
            },
        ),
        (
            "/calico/ipam/v2/host/node-1/ipv4/block/172.29.82.0-26",
            Key::BlockAffinity {
                hostname: s("node-1"),
                cidr: cidr("172.29.82.0/26"),
            },
        ),
        (
            "/calico/ipam/v2/handle/k8s-pod-network.6f1d2c",
            Key::IpamHandle {
                handle: s("k8s-pod-network.6f1d2c"),
            },
        ),
        (
            "/calico/bgp/v1/global/as_num",
            Key::GlobalBgpConfig { name: s("as_num") },
        ),
        (
            "/calico/bgp/v1/global/peer_v4/10.0.0.5",
            Key::GlobalBgpConfig {
                name: s("peer_v4/10.0.0.5"),
            },
        ),
        (
            "/calico/bgp/v1/host/node-1/ip_addr_v4",
            Key::NodeBgpConfig {
                node: s("node-1"),
                name: s("ip_addr_v4"),
            },
        ),
        (
            "/calico/bgp/v1/host/random-node-2/peer_v6/aabb:aabb::ffff-123",
            Key::NodeBgpConfig {
                node: s("random-node-2"),
                name: s("peer_v6/aabb:aabb::ffff-123"),
            },
        ),
        (
            "/calico/resources/v3/projectcalico.org/felixconfigurations/default",
            Key::Resource {
                kind: ResourceKind::FelixConfiguration,
                namespace: None,
                name: s("default"),
            },
        ),
        (
            "/calico/resources/v3/projectcalico.org/networkpolicies/default/my-network-policy",
            Key::Resource {
                kind: ResourceKind::NetworkPolicy,
                namespace: Some(s("default")),
                name: s("my-network-policy"),
            },
        ),
        (
            "/calico/resources/v3/projectcalico.org/kubernetesservice/kube-system/kube-dns",
            Key::Resource {
                kind: ResourceKind::KubernetesService,
                namespace: Some(s("kube-system")),
                name: s("kube-dns"),
            },
        ),
        (
            "/calico/felix/v1/host/node-1/endpoint/eth0",
            Key::HostEndpointStatus {
                hostname: s("node-1"),
                endpoint: s("eth0"),
            },
        ),
        (
            "/calico/felix/v2/region-Europe/host/h1/status",
            Key::ActiveStatusReport {
                region: s("region-Europe"),
                hostname: s("h1"),
            },
        ),
        (
            "/calico/felix/v2/no-region/host/h1/last_reported_status",
            Key::LastStatusReport {
                region: s("no-region"),
                hostname: s("h1"),
            },
        ),
        (
            "/calico/felix/v2/region-Europe/host/h1/workload/o1/w%2f1/endpoint/e1",
            Key::WorkloadEndpointStatus {
                region: s("region-Europe"),
                hostname: s("h1"),
                orchestrator: s("o1"),
                workload: s("w/1"),
                endpoint: s("e1"),
            },
        ),
    ]
}

#[test]
fn every_pattern_parses_and_renders_back() {
    let paths = valid_paths();
    for (path, expected) in &paths {
        let key = Key::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&key, expected, "{path}");
        assert_eq!(key.to_path(), *path);
        assert_eq!(key.to_string(), *path);
        assert_eq!(DefaultKeyParser.parse(path).as_ref(), Ok(expected));
        assert_eq!(key.validate(), Ok(()), "{path}");
    }
    // One path per kind of key, at least.
    let mut kinds: Vec<_> = paths.iter().map(|(_, key)| key.kind_name()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), 25);
}

#[test]
fn every_resource_kind_parses_in_its_own_scope() {
    for &kind in ResourceKind::ALL {
        let path = if kind.is_namespaced() {
            format!(
                "/calico/resources/v3/projectcalico.org/{}/ns-1/name-1",
                kind.plural()
            )
        } else {
            format!(
                "/calico/resources/v3/projectcalico.org/{}/name-1",
                kind.plural()
            )
        };
        let key = Key::parse(&path).unwrap();
        let Key::Resource {
            kind: parsed,
            namespace,
            ..
        } = &key
        else {
            panic!("{key:?}")
        };
        assert_eq!(*parsed, kind);
        assert_eq!(namespace.is_some(), kind.is_namespaced());
        assert_eq!(key.to_path(), path);
    }
}

#[test]
fn value_kinds_follow_upstream_raw_types() {
    for (path, key) in valid_paths() {
        let text = path.starts_with("/calico/v1/config/")
            || path.contains("/config/")
            || path.ends_with("/bird_ip")
            || path == "/calico/v1/Ready"
            || path.starts_with("/calico/bgp/");
        let expected = if text {
            ValueKind::Text
        } else {
            ValueKind::Json
        };
        assert_eq!(key.value_kind(), expected, "{path}");
    }
}

/// The variant's name, so that the table below can say which it expects.
fn variant(error: &KeyError) -> &'static str {
    match error {
        KeyError::MissingLeadingSlash { .. } => "MissingLeadingSlash",
        KeyError::UnknownPrefix { .. } => "UnknownPrefix",
        KeyError::UnexpectedSegment { .. } => "UnexpectedSegment",
        KeyError::WrongSegmentCount { .. } => "WrongSegmentCount",
        KeyError::EmptySegment { .. } => "EmptySegment",
        KeyError::BadEscape { .. } => "BadEscape",
        KeyError::UnknownPlural { .. } => "UnknownPlural",
        KeyError::MissingNamespace { .. } => "MissingNamespace",
        KeyError::UnexpectedNamespace { .. } => "UnexpectedNamespace",
        KeyError::InvalidCidr { .. } => "InvalidCidr",
        KeyError::NonCanonicalCidr { .. } => "NonCanonicalCidr",
        KeyError::IpVersionMismatch { .. } => "IpVersionMismatch",
        KeyError::Custom(_) => "Custom",
        _ => "unknown variant",
    }
}

#[test]
fn malformed_paths_are_refused_with_a_reason() {
    let table: &[(&str, &str)] = &[
        // Wrong prefix.
        ("", "MissingLeadingSlash"),
        ("calico/v1/Ready", "MissingLeadingSlash"),
        ("/", "UnknownPrefix"),
        ("/calico", "UnknownPrefix"),
        ("/calico/v2/Ready", "UnknownPrefix"),
        ("/calico/v1", "UnknownPrefix"),
        ("/calico/v1/foo/bar", "UnknownPrefix"),
        (
            "/bar/v1/host/foobar/workload/o/w/endpoint/e",
            "UnknownPrefix",
        ),
        (
            "/calico/resources/v3/example.org/ippools/p",
            "UnknownPrefix",
        ),
        ("/cluster/c1/calico/v1/Ready", "UnknownPrefix"),
        // Too few segments.
        ("/calico/v1/config", "WrongSegmentCount"),
        ("/calico/v1/host/node-1", "WrongSegmentCount"),
        ("/calico/v1/host/node-1/config", "WrongSegmentCount"),
        ("/calico/v1/policy/tier", "WrongSegmentCount"),
        ("/calico/v1/policy/profile/p", "WrongSegmentCount"),
        ("/calico/bgp/v1/global", "WrongSegmentCount"),
        ("/calico/bgp/v1/host/node-1", "WrongSegmentCount"),
        ("/calico/ipam/v2", "WrongSegmentCount"),
        ("/calico/felix/v1", "WrongSegmentCount"),
        ("/calico/felix/v2/foo/host", "WrongSegmentCount"),
        (
            "/calico/resources/v3/projectcalico.org/networkpolicies",
            "WrongSegmentCount",
        ),
        // Wrong segment count.
        ("/calico/v1/Ready/garbage", "WrongSegmentCount"),
        ("/calico/v1/netset", "WrongSegmentCount"),
        ("/calico/v1/netset/a/b", "WrongSegmentCount"),
        ("/calico/v1/host/h/metadata/x", "WrongSegmentCount"),
        ("/calico/v1/host/h/endpoint", "WrongSegmentCount"),
        (
            "/calico/v1/host/h/workload/o/w/endpoint",
            "WrongSegmentCount",
        ),
        (
            "/calico/v1/host/h/workload/o/w/endpoint/e/extra",
            "WrongSegmentCount",
        ),
        (
            "/calico/v1/policy/profile/p/rules/extra",
            "WrongSegmentCount",
        ),
        ("/calico/v1/policy/tier/t/policy", "WrongSegmentCount"),
        ("/calico/v1/policy/tier/t/metadata/x", "WrongSegmentCount"),
        (
            "/calico/v1/policy/NetworkPolicy/ns/name/x",
            "WrongSegmentCount",
        ),
        ("/calico/ipam/v2/handle/foobar/baz", "WrongSegmentCount"),
        (
            "/calico/ipam/v2/assignment/ipv4/1.2.3.4-26",
            "WrongSegmentCount",
        ),
        (
            "/calico/felix/v2/r/host/h1/last_reported_status/x",
            "WrongSegmentCount",
        ),
        (
            "/calico/resources/v3/projectcalico.org/ippools/a/b/c",
            "WrongSegmentCount",
        ),
        (
            "/calico/v1/netset/x/////////////////////////////",
            "WrongSegmentCount",
        ),
        // A fixed segment that is not the expected word.
        (
            "/calico/v1/host/h/workloads/o/w/endpoint/e",
            "UnexpectedSegment",
        ),
        (
            "/calico/v1/host/h/workload/o/w/endpoints/e",
            "UnexpectedSegment",
        ),
        ("/calico/v1/policy/tier/t/policies/p", "UnexpectedSegment"),
        ("/calico/v1/policy/profile/p/tags", "UnexpectedSegment"),
        ("/calico/v1/ipam/v4/pools/10.0.0.0-8", "UnexpectedSegment"),
        ("/calico/bgp/v1/rr/x", "UnexpectedSegment"),
        (
            "/calico/ipam/v2/virtual/h/ipv4/block/10.0.0.0-26",
            "UnexpectedSegment",
        ),
        ("/calico/felix/v1/endpoint/x", "UnexpectedSegment"),
        ("/calico/felix/v2//foo/host/h/status", "UnexpectedSegment"),
        ("/calico/felix/v2/r/nodes/h/status", "UnexpectedSegment"),
        ("/calico/felix/v2/r/host/h/stats", "UnexpectedSegment"),
        // Empty names.
        ("/calico/v1/config/", "EmptySegment"),
        ("/calico/v1/host//metadata", "EmptySegment"),
        ("/calico/v1/host/h/config/", "EmptySegment"),
        ("/calico/v1/host/h/workload/o//endpoint/e", "EmptySegment"),
        ("/calico/v1/netset/", "EmptySegment"),
        ("/calico/v1/policy//ns/name", "EmptySegment"),
        ("/calico/v1/policy/NetworkPolicy/ns/", "EmptySegment"),
        ("/calico/ipam/v2/handle/", "EmptySegment"),
        ("/calico/bgp/v1/host//as_num", "EmptySegment"),
        ("/calico/felix/v2//host/h/status", "EmptySegment"),
        (
            "/calico/resources/v3/projectcalico.org/ippools/",
            "EmptySegment",
        ),
        // Bad escapes.
        ("/calico/v1/netset/50%", "BadEscape"),
        ("/calico/v1/netset/ns%2Fname", "BadEscape"),
        (
            "/calico/v1/host/h/workload/k8s/ns%2xpod/endpoint/eth0",
            "BadEscape",
        ),
        ("/calico/v1/policy/profile/a%41/rules", "BadEscape"),
        (
            "/calico/resources/v3/projectcalico.org/tiers/t%",
            "BadEscape",
        ),
        // Unknown plural.
        (
            "/calico/resources/v3/projectcalico.org/foo/bar/baz",
            "UnknownPlural",
        ),
        (
            "/calico/resources/v3/projectcalico.org/NetworkPolicies/ns/p",
            "UnknownPlural",
        ),
        (
            "/calico/resources/v3/projectcalico.org/kubernetesadminnetworkpolicies/p",
            "UnknownPlural",
        ),
        // Namespaced kind without a namespace, global kind with one.
        (
            "/calico/resources/v3/projectcalico.org/networkpolicies/my-policy",
            "MissingNamespace",
        ),
        (
            "/calico/resources/v3/projectcalico.org/workloadendpoints/w",
            "MissingNamespace",
        ),
        (
            "/calico/resources/v3/projectcalico.org/felixconfigurations/default/my-network-policy",
            "UnexpectedNamespace",
        ),
        (
            "/calico/resources/v3/projectcalico.org/tiers/ns/t",
            "UnexpectedNamespace",
        ),
        // CIDRs.
        ("/calico/v1/ipam/v4/pool/577559", "InvalidCidr"),
        ("/calico/v1/ipam/v4/pool/10.0.0.0-33", "InvalidCidr"),
        ("/calico/v1/ipam/v4/pool/10.0.0.0-+8", "InvalidCidr"),
        ("/calico/ipam/v2/host/h/ipv4/block/1.2.3.4-x", "InvalidCidr"),
        ("/calico/v1/ipam/v4/pool/10.0.0.1-8", "NonCanonicalCidr"),
        (
            "/calico/ipam/v2/assignment/ipv6/block/FD00::-64",
            "NonCanonicalCidr",
        ),
        ("/calico/v1/ipam/v6/pool/10.0.0.0-8", "IpVersionMismatch"),
        ("/calico/v1/ipam/vX/pool/10.0.0.0-8", "IpVersionMismatch"),
        (
            "/calico/ipam/v2/host/foobar/ipv0/block/1.2.3.4-32",
            "IpVersionMismatch",
        ),
    ];
    for (path, expected) in table {
        let error = Key::parse(path).expect_err(path);
        assert_eq!(variant(&error), *expected, "{path}: {error}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("{path:?}")),
            "{message} lacks {path:?}"
        );
    }
}

#[test]
fn errors_say_exactly_what_is_wrong() {
    assert_eq!(
        Key::parse("/calico/v1/host/h/workload/o/w/endpoint"),
        Err(KeyError::WrongSegmentCount {
            kind: "workload endpoint",
            expected: SegmentCount::Exactly(9),
            got: 8,
            path: s("/calico/v1/host/h/workload/o/w/endpoint"),
        })
    );
    // The offset points at the '%' within the whole path.
    let path = "/calico/v1/host/h/workload/k8s/ns%2xpod/endpoint/eth0";
    assert_eq!(
        Key::parse(path),
        Err(KeyError::BadEscape {
            offset: path.find('%').unwrap(),
            path: s(path)
        })
    );
    let path = "/calico/v1/netset/x/////////////////////////////";
    let Err(KeyError::WrongSegmentCount { got, .. }) = Key::parse(path) else {
        panic!()
    };
    assert_eq!(got, path.matches('/').count());
    assert_eq!(
        Key::parse("/calico/resources/v3/projectcalico.org/networkpolicies/p")
            .map_err(|e| e.to_string()),
        Err(s(
            "NetworkPolicy is namespaced but the path has no namespace: \
               \"/calico/resources/v3/projectcalico.org/networkpolicies/p\""
        ))
    );
    assert_eq!(
        Key::parse("/calico/v1/ipam/v4/pool/10.0.0.1-8"),
        Err(KeyError::NonCanonicalCidr {
            segment: s("10.0.0.1-8"),
            canonical: s("10.0.0.0-8"),
            path: s("/calico/v1/ipam/v4/pool/10.0.0.1-8"),
        })
    );
}

#[test]
fn a_custom_parser_can_filter_or_keep_everything() {
    /// Keeps only workload endpoints.
    #[derive(Debug)]
    struct EndpointsOnly;
    impl KeyParser for EndpointsOnly {
        fn parse(&self, path: &str) -> Result<Key, KeyError> {
            match Key::parse(path)? {
                key @ Key::WorkloadEndpoint { .. } => Ok(key),
                other => Err(KeyError::Custom(format!(
                    "not wanted: {}",
                    other.kind_name()
                ))),
            }
        }
    }
    /// Delivers what the grammar refuses as `Key::Other`.
    #[derive(Debug)]
    struct KeepAll;
    impl KeyParser for KeepAll {
        fn parse(&self, path: &str) -> Result<Key, KeyError> {
            Ok(Key::parse(path).unwrap_or_else(|_| Key::Other {
                path: path.to_owned(),
                value_kind: ValueKind::Json,
            }))
        }
    }
    let parsers: [&dyn KeyParser; 2] = [&EndpointsOnly, &KeepAll];
    assert_eq!(
        parsers[0].parse("/calico/v1/Ready"),
        Err(KeyError::Custom(s("not wanted: ready flag")))
    );
    let unknown = parsers[1].parse("/calico/v1/licensekey/x").unwrap();
    assert_eq!(unknown.to_path(), "/calico/v1/licensekey/x");
    assert_eq!(unknown.value_kind(), ValueKind::Json);
}

#[test]
fn parsed_updates_keep_text_and_json_values_as_sent() {
    let parse = |update: SerializedUpdate| {
        let key = DefaultKeyParser.parse(&update.key).unwrap();
        ParsedUpdate::new(key, update)
    };

    let mut config = SerializedUpdate::upsert("/calico/v1/config/LogSeverityScreen", "Info", "17");
    config.update_type = UpdateType::New;
    config.ttl_nanos = 5;
    let config = parse(config);
    let value = config.value.as_ref().unwrap();
    assert_eq!(value.kind(), ValueKind::Text);
    assert_eq!(value.text(), Ok("Info"));
    assert!(value.json_value().is_err());
    assert_eq!((config.revision.as_str(), config.ttl_nanos), ("17", 5));
    assert_eq!(config.update_type, UpdateType::New);

    let ready = parse(SerializedUpdate::upsert(
        "/calico/v1/Ready",
        "true",
        Revision::Uint64(9),
    ));
    assert!(ready.value.as_ref().unwrap().flag());
    assert_eq!(ready.revision, "9");

    let pool = parse(SerializedUpdate::upsert(
        "/calico/v1/ipam/v4/pool/10.0.0.0-8",
        r#"{"cidr":"10.0.0.0/8","masquerade":true}"#,
        "3",
    ));
    let value = pool.value.as_ref().unwrap();
    assert_eq!(value.kind(), ValueKind::Json);
    assert_eq!(value.validate(), Ok(()));
    assert_eq!(
        value.json_value().unwrap()["masquerade"],
        serde_json::Value::Bool(true)
    );

    let deletion = parse(SerializedUpdate::deletion(
        "/calico/v1/Ready",
        Revision::Nil,
    ));
    assert!(deletion.is_deletion());
    assert_eq!(deletion.revision, "<nil>");

    let broken = Value::new(ValueKind::Json, Bytes::from_static(b"{\"cidr\":"));
    assert!(broken.validate().is_err());
    assert_eq!(broken.bytes().as_ref(), b"{\"cidr\":");
}

#[test]
fn json_values_deserialize_from_the_held_bytes_without_a_copy() {
    #[derive(Deserialize)]
    struct Endpoint<'a> {
        name: &'a str,
        #[serde(borrow)]
        profile_ids: Vec<&'a str>,
        state: String,
    }
    let wire = Bytes::from(
        r#"{"state":"active","name":"cali1234","profile_ids":["kns.default"]}"#
            .as_bytes()
            .to_vec(),
    );
    let path = "/calico/v1/host/node-1/workload/kubernetes/ns%2fpod/endpoint/eth0";
    let update = SerializedUpdate::upsert(path, wire.clone(), "1");
    let parsed = ParsedUpdate::new(Key::parse(path).unwrap(), update);
    let value = parsed.value.as_ref().unwrap();
    // The value holds the very bytes that arrived…
    assert_eq!(value.bytes().as_ptr(), wire.as_ptr());
    // …and borrowed fields point into them.
    let endpoint: Endpoint<'_> = value.json().unwrap();
    let held = wire.as_ptr_range();
    assert!(held.contains(&endpoint.name.as_ptr()));
    assert!(held.contains(&endpoint.profile_ids[0].as_ptr()));
    assert_eq!(
        (endpoint.name, endpoint.state.as_str()),
        ("cali1234", "active")
    );
}

// --- Properties -----------------------------------------------------------

/// Any name, slashes and percent signs included.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9.-]{1,12}",
        2 => "[a-z0-9/%.:_-]{1,16}",
        1 => "\\PC{1,10}",
    ]
}

/// A name for a field upstream does not escape: anything but '/'.
fn plain() -> impl Strategy<Value = String> {
    name().prop_filter("verbatim fields cannot hold '/'", |n| !n.contains('/'))
}

fn cidrs() -> impl Strategy<Value = Cidr> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| Cidr::new(IpAddr::from(a), l).unwrap()),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, l)| Cidr::new(IpAddr::from(a), l).unwrap()),
    ]
}

fn resources() -> impl Strategy<Value = Key> {
    (prop::sample::select(ResourceKind::ALL), name(), name()).prop_map(|(kind, ns, name)| {
        let namespace = kind.is_namespaced().then_some(ns);
        Key::Resource {
            kind,
            namespace,
            name,
        }
    })
}

/// Every kind of key, with arbitrary names where the grammar allows them.
fn keys() -> impl Strategy<Value = Key> {
    prop_oneof![
        name().prop_map(|name| Key::GlobalConfig { name }),
        (name(), name()).prop_map(|(hostname, name)| Key::HostConfig { hostname, name }),
        plain().prop_map(|hostname| Key::HostMetadata { hostname }),
        name().prop_map(|hostname| Key::HostIp { hostname }),
        name().prop_map(|hostname| Key::Wireguard { hostname }),
        (name(), name(), name(), name()).prop_map(
            |(hostname, orchestrator, workload, endpoint)| {
                Key::WorkloadEndpoint {
                    hostname,
                    orchestrator,
                    workload,
                    endpoint,
                }
            }
        ),
        (name(), name()).prop_map(|(hostname, endpoint)| Key::HostEndpoint { hostname, endpoint }),
        (
            name().prop_filter("tier and profile are not policy kinds", |k| k != "tier"
                && k != "profile"),
            prop_oneof![Just(String::new()), name()],
            name()
        )
            .prop_map(|(kind, namespace, name)| Key::Policy {
                kind,
                namespace,
                name
            }),
        (name(), name()).prop_map(|(tier, name)| Key::LegacyPolicy { tier, name }),
        name().prop_map(|name| Key::Tier { name }),
        name().prop_map(|name| Key::ProfileRules { name }),
        name().prop_map(|name| Key::ProfileLabels { name }),
        name().prop_map(|name| Key::NetworkSet { name }),
        Just(Key::Ready),
        cidrs().prop_map(|cidr| Key::IpPool { cidr }),
        cidrs().prop_map(|cidr| Key::Block { cidr }),
        (plain(), cidrs()).prop_map(|(hostname, cidr)| Key::BlockAffinity { hostname, cidr }),
        plain().prop_map(|handle| Key::IpamHandle { handle }),
        name().prop_map(|name| Key::GlobalBgpConfig { name }),
        (plain(), name()).prop_map(|(node, name)| Key::NodeBgpConfig { node, name }),
        resources(),
        (plain(), name())
            .prop_map(|(hostname, endpoint)| Key::HostEndpointStatus { hostname, endpoint }),
        (plain(), plain(), name(), name(), name()).prop_map(
            |(region, hostname, orchestrator, workload, endpoint)| Key::WorkloadEndpointStatus {
                region,
                hostname,
                orchestrator,
                workload,
                endpoint,
            }
        ),
        (plain(), plain())
            .prop_map(|(region, hostname)| Key::ActiveStatusReport { region, hostname }),
        (plain(), plain())
            .prop_map(|(region, hostname)| Key::LastStatusReport { region, hostname }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn escaping_round_trips_any_string(text in "\\PC{0,24}|[%/2f5a]{0,16}") {
        let escaped = escape_name(&text);
        prop_assert!(!escaped.contains('/'));
        prop_assert_eq!(unescape_name(&escaped).unwrap(), text.as_str());
    }

    #[test]
    fn unescaping_inverts_escaping_wherever_it_succeeds(text in "[%/2f5a]{0,16}|\\PC{0,24}") {
        // A path segment never holds a '/'.
        let text = text.replace('/', "");
        if let Ok(name) = unescape_name(&text) {
            prop_assert_eq!(escape_name(&name), text.as_str());
        }
    }

    #[test]
    fn rendered_keys_parse_back(key in keys()) {
        let path = key.to_path();
        prop_assert_eq!(Key::parse(&path), Ok(key.clone()), "{}", path);
        prop_assert_eq!(key.validate(), Ok(()));
    }

    #[test]
    fn parsed_paths_render_back_and_nothing_panics(
        path in prop_oneof![
            "/calico/[a-z0-9/%.-]{0,60}",
            "\\PC{0,40}",
            keys().prop_map(|k| k.to_path()),
        ],
        cut in any::<prop::sample::Index>(),
        junk in "[/%a-z0-9-]{0,3}",
    ) {
        // Mutate near-valid paths by splicing junk in at some character.
        let at = path.char_indices().map(|(i, _)| i).chain([path.len()]).nth(cut.index(path.chars().count() + 1)).unwrap();
        let mutated = format!("{}{junk}{}", &path[..at], &path[at..]);
        for candidate in [path, mutated] {
            if let Ok(key) = Key::parse(&candidate) {
                prop_assert_eq!(key.to_path(), candidate);
            }
        }
    }
}
