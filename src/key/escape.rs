//! Upstream's name escaping: `%` → `%25` and `/` → `%2f`, so that a name can
//! sit in one segment of a `/`-separated path.

use std::borrow::Cow;
use std::ops::ControlFlow;

use super::Name;
use super::path::scan;

/// An escaped name holds a `%` that does not start `%25` or `%2f`.
///
/// Upstream leaves such a `%` as it is when unescaping, but then the name
/// would render differently from the path it was read from, so this crate
/// refuses it (see the [module documentation](super#escaping)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid escape at byte {offset} (only %25 and %2f are defined)")]
pub struct InvalidEscape {
    /// Byte offset of the offending `%` within the escaped name.
    pub offset: usize,
}

/// Escapes `name` for use as one path segment, as upstream's `escapeName`:
/// `%` becomes `%25`, then `/` becomes `%2f`. Borrows when nothing needs
/// escaping.
///
/// Use it when building a path by hand; [`Key::to_path`](super::Key::to_path)
/// already escapes the segments that upstream escapes.
pub fn escape_name(name: &str) -> Cow<'_, str> {
    if !name.contains(['%', '/']) {
        return Cow::Borrowed(name);
    }
    let mut escaped = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2f"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// Reverses [`escape_name`]: `%2f` becomes `/` and `%25` becomes `%`.
/// Borrows when there is nothing to unescape.
///
/// Stricter than upstream's `unescapeName`, which passes any other `%`
/// through untouched: here any `%` not followed by `25` or `2f` (lower case,
/// as upstream writes them) is an [`InvalidEscape`]. On every string that
/// [`escape_name`] can produce the two agree; the strictness is what makes
/// `escape_name(unescape_name(s)) == s` hold for every accepted `s` without
/// a `/` (as a path segment never has).
pub fn unescape_name(escaped: &str) -> Result<Cow<'_, str>, InvalidEscape> {
    let name = Escaped::check(escaped)?;
    Ok(if name.escapes == 0 {
        Cow::Borrowed(escaped)
    } else {
        Cow::Owned(name.to_name().into_string())
    })
}

/// An escaped name whose escapes have been checked, still borrowed from the
/// path: checking a path costs no allocation, building its key one per
/// name ([`Escaped::to_name`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Escaped<'a> {
    raw: &'a str,
    /// How many `%` escapes `raw` holds (each 3 bytes, 1 once unescaped).
    escapes: usize,
    /// Where the first escape starts, if there is one: unescaping then
    /// needs no search for a name with one escape (`namespace%2fpod`).
    first: usize,
}

