//! Arbitrary text into the key parser: it must never panic, and whatever it
//! accepts must render back to the same path and parse to the same key.
//! The same text as an escaped name: unescaping must round-trip through
//! escaping, or refuse it at its first undefined escape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use syncproto::key::{InvalidEscape, Key, escape_name, unescape_name};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    match unescape_name(path) {
        // Escaping gives the text back (a '/' in it would come back escaped).
        Ok(name) => {
            if !path.contains('/') {
                assert_eq!(escape_name(&name), path, "unescaping does not round-trip");
            }
        }
        // Refused at the first '%' that starts neither "%25" nor "%2f".
        Err(InvalidEscape { offset }) => {
            let bytes = path.as_bytes();
            assert_eq!(bytes.get(offset), Some(&b'%'), "refused where no '%' is");
            assert!(
                !matches!(bytes.get(offset + 1..offset + 3), Some(b"25" | b"2f")),
                "refused a defined escape"
            );
            assert!(
                unescape_name(&path[..offset]).is_ok(),
                "refused past an earlier bad escape"
            );
        }
    }
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
