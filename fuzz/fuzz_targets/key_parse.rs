//! Arbitrary text into the key parser: it must never panic, and whatever it
//! accepts must render back to the same path and parse to the same key.
//! The same text as an escaped name: the chunked escape scan must unescape
//! it, or refuse it at the same offset, as a byte-by-byte reading does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use syncproto::key::{InvalidEscape, Key, unescape_name};

/// The definition `unescape_name` is held to: `%25` is '%', `%2f` is '/',
/// any other '%' is refused where it stands.
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
    Ok(String::from_utf8(name).expect("only ASCII bytes were replaced"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        unescape_name(path).map(|name| name.into_owned()),
        unescape_byte_by_byte(path),
        "the escape scan and a byte-by-byte reading disagree"
    );
    let Ok(key) = Key::parse(path) else {
        return;
    };
    let rendered = key.to_path();
    assert_eq!(rendered, path, "accepted path does not render back");
    let again = Key::parse(&rendered).expect("rendered path parses");
    assert_eq!(again, key, "rendered path parses to another key");
    assert_eq!(again.to_path(), rendered, "rendering is not stable");
    assert_eq!(key.validate(), Ok(()));
});
