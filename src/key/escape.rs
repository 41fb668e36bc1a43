//! Upstream's name escaping: `%` → `%25` and `/` → `%2f`, so that a name can
//! sit in one segment of a `/`-separated path.

use std::borrow::Cow;

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
        Cow::Owned(name.to_name())
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
}

impl<'a> Escaped<'a> {
    /// Checks that every `%` in `raw` starts `%25` or `%2f`.
    pub(super) fn check(raw: &'a str) -> Result<Escaped<'a>, InvalidEscape> {
        let bytes = raw.as_bytes();
        let mut escapes = 0;
        // A '%' is never one of the two bytes after an accepted '%', so
        // every '%' found starts an escape.
        for (offset, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'%') {
            match bytes.get(offset + 1..offset + 3) {
                Some(b"25" | b"2f") => escapes += 1,
                _ => return Err(InvalidEscape { offset }),
            }
        }
        Ok(Escaped { raw, escapes })
    }

    /// A name known to hold no '%'.
    pub(super) fn plain(raw: &'a str) -> Escaped<'a> {
        Escaped { raw, escapes: 0 }
    }

    /// The name, unescaped, in one allocation of its exact length.
    pub(super) fn to_name(self) -> String {
        if self.escapes == 0 {
            return self.raw.to_owned();
        }
        let mut name = String::with_capacity(self.raw.len().saturating_sub(2 * self.escapes));
        let mut rest = self.raw;
        // Every '%' starts a checked "%25" or "%2f".
        while let Some(at) = rest.bytes().position(|b| b == b'%') {
            name.push_str(rest.get(..at).unwrap_or_default());
            name.push(if rest.as_bytes().get(at + 2) == Some(&b'f') {
                '/'
            } else {
                '%'
            });
            rest = rest.get(at + 3..).unwrap_or_default();
        }
        name.push_str(rest);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rejects_undefined_escapes_with_their_offset() {
        assert_eq!(unescape_name("%"), Err(InvalidEscape { offset: 0 }));
        assert_eq!(unescape_name("ab%2"), Err(InvalidEscape { offset: 2 }));
        assert_eq!(unescape_name("ns%2Fpod"), Err(InvalidEscape { offset: 2 }));
        assert_eq!(unescape_name("%25x%41"), Err(InvalidEscape { offset: 4 }));
        assert_eq!(unescape_name("é%é"), Err(InvalidEscape { offset: 2 }));
    }
}
