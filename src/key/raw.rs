//! A checked key that still borrows its path: what the grammar
//! (`parse.rs`) produces. Checking a path stops here, allocating nothing;
//! parsing it goes on to [`Raw::into_key`], which cannot fail, so the two
//! accept and refuse exactly the same paths.

use super::cidr::Cidr;
use super::escape::Escaped;
use super::resource::ResourceKind;
use super::{Key, Name};

/// [`Key`], variant for variant, with each field as the path holds it:
/// names upstream escapes as [`Escaped`], the others as `&str`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Raw<'a> {
    GlobalConfig {
        name: &'a str,
    },
    HostConfig {
        hostname: Escaped<'a>,
        name: &'a str,
    },
    HostMetadata {
        hostname: &'a str,
    },
    HostIp {
        hostname: Escaped<'a>,
    },
    Wireguard {
        hostname: Escaped<'a>,
    },
    WorkloadEndpoint {
        hostname: Escaped<'a>,
        orchestrator: Escaped<'a>,
        workload: Escaped<'a>,
        endpoint: Escaped<'a>,
    },
    HostEndpoint {
        hostname: Escaped<'a>,
        endpoint: Escaped<'a>,
    },
    Policy {
        kind: Escaped<'a>,
        namespace: Escaped<'a>,
        name: Escaped<'a>,
    },
    LegacyPolicy {
        tier: Escaped<'a>,
        name: Escaped<'a>,
    },
    Tier {
        name: Escaped<'a>,
    },
    ProfileRules {
        name: Escaped<'a>,
    },
    ProfileLabels {
        name: Escaped<'a>,
    },
    NetworkSet {
        name: Escaped<'a>,
    },
    Ready,
    IpPool {
        cidr: Cidr,
    },
    Block {
        cidr: Cidr,
    },
    BlockAffinity {
        hostname: &'a str,
        cidr: Cidr,
    },
    IpamHandle {
        handle: &'a str,
    },
    GlobalBgpConfig {
        name: &'a str,
    },
    NodeBgpConfig {
        node: &'a str,
        name: &'a str,
    },
    Resource {
        kind: ResourceKind,
        namespace: Option<Escaped<'a>>,
        name: Escaped<'a>,
    },
    HostEndpointStatus {
        hostname: &'a str,
        endpoint: Escaped<'a>,
    },
    WorkloadEndpointStatus {
        region: &'a str,
        hostname: &'a str,
        orchestrator: Escaped<'a>,
        workload: Escaped<'a>,
        endpoint: Escaped<'a>,
    },
    ActiveStatusReport {
        region: &'a str,
        hostname: &'a str,
    },
    LastStatusReport {
        region: &'a str,
        hostname: &'a str,
    },
}

impl Raw<'_> {
    /// The owned key: one allocation per name field too long to be kept
    /// inline in a [`Name`], each of its final length.
    pub(super) fn into_key(self) -> Key {
        let v = Name::new::<&str>;
        match self {
            Raw::GlobalConfig { name } => Key::GlobalConfig { name: v(name) },
            Raw::HostConfig { hostname, name } => Key::HostConfig {
                hostname: hostname.to_name(),
                name: v(name),
            },
            Raw::HostMetadata { hostname } => Key::HostMetadata {
                hostname: v(hostname),
            },
            Raw::HostIp { hostname } => Key::HostIp {
                hostname: hostname.to_name(),
            },
            Raw::Wireguard { hostname } => Key::Wireguard {
                hostname: hostname.to_name(),
            },
            Raw::WorkloadEndpoint {
                hostname,
                orchestrator,
                workload,
                endpoint,
            } => Key::WorkloadEndpoint {
                hostname: hostname.to_name(),
                orchestrator: orchestrator.to_name(),
                workload: workload.to_name(),
                endpoint: endpoint.to_name(),
            },
            Raw::HostEndpoint { hostname, endpoint } => Key::HostEndpoint {
                hostname: hostname.to_name(),
                endpoint: endpoint.to_name(),
            },
            Raw::Policy {
                kind,
                namespace,
                name,
            } => Key::Policy {
                kind: kind.to_name(),
                namespace: namespace.to_name(),
                name: name.to_name(),
            },
            Raw::LegacyPolicy { tier, name } => Key::LegacyPolicy {
                tier: tier.to_name(),
                name: name.to_name(),
            },
            Raw::Tier { name } => Key::Tier {
                name: name.to_name(),
            },
            Raw::ProfileRules { name } => Key::ProfileRules {
                name: name.to_name(),
            },
            Raw::ProfileLabels { name } => Key::ProfileLabels {
                name: name.to_name(),
            },
            Raw::NetworkSet { name } => Key::NetworkSet {
                name: name.to_name(),
            },
            Raw::Ready => Key::Ready,
            Raw::IpPool { cidr } => Key::IpPool { cidr },
            Raw::Block { cidr } => Key::Block { cidr },
            Raw::BlockAffinity { hostname, cidr } => Key::BlockAffinity {
                hostname: v(hostname),
                cidr,
            },
            Raw::IpamHandle { handle } => Key::IpamHandle { handle: v(handle) },
            Raw::GlobalBgpConfig { name } => Key::GlobalBgpConfig { name: v(name) },
            Raw::NodeBgpConfig { node, name } => Key::NodeBgpConfig {
                node: v(node),
                name: v(name),
            },
            Raw::Resource {
                kind,
                namespace,
                name,
            } => Key::Resource {
                kind,
                namespace: namespace.map(Escaped::to_name),
                name: name.to_name(),
            },
            Raw::HostEndpointStatus { hostname, endpoint } => Key::HostEndpointStatus {
                hostname: v(hostname),
                endpoint: endpoint.to_name(),
            },
            Raw::WorkloadEndpointStatus {
                region,
                hostname,
                orchestrator,
                workload,
                endpoint,
            } => Key::WorkloadEndpointStatus {
                region: v(region),
                hostname: v(hostname),
                orchestrator: orchestrator.to_name(),
                workload: workload.to_name(),
                endpoint: endpoint.to_name(),
            },
            Raw::ActiveStatusReport { region, hostname } => Key::ActiveStatusReport {
                region: v(region),
                hostname: v(hostname),
            },
            Raw::LastStatusReport { region, hostname } => Key::LastStatusReport {
                region: v(region),
                hostname: v(hostname),
            },
        }
    }
}
