//! A path split into its segments, and the field readers the grammar
//! (`parse.rs`) uses: each checks a segment and borrows it. Only the errors
//! allocate (they own the path).

use super::cidr::{Cidr, CidrSegmentError};
use super::error::{KeyError, SegmentCount};
use super::escape::Escaped;
use std::ops::ControlFlow;
use wide::u8x16;

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

/// How many bytes of a path are looked at at once.
const CHUNK: usize = 16;

/// Where a chunk of up to [`CHUNK`] bytes holds '/' and '%': bit `i` for
/// its byte `i`.
#[derive(Clone, Copy)]
pub(super) struct Masks {
    pub(super) slashes: u32,
    pub(super) percents: u32,
}

impl Masks {
    /// The masks of `chunk`: two vector compares through `wide` (SSE2 on
    /// x86-64, NEON on aarch64, a loop over the lanes elsewhere), safely.
    #[inline(always)]
    fn of(chunk: [u8; CHUNK]) -> Masks {
        let chunk = u8x16::new(chunk);
        Masks {
            slashes: chunk.simd_eq(u8x16::splat(b'/')).to_bitmask(),
            percents: chunk.simd_eq(u8x16::splat(b'%')).to_bitmask(),
        }
    }
}

/// Hands `each` the [`Masks`] of `bytes` a chunk at a time, in order, with
/// the offset each chunk starts at, until it breaks. Paths and names are
/// short, so the tail is not left to a byte loop: it is the last [`CHUNK`]
/// bytes, their masks shifted past the bytes already seen (one load, where
/// copying the tail out would go through memory and stall reading it
/// back), or, in a string shorter than a chunk, the string padded with NULs.
#[inline(always)]
pub(super) fn scan<B>(
    bytes: &[u8],
    mut each: impl FnMut(usize, Masks) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let (chunks, tail) = bytes.as_chunks::<CHUNK>();
    let mut base = 0;
    for chunk in chunks {
        each(base, Masks::of(*chunk))?;
        base += CHUNK;
    }
    if tail.is_empty() {
        return ControlFlow::Continue(());
    }
    let masks = match bytes.last_chunk::<CHUNK>() {
        Some(last) => {
            let seen = CHUNK - tail.len();
            let Masks { slashes, percents } = Masks::of(*last);
            Masks {
                slashes: slashes >> seen,
                percents: percents >> seen,
            }
        }
        None => {
            let mut padded = [0; CHUNK];
            if let Some(head) = padded.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            Masks::of(padded)
        }
    };
    each(base, masks)
}

/// The segment ends found so far while a path is split: built up by
/// [`Path::split`] and then moved into the [`Path`] whole, so that nothing
/// reads a half-built `Path`.
struct Splitter {
    ends: [usize; MAX_SPLIT],
    /// How many of `ends` are filled.
    len: usize,
    /// Bit `i` set: segment `i` holds a '%'.
    percent: u16,
}

impl Splitter {
    /// Ends the segment under way (number `len`, from 0) at `at`: a '/' in
    /// the path after its leading '/', or the end. `false` once every
    /// segment but the last is split off.
    #[inline(always)]
    fn end_segment(&mut self, at: usize) -> bool {
        if let Some(slot) = self.ends.get_mut(self.len) {
            *slot = at;
        }
        self.len += 1;
        self.len + 1 < MAX_SPLIT
    }

    /// Takes the '/' and '%' of the chunk at `base`, in order; `false`
    /// once every segment but the last is split off.
    #[inline(always)]
    fn take(&mut self, base: usize, masks: Masks) -> bool {
        let Masks {
            mut slashes,
            percents,
        } = masks;
        if percents == 0 {
            // The common case: only slashes.
            while slashes != 0 {
                let at = base + slashes.trailing_zeros() as usize;
                slashes &= slashes - 1;
                if !self.end_segment(at) {
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
            } else if !self.end_segment(base + bit.trailing_zeros() as usize) {
                return false;
            }
        }
        true
    }
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
        let mut splitter = Splitter {
            ends: [0; MAX_SPLIT],
            len: 0,
            percent: 0,
        };
        // Stopped once every segment but the last is split off: the
        // remainder is the last segment.
        let _ = scan(rest.as_bytes(), |base, masks| {
            if splitter.take(base, masks) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
        // The last segment runs to the end.
        splitter.end_segment(rest.len());
        let Splitter { ends, len, percent } = splitter;
        Ok(Path {
            path,
            rest,
            ends,
            len,
            percent,
        })
    }

    /// Where segment `index` starts in `rest`.
    #[inline(always)]
    fn start(&self, index: usize) -> usize {
        match index.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(self.rest.len(), |end| end + 1),
            None => 0,
        }
    }

    /// Segment `index`, if the split reached it.
    #[inline(always)]
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

    /// Checks that segment `index` is `expected`. Always inlined, so that
    /// the comparison is with a constant: a few loads, not a `memcmp` call.
    #[inline(always)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The chunked split finds what a byte-by-byte split finds, for
        /// every length around the chunk size and its multiples (where the
        /// tail's overlapping load and the short-path padding take over):
        /// the same segments, the remainder after the last split-off one
        /// whole, and a '%' marked in exactly the segments that hold one.
        #[test]
        fn split_agrees_with_splitting_byte_by_byte(
            rest in proptest::collection::vec(
                prop_oneof![4 => Just('a'), 2 => Just('/'), 1 => Just('%'), 1 => Just('é')],
                0..80,
            ).prop_map(|chars| chars.into_iter().collect::<String>())
        ) {
            let path = format!("/{rest}");
            let p = Path::split(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected: Vec<&str> = rest.splitn(MAX_SPLIT, '/').collect();
            prop_assert_eq!(p.len, expected.len());
            for (index, segment) in expected.iter().enumerate() {
                prop_assert_eq!(p.get(index), Some(*segment));
                if index < MAX_SPLIT - 1 {
                    prop_assert_eq!(p.has_percent(index), segment.contains('%'));
                }
            }
            prop_assert_eq!(p.get(expected.len()), None);
            prop_assert_eq!(p.count(), rest.split('/').count());
        }
    }
}