impl<'a> Escaped<'a> {
    /// Checks that every `%` in `raw` starts `%25` or `%2f`.
    pub(super) fn check(raw: &'a str) -> Result<Escaped<'a>, InvalidEscape> {
        let bytes = raw.as_bytes();
        let mut escapes = 0;
        let mut first = 0;
        // A chunk at a time, as the path is split. A '%' is never one of
        // the two bytes after an accepted '%', so every '%' found starts an
        // escape, and they are found in order, so an error is at the first
        // bad one.
        let scanned = scan(bytes, |base, masks| {
            let mut percents = masks.percents;
            while percents != 0 {
                let offset = base + percents.trailing_zeros() as usize;
                percents &= percents - 1;
                match bytes.get(offset + 1..offset + 3) {
                    Some(b"25" | b"2f") => {
                        if escapes == 0 {
                            first = offset;
                        }
                        escapes += 1;
                    }
                    _ => return ControlFlow::Break(InvalidEscape { offset }),
                }
            }
            ControlFlow::Continue(())
        });
        if let ControlFlow::Break(bad) = scanned {
            return Err(bad);
        }
        Ok(Escaped {
            raw,
            escapes,
            first,
        })
    }

    /// A name known to hold no '%'.
    pub(super) fn plain(raw: &'a str) -> Escaped<'a> {
        Escaped {
            raw,
            escapes: 0,
            first: 0,
        }
    }

    /// The name, unescaped: inline when it fits a [`Name`], otherwise in
    /// one allocation of its exact length.
    #[inline]
    pub(super) fn to_name(self) -> Name {
        if self.escapes == 0 {
            Name::new(self.raw)
        } else {
            self.unescaped_name()
        }
    }

    /// [`Escaped::to_name`] of a name with escapes.
    fn unescaped_name(self) -> Name {
        let len = self.raw.len().saturating_sub(2 * self.escapes);
        if len <= INLINE {
            // Assembled on the stack and copied in whole: pushing piece by
            // piece onto a `Name` costs more than the copy. (Longer names
            // go straight into a `String`: assembling them here too would
            // add a UTF-8 check of the copy to the allocation.)
            let mut buf = [0; INLINE];
            let mut at = 0;
            self.unescape(|piece| {
                if let Some(dest) = buf.get_mut(at..at + piece.len()) {
                    dest.copy_from_slice(piece.as_bytes());
                }
                at += piece.len();
            });
            // Whole characters of a `str` and ASCII replacements: valid
            // UTF-8, so the fallback is never taken.
            if let Some(Ok(name)) = buf.get(..at).map(std::str::from_utf8) {
                return Name::new(name);
            }
        }
        // A `String` of the exact length becomes the `Name`'s heap buffer
        // as it is.
        let mut name = String::with_capacity(len);
        self.unescape(|piece| name.push_str(piece));
        Name::from(name)
    }

    /// Passes the unescaped name to `out` in pieces: the runs between
    /// escapes, and each escape's character. Only for a name with escapes.
    #[inline(always)]
    fn unescape(self, mut out: impl FnMut(&str)) {
        let mut rest = self.raw;
        let mut at = self.first;
        // Every '%' starts a checked "%25" or "%2f", and there are
        // `escapes` of them: the search stops after the last.
        for left in (0..self.escapes).rev() {
            out(rest.get(..at).unwrap_or_default());
            out(if rest.as_bytes().get(at + 2) == Some(&b'f') {
                "/"
            } else {
                "%"
            });
            rest = rest.get(at + 3..).unwrap_or_default();
            if left > 0 {
                at = rest.find('%').unwrap_or(rest.len());
            }
        }
        out(rest);
    }
}

/// The longest name a [`Name`] holds without allocating.
const INLINE: usize = std::mem::size_of::<Name>();

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_are_borrowed() {
        assert!(matches!(escape_name("eth0"), Cow::Borrowed("eth0")));
        assert!(matches!(unescape_name("eth0"), Ok(Cow::Borrowed("eth0"))));
    }

    #[test]
    fn escapes_percent_before_slash() {
        assert_eq!(escape_name("ns/pod"), "ns%2fpod");
        assert_eq!(escape_name("50%"), "50%25");
        // A literal "%2f" must not come back as a slash.
        assert_eq!(escape_name("%2f"), "%252f");
        assert_eq!(unescape_name("%252f").as_deref(), Ok("%2f"));
        assert_eq!(escape_name("%/"), "%25%2f");
        assert_eq!(unescape_name("%25%2f").as_deref(), Ok("%/"));
    }

    #[test]
    fn unescapes_as_upstream_on_well_formed_input() {
        assert_eq!(unescape_name("ns%2fpod").as_deref(), Ok("ns/pod"));
        assert_eq!(unescape_name("a%2525b").as_deref(), Ok("a%25b"));
        assert_eq!(unescape_name("é%2fü").as_deref(), Ok("é/ü"));
    }

    #[test]
    fn unescapes_names_inline_and_on_the_heap() {
        // Up to 24 bytes a name is assembled inline, longer on the heap;
        // one, two and more escapes, at the ends and in the middle.
        for name in [
            "/",
            "%",
            "ns/pod",
            "%/a%b/",
            "team-12/web-0123456",
            "team-12/web-01234567-abcde",
            "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z",
            "50% of /var/run at 100%/s",
            "é/ü%ö-----------------------",
            "team-12/web-0123456789abcdef0123456789abcdef0123456789abcdef-abcde",
            "%/%%//-------------------------------------------------------------%",
        ] {
            let escaped = escape_name(name);
            let checked = Escaped::check(&escaped).unwrap();
            assert_eq!(checked.to_name(), name, "{escaped}");
            assert_eq!(unescape_name(&escaped).as_deref(), Ok(name));
        }
    }

    #[test]
    fn rejects_undefined_escapes_with_their_offset() {
        assert_eq!(unescape_name("%"), Err(InvalidEscape { offset: 0 }));
        assert_eq!(unescape_name("ab%2"), Err(InvalidEscape { offset: 2 }));
        assert_eq!(unescape_name("ns%2Fpod"), Err(InvalidEscape { offset: 2 }));
        assert_eq!(unescape_name("%25x%41"), Err(InvalidEscape { offset: 4 }));
        assert_eq!(unescape_name("é%é"), Err(InvalidEscape { offset: 2 }));
        // In a full chunk, and in the tail of a longer name (read as the
        // last sixteen bytes, overlapping the chunk before).
        let long = "0123456789abcde%2f%25-----x%2";
        assert_eq!(unescape_name(long), Err(InvalidEscape { offset: 27 }));
        assert_eq!(
            unescape_name(&long[..27]).as_deref(),
            Ok("0123456789abcde/%-----x")
        );
        assert_eq!(
            unescape_name("0123456789abcdef%"),
            Err(InvalidEscape { offset: 16 })
        );
    }

    /// What [`unescape_name`] is held to, read one byte at a time.
    fn unescape_byte_by_byte(escaped: &str) -> Result<String, InvalidEscape> {
        let bytes = escaped.as_bytes();
        let mut name = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            if byte != b'%' {
                name.push(byte);
                at += 1;
                continue;
            }
            match bytes.get(at + 1..at + 3) {
                Some(b"25") => name.push(b'%'),
                Some(b"2f") => name.push(b'/'),
                _ => return Err(InvalidEscape { offset: at }),
            }
            at += 3;
        }
        Ok(String::from_utf8(name).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The chunked escape scan unescapes, or refuses at the same
        /// offset, exactly as a byte-by-byte reading, at every length
        /// around the chunk size and its multiples.
        #[test]
        fn unescaping_agrees_with_reading_byte_by_byte(
            escaped in proptest::collection::vec(
                prop_oneof![
                    6 => Just("a"),
                    2 => Just("%2f"),
                    1 => Just("%25"),
                    1 => Just("%"),
                    1 => Just("2"),
                    1 => Just("é"),
                ],
                0..40,
            ).prop_map(|pieces| pieces.concat())
        ) {
            prop_assert_eq!(
                unescape_name(&escaped).map(Cow::into_owned),
                unescape_byte_by_byte(&escaped)
            );
        }
    }
}
