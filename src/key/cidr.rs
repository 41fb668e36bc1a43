//! IP networks as IPAM keys carry them: `10.0.0.0-26` in a path for
//! `10.0.0.0/26`.

use std::fmt;
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
        // ASCII throughout.
        String::from_utf8_lossy(SegmentText::of(self).as_bytes()).into_owned()
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

    /// Whether `segment` is exactly [`Cidr::to_segment`]'s text, compared
    /// without allocating.
    fn is_written_as(self, segment: &str) -> bool {
        SegmentText::of(self).as_bytes() == segment.as_bytes()
    }
}

/// The longest segment: eight four-digit groups and seven ':' (39 bytes),
/// a '-' and a three-digit prefix length.
const SEGMENT_MAX: usize = 39 + 1 + 3;

/// A CIDR's path segment, written on the stack.
///
/// This is the text `format!("{}-{}", addr, prefix_len)` produces, written
/// by hand because the parser compares every CIDR segment against it, and
/// the formatting machinery cost more than all the rest of such a key's
/// parse. Addresses are written as std's `Display` writes them (for IPv6,
/// RFC 5952: lowercase, no leading zeros, the first longest run of two or
/// more zero groups as `::`; and `::ffff:` before an IPv4-mapped address's
/// dotted quad); `tests::segment_text_is_what_display_writes` holds the two
/// to the same text.
struct SegmentText {
    bytes: [u8; SEGMENT_MAX],
    len: usize,
}

impl SegmentText {
    fn of(cidr: Cidr) -> SegmentText {
        let mut text = SegmentText {
            bytes: [0; SEGMENT_MAX],
            len: 0,
        };
        match cidr.addr {
            IpAddr::V4(v4) => text.dotted_quad(v4),
            IpAddr::V6(v6) => text.colon_groups(v6),
        }
        text.push(b'-');
        text.decimal(cidr.prefix_len);
        text
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Appends `byte`. The buffer holds the longest segment, so nothing is
    /// ever dropped.
    fn push(&mut self, byte: u8) {
        debug_assert!(self.len < SEGMENT_MAX, "a CIDR segment outgrew its buffer");
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn decimal(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' + n / 100);
        }
        if n >= 10 {
            self.push(b'0' + n / 10 % 10);
        }
        self.push(b'0' + n % 10);
    }

    /// As `{:x}`: lowercase, no leading zeros.
    fn hex(&mut self, group: u16) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = (16 - group.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            self.push(DIGITS[usize::from(group >> (4 * shift) & 0xf)]);
        }
    }

    fn dotted_quad(&mut self, addr: Ipv4Addr) {
        for (i, octet) in addr.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.decimal(octet);
        }
    }

    fn colon_groups(&mut self, addr: Ipv6Addr) {
        if let Some(v4) = addr.to_ipv4_mapped() {
            b"::ffff:".iter().for_each(|&b| self.push(b));
            self.dotted_quad(v4);
            return;
        }
        let groups = addr.segments();
        // The first longest run of zero groups.
        let (mut start, mut len) = (0, 0);
        let mut run_start = 0;
        for (i, &group) in groups.iter().enumerate() {
            if group != 0 {
                run_start = i + 1;
            } else if i + 1 - run_start > len {
                (start, len) = (run_start, i + 1 - run_start);
            }
        }
        // A single zero group is written out, not compressed.
        if len < 2 {
            self.groups(&groups);
            return;
        }
        let (before, after) = groups.split_at(start);
        self.groups(before);
        self.push(b':');
        self.push(b':');
        self.groups(after.get(len..).unwrap_or_default());
    }

    fn groups(&mut self, groups: &[u16]) {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            self.hex(group);
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
    use proptest::prelude::*;

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

    /// Groups drawn mostly from the values the writer treats specially
    /// (zero, for runs; 0xffff, for IPv4-mapped addresses; one to four hex
    /// digits), so that ties between zero runs and mapped addresses come up
    /// often.
    fn group() -> impl Strategy<Value = u16> {
        prop_oneof![
            4 => Just(0u16),
            1 => Just(0xffff),
            1 => 1u16..0x10,
            1 => 0x10u16..0x100,
            1 => 0x100u16..0x1000,
            2 => any::<u16>(),
        ]
    }

    /// An address and a prefix length that fits it, each family's lengths
    /// drawn over their whole range.
    fn cidr() -> impl Strategy<Value = Cidr> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(v4, len)| (IpAddr::from(v4), len)),
            (any::<u32>(), 96u8..=128).prop_map(|(host, len)| {
                let mapped = Ipv6Addr::from(0xffff_0000_0000_u128 | u128::from(host));
                (IpAddr::from(mapped), len)
            }),
            (proptest::array::uniform8(group()), 0u8..=128)
                .prop_map(|(groups, len)| (IpAddr::from(groups), len)),
        ]
        .prop_filter_map("prefix fits the address", |(addr, len)| {
            Cidr::new(addr, len)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The hand-written segment text is std's `Display` text, so that
        /// the parser accepts exactly the segments it accepted when it
        /// compared against `format!`, and renders what it did.
        #[test]
        fn segment_text_is_what_display_writes(cidr in cidr()) {
            let display = format!("{}-{}", cidr.addr(), cidr.prefix_len());
            prop_assert_eq!(cidr.to_segment(), display.clone());
            prop_assert!(cidr.is_written_as(&display));
            prop_assert_eq!(Cidr::from_segment(&display).ok(), Some(cidr));
        }
    }
}
