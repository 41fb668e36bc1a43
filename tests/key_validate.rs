//! `Key::validate_path` (what the client runs on every key) accepts and
//! refuses exactly what `Key::parse` does, with the same error: on the
//! paths of generated keys of every kind, and on those paths mutated the
//! ways a path can go wrong (escapes in the wrong case or cut short,
//! trailing slashes, empty or missing segments, CIDRs not written as
//! upstream writes them, unicode and control characters, very long paths).
//! Every path either accepts renders back to itself.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use syncproto::key::{DefaultKeyParser, Key, KeyParser};

#[path = "common/keygen.rs"]
mod keygen;

use keygen::{keys, valid_paths};

/// Checks the agreement on one path, and the round trip when it parses.
fn agree(path: &str) -> Result<(), TestCaseError> {
    let parsed = Key::parse(path);
    let expected = parsed.clone().map(|_| ());
    prop_assert_eq!(Key::validate_path(path), expected.clone(), "{:?}", path);
    prop_assert_eq!(DefaultKeyParser.validate(path), expected, "{:?}", path);
    if let Ok(key) = parsed {
        prop_assert_eq!(key.to_path(), path);
    }
    Ok(())
}

/// Texts that break a path where they are put: escapes upstream does not
/// write (upper case, cut short, unknown), slashes, unicode and control
/// characters, characters that look like separators.
const SPLICES: &[&str] = &[
    "%2F",
    "%2f",
    "%25",
    "%",
    "%2",
    "%5",
    "%zz",
    "%%",
    "%2f%",
    "/",
    "//",
    "-",
    "--",
    "é",
    "ü/",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}",
    "\u{ff0f}",
    "\u{2215}",
    "\u{1F600}",
    " ",
    ".",
    "..",
    ":",
    "::",
    "v4",
    "ipv6",
];

/// CIDR segments upstream would never write: host bits set, leading zeros,
/// upper case, prefixes too long or missing, not addresses at all.
const BAD_CIDRS: &[&str] = &[
    "10.0.0.1-8",
    "10.0.0.0-08",
    "10.0.0.0-33",
    "10.0.0.0-",
    "10.0.0.0",
    "10.0.0-8",
    "010.0.0.0-8",
    "10.0.0.0-+8",
    "10.0.0.0--8",
    "10.0.0.0-1000",
    "FD00::-64",
    "fd00:0::-64",
    "fd00::1-64",
    "fd00::-129",
    "::ffff:10.0.0.0-104",
    "-8",
    "-",
    "",
    "10.0.0.0-8-",
    "fd00::/64",
];

/// One way of damaging a path.
#[derive(Debug, Clone)]
enum Mutation {
    /// Insert a text at a character boundary (picked by the index).
    Splice(prop::sample::Index, &'static str),
    /// Upper-case every escape (`%2f` → `%2F`).
    UpperEscapes,
    TrailingSlash,
    /// Double the slash before a segment (an empty segment).
    EmptySegment(prop::sample::Index),
    /// Remove a segment with its slash.
    DropSegment(prop::sample::Index),
    /// Repeat a segment.
    DuplicateSegment(prop::sample::Index),
    /// Cut the path at a character boundary.
    Truncate(prop::sample::Index),
    /// Replace the last segment (where IPAM keys hold their CIDR).
    LastSegment(&'static str),
    /// Drop the leading slash.
    NoLeadingSlash,
    /// Make a name, or the path, very long: a segment repeated many times,
    /// or one long name.
    Long(prop::sample::Index, u16),
}

fn mutations() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        4 => (index(), prop::sample::select(SPLICES)).prop_map(|(i, t)| Mutation::Splice(i, t)),
        1 => Just(Mutation::UpperEscapes),
        1 => Just(Mutation::TrailingSlash),
        2 => index().prop_map(Mutation::EmptySegment),
        2 => index().prop_map(Mutation::DropSegment),
        2 => index().prop_map(Mutation::DuplicateSegment),
        2 => index().prop_map(Mutation::Truncate),
        2 => prop::sample::select(BAD_CIDRS).prop_map(Mutation::LastSegment),
        1 => Just(Mutation::NoLeadingSlash),
        1 => (index(), 1u16..5000).prop_map(|(i, n)| Mutation::Long(i, n)),
    ]
}

