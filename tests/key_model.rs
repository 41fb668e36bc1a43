//! The datastore key model: every upstream key pattern parsed and rendered
//! back, malformed paths refused with the right reason, escaping and
//! rendering round-trips as properties, and values handed out without
//! copies.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use bytes::Bytes;
use proptest::prelude::*;
use serde::Deserialize;
use syncproto::key::{
    DefaultKeyParser, Key, KeyError, KeyParser, ParsedUpdate, ResourceKind, SegmentCount, Value,
    ValueKind, escape_name, unescape_name,
};
use syncproto::message::{Revision, SerializedUpdate, UpdateType};

#[path = "common/keygen.rs"]
mod keygen;

use keygen::{keys, s, valid_paths};

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
