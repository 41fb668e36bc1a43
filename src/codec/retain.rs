//! What a decoded key, value or string keeps alive.
//!
//! A decoder reads each message out of one buffer. Handing out slices of
//! that buffer costs nothing at decode time, but one surviving slice pins
//! the whole buffer: a 60-byte key kept by an application would hold on to
//! a 100 KiB batch (or a decompressed snapshot chunk, or a read buffer
//! holding several messages) long after everything else in it was dropped.
//! So decoders copy what they hand out into allocations of its own size —
//! what an application keeps then costs what it holds — except a value so
//! large, and so much of its message, that copying it would cost more than
//! pinning: such a value is shared, and pins at most its message's buffer.
//! (Measured in BENCHMARKS.md, "Retained memory".)

use bytes::Bytes;
use bytestring::ByteString;

use crate::message::{Revision, RevisionRef, SerializedUpdate, SerializedUpdateRef};

/// The smallest value shared rather than copied.
const SHARE_AT_LEAST: usize = 64 * 1024;

/// Whether `part` of `message` is shared rather than copied.
fn shared(message: &Bytes, part: &[u8]) -> bool {
    part.len() >= SHARE_AT_LEAST && part.len() * 2 >= message.len()
}

/// Whether `part` lies within `message`.
fn contains(message: &[u8], part: &[u8]) -> bool {
    let (whole, part) = (message.as_ptr_range(), part.as_ptr_range());
    whole.start <= part.start && part.end <= whole.end
}

/// `part` (a slice of one of `messages`) as a `Bytes` that keeps alive
/// little more than itself: a copy, unless it is at least
/// [`SHARE_AT_LEAST`] bytes and at least half of its message, when it is
/// shared.
pub(crate) fn detach<'m>(messages: impl IntoIterator<Item = &'m Bytes>, part: &[u8]) -> Bytes {
    if part.len() >= SHARE_AT_LEAST
        && let Some(message) = messages.into_iter().find(|message| contains(message, part))
        && shared(message, part)
    {
        return message.slice_ref(part);
    }
    Bytes::copy_from_slice(part)
}

/// A string part, [`detach`]ed. (Strings shared with their message are
/// checked for UTF-8 again: only those of 64 KiB or more.)
fn detach_str<'m>(messages: impl IntoIterator<Item = &'m Bytes>, part: &str) -> ByteString {
    if part.len() < SHARE_AT_LEAST {
        return ByteString::from(part);
    }
    ByteString::try_from(detach(messages, part.as_bytes()))
        .unwrap_or_else(|_| ByteString::from(part))
}

/// An update borrowing `messages` (the frame or the gob messages it was
/// decoded from) as an owned one whose parts are each [`detach`]ed.
///
/// One allocation per part: packing the parts into one allocation per
/// update was measured slower (slicing one `Bytes` several ways makes it
/// reference-counted, another allocation and atomic counts, where a
/// `Bytes` made from its own vector is freed without them).
pub(crate) fn detach_update<'m, M>(
    messages: M,
    update: &SerializedUpdateRef<'_>,
) -> SerializedUpdate
where
    M: IntoIterator<Item = &'m Bytes> + Clone,
{
    SerializedUpdate {
        key: detach_str(messages.clone(), update.key),
        value: update.value.map(|value| detach(messages.clone(), value)),
        revision: match update.revision {
            RevisionRef::String(text) => Revision::String(detach_str(messages.clone(), text)),
            other => other.to_revision(),
        },
        v3_resource_version: detach_str(messages, update.v3_resource_version),
        ttl_nanos: update.ttl_nanos,
        update_type: update.update_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::UpdateType;

    #[test]
    fn small_parts_are_copied_and_large_dominant_ones_shared() {
        let message = Bytes::from(vec![7u8; 200 * 1024]);
        let small = detach([&message], &message[10..70]);
        assert_ne!(small.as_ptr(), message[10..].as_ptr());
        let dominant = detach([&message], &message[..150 * 1024]);
        assert_eq!(dominant.as_ptr(), message.as_ptr());
        // Large, but a small part of a larger message: copied.
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let minority = detach([&big], &big[..100 * 1024]);
        assert_ne!(minority.as_ptr(), big.as_ptr());
        // Shared with the message it lies in, among several.
        let in_second = detach([&big, &message], &message[..150 * 1024]);
        assert_eq!(in_second.as_ptr(), message.as_ptr());
        // In none of them (a copy made elsewhere): copied.
        let elsewhere = vec![7u8; 150 * 1024];
        assert_ne!(detach([&message], &elsewhere).as_ptr(), elsewhere.as_ptr());
    }

    #[test]
    fn updates_are_detached_part_by_part_and_a_dominant_value_shared() {
        let mut bytes = b"key-one|rv|77".to_vec();
        bytes.extend(vec![b'v'; 100 * 1024]);
        let message = Bytes::from(bytes);
        let text = std::str::from_utf8(&message).unwrap();
        let update = SerializedUpdateRef {
            key: &text[..7],
            value: Some(&message[13..]),
            revision: RevisionRef::String(&text[8..10]),
            v3_resource_version: &text[11..13],
            ttl_nanos: 3,
            update_type: UpdateType::New,
        };
        let owned = detach_update([&message], &update);
        assert_eq!(owned, update.to_update());
        let Revision::String(revision) = &owned.revision else {
            panic!("{:?}", owned.revision)
        };
        for part in [
            owned.key.as_bytes(),
            revision.as_bytes(),
            owned.v3_resource_version.as_bytes(),
        ] {
            assert!(!contains(&message, part), "a small part was not copied");
        }
        let value = owned.value.as_ref().unwrap();
        assert_eq!(
            value.as_ptr(),
            message[13..].as_ptr(),
            "the dominant value is shared"
        );
        // A large key that is most of its message is shared too.
        let key = "k".repeat(100 * 1024);
        let message = Bytes::from(key.clone());
        let text = std::str::from_utf8(&message).unwrap();
        let owned = detach_update(
            [&message],
            &SerializedUpdateRef {
                key: text,
                ..SerializedUpdateRef::default()
            },
        );
        assert_eq!(owned.key, key);
        assert_eq!(owned.key.as_bytes().as_ptr(), message.as_ptr());
    }
}
