//! A path split into its segments, and the field readers the grammar
//! (`parse.rs`) uses: each checks a segment and borrows it. Only the errors
//! allocate (they own the path).

use super::cidr::{Cidr, CidrSegmentError};
use super::error::{KeyError, SegmentCount};
use super::escape::Escaped;

/// More than any fixed-length key has (11), so that a fixed-length key is
/// never confused with a longer path, while a hostile path with thousands of
/// slashes still costs only this many slices.
const MAX_SPLIT: usize = 12;

/// A path being parsed, split into at most [`MAX_SPLIT`] segments (the last
/// one holds the remainder of a longer path), on the stack.
pub(super) struct Path<'a> {
    path: &'a str,
    /// The path without its leading '/'.
    rest: &'a str,
    segs: [&'a str; MAX_SPLIT],
    /// How many of `segs` are filled (at least 1).
    len: usize,
    /// Bit `i` set: segment `i` holds a '%' (only escapes need checking).
    percent: u16,
}

/// [`Path::split`] under way.
struct Split<'a> {
    rest: &'a str,
    segs: [&'a str; MAX_SPLIT],
    /// Segments completed so far.
    len: usize,
    /// Where the segment under way starts in `rest`.
    start: usize,
    percent: u16,
}

impl<'a> Split<'a> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);

    /// A mask with the top bit of each byte of `word` equal to `byte` set
    /// (exact: no false positives).
    fn matches(word: u64, byte: u8) -> u64 {
        let x = word ^ (Self::ONES * u64::from(byte));
        !(((x & Self::LOW7) + Self::LOW7) | x | Self::LOW7)
    }

    /// Takes the '/' and '%' in the eight bytes of `rest` from `base`;
    /// `false` once every segment but the last is split off.
    fn word(&mut self, base: usize, word: u64) -> bool {
        let slashes = Self::matches(word, b'/');
        let percents = Self::matches(word, b'%');
        let mut found = slashes | percents;
        while found != 0 {
            let bit = found & found.wrapping_neg();
            found ^= bit;
            if percents & bit != 0 {
                self.percent |= 1 << self.len;
                continue;
            }
            let at = base + (bit.trailing_zeros() / 8) as usize;
            // `at` is a '/', so both sides are on character boundaries.
            if let Some(slot) = self.segs.get_mut(self.len) {
                *slot = self.rest.get(self.start..at).unwrap_or_default();
            }
            self.len += 1;
            self.start = at + 1;
            if self.len + 1 == MAX_SPLIT {
                return false;
            }
        }
        true
    }

    fn finish(mut self, path: &'a str) -> Path<'a> {
        if let Some(slot) = self.segs.get_mut(self.len) {
            *slot = self.rest.get(self.start..).unwrap_or_default();
        }
        Path {
            path,
            rest: self.rest,
            segs: self.segs,
            len: self.len + 1,
            percent: self.percent,
        }
    }
}

