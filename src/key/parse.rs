//! Path → [`Key`]: upstream's `KeyFromDefaultPath`, restricted to the
//! canonical form of each path (see the module documentation).

use super::Key;
use super::cidr::{Cidr, CidrSegmentError};
use super::error::{KeyError, SegmentCount};
use super::escape::unescape_name;
use super::resource::ResourceKind;

/// More than any fixed-length key has (11), so that a fixed-length key is
/// never confused with a longer path, while a hostile path with thousands of
/// slashes still costs only this many slices.
const MAX_SPLIT: usize = 12;

pub(super) fn parse(path: &str) -> Result<Key, KeyError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(KeyError::MissingLeadingSlash {
            path: path.to_owned(),
        });
    };
    // Sized up front: collecting from `splitn` grows the vector twice.
    let mut segs: Vec<&str> = Vec::with_capacity(MAX_SPLIT);
    segs.extend(rest.splitn(MAX_SPLIT, '/'));
    let p = Path {
        path,
        rest,
        segs: &segs,
    };
    match p.segs {
        ["calico", "v1", ..] => v1(&p),
        ["calico", "bgp", "v1", ..] => bgp(&p),
        ["calico", "ipam", "v2", ..] => ipam(&p),
        ["calico", "resources", "v3", "projectcalico.org", ..] => resource(&p),
        ["calico", "felix", "v1", ..] => felix_v1(&p),
        ["calico", "felix", "v2", ..] => felix_v2(&p),
        _ => Err(p.unknown_prefix()),
    }
}

fn v1(p: &Path<'_>) -> Result<Key, KeyError> {
    match p.segs {
        [_, _, "config", ..] => Ok(Key::GlobalConfig {
            name: p.tail("global config", "name", 3)?,
        }),
        [_, _, "host", ..] => host(p),
        [_, _, "netset", ..] => {
            p.expect_count("network set", SegmentCount::Exactly(4))?;
            Ok(Key::NetworkSet {
                name: p.escaped("network set", "name", 3)?,
            })
        }
        [_, _, "Ready", ..] => {
            p.expect_count("ready flag", SegmentCount::Exactly(3))?;
            Ok(Key::Ready)
        }
        [_, _, "policy", ..] => policy(p),
        [_, _, "ipam", ..] => {
            const KIND: &str = "IP pool";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            p.literal(KIND, 4, "pool")?;
            let cidr = p.cidr(KIND, 5)?;
            p.version(3, "v", cidr)?;
            Ok(Key::IpPool { cidr })
        }
        _ => Err(p.unknown_prefix()),
    }
}

