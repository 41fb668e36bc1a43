//! A `KVs` body's updates: a hand-written parser for the usual shape of an
//! update, and postcard (through the layouts in `body`) for everything
//! else.
//!
//! Updates are nearly all of a capture's bytes, and postcard reads each
//! field through serde's visitors, one bounds-checked byte at a time. The
//! fast path ([`fast_update`]) reads the same bytes straight through, but
//! only when the update has the usual shape: a string, nil or `int64`
//! revision, short length prefixes, a valid update type, UTF-8 strings.
//! For anything else, malformed input included, it gives up and the update
//! is read again from its start by postcard ([`reference_update`]), so
//! what is accepted and every error stay exactly postcard's; the fast path
//! only ever answers where postcard would give the same update and consume
//! the same bytes (`kvs_tests` checks this on generated and mutated
//! updates).

use super::body::{RawBytes, RevisionLayout, UpdateLayout, malformed};
use super::varint::{self, VarintRead};
use crate::codec::MAX_UPDATES_PER_MESSAGE;
use crate::codec::read_ahead::{Buffered, ReadAhead};
use crate::error::DecodeError;
use crate::message::{MessageKind, RevisionRef, SerializedUpdateRef, UpdateType};

/// The smallest encoding of one update (six one-byte fields), used to cap
/// how many updates a body's count may make us reserve room for.
const MIN_UPDATE_LEN: usize = 6;

/// Reads the updates of a `KVs` body (what `body::Body::Kvs` holds),
/// handing each to `each` as it borrows the frame; the results are
/// collected once every update has been read and checked. `buffered` is
/// how the decoder's input arrived (see `read_ahead`).
pub(crate) fn decode_kvs<'a, T>(
    body: &'a [u8],
    buffered: Buffered,
    each: impl FnMut(SerializedUpdateRef<'a>) -> T,
) -> Result<Vec<T>, DecodeError> {
    decode_kvs_with::<true, T>(body, buffered, each)
}

/// [`decode_kvs`], reading each update with [`fast_update`] first when
/// `FAST` (always, but for tests comparing the two paths), with
/// [`reference_update`] when that declines.
pub(super) fn decode_kvs_with<'a, const FAST: bool, T>(
    body: &'a [u8],
    buffered: Buffered,
    mut each: impl FnMut(SerializedUpdateRef<'a>) -> T,
) -> Result<Vec<T>, DecodeError> {
    let (count, count_len) = match varint::read(body, varint::MAX_U64_LEN) {
        VarintRead::Done(count, len) => (count, len),
        VarintRead::Incomplete | VarintRead::Malformed => {
            return Err(DecodeError::MalformedBody {
                message: MessageKind::Kvs,
                reason: "missing or malformed update count".into(),
            });
        }
    };
    if count > MAX_UPDATES_PER_MESSAGE as u64 {
        return Err(DecodeError::TooManyUpdates {
            count,
            max: MAX_UPDATES_PER_MESSAGE,
        });
    }
    let mut rest = &body[count_len..];
    // Reserve only for what the bytes present could hold, never for what
    // the count claims.
    let plausible = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(rest.len() / MIN_UPDATE_LEN);
    let mut updates = Vec::with_capacity(plausible);
    let mut read_ahead = ReadAhead::new(rest, buffered);
    for _ in 0..count {
        read_ahead.touch(rest);
        let fast = if FAST { fast_update(rest) } else { None };
        let (update, after) = match fast {
            Some(parsed) => parsed,
            None => reference_update(rest)?,
        };
        rest = after;
        updates.push(each(update));
    }
    match rest.len() {
        0 => Ok(updates),
        count => Err(DecodeError::TrailingBytes {
            message: MessageKind::Kvs,
            count,
        }),
    }
}

/// Reads the update at the front of `bytes` with postcard: the definition
/// of what an update is, and of every error one can raise. Returns it and
/// the bytes after it.
#[inline(never)]
pub(super) fn reference_update(
    bytes: &[u8],
) -> Result<(SerializedUpdateRef<'_>, &[u8]), DecodeError> {
    let (layout, after) = postcard::take_from_bytes::<UpdateLayout<'_>>(bytes)
        .map_err(malformed(MessageKind::Kvs))?;
    Ok((update_from(layout)?, after))
}

fn update_from(layout: UpdateLayout<'_>) -> Result<SerializedUpdateRef<'_>, DecodeError> {
    Ok(SerializedUpdateRef {
        key: utf8(layout.key.0, "key")?,
        // An empty value is a deletion on every wire (see SerializedUpdate).
        value: layout
            .value
            .map(|RawBytes(value)| value)
            .filter(|value| !value.is_empty()),
        revision: revision_from(layout.revision)?,
        v3_resource_version: utf8(layout.v3_resource_version.0, "resource version")?,
        ttl_nanos: layout.ttl_nanos,
        update_type: UpdateType::from_wire(layout.update_type)
            .ok_or(DecodeError::InvalidUpdateType(layout.update_type))?,
    })
}

/// A string field, checked for UTF-8.
fn utf8<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::MalformedBody {
        message: MessageKind::Kvs,
        reason: format!("{field} is not UTF-8"),
    })
}