impl<'a> Path<'a> {
    /// Splits `path` after its leading '/', which it must have.
    pub(super) fn split(path: &'a str) -> Result<Path<'a>, KeyError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(KeyError::MissingLeadingSlash {
                path: path.to_owned(),
            });
        };
        let mut split = Split {
            rest,
            segs: [""; MAX_SPLIT],
            len: 0,
            start: 0,
            percent: 0,
        };
        // Eight bytes at a time: the '/' and '%' in each word as a bit mask.
        let bytes = rest.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        let mut base = 0;
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            if !split.word(base, u64::from_le_bytes(word)) {
                break;
            }
            base += 8;
        }
        if split.len + 1 < MAX_SPLIT {
            // The last bytes, padded with NULs (neither '/' nor '%').
            let tail = chunks.remainder();
            let mut word = [0; 8];
            if let Some(head) = word.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            split.word(base, u64::from_le_bytes(word));
        }
        Ok(split.finish(path))
    }

    /// The segments split off (the last holds the rest of a longer path).
    pub(super) fn segs(&self) -> &[&'a str] {
        self.segs.get(..self.len).unwrap_or_default()
    }

    /// Segment `index`, if the split reached it.
    pub(super) fn get(&self, index: usize) -> Option<&'a str> {
        self.segs().get(index).copied()
    }

    /// Whether segment `index` holds a '%' (always true of the remainder
    /// after [`MAX_SPLIT`] segments, which is not scanned).
    fn has_percent(&self, index: usize) -> bool {
        index >= MAX_SPLIT - 1 || self.percent & (1 << index) != 0
    }

    #[cold]
    pub(super) fn owned(&self) -> String {
        self.path.to_owned()
    }

    /// The real number of segments (the split stops at [`MAX_SPLIT`]).
    pub(super) fn count(&self) -> usize {
        if self.len < MAX_SPLIT {
            self.len
        } else {
            self.rest.split('/').count()
        }
    }

    pub(super) fn expect_count(
        &self,
        kind: &'static str,
        expected: SegmentCount,
    ) -> Result<(), KeyError> {
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

    #[cold]
    pub(super) fn wrong_count(&self, kind: &'static str, expected: SegmentCount) -> KeyError {
        KeyError::WrongSegmentCount {
            kind,
            expected,
            got: self.count(),
            path: self.owned(),
        }
    }

    #[cold]
    pub(super) fn unknown_prefix(&self) -> KeyError {
        KeyError::UnknownPrefix { path: self.owned() }
    }

    #[cold]
    pub(super) fn unexpected(
        &self,
        kind: &'static str,
        expected: &'static str,
        found: &str,
    ) -> KeyError {
        KeyError::UnexpectedSegment {
            kind,
            expected,
            found: found.to_owned(),
            path: self.owned(),
        }
    }

    #[cold]
    fn empty(&self, kind: &'static str, field: &'static str) -> KeyError {
        KeyError::EmptySegment {
            kind,
            field,
            path: self.owned(),
        }
    }

    /// Segment `index`, which the caller has made sure exists.
    fn seg(&self, kind: &'static str, index: usize) -> Result<&'a str, KeyError> {
        self.get(index)
            .ok_or_else(|| self.wrong_count(kind, SegmentCount::AtLeast(index + 1)))
    }

    pub(super) fn literal(
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
    pub(super) fn verbatim(
        &self,
        kind: &'static str,
        field: &'static str,
        index: usize,
    ) -> Result<&'a str, KeyError> {
        let seg = self.seg(kind, index)?;
        if seg.is_empty() {
            return Err(self.empty(kind, field));
        }
        Ok(seg)
    }

    /// A name segment that upstream escapes, its escapes checked.
    pub(super) fn escaped(
        &self,
        kind: &'static str,
        field: &'static str,
        index: usize,
    ) -> Result<Escaped<'a>, KeyError> {
        if self.seg(kind, index)?.is_empty() {
            return Err(self.empty(kind, field));
        }
        self.escaped_or_empty(index)
    }

    pub(super) fn escaped_or_empty(&self, index: usize) -> Result<Escaped<'a>, KeyError> {
        let seg = self.seg("", index)?;
        if !self.has_percent(index) {
            return Ok(Escaped::plain(seg));
        }
        Escaped::check(seg).map_err(|bad| {
            // Offset of the segment in the path: the leading '/', then each
            // earlier segment and its separator.
            let before: usize = self.segs().iter().take(index).map(|s| s.len() + 1).sum();
            KeyError::BadEscape {
                offset: 1 + before + bad.offset,
                path: self.owned(),
            }
        })
    }

    /// Everything after the first `skip` segments, as one verbatim name that
    /// may contain '/' (config keys).
    pub(super) fn tail(
        &self,
        kind: &'static str,
        field: &'static str,
        skip: usize,
    ) -> Result<&'a str, KeyError> {
        if skip >= self.len {
            return Err(self.wrong_count(kind, SegmentCount::AtLeast(skip + 1)));
        }
        let before: usize = self.segs().iter().take(skip).map(|s| s.len() + 1).sum();
        let tail = self.rest.get(before..).unwrap_or_default();
        if tail.is_empty() {
            return Err(self.empty(kind, field));
        }
        Ok(tail)
    }

    pub(super) fn cidr(&self, kind: &'static str, index: usize) -> Result<Cidr, KeyError> {
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
    pub(super) fn version(&self, index: usize, prefix: &str, cidr: Cidr) -> Result<(), KeyError> {
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
