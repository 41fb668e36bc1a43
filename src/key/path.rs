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
/// one holds the remainder of a longer path), on the stack: where each
/// segment ends, not the slices themselves, which keeps it small enough to
/// build and pass around cheaply.
pub(super) struct Path<'a> {
    path: &'a str,
    /// The path without its leading '/'.
    rest: &'a str,
    /// Where segment `i` ends in `rest` (at a '/', or the end of `rest` for
    /// the last); segment `i + 1` starts one byte later.
    ends: [usize; MAX_SPLIT],
    /// How many of `ends` are filled (at least 1).
    len: usize,
    /// Bit `i` set: segment `i` holds a '%' (only escapes need checking).
    percent: u16,
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);

/// A mask with the top bit of each byte of `word` equal to `byte` set
/// (exact: no false positives).
#[inline(always)]
pub(super) fn matches(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

impl<'a> Path<'a> {
    /// Splits `path` after its leading '/', which it must have.
    #[inline]
    pub(super) fn split(path: &'a str) -> Result<Path<'a>, KeyError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(KeyError::MissingLeadingSlash {
                path: path.to_owned(),
            });
        };
        let mut p = Path {
            path,
            rest,
            ends: [0; MAX_SPLIT],
            len: 0,
            percent: 0,
        };
        // Eight bytes at a time, the last ones padded with NULs (neither
        // '/' nor '%'); stopped once every segment but the last is split
        // off.
        let bytes = rest.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        let mut base = 0;
        let mut open = true;
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            open = p.word(base, u64::from_le_bytes(word));
            if !open {
                break;
            }
            base += 8;
        }
        if open {
            // Assembled in a register: a copy of a variable length goes
            // through memory, and reading it back as a word stalls.
            let word = chunks
                .remainder()
                .iter()
                .rev()
                .fold(0, |word, &byte| word << 8 | u64::from(byte));
            p.word(base, word);
        }
        // The last segment runs to the end.
        p.slash(rest.len());
        Ok(p)
    }

    /// Ends the segment under way at `at` (a '/' in `rest`, or its end);
    /// `false` once every segment but the last is split off.
    #[inline(always)]
    fn slash(&mut self, at: usize) -> bool {
        if let Some(slot) = self.ends.get_mut(self.len) {
            *slot = at;
        }
        self.len += 1;
        self.len + 1 < MAX_SPLIT
    }

    /// Takes the '/' and '%' in the eight bytes of `rest` from `base`;
    /// `false` once every segment but the last is split off.
    #[inline(always)]
    fn word(&mut self, base: usize, word: u64) -> bool {
        let mut slashes = matches(word, b'/');
        let percents = matches(word, b'%');
        if percents == 0 {
            // The common case: only slashes, taken in order.
            while slashes != 0 {
                let at = base + (slashes.trailing_zeros() / 8) as usize;
                slashes &= slashes - 1;
                if !self.slash(at) {
                    return false;
                }
            }
            return true;
        }
        // Both, in order, so that each '%' marks the segment it is in.
        let mut found = slashes | percents;
        while found != 0 {
            let bit = found & found.wrapping_neg();
            found ^= bit;
            if percents & bit != 0 {
                self.percent |= 1 << self.len;
            } else if !self.slash(base + (bit.trailing_zeros() / 8) as usize) {
                return false;
            }
        }
        true
    }

    /// Where segment `index` starts in `rest`.
    #[inline]
    fn start(&self, index: usize) -> usize {
        match index.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(self.rest.len(), |end| end + 1),
            None => 0,
        }
    }

    /// Segment `index`, if the split reached it.
    #[inline]
    pub(super) fn get(&self, index: usize) -> Option<&'a str> {
        if index >= self.len {
            return None;
        }
        let end = *self.ends.get(index)?;
        // Both ends are at a '/' or an end of `rest`: character boundaries.
        self.rest.get(self.start(index)..end)
    }

    /// Whether segment `index` holds a '%' (always true of the remainder
    /// after [`MAX_SPLIT`] segments, which is not scanned).
    #[inline]
    fn has_percent(&self, index: usize) -> bool {
        index >= MAX_SPLIT - 1 || self.percent & (1 << index) != 0
    }

    #[cold]
    pub(super) fn owned(&self) -> String {
        self.path.to_owned()
    }

    /// The real number of segments (the split stops at [`MAX_SPLIT`]).
    #[inline]
    pub(super) fn count(&self) -> usize {
        if self.len < MAX_SPLIT {
            self.len
        } else {
            self.rest.split('/').count()
        }
    }

    #[inline]
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
    #[inline(always)]
    fn seg(&self, kind: &'static str, index: usize) -> Result<&'a str, KeyError> {
        self.get(index)
            .ok_or_else(|| self.wrong_count(kind, SegmentCount::AtLeast(index + 1)))
    }

    #[inline]
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
    #[inline]
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
    #[inline(always)]
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

    #[inline(always)]
    pub(super) fn escaped_or_empty(&self, index: usize) -> Result<Escaped<'a>, KeyError> {
        let seg = self.seg("", index)?;
        if !self.has_percent(index) {
            return Ok(Escaped::plain(seg));
        }
        Escaped::check(seg).map_err(|bad| self.bad_escape(index, bad.offset))
    }

    #[cold]
    fn bad_escape(&self, index: usize, offset: usize) -> KeyError {
        KeyError::BadEscape {
            // The leading '/', then the segment's offset in `rest`.
            offset: 1 + self.start(index) + offset,
            path: self.owned(),
        }
    }

    /// Everything after the first `skip` segments, as one verbatim name that
    /// may contain '/' (config keys).
    #[inline]
    pub(super) fn tail(
        &self,
        kind: &'static str,
        field: &'static str,
        skip: usize,
    ) -> Result<&'a str, KeyError> {
        if skip >= self.len {
            return Err(self.wrong_count(kind, SegmentCount::AtLeast(skip + 1)));
        }
        let tail = self.rest.get(self.start(skip)..).unwrap_or_default();
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
