//! Path → [`Key`]: upstream's `KeyFromDefaultPath`, restricted to the
//! canonical form of each path (see the module documentation).
//!
//! The grammar produces a [`Raw`] key that borrows the path, so checking a
//! path ([`check`]) allocates nothing unless it fails, and parsing it is the
//! same check followed by [`Raw::into_key`], which cannot fail.

use super::Key;
use super::error::{KeyError, SegmentCount};
use super::path::Path;
use super::raw::Raw;
use super::resource::ResourceKind;

pub(super) fn parse(path: &str) -> Result<Key, KeyError> {
    check(path).map(Raw::into_key)
}

/// Everything [`parse`] checks, in the same order, without building the
/// key.
pub(super) fn check(path: &str) -> Result<Raw<'_>, KeyError> {
    let p = Path::split(path)?;
    if p.get(0) != Some("calico") {
        return Err(p.unknown_prefix());
    }
    match (p.get(1), p.get(2)) {
        (Some("v1"), _) => v1(&p),
        (Some("bgp"), Some("v1")) => bgp(&p),
        (Some("ipam"), Some("v2")) => ipam(&p),
        (Some("resources"), Some("v3")) if p.get(3) == Some("projectcalico.org") => resource(&p),
        (Some("felix"), Some("v1")) => felix_v1(&p),
        (Some("felix"), Some("v2")) => felix_v2(&p),
        _ => Err(p.unknown_prefix()),
    }
}

fn v1<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    match p.get(2) {
        Some("config") => Ok(Raw::GlobalConfig {
            name: p.tail("global config", "name", 3)?,
        }),
        Some("host") => host(p),
        Some("netset") => {
            p.expect_count("network set", SegmentCount::Exactly(4))?;
            Ok(Raw::NetworkSet {
                name: p.escaped("network set", "name", 3)?,
            })
        }
        Some("Ready") => {
            p.expect_count("ready flag", SegmentCount::Exactly(3))?;
            Ok(Raw::Ready)
        }
        Some("policy") => policy(p),
        Some("ipam") => {
            const KIND: &str = "IP pool";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            p.literal(KIND, 4, "pool")?;
            let cidr = p.cidr(KIND, 5)?;
            p.version(3, "v", cidr)?;
            Ok(Raw::IpPool { cidr })
        }
        _ => Err(p.unknown_prefix()),
    }
}

/// `/calico/v1/host/<hostname>/…`.
fn host<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    let Some(which) = p.get(4) else {
        return Err(p.wrong_count("host", SegmentCount::AtLeast(5)));
    };
    match which {
        "workload" => {
            const KIND: &str = "workload endpoint";
            p.expect_count(KIND, SegmentCount::Exactly(9))?;
            p.literal(KIND, 7, "endpoint")?;
            Ok(Raw::WorkloadEndpoint {
                hostname: p.escaped(KIND, "hostname", 3)?,
                orchestrator: p.escaped(KIND, "orchestrator", 5)?,
                workload: p.escaped(KIND, "workload", 6)?,
                endpoint: p.escaped(KIND, "endpoint", 8)?,
            })
        }
        "endpoint" => {
            const KIND: &str = "host endpoint";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            Ok(Raw::HostEndpoint {
                hostname: p.escaped(KIND, "hostname", 3)?,
                endpoint: p.escaped(KIND, "endpoint", 5)?,
            })
        }
        "config" => {
            const KIND: &str = "host config";
            // The name is checked first: it also checks the segment count.
            let name = p.tail(KIND, "name", 5)?;
            Ok(Raw::HostConfig {
                hostname: p.escaped(KIND, "hostname", 3)?,
                name,
            })
        }
        "metadata" => {
            const KIND: &str = "host metadata";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Raw::HostMetadata {
                hostname: p.verbatim(KIND, "hostname", 3)?,
            })
        }
        "bird_ip" => {
            const KIND: &str = "host IP";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Raw::HostIp {
                hostname: p.escaped(KIND, "hostname", 3)?,
            })
        }
        "wireguard" => {
            const KIND: &str = "wireguard";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Raw::Wireguard {
                hostname: p.escaped(KIND, "hostname", 3)?,
            })
        }
        found => Err(p.unexpected(
            "host",
            "workload, endpoint, config, metadata, bird_ip or wireguard",
            found,
        )),
    }
}

/// `/calico/v1/policy/…`: tiers, legacy and modern policies, profiles.
fn policy<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    let (Some(second), Some(fourth)) = (p.get(3), p.get(5)) else {
        return Err(p.wrong_count("policy", SegmentCount::AtLeast(6)));
    };
    match second {
        "tier" => match fourth {
            "metadata" => {
                p.expect_count("tier", SegmentCount::Exactly(6))?;
                Ok(Raw::Tier {
                    name: p.escaped("tier", "name", 4)?,
                })
            }
            "policy" => {
                const KIND: &str = "legacy policy";
                p.expect_count(KIND, SegmentCount::Exactly(7))?;
                Ok(Raw::LegacyPolicy {
                    tier: p.escaped(KIND, "tier", 4)?,
                    name: p.escaped(KIND, "name", 6)?,
                })
            }
            found => Err(p.unexpected("tier", "metadata or policy", found)),
        },
        "profile" => {
            const KIND: &str = "profile";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            let name = p.escaped(KIND, "name", 4)?;
            match fourth {
                "rules" => Ok(Raw::ProfileRules { name }),
                "labels" => Ok(Raw::ProfileLabels { name }),
                found => Err(p.unexpected(KIND, "rules or labels", found)),
            }
        }
        _ => {
            const KIND: &str = "policy";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            Ok(Raw::Policy {
                kind: p.escaped(KIND, "kind", 3)?,
                // Global policy kinds have an empty namespace segment.
                namespace: p.escaped_or_empty(4)?,
                name: p.escaped(KIND, "name", 5)?,
            })
        }
    }
}

