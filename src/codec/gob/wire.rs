//! gob's primitive encodings: unsigned and signed integers, floats, and
//! length-prefixed byte strings, read from one message at a time.

use bytes::BufMut;

use super::GobError;

/// Reads primitives from the front of one gob message.
///
/// Byte strings come out as slices of the message, valid for as long as
/// the message is (not only while the reader is), so that a value read
/// from several messages can borrow each of them.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    message: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(message: &'a [u8]) -> Reader<'a> {
        Reader {
            message,
            position: 0,
        }
    }

    /// Bytes left in this message.
    pub(crate) fn remaining(&self) -> usize {
        self.message.len() - self.position
    }

    /// The bytes not yet read.
    pub(crate) fn unread(&self) -> &'a [u8] {
        self.message.get(self.position..).unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// gob's unsigned integer: one byte below 128, else a byte holding the
    /// negated count of big-endian bytes that follow (at most eight).
    pub(crate) fn read_uint(&mut self) -> Result<u64, GobError> {
        let first = *self
            .message
            .get(self.position)
            .ok_or(GobError::UnexpectedEnd)?;
        self.position += 1;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let count = usize::from(first.wrapping_neg());
        if count > 8 {
            return Err(GobError::BadUint(first));
        }
        let bytes = self
            .message
            .get(self.position..self.position + count)
            .ok_or(GobError::UnexpectedEnd)?;
        let value = bytes
            .iter()
            .fold(0u64, |acc, byte| acc << 8 | u64::from(*byte));
        self.position += count;
        Ok(value)
    }

    /// gob's signed integer: the low bit says whether to complement.
    pub(crate) fn read_int(&mut self) -> Result<i64, GobError> {
        let raw = self.read_uint()?;
        let magnitude = (raw >> 1) as i64;
        Ok(if raw & 1 == 0 { magnitude } else { !magnitude })
    }

    /// gob's float: the IEEE bits with their bytes reversed, sent as a uint.
    pub(crate) fn read_float(&mut self) -> Result<f64, GobError> {
        Ok(f64::from_bits(self.read_uint()?.swap_bytes()))
    }

    pub(crate) fn read_bool(&mut self) -> Result<bool, GobError> {
        match self.read_uint()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(GobError::BadBool(other)),
        }
    }

    /// A length that must fit in what is left of the message.
    pub(crate) fn read_len(&mut self) -> Result<usize, GobError> {
        let len = self.read_uint()?;
        usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.remaining())
            .ok_or(GobError::LengthBeyondMessage {
                len,
                remaining: self.remaining(),
            })
    }

    /// A length-prefixed byte string, borrowed.
    pub(crate) fn read_slice(&mut self) -> Result<&'a [u8], GobError> {
        let len = self.read_len()?;
        let start = self.position;
        self.position += len;
        Ok(&self.message[start..start + len])
    }

    /// A length-prefixed UTF-8 string, borrowed.
    pub(crate) fn read_str(&mut self) -> Result<&'a str, GobError> {
        std::str::from_utf8(self.read_slice()?).map_err(|_| GobError::InvalidUtf8)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes (an interface's
    /// type name), borrowed.
    pub(crate) fn read_str_at_most(&mut self, max: usize) -> Result<&'a str, GobError> {
        let len = self.read_len()?;
        if len > max {
            return Err(GobError::NameTooLong(len));
        }
        let start = self.position;
        self.position += len;
        std::str::from_utf8(&self.message[start..start + len]).map_err(|_| GobError::InvalidUtf8)
    }

    pub(crate) fn skip(&mut self, count: usize) -> Result<(), GobError> {
        if count > self.remaining() {
            return Err(GobError::UnexpectedEnd);
        }
        self.position += count;
        Ok(())
    }
}

/// Appends gob's encoding of an unsigned integer.
pub(crate) fn put_uint(out: &mut impl BufMut, value: u64) {
    if value < 0x80 {
        out.put_u8(value as u8);
        return;
    }
    let bytes = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8) as usize;
    let count = 8 - skip;
    out.put_u8((count as u8).wrapping_neg());
    out.put_slice(&bytes[skip..]);
}

/// Appends gob's encoding of a signed integer.
pub(crate) fn put_int(out: &mut impl BufMut, value: i64) {
    let raw = if value < 0 {
        (!(value as u64)) << 1 | 1
    } else {
        (value as u64) << 1
    };
    put_uint(out, raw);
}

/// Appends gob's encoding of a float.
pub(crate) fn put_float(out: &mut impl BufMut, value: f64) {
    put_uint(out, value.to_bits().swap_bytes());
}

/// Appends a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// How many bytes [`put_uint`] takes for `value`.
pub(crate) fn uint_len(value: u64) -> usize {
    if value < 0x80 {
        1
    } else {
        1 + 8 - (value.leading_zeros() / 8) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<'_> {
        Reader::new(bytes)
    }

    #[test]
    fn uints_match_go() {
        // Examples from the encoding/gob documentation.
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (7, &[0x07]),
            (256, &[0xfe, 0x01, 0x00]),
            (
                u64::MAX,
                &[0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ] {
            let mut out = Vec::new();
            put_uint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(uint_len(value), bytes.len());
            assert_eq!(reader(bytes).read_uint(), Ok(value));
        }
    }

    #[test]
    fn ints_match_go() {
        // -129 is sent as ^-129 << 1 | 1 = 257, i.e. fe 01 01.
        for (value, bytes) in [
            (0i64, &[0x00][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-129, &[0xfe, 0x01, 0x01]),
        ] {
            let mut out = Vec::new();
            put_int(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(reader(bytes).read_int(), Ok(value));
        }
        for value in [i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_int(&mut out, value);
            assert_eq!(reader(&out).read_int(), Ok(value));
        }
    }

    #[test]
    fn floats_match_go() {
        // 17.0 is sent as fe 31 40 (documentation example).
        let mut out = Vec::new();
        put_float(&mut out, 17.0);
        assert_eq!(out, [0xfe, 0x31, 0x40]);
        assert_eq!(reader(&out).read_float(), Ok(17.0));
    }

    #[test]
    fn malformed_primitives_are_rejected() {
        assert_eq!(reader(&[]).read_uint(), Err(GobError::UnexpectedEnd));
        assert_eq!(reader(&[0xf7]).read_uint(), Err(GobError::BadUint(0xf7)));
        assert_eq!(reader(&[0x80]).read_uint(), Err(GobError::BadUint(0x80)));
        assert_eq!(
            reader(&[0xfe, 0x01]).read_uint(),
            Err(GobError::UnexpectedEnd)
        );
        assert_eq!(reader(&[0x02]).read_bool(), Err(GobError::BadBool(2)));
        assert_eq!(
            reader(&[0x05, b'a']).read_slice(),
            Err(GobError::LengthBeyondMessage {
                len: 5,
                remaining: 1
            })
        );
        assert_eq!(reader(&[0x01, 0xff]).read_str(), Err(GobError::InvalidUtf8));
    }
}
