//! LEB128 varints as postcard writes them (seven bits per byte, least
//! significant group first, high bit set on every byte but the last).

/// The longest varint of a `u64`.
pub(crate) const MAX_U64_LEN: usize = 10;

/// What reading a varint from the front of a buffer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintRead {
    /// A complete varint: its value and how many bytes it took.
    Done(u64, usize),
    /// The buffer ends before the varint does.
    Incomplete,
    /// More than `max_len` bytes, or a value over `u64::MAX`.
    Malformed,
}

/// Reads an unsigned varint of at most `max_len` bytes from the front of
/// `bytes`.
pub(crate) fn read(bytes: &[u8], max_len: usize) -> VarintRead {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(max_len.min(MAX_U64_LEN)) {
        let shift = 7 * index as u32;
        let group = u64::from(byte & 0x7f);
        // The tenth byte may only carry the top bit of a u64.
        if shift == 63 && group > 1 {
            return VarintRead::Malformed;
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            return VarintRead::Done(value, index + 1);
        }
    }
    if bytes.len() >= max_len.min(MAX_U64_LEN) {
        VarintRead::Malformed
    } else {
        VarintRead::Incomplete
    }
}

/// Appends `value` as a varint to `out`.
pub(crate) fn write(out: &mut impl bytes::BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// How many bytes [`write()`] takes for `value`.
pub(crate) fn len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write(&mut out, value);
            assert_eq!(out.len(), len(value), "{value}");
            assert_eq!(read(&out, MAX_U64_LEN), VarintRead::Done(value, out.len()));
            for cut in 0..out.len() {
                assert_eq!(read(&out[..cut], MAX_U64_LEN), VarintRead::Incomplete);
            }
        }
    }

    #[test]
    fn matches_postcard() {
        for value in [0u32, 300, u32::MAX] {
            let mut ours = Vec::new();
            write(&mut ours, u64::from(value));
            assert_eq!(ours, postcard::to_stdvec(&value).unwrap());
        }
    }

    #[test]
    fn rejects_overlong_and_overflowing() {
        assert_eq!(read(&[0x80; 5], 5), VarintRead::Malformed);
        assert_eq!(read(&[0x80, 0x80], 5), VarintRead::Incomplete);
        let mut too_big = [0xff; 10];
        too_big[9] = 0x02;
        assert_eq!(read(&too_big, MAX_U64_LEN), VarintRead::Malformed);
    }
}