/// `/calico/bgp/v1/…`.
fn bgp<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    match p.get(3) {
        Some("global") => Ok(Raw::GlobalBgpConfig {
            name: p.tail("global BGP config", "name", 4)?,
        }),
        Some("host") => {
            const KIND: &str = "node BGP config";
            let name = p.tail(KIND, "name", 5)?;
            Ok(Raw::NodeBgpConfig {
                node: p.verbatim(KIND, "node", 4)?,
                name,
            })
        }
        Some(found) => Err(p.unexpected("BGP config", "global or host", found)),
        None => Err(p.wrong_count("BGP config", SegmentCount::AtLeast(5))),
    }
}

/// `/calico/ipam/v2/…`.
fn ipam<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    match p.get(3) {
        Some("assignment") => {
            const KIND: &str = "IPAM block";
            p.expect_count(KIND, SegmentCount::Exactly(7))?;
            p.literal(KIND, 5, "block")?;
            let cidr = p.cidr(KIND, 6)?;
            p.version(4, "ipv", cidr)?;
            Ok(Raw::Block { cidr })
        }
        Some("host") => {
            const KIND: &str = "block affinity";
            p.expect_count(KIND, SegmentCount::Exactly(8))?;
            p.literal(KIND, 6, "block")?;
            let hostname = p.verbatim(KIND, "hostname", 4)?;
            let cidr = p.cidr(KIND, 7)?;
            p.version(5, "ipv", cidr)?;
            Ok(Raw::BlockAffinity { hostname, cidr })
        }
        Some("handle") => {
            const KIND: &str = "IPAM handle";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Raw::IpamHandle {
                handle: p.verbatim(KIND, "handle", 4)?,
            })
        }
        Some(found) => Err(p.unexpected("IPAM", "assignment, host or handle", found)),
        None => Err(p.wrong_count("IPAM", SegmentCount::AtLeast(5))),
    }
}

/// `/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`.
fn resource<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    const KIND: &str = "v3 resource";
    let count = p.count();
    let (Some(plural), 6 | 7) = (p.get(4), count) else {
        return Err(p.wrong_count(KIND, SegmentCount::Either(6, 7)));
    };
    let Some(kind) = ResourceKind::from_plural(plural) else {
        return Err(KeyError::UnknownPlural {
            plural: plural.to_owned(),
            path: p.owned(),
        });
    };
    match (count, kind.is_namespaced()) {
        (6, false) => Ok(Raw::Resource {
            kind,
            namespace: None,
            name: p.escaped(KIND, "name", 5)?,
        }),
        (7, true) => Ok(Raw::Resource {
            kind,
            namespace: Some(p.escaped(KIND, "namespace", 5)?),
            name: p.escaped(KIND, "name", 6)?,
        }),
        (_, true) => Err(KeyError::MissingNamespace {
            kind: kind.kind(),
            path: p.owned(),
        }),
        (_, false) => Err(KeyError::UnexpectedNamespace {
            kind: kind.kind(),
            path: p.owned(),
        }),
    }
}

/// `/calico/felix/v1/host/<hostname>/endpoint/<endpoint>`.
fn felix_v1<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    const KIND: &str = "host endpoint status";
    match p.get(3) {
        Some("host") => {
            p.expect_count(KIND, SegmentCount::Exactly(7))?;
            p.literal(KIND, 5, "endpoint")?;
            Ok(Raw::HostEndpointStatus {
                hostname: p.verbatim(KIND, "hostname", 4)?,
                endpoint: p.escaped(KIND, "endpoint", 6)?,
            })
        }
        Some(found) => Err(p.unexpected("Felix v1 status", "host", found)),
        None => Err(p.wrong_count(KIND, SegmentCount::Exactly(7))),
    }
}

/// `/calico/felix/v2/<region>/host/<hostname>/…`.
fn felix_v2<'a>(p: &Path<'a>) -> Result<Raw<'a>, KeyError> {
    let Some(which) = p.get(6) else {
        return Err(p.wrong_count("Felix v2 status", SegmentCount::AtLeast(7)));
    };
    p.literal("Felix v2 status", 4, "host")?;
    match which {
        "status" | "last_reported_status" => {
            const KIND: &str = "Felix status report";
            p.expect_count(KIND, SegmentCount::Exactly(7))?;
            let region = p.verbatim(KIND, "region", 3)?;
            let hostname = p.verbatim(KIND, "hostname", 5)?;
            Ok(if which == "status" {
                Raw::ActiveStatusReport { region, hostname }
            } else {
                Raw::LastStatusReport { region, hostname }
            })
        }
        "workload" => {
            const KIND: &str = "workload endpoint status";
            p.expect_count(KIND, SegmentCount::Exactly(11))?;
            p.literal(KIND, 9, "endpoint")?;
            Ok(Raw::WorkloadEndpointStatus {
                region: p.verbatim(KIND, "region", 3)?,
                hostname: p.verbatim(KIND, "hostname", 5)?,
                orchestrator: p.escaped(KIND, "orchestrator", 7)?,
                workload: p.escaped(KIND, "workload", 8)?,
                endpoint: p.escaped(KIND, "endpoint", 10)?,
            })
        }
        found => Err(p.unexpected(
            "Felix v2 status",
            "status, last_reported_status or workload",
            found,
        )),
    }
}
