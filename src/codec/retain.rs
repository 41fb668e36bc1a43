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

/// The smallest value shared rather than copied.
const SHARE_AT_LEAST: usize = 64 * 1024;

/// Whether `part` of `message` is shared rather than copied.
fn shared(message: &Bytes, part: &[u8]) -> bool {
    part.len() >= SHARE_AT_LEAST && part.len() * 2 >= message.len()
}

/// `part` (a slice of `message`) as a `Bytes` that keeps alive little more
/// than itself: a copy, unless it is at least [`SHARE_AT_LEAST`] bytes and
/// at least half of `message`, when it is shared.
pub(crate) fn detach(message: &Bytes, part: &[u8]) -> Bytes {
    match shared(message, part) {
        true => message.slice_ref(part),
        false => Bytes::copy_from_slice(part),
    }
}

/// The parts of one decoded item (an update's key, value and strings),
/// each a slice of `message`, each [`detach`]ed.
///
/// Packing the copied parts into one allocation per update was measured
/// slower than one allocation per part: slicing one `Bytes` several ways
/// makes it reference-counted (another allocation, and atomic counts),
/// where a `Bytes` made from its own vector is freed without them.
pub(crate) fn detach_parts<const N: usize>(message: &Bytes, parts: [&[u8]; N]) -> [Bytes; N] {
    parts.map(|part| match part.is_empty() {
        true => Bytes::new(),
        false => detach(message, part),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parts_are_copied_and_large_dominant_ones_shared() {
        let message = Bytes::from(vec![7u8; 200 * 1024]);
        let small = detach(&message, &message[10..70]);
        assert_ne!(small.as_ptr(), message[10..].as_ptr());
        let dominant = detach(&message, &message[..150 * 1024]);
        assert_eq!(dominant.as_ptr(), message.as_ptr());
        // Large, but a small part of a larger message: copied.
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let minority = detach(&big, &big[..100 * 1024]);
        assert_ne!(minority.as_ptr(), big.as_ptr());
    }

    #[test]
    fn parts_are_detached_each_and_a_dominant_one_shared() {
        let mut bytes = b"key-one|value|rv".to_vec();
        bytes.extend(vec![b'v'; 100 * 1024]);
        let message = Bytes::from(bytes);
        let [key, value, rv, empty, big] = detach_parts(
            &message,
            [
                &message[..7],
                &message[8..13],
                &message[14..16],
                &[],
                &message[16..],
            ],
        );
        assert_eq!(
            (&key[..], &value[..], &rv[..]),
            (&b"key-one"[..], &b"value"[..], &b"rv"[..])
        );
        assert!(empty.is_empty());
        for part in [&key, &value, &rv] {
            assert!(!message.as_ptr_range().contains(&part.as_ptr()));
        }
        assert_eq!(big.as_ptr(), message[16..].as_ptr());
    }
}