fn revision_from(layout: RevisionLayout<'_>) -> Result<RevisionRef<'_>, DecodeError> {
    Ok(match layout {
        RevisionLayout::Nil => RevisionRef::Nil,
        RevisionLayout::String(RawBytes(text)) => RevisionRef::String(utf8(text, "revision")?),
        RevisionLayout::Bool(value) => RevisionRef::Bool(value),
        RevisionLayout::Int(value) => RevisionRef::Int(value),
        RevisionLayout::Int8(value) => RevisionRef::Int8(value),
        RevisionLayout::Int16(value) => RevisionRef::Int16(value),
        RevisionLayout::Int32(value) => RevisionRef::Int32(value),
        RevisionLayout::Int64(value) => RevisionRef::Int64(value),
        RevisionLayout::Uint(value) => RevisionRef::Uint(value),
        RevisionLayout::Uint8(value) => RevisionRef::Uint8(value),
        RevisionLayout::Uint16(value) => RevisionRef::Uint16(value),
        RevisionLayout::Uint32(value) => RevisionRef::Uint32(value),
        RevisionLayout::Uint64(value) => RevisionRef::Uint64(value),
        RevisionLayout::Uintptr(value) => RevisionRef::Uintptr(value),
        RevisionLayout::Float32(value) => RevisionRef::Float32(value),
        RevisionLayout::Float64(value) => RevisionRef::Float64(value),
        RevisionLayout::Complex64(re, im) => RevisionRef::Complex64(re, im),
        RevisionLayout::Complex128(re, im) => RevisionRef::Complex128(re, im),
    })
}

/// The revision variants the fast path reads (`RevisionLayout`'s indices;
/// the others go to postcard).
mod variant {
    pub(super) const NIL: u8 = 0;
    pub(super) const STRING: u8 = 1;
    pub(super) const INT64: u8 = 7;
}

/// The longest length prefix the fast path reads: four bytes hold lengths
/// up to 256 MiB, beyond any frame, and postcard takes any four-byte varint
/// as a length whatever the width of `usize`, so only longer (or
/// malformed) prefixes are left to it.
const MAX_FAST_LENGTH_LEN: usize = 4;

/// The longest `i64` varint the fast path reads: nine bytes carry 63 bits,
/// so they cannot overflow a `u64` and postcard accepts every one of them;
/// the tenth byte, with its overflow check, is left to postcard.
const MAX_FAST_I64_LEN: usize = 9;

/// Reads the update at the front of `bytes` if it has the usual shape,
/// exactly as [`reference_update`] would: the same update and the same
/// bytes after it. `None` for anything else, valid or not, which the
/// caller then hands to [`reference_update`].
#[inline(always)]
pub(super) fn fast_update(bytes: &[u8]) -> Option<(SerializedUpdateRef<'_>, &[u8])> {
    let mut cursor = Cursor { bytes, at: 0 };
    let key = std::str::from_utf8(cursor.byte_string()?).ok()?;
    let value = match cursor.byte()? {
        0 => None,
        1 => Some(cursor.byte_string()?).filter(|value| !value.is_empty()),
        _ => return None,
    };
    let (revision, v3_resource_version) = match cursor.byte()? {
        variant::NIL => (
            RevisionRef::Nil,
            std::str::from_utf8(cursor.byte_string()?).ok()?,
        ),
        variant::STRING => cursor.revision_and_resource_version()?,
        variant::INT64 => {
            let revision = RevisionRef::Int64(zigzag(cursor.varint(MAX_FAST_I64_LEN)?));
            (revision, std::str::from_utf8(cursor.byte_string()?).ok()?)
        }
        _ => return None,
    };
    let ttl_nanos = zigzag(cursor.varint(MAX_FAST_I64_LEN)?);
    let update_type = UpdateType::from_wire(cursor.byte()?)?;
    let update = SerializedUpdateRef {
        key,
        value,
        revision,
        v3_resource_version,
        ttl_nanos,
        update_type,
    };
    Some((update, bytes.get(cursor.at..)?))
}

/// Undoes the zigzag encoding postcard gives signed integers.
#[inline(always)]
fn zigzag(encoded: u64) -> i64 {
    ((encoded >> 1) as i64) ^ -((encoded & 1) as i64)
}

/// Where the fast path is in an update's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    /// A varint of at most `max_len` (at most nine) bytes, which postcard
    /// would read as the same value: it too accepts overlong encodings, and
    /// checks for overflow only at a tenth byte.
    #[inline(always)]
    fn varint(&mut self, max_len: usize) -> Option<u64> {
        let mut value = 0;
        for index in 0..max_len {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length-prefixed byte string.
    #[inline(always)]
    fn byte_string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint(MAX_FAST_LENGTH_LEN)?).ok()?;
        let end = self.at.checked_add(len)?;
        let bytes = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    /// A string revision's text and the resource version after it,
    /// checked for UTF-8 together when only a one-byte length prefix lies
    /// between them (the usual case): that byte is ASCII, so the run is
    /// UTF-8 exactly when both strings are, and one call of `from_utf8`
    /// saves the fixed cost of another on two short strings.
    #[inline(always)]
    fn revision_and_resource_version(&mut self) -> Option<(RevisionRef<'a>, &'a str)> {
        let revision = self.byte_string()?;
        let revision_end = self.at;
        let resource_version = self.byte_string()?;
        // A one-byte prefix is a byte below 0x80.
        let (revision, resource_version) = if revision_end + 1 + resource_version.len() == self.at {
            let start = revision_end - revision.len();
            let both = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
            (both.get(..revision.len())?, both.get(revision.len() + 1..)?)
        } else {
            (
                std::str::from_utf8(revision).ok()?,
                std::str::from_utf8(resource_version).ok()?,
            )
        };
        Some((RevisionRef::String(revision), resource_version))
    }
}
