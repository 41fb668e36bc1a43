//! The fast update parser against postcard's: on generated updates, on
//! mutated and truncated ones and on whole `KVs` bodies, the fast path
//! must either decline or give exactly what postcard gives (the same
//! update, the same bytes left), and a body must decode, or fail, the same
//! with it as without it.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::body::encode_update;
use super::kvs::{decode_kvs_with, fast_update, reference_update};
use super::varint;
use crate::codec::read_ahead::Buffered;
use crate::message::{Revision, SerializedUpdate, UpdateType};

fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![
        3 => Just(Revision::Nil),
        // Non-ASCII text too, so that mutations cut characters apart.
        6 => "\\PC{0,12}".prop_map(|text| Revision::String(text.into())),
        3 => any::<i64>().prop_map(Revision::Int64),
        1 => any::<bool>().prop_map(Revision::Bool),
        1 => any::<i64>().prop_map(Revision::Int),
        1 => any::<i8>().prop_map(Revision::Int8),
        1 => any::<u16>().prop_map(Revision::Uint16),
        1 => any::<u64>().prop_map(Revision::Uintptr),
        1 => any::<f64>().prop_map(Revision::Float64),
        1 => (any::<f32>(), any::<f32>()).prop_map(|(re, im)| Revision::Complex64(re, im)),
    ]
}

fn ttl() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(0),
        1 => 0..100_000_000_000i64,
        // The extremes take a ten-byte varint, which the fast path leaves
        // to postcard.
        1 => any::<i64>(),
    ]
}

fn update() -> impl Strategy<Value = SerializedUpdate> {
    (
        "\\PC{0,40}",
        // Past 127 bytes a length takes two bytes.
        prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        revision(),
        "[0-9a-zé]{0,10}",
        ttl(),
        prop::sample::select(UpdateType::ALL.to_vec()),
    )
        .prop_map(
            |(key, value, revision, resource_version, ttl_nanos, update_type)| SerializedUpdate {
                key: key.into(),
                value: value.map(Into::into),
                revision,
                v3_resource_version: resource_version.into(),
                ttl_nanos,
                update_type,
            },
        )
}

/// A byte to write: often a small one, the values that tags, options and
/// update types take.
fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..20, any::<u8>()]
}

/// Byte edits: overwrite, insert, remove (positions modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), edit_byte()).prop_map(|(at, byte)| Edit::Set(at, byte)),
        1 => (any::<usize>(), edit_byte()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        1 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 0..4)
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(at, byte) if len > 0 => bytes[at % len] = byte,
            Edit::Insert(at, byte) => bytes.insert(at % (len + 1), byte),
            Edit::Remove(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
}

fn encoded(update: &SerializedUpdate) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_update(update, &mut out);
    out.to_vec()
}

/// Whether the fast path is meant to read `update` as encoded: a nil,
/// string or `int64` revision, and signed integers of at most nine varint
/// bytes (zigzag values below 2^63).
fn has_usual_shape(update: &SerializedUpdate) -> bool {
    let short = |value: i64| (-(1i64 << 62)..(1i64 << 62)).contains(&value);
    let revision = match update.revision {
        Revision::Nil | Revision::String(_) => true,
        Revision::Int64(value) => short(value),
        _ => false,
    };
    revision && short(update.ttl_nanos)
}

/// The fast path declines, or agrees with postcard on the update and on
/// what is left after it. Returns whether it answered.
fn check_agrees(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let reference = reference_update(bytes).map(|(update, rest)| (update, rest.len()));
    match fast_update(bytes) {
        None => Ok(false),
        Some((update, rest)) => {
            prop_assert_eq!(Ok((update, rest.len())), reference);
            Ok(true)
        }
    }
}

/// A `KVs` body (count, then updates) from encoded updates.
fn body(units: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    varint::write(&mut out, units.len() as u64);
    for unit in units {
        out.put_slice(unit);
    }
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn fast_path_reads_usual_updates_as_postcard_does(
        update in update(),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = encoded(&update);
        bytes.extend_from_slice(&trailing);
        let answered = check_agrees(&bytes)?;
        prop_assert_eq!(answered, has_usual_shape(&update));
        let (decoded, rest) = reference_update(&bytes).unwrap();
        // An empty value decodes as a deletion.
        let mut expected = update.borrowed();
        expected.value = expected.value.filter(|value| !value.is_empty());
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(rest, &trailing[..]);
    }

    #[test]
    fn fast_path_agrees_on_mutated_updates(
        update in update(),
        edits in edits(),
    ) {
        let mut bytes = encoded(&update);
        apply(&mut bytes, &edits);
        check_agrees(&bytes)?;
    }

    #[test]
    fn bodies_decode_and_fail_alike_with_and_without_the_fast_path(
        updates in prop::collection::vec(update(), 0..6),
        edits in edits(),
    ) {
        let units: Vec<Vec<u8>> = updates.iter().map(encoded).collect();
        let mut bytes = body(&units);
        apply(&mut bytes, &edits);
        // Touching ahead on one side only: it must change nothing read.
        let fast = decode_kvs_with::<true, _>(&bytes, Buffered::Bulk, |update| update);
        let reference = decode_kvs_with::<false, _>(&bytes, Buffered::Fresh, |update| update);
        prop_assert_eq!(fast, reference);
    }

    /// Random edits rarely land on the one-byte fields that choose what
    /// follows; these set them to every value.
    #[test]
    fn edited_tags_and_update_types_agree(
        update in update(),
        field in 0..3usize,
        byte in edit_byte(),
    ) {
        let mut bytes = encoded(&update);
        let option_at = varint::len(update.key.len() as u64) + update.key.len();
        let revision_at = option_at
            + 1
            + update
                .value
                .as_ref()
                .map_or(0, |value| varint::len(value.len() as u64) + value.len());
        let at = [option_at, revision_at, bytes.len() - 1][field];
        bytes[at] = byte;
        check_agrees(&bytes)?;
    }

    /// postcard accepts overlong varints; so must the fast path, for the
    /// lengths it reads (up to four bytes), and it leaves longer ones to
    /// postcard.
    #[test]
    fn overlong_key_lengths_agree(update in update(), extra in 1usize..7) {
        let bytes = encoded(&update);
        let key_len = update.key.len();
        prop_assume!(key_len < 0x80);
        let mut overlong = vec![key_len as u8 | 0x80];
        overlong.extend(std::iter::repeat_n(0x80, extra - 1));
        overlong.push(0);
        overlong.extend_from_slice(&bytes[1..]);
        let answered = check_agrees(&overlong)?;
        prop_assert_eq!(answered, has_usual_shape(&update) && extra < 4);
        prop_assert!(reference_update(&overlong).is_ok());
    }
}

#[test]
fn a_split_character_between_revision_and_resource_version_is_refused() {
    // Checked together, "é" split across the two strings (with the length
    // byte between them) must still be refused, as postcard's path does.
    let mut update = SerializedUpdate::upsert("/k", "v", "a");
    update.v3_resource_version = "b".into();
    let mut bytes = encoded(&update);
    let revision_at = bytes.iter().position(|&byte| byte == b'a').unwrap();
    let resource_version_at = bytes.iter().position(|&byte| byte == b'b').unwrap();
    bytes[revision_at] = 0xC3;
    bytes[resource_version_at] = 0xA9;
    assert!(fast_update(&bytes).is_none());
    assert!(reference_update(&bytes).is_err());
    // And the usual shape is taken by the fast path.
    let bytes = encoded(&update);
    assert_eq!(
        fast_update(&bytes).map(|(update, rest)| (update, rest.len())),
        Some((update.borrowed(), 0))
    );
}