fn mutate(path: &str, mutation: &Mutation) -> String {
    let boundaries: Vec<usize> = path
        .char_indices()
        .map(|(i, _)| i)
        .chain([path.len()])
        .collect();
    let at = |index: &prop::sample::Index| boundaries[index.index(boundaries.len())];
    let mut segments: Vec<&str> = path.split('/').collect();
    let segment = |index: &prop::sample::Index, segments: &[&str]| index.index(segments.len());
    match mutation {
        Mutation::Splice(index, text) => {
            let at = at(index);
            format!("{}{text}{}", &path[..at], &path[at..])
        }
        Mutation::UpperEscapes => path.replace("%2f", "%2F"),
        Mutation::TrailingSlash => format!("{path}/"),
        Mutation::EmptySegment(index) => {
            let at = segment(index, &segments);
            segments.insert(at, "");
            segments.join("/")
        }
        Mutation::DropSegment(index) => {
            let at = segment(index, &segments);
            segments.remove(at);
            segments.join("/")
        }
        Mutation::DuplicateSegment(index) => {
            let at = segment(index, &segments);
            segments.insert(at, segments[at]);
            segments.join("/")
        }
        Mutation::Truncate(index) => path[..at(index)].to_owned(),
        Mutation::LastSegment(cidr) => {
            segments.pop();
            segments.push(cidr);
            segments.join("/")
        }
        Mutation::NoLeadingSlash => path.trim_start_matches('/').to_owned(),
        Mutation::Long(index, times) => {
            let at = segment(index, &segments);
            if times % 2 == 0 {
                let long = segments[at].repeat(usize::from(*times));
                segments[at] = &long;
                segments.join("/")
            } else {
                let repeated = vec![segments[at]; usize::from(*times)];
                segments.splice(at..=at, repeated);
                segments.join("/")
            }
        }
    }
}

/// Paths of every kind: generated keys rendered, and the hand-written
/// examples (which hold the unusual spellings upstream writes).
fn paths() -> impl Strategy<Value = String> {
    let examples: Vec<String> = valid_paths()
        .into_iter()
        .map(|(path, _)| path.to_owned())
        .collect();
    prop_oneof![
        3 => keys().prop_map(|key| key.to_path()),
        1 => prop::sample::select(examples),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn validation_agrees_with_parsing_on_valid_paths(key in keys()) {
        let path = key.to_path();
        prop_assert_eq!(Key::parse(&path), Ok(key), "{}", path);
        prop_assert_eq!(Key::validate_path(&path), Ok(()));
        agree(&path)?;
    }

    #[test]
    fn validation_agrees_with_parsing_on_damaged_paths(
        path in paths(),
        first in mutations(),
        second in prop::option::of(mutations()),
    ) {
        let once = mutate(&path, &first);
        agree(&once)?;
        if let Some(second) = second {
            agree(&mutate(&once, &second))?;
        }
    }

    #[test]
    fn validation_agrees_with_parsing_on_any_text(
        path in prop_oneof![
            "/calico/[a-z0-9/%.:-]{0,80}",
            "/calico/(v1|ipam/v2|bgp/v1|felix/v[12]|resources/v3/projectcalico.org)/[a-zA-Z0-9/%.:_-]{0,60}",
            "\\PC{0,60}",
            ".{0,40}",
        ],
    ) {
        agree(&path)?;
    }
}

/// Escapes differ only in case: the lower-case one is upstream's and
/// accepted, the upper-case one refused the same way by both.
#[test]
fn upper_case_escapes_are_refused_by_both() {
    let good = "/calico/v1/host/n/workload/k8s/ns%2fpod/endpoint/eth0";
    let bad = "/calico/v1/host/n/workload/k8s/ns%2Fpod/endpoint/eth0";
    assert_eq!(Key::validate_path(good), Ok(()));
    let error = Key::parse(bad).unwrap_err();
    assert_eq!(Key::validate_path(bad), Err(error));
}

/// A path of a million segments is refused without trouble, by both.
#[test]
fn enormous_paths_are_refused_alike() {
    let path = format!("/calico/v1/config{}", "/x".repeat(1_000_000));
    // A config name may hold slashes: this one is accepted.
    assert_eq!(Key::validate_path(&path), Ok(()));
    let path = format!("/calico/v1/host{}", "/x".repeat(1_000_000));
    assert_eq!(
        Key::validate_path(&path),
        Key::parse(&path).map(|_| ()),
        "host key with a million segments"
    );
    assert!(Key::validate_path(&path).is_err());
}
