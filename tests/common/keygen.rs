//! Keys for the key tests: a real-looking path of every kind with the key
//! it parses to, and proptest strategies for keys of every kind with
//! arbitrary names. Included by path (`#[path = "common/keygen.rs"]`) by
//! the test binaries that need it.

// Each binary uses only some of it.
#![allow(dead_code, unreachable_pub)]
// Tests report failures by panicking.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use proptest::prelude::*;
use syncproto::key::{Cidr, Key, Name, ResourceKind};

/// `text` as a `Name` or a `String`, whichever the field holds.
pub fn s<T: for<'a> From<&'a str>>(text: &str) -> T {
    T::from(text)
}

pub fn cidr(text: &str) -> Cidr {
    let (addr, len) = text.split_once('/').unwrap();
    Cidr::new(addr.parse::<IpAddr>().unwrap(), len.parse().unwrap()).unwrap()
}

/// Real-looking paths of every kind, with the key each must parse to.
pub fn valid_paths() -> Vec<(&'static str, Key)> {
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

/// Any name, slashes and percent signs included.
pub fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        3 => "[a-z0-9.-]{1,12}",
        2 => "[a-z0-9/%.:_-]{1,16}",
        // Long enough for names that do not fit inline in a `Name`.
        1 => "[a-z0-9/%.-]{20,40}",
        1 => "\\PC{1,10}",
    ]
    .prop_map(Name::from)
}

/// A name for a field upstream does not escape: anything but '/'.
pub fn plain() -> impl Strategy<Value = Name> {
    name().prop_filter("verbatim fields cannot hold '/'", |n| !n.contains('/'))
}

pub fn cidrs() -> impl Strategy<Value = Cidr> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| Cidr::new(IpAddr::from(a), l).unwrap()),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, l)| Cidr::new(IpAddr::from(a), l).unwrap()),
    ]
}

pub fn resources() -> impl Strategy<Value = Key> {
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
pub fn keys() -> impl Strategy<Value = Key> {
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
            prop_oneof![Just(Name::default()), name()],
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
