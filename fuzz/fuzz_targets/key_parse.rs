//! Arbitrary text into the key parser: it must never panic, checking a path
//! must give exactly parsing's verdict (the same error, or none), and
//! whatever it accepts must render back to the same path and parse to the
//! same key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use syncproto::key::Key;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Key::parse(path);
    assert_eq!(
        Key::validate_path(path),
        parsed.as_ref().map(|_| ()).map_err(Clone::clone),
        "checking and parsing disagree"
    );
    let Ok(key) = parsed else {
        return;
    };
    let rendered = key.to_path();
    assert_eq!(rendered, path, "accepted path does not render back");
    let again = Key::parse(&rendered).expect("rendered path parses");
    assert_eq!(again, key, "rendered path parses to another key");
    assert_eq!(again.to_path(), rendered, "rendering is not stable");
    assert_eq!(key.validate(), Ok(()));
});
