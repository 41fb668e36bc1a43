//! IP networks as IPAM keys carry them: `10.0.0.0-26` in a path for
//! `10.0.0.0/26`.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: a network address and a prefix length, with no host bits
/// set (upstream keys hold the result of Go's `net.ParseCIDR`, which masks
/// them off).
///
/// Displays as `address/prefix`; in a key path the `/` is written as `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix_len` bits, host bits cleared;
    /// `None` when the prefix is longer than the address (32 or 128 bits).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Cidr> {
        let addr = match addr {
            IpAddr::V4(v4) => {
                if prefix_len > 32 {
                    return None;
                }
                // A shift by the full width (prefix 0) overflows: no bits kept.
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len));
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask.unwrap_or(0)))
            }
            IpAddr::V6(v6) => {
                if prefix_len > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len));
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask.unwrap_or(0)))
            }
        };
        Some(Cidr { addr, prefix_len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// 4 or 6, as upstream's `IPNet.Version()` (the number in `v4`/`ipv6`
    /// path segments).
    pub fn version(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 6,
        }
    }

    /// The form a key path holds: the `/` written as `-`.
    pub(crate) fn to_segment(self) -> String {
        format!("{}-{}", self.addr, self.prefix_len)
    }

    /// Parses a path segment, accepting only the canonical form (what
    /// [`Cidr::to_segment`] writes), so that the path renders back as read.
    /// The error is the reason, or the canonical spelling of a
    /// non-canonical segment. Allocates only that spelling.
    pub(crate) fn from_segment(segment: &str) -> Result<Cidr, CidrSegmentError> {
        // As upstream: the first '-' stands for the '/'.
        let Some((addr, len)) = segment.split_once('-') else {
            return Err(CidrSegmentError::Invalid("no '-' before the prefix length"));
        };
        let addr =
            IpAddr::from_str(addr).map_err(|_| CidrSegmentError::Invalid("not an IP address"))?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrSegmentError::Invalid(
                "prefix length is not a 1-3 digit number",
            ));
        }
        // At most 999: no overflow.
        let len = len
            .bytes()
            .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
        let len = u8::try_from(len).map_err(|_| CidrSegmentError::Invalid("prefix too long"))?;
        let cidr = Cidr::new(addr, len)
            .ok_or(CidrSegmentError::Invalid("prefix longer than the address"))?;
        if cidr.is_written_as(segment) {
            Ok(cidr)
        } else {
            Err(CidrSegmentError::NonCanonical(cidr.to_segment()))
        }
    }

    /// Whether `segment` is exactly [`Cidr::to_segment`]'s text, compared as
    /// it is formatted, without building it.
    fn is_written_as(self, segment: &str) -> bool {
        let mut expected = Expect {
            rest: segment.as_bytes(),
        };
        write!(expected, "{}-{}", self.addr, self.prefix_len).is_ok() && expected.rest.is_empty()
    }
}

/// A [`fmt::Write`] that consumes the text it expects and fails at the
/// first difference.
struct Expect<'a> {
    rest: &'a [u8],
}

impl fmt::Write for Expect<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.rest.strip_prefix(s.as_bytes()) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(fmt::Error),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a CIDR path segment was refused.
#[derive(Debug)]
pub(crate) enum CidrSegmentError {
    Invalid(&'static str),
    NonCanonical(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_host_bits_and_bounds_the_prefix() {
        let addr = IpAddr::from([10, 1, 2, 3]);
        assert_eq!(
            Cidr::new(addr, 8).map(|c| c.to_string()),
            Some("10.0.0.0/8".into())
        );
        assert_eq!(
            Cidr::new(addr, 0).map(|c| c.to_string()),
            Some("0.0.0.0/0".into())
        );
        assert_eq!(
            Cidr::new(addr, 32).map(|c| c.to_string()),
            Some("10.1.2.3/32".into())
        );
        assert_eq!(Cidr::new(addr, 33), None);
        let v6 = IpAddr::from_str("fd00::1").ok();
        let net = v6.and_then(|a| Cidr::new(a, 64));
        assert_eq!(net.map(|c| c.to_string()), Some("fd00::/64".into()));
        assert_eq!(v6.and_then(|a| Cidr::new(a, 129)), None);
    }

    #[test]
    fn segments_round_trip_in_canonical_form_only() {
        for good in [
            "10.0.0.0-8",
            "192.168.1.64-26",
            "fd00::-64",
            "2001:db8::-48",
            "::-0",
        ] {
            let cidr = Cidr::from_segment(good);
            assert_eq!(cidr.map(|c| c.to_segment()).ok().as_deref(), Some(good));
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0-",
            "10.0.0.0-+8",
            "10.0.0.0-33",
            "x-8",
            "10.0.0.0-0008",
        ] {
            assert!(
                matches!(Cidr::from_segment(bad), Err(CidrSegmentError::Invalid(_))),
                "{bad}"
            );
        }
        for (odd, canonical) in [
            ("10.0.0.1-8", "10.0.0.0-8"),
            ("10.0.0.0-08", "10.0.0.0-8"),
            ("FD00:0::-64", "fd00::-64"),
        ] {
            match Cidr::from_segment(odd) {
                Err(CidrSegmentError::NonCanonical(c)) => assert_eq!(c, canonical),
                other => panic!("{odd}: {other:?}"),
            }
        }
    }
}
