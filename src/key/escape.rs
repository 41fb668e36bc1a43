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
    let Some(first) = escaped.find('%') else {
        return Ok(Cow::Borrowed(escaped));
    };
    let mut name = String::with_capacity(escaped.len());
    name.push_str(escaped.get(..first).unwrap_or_default());
    let mut rest = escaped.get(first..).unwrap_or_default();
    let mut offset = first;
    while let Some(at) = rest.find('%') {
        name.push_str(rest.get(..at).unwrap_or_default());
        offset += at;
        let after = rest.get(at..).unwrap_or_default();
        if after.starts_with("%25") {
            name.push('%');
        } else if after.starts_with("%2f") {
            name.push('/');
        } else {
            return Err(InvalidEscape { offset });
        }
        rest = after.get(3..).unwrap_or_default();
        offset += 3;
    }
    name.push_str(rest);
    Ok(Cow::Owned(name))
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