/// `/calico/v1/host/<hostname>/…`.
fn host(p: &Path<'_>) -> Result<Key, KeyError> {
    let Some(&which) = p.segs.get(4) else {
        return Err(p.wrong_count("host", SegmentCount::AtLeast(5)));
    };
    match which {
        "workload" => {
            const KIND: &str = "workload endpoint";
            p.expect_count(KIND, SegmentCount::Exactly(9))?;
            p.literal(KIND, 7, "endpoint")?;
            Ok(Key::WorkloadEndpoint {
                hostname: p.escaped(KIND, "hostname", 3)?,
                orchestrator: p.escaped(KIND, "orchestrator", 5)?,
                workload: p.escaped(KIND, "workload", 6)?,
                endpoint: p.escaped(KIND, "endpoint", 8)?,
            })
        }
        "endpoint" => {
            const KIND: &str = "host endpoint";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            Ok(Key::HostEndpoint {
                hostname: p.escaped(KIND, "hostname", 3)?,
                endpoint: p.escaped(KIND, "endpoint", 5)?,
            })
        }
        "config" => {
            const KIND: &str = "host config";
            // The name is checked first: it also checks the segment count.
            let name = p.tail(KIND, "name", 5)?;
            Ok(Key::HostConfig {
                hostname: p.escaped(KIND, "hostname", 3)?,
                name,
            })
        }
        "metadata" => {
            const KIND: &str = "host metadata";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Key::HostMetadata {
                hostname: p.verbatim(KIND, "hostname", 3)?,
            })
        }
        "bird_ip" => {
            const KIND: &str = "host IP";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Key::HostIp {
                hostname: p.escaped(KIND, "hostname", 3)?,
            })
        }
        "wireguard" => {
            const KIND: &str = "wireguard";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Key::Wireguard {
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
fn policy(p: &Path<'_>) -> Result<Key, KeyError> {
    let (Some(&second), Some(&fourth)) = (p.segs.get(3), p.segs.get(5)) else {
        return Err(p.wrong_count("policy", SegmentCount::AtLeast(6)));
    };
    match second {
        "tier" => match fourth {
            "metadata" => {
                p.expect_count("tier", SegmentCount::Exactly(6))?;
                Ok(Key::Tier {
                    name: p.escaped("tier", "name", 4)?,
                })
            }
            "policy" => {
                const KIND: &str = "legacy policy";
                p.expect_count(KIND, SegmentCount::Exactly(7))?;
                Ok(Key::LegacyPolicy {
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
                "rules" => Ok(Key::ProfileRules { name }),
                "labels" => Ok(Key::ProfileLabels { name }),
                found => Err(p.unexpected(KIND, "rules or labels", found)),
            }
        }
        _ => {
            const KIND: &str = "policy";
            p.expect_count(KIND, SegmentCount::Exactly(6))?;
            Ok(Key::Policy {
                kind: p.escaped(KIND, "kind", 3)?,
                // Global policy kinds have an empty namespace segment.
                namespace: p.escaped_or_empty(4)?,
                name: p.escaped(KIND, "name", 5)?,
            })
        }
    }
}

/// `/calico/bgp/v1/…`.
fn bgp(p: &Path<'_>) -> Result<Key, KeyError> {
    match p.segs.get(3) {
        Some(&"global") => Ok(Key::GlobalBgpConfig {
            name: p.tail("global BGP config", "name", 4)?,
        }),
        Some(&"host") => {
            const KIND: &str = "node BGP config";
            let name = p.tail(KIND, "name", 5)?;
            Ok(Key::NodeBgpConfig {
                node: p.verbatim(KIND, "node", 4)?,
                name,
            })
        }
        Some(found) => Err(p.unexpected("BGP config", "global or host", found)),
        None => Err(p.wrong_count("BGP config", SegmentCount::AtLeast(5))),
    }
}

/// `/calico/ipam/v2/…`.
fn ipam(p: &Path<'_>) -> Result<Key, KeyError> {
    match p.segs.get(3) {
        Some(&"assignment") => {
            const KIND: &str = "IPAM block";
            p.expect_count(KIND, SegmentCount::Exactly(7))?;
            p.literal(KIND, 5, "block")?;
            let cidr = p.cidr(KIND, 6)?;
            p.version(4, "ipv", cidr)?;
            Ok(Key::Block { cidr })
        }
        Some(&"host") => {
            const KIND: &str = "block affinity";
            p.expect_count(KIND, SegmentCount::Exactly(8))?;
            p.literal(KIND, 6, "block")?;
            let hostname = p.verbatim(KIND, "hostname", 4)?;
            let cidr = p.cidr(KIND, 7)?;
            p.version(5, "ipv", cidr)?;
            Ok(Key::BlockAffinity { hostname, cidr })
        }
        Some(&"handle") => {
            const KIND: &str = "IPAM handle";
            p.expect_count(KIND, SegmentCount::Exactly(5))?;
            Ok(Key::IpamHandle {
                handle: p.verbatim(KIND, "handle", 4)?,
            })
        }
        Some(found) => Err(p.unexpected("IPAM", "assignment, host or handle", found)),
        None => Err(p.wrong_count("IPAM", SegmentCount::AtLeast(5))),
    }
}

/// `/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`.
fn resource(p: &Path<'_>) -> Result<Key, KeyError> {
    const KIND: &str = "v3 resource";
    let count = p.count();
    let (Some(&plural), 6 | 7) = (p.segs.get(4), count) else {
        return Err(p.wrong_count(KIND, SegmentCount::Either(6, 7)));
    };
    let Some(kind) = ResourceKind::from_plural(plural) else {
        return Err(KeyError::UnknownPlural {
            plural: plural.to_owned(),
            path: p.owned(),
        });
    };
    match (count, kind.is_namespaced()) {
        (6, false) => Ok(Key::Resource {
            kind,
            namespace: None,
            name: p.escaped(KIND, "name", 5)?,
        }),
        (7, true) => Ok(Key::Resource {
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
fn felix_v1(p: &Path<'_>) -> Result<Key, KeyError> {
    const KIND: &str = "host endpoint status";
    match p.segs.get(3) {
        Some(&"host") => {
            p.expect_count(KIND, SegmentCount::Exactly(7))?;
            p.literal(KIND, 5, "endpoint")?;
            Ok(Key::HostEndpointStatus {
                hostname: p.verbatim(KIND, "hostname", 4)?,
                endpoint: p.escaped(KIND, "endpoint", 6)?,
            })
        }
        Some(found) => Err(p.unexpected("Felix v1 status", "host", found)),
        None => Err(p.wrong_count(KIND, SegmentCount::Exactly(7))),
    }
}

/// `/calico/felix/v2/<region>/host/<hostname>/…`.
fn felix_v2(p: &Path<'_>) -> Result<Key, KeyError> {
    let Some(&which) = p.segs.get(6) else {
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
                Key::ActiveStatusReport { region, hostname }
            } else {
                Key::LastStatusReport { region, hostname }
            })
        }
        "workload" => {
            const KIND: &str = "workload endpoint status";
            p.expect_count(KIND, SegmentCount::Exactly(11))?;
            p.literal(KIND, 9, "endpoint")?;
            Ok(Key::WorkloadEndpointStatus {
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

/// A path being parsed, split into at most [`MAX_SPLIT`] segments (the last
/// one holds the remainder of a longer path).
struct Path<'a> {
    path: &'a str,
    /// The path without its leading '/'.
    rest: &'a str,
    segs: &'a [&'a str],
}

impl Path<'_> {
    fn owned(&self) -> String {
        self.path.to_owned()
    }

    /// The real number of segments (the split stops at [`MAX_SPLIT`]).
    fn count(&self) -> usize {
        if self.segs.len() < MAX_SPLIT {
            self.segs.len()
        } else {
            self.rest.split('/').count()
        }
    }

    fn expect_count(&self, kind: &'static str, expected: SegmentCount) -> Result<(), KeyError> {
        let got = self.count();
        let ok = match expected {
            SegmentCount::Exactly(n) => got == n,
            SegmentCount::AtLeast(n) => got >= n,
            SegmentCount::Either(a, b) => got == a || got == b,
        };
        if ok {
            Ok(())
        } else {
            Err(self.wrong_count(kind, expected))
        }
    }

    fn wrong_count(&self, kind: &'static str, expected: SegmentCount) -> KeyError {
        KeyError::WrongSegmentCount {
            kind,
            expected,
            got: self.count(),
            path: self.owned(),
        }
    }

    fn unknown_prefix(&self) -> KeyError {
        KeyError::UnknownPrefix { path: self.owned() }
    }

    fn unexpected(&self, kind: &'static str, expected: &'static str, found: &str) -> KeyError {
        KeyError::UnexpectedSegment {
            kind,
            expected,
            found: found.to_owned(),
            path: self.owned(),
        }
    }

    /// Segment `index`, which the caller has made sure exists.
    fn seg(&self, kind: &'static str, index: usize) -> Result<&str, KeyError> {
        self.segs
            .get(index)
            .copied()
            .ok_or_else(|| self.wrong_count(kind, SegmentCount::AtLeast(index + 1)))
    }

    fn literal(
        &self,
        kind: &'static str,
        index: usize,
        expected: &'static str,
    ) -> Result<(), KeyError> {
        let found = self.seg(kind, index)?;
        if found == expected {
            Ok(())
        } else {
            Err(self.unexpected(kind, expected, found))
        }
    }

    /// A name segment that upstream does not escape: taken as it is.
    fn verbatim(
        &self,
        kind: &'static str,
        field: &'static str,
        index: usize,
    ) -> Result<String, KeyError> {
        let seg = self.seg(kind, index)?;
        if seg.is_empty() {
            return Err(KeyError::EmptySegment {
                kind,
                field,
                path: self.owned(),
            });
        }
        Ok(seg.to_owned())
    }

    /// A name segment that upstream escapes: unescaped.
    fn escaped(
        &self,
        kind: &'static str,
        field: &'static str,
        index: usize,
    ) -> Result<String, KeyError> {
        if self.seg(kind, index)?.is_empty() {
            return Err(KeyError::EmptySegment {
                kind,
                field,
                path: self.owned(),
            });
        }
        self.escaped_or_empty(index)
    }

    fn escaped_or_empty(&self, index: usize) -> Result<String, KeyError> {
        let seg = self.seg("", index)?;
        unescape_name(seg)
            .map(|name| name.into_owned())
            .map_err(|bad| {
                // Offset of the segment in the path: the leading '/', then each
                // earlier segment and its separator.
                let before: usize = self.segs.iter().take(index).map(|s| s.len() + 1).sum();
                KeyError::BadEscape {
                    offset: 1 + before + bad.offset,
                    path: self.owned(),
                }
            })
    }

    /// Everything after the first `skip` segments, as one verbatim name that
    /// may contain '/' (config keys).
    fn tail(
        &self,
        kind: &'static str,
        field: &'static str,
        skip: usize,
    ) -> Result<String, KeyError> {
        let Some(tail) = self.rest.splitn(skip + 1, '/').nth(skip) else {
            return Err(self.wrong_count(kind, SegmentCount::AtLeast(skip + 1)));
        };
        if tail.is_empty() {
            return Err(KeyError::EmptySegment {
                kind,
                field,
                path: self.owned(),
            });
        }
        Ok(tail.to_owned())
    }

    fn cidr(&self, kind: &'static str, index: usize) -> Result<Cidr, KeyError> {
        let seg = self.seg(kind, index)?;
        Cidr::from_segment(seg).map_err(|e| match e {
            CidrSegmentError::Invalid(reason) => KeyError::InvalidCidr {
                segment: seg.to_owned(),
                reason,
                path: self.owned(),
            },
            CidrSegmentError::NonCanonical(canonical) => KeyError::NonCanonicalCidr {
                segment: seg.to_owned(),
                canonical,
                path: self.owned(),
            },
        })
    }

    /// Checks a `v4`/`ipv6`-style segment against the CIDR's family.
    fn version(&self, index: usize, prefix: &str, cidr: Cidr) -> Result<(), KeyError> {
        let seg = self.seg("", index)?;
        let matches = seg.strip_prefix(prefix).is_some_and(|v| {
            v.len() == 1 && v.as_bytes().first() == Some(&(b'0' + cidr.version()))
        });
        if matches {
            Ok(())
        } else {
            Err(KeyError::IpVersionMismatch {
                segment: seg.to_owned(),
                cidr: cidr.to_string(),
                path: self.owned(),
            })
        }
    }
}
