//! Snappy's framing format, as upstream uses it to compress the snapshot
//! and the stream after it: a stream identifier chunk, then compressed
//! (`0x00`) and uncompressed (`0x01`) chunks of at most 64 KiB of data, each
//! with a masked CRC-32C of its uncompressed bytes; `0x80..=0xfe` chunks are
//! skipped, `0x02..=0x7f` are reserved and fatal.
//!
//! Block (de)compression is the `snap` crate's; the framing is here so that
//! it can be driven one chunk at a time, without I/O, and stop exactly at a
//! chunk boundary.

use bytes::{Buf, BufMut, BytesMut};

/// The chunk that opens every snappy framing stream.
pub const STREAM_IDENTIFIER: [u8; 10] = *b"\xff\x06\x00\x00sNaPpY";

/// The most uncompressed data one chunk may carry.
pub const MAX_CHUNK_DATA: usize = 65_536;

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
const HEADER_LEN: usize = 4;
const CRC_LEN: usize = 4;

/// What is wrong with a snappy framing stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnappyError {
    /// The stream does not open with the stream identifier chunk.
    #[error("stream does not start with the snappy stream identifier")]
    MissingStreamIdentifier,
    /// A stream identifier chunk with the wrong contents.
    #[error("malformed snappy stream identifier")]
    BadStreamIdentifier,
    /// A reserved, unskippable chunk type.
    #[error("reserved snappy chunk type {0:#04x}")]
    ReservedChunk(u8),
    /// A data chunk larger than the format allows.
    #[error("snappy chunk of {0} bytes is larger than the format allows")]
    ChunkTooLarge(usize),
    /// A data chunk whose checksum does not match its data.
    #[error("snappy chunk checksum mismatch")]
    BadChecksum,
    /// A compressed chunk that does not decompress.
    #[error("snappy block does not decompress: {0}")]
    Corrupt(String),
}

/// Snappy's CRC-32C, masked so that data containing CRCs checks well.
pub(crate) fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Decodes a snappy framing stream one chunk at a time.
#[derive(Debug, Default)]
pub(crate) struct ChunkDecoder {
    seen_identifier: bool,
    /// Bytes of a skippable chunk still to discard as they arrive.
    skipping: usize,
    block: snap::raw::Decoder,
    /// Bytes parsed so far (input examined, output produced).
    work: u64,
}

impl Clone for ChunkDecoder {
    fn clone(&self) -> ChunkDecoder {
        ChunkDecoder {
            seen_identifier: self.seen_identifier,
            skipping: self.skipping,
            block: snap::raw::Decoder::new(),
            work: self.work,
        }
    }
}

impl ChunkDecoder {
    pub(crate) fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }

    /// Bytes examined and produced so far: a chunk is decompressed once,
    /// when whole; an incomplete one costs only a look at its header.
    pub(crate) fn work(&self) -> u64 {
        self.work
    }

    /// Takes at most one complete chunk off the front of `src`, appending
    /// its data to `out`. Returns `false` when `src` holds no complete
    /// chunk (nothing is consumed then, except skippable chunk bytes, which
    /// are discarded as they arrive rather than buffered).
    pub(crate) fn decode_chunk(
        &mut self,
        src: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, SnappyError> {
        self.work += src.len().min(HEADER_LEN) as u64;
        if self.skipping > 0 {
            let discard = self.skipping.min(src.len());
            src.advance(discard);
            self.skipping -= discard;
            return Ok(self.skipping == 0 && discard > 0);
        }
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(false);
        };
        let kind = header[0];
        let len =
            usize::from(header[1]) | usize::from(header[2]) << 8 | usize::from(header[3]) << 16;
        if !self.seen_identifier && kind != CHUNK_STREAM_IDENTIFIER {
            return Err(SnappyError::MissingStreamIdentifier);
        }
        match kind {
            CHUNK_STREAM_IDENTIFIER => {
                if len != STREAM_IDENTIFIER.len() - HEADER_LEN {
                    return Err(SnappyError::BadStreamIdentifier);
                }
                let Some(chunk) = src.get(..STREAM_IDENTIFIER.len()) else {
                    return Ok(false);
                };
                if chunk != STREAM_IDENTIFIER {
                    return Err(SnappyError::BadStreamIdentifier);
                }
                src.advance(STREAM_IDENTIFIER.len());
                self.seen_identifier = true;
                Ok(true)
            }
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                let max = match kind {
                    CHUNK_COMPRESSED => snap::raw::max_compress_len(MAX_CHUNK_DATA),
                    _ => MAX_CHUNK_DATA,
                } + CRC_LEN;
                if !(CRC_LEN..=max).contains(&len) {
                    return Err(SnappyError::ChunkTooLarge(len));
                }
                let Some(chunk) = src.get(HEADER_LEN..HEADER_LEN + len) else {
                    return Ok(false);
                };
                self.work += len as u64;
                let expected_crc = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let data = &chunk[CRC_LEN..];
                let start = out.len();
                if kind == CHUNK_COMPRESSED {
                    let decompressed_len = snap::raw::decompress_len(data)
                        .map_err(|error| SnappyError::Corrupt(error.to_string()))?;
                    if decompressed_len > MAX_CHUNK_DATA {
                        return Err(SnappyError::ChunkTooLarge(decompressed_len));
                    }
                    out.resize(start + decompressed_len, 0);
                    if let Err(error) = self.block.decompress(data, &mut out[start..]) {
                        // Leave no zero-filled bytes behind for a decoder.
                        out.truncate(start);
                        return Err(SnappyError::Corrupt(error.to_string()));
                    }
                } else {
                    out.extend_from_slice(data);
                }
                self.work += (out.len() - start) as u64;
                if masked_crc(&out[start..]) != expected_crc {
                    out.truncate(start);
                    return Err(SnappyError::BadChecksum);
                }
                src.advance(HEADER_LEN + len);
                Ok(true)
            }
            0x02..=0x7f => Err(SnappyError::ReservedChunk(kind)),
            // Skippable chunks (0x80..=0xfd) and padding (0xfe).
            _ => {
                src.advance(HEADER_LEN);
                self.skipping = len;
                if len == 0 {
                    return Ok(true);
                }
                self.decode_chunk(src, out)
            }
        }
    }
}

/// Writes a snappy framing stream: the identifier first, then each piece of
/// data as one or more chunks.
#[derive(Debug)]
pub(crate) struct ChunkEncoder {
    identifier_sent: bool,
    block: snap::raw::Encoder,
    scratch: Vec<u8>,
}

impl Clone for ChunkEncoder {
    fn clone(&self) -> ChunkEncoder {
        ChunkEncoder {
            identifier_sent: self.identifier_sent,
            block: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        }
    }
}

impl ChunkEncoder {
    pub(crate) fn new() -> ChunkEncoder {
        ChunkEncoder {
            identifier_sent: false,
            block: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        }
    }

    /// An encoder for data that continues a stream whose identifier was
    /// written elsewhere: its output is bare chunks, which can be spliced
    /// into any snappy framing stream.
    pub(crate) fn continuing() -> ChunkEncoder {
        ChunkEncoder {
            identifier_sent: true,
            ..ChunkEncoder::new()
        }
    }

    /// Whether nothing has been written yet (not even the identifier).
    pub(crate) fn at_stream_start(&self) -> bool {
        !self.identifier_sent
    }

    /// Records that the caller wrote the stream identifier itself (with
    /// prebuilt chunks after it): what follows continues that stream.
    pub(crate) fn identifier_written(&mut self) {
        self.identifier_sent = true;
    }

    /// Appends `data` as chunks (compressed where that is smaller), preceded
    /// by the stream identifier the first time.
    pub(crate) fn encode(&mut self, data: &[u8], out: &mut BytesMut) {
        if !self.identifier_sent {
            out.put_slice(&STREAM_IDENTIFIER);
            self.identifier_sent = true;
        }
        for piece in data.chunks(MAX_CHUNK_DATA) {
            put_chunk(&mut self.block, &mut self.scratch, piece, out);
        }
    }
}

/// Appends one chunk holding `piece` (at most [`MAX_CHUNK_DATA`] bytes).
fn put_chunk(
    block: &mut snap::raw::Encoder,
    scratch: &mut Vec<u8>,
    piece: &[u8],
    out: &mut BytesMut,
) {
    let crc = masked_crc(piece);
    scratch.resize(snap::raw::max_compress_len(piece.len()), 0);
    let compressed = match block.compress(piece, scratch) {
        Ok(len) if len < piece.len() => Some(&scratch[..len]),
        // Compressing cannot fail for input within the chunk limit; if it
        // ever did, or saved nothing, the data goes uncompressed.
        _ => None,
    };
    let (kind, body) = match compressed {
        Some(body) => (CHUNK_COMPRESSED, body),
        None => (CHUNK_UNCOMPRESSED, piece),
    };
    let len = body.len() + CRC_LEN;
    out.reserve(HEADER_LEN + len);
    out.put_u8(kind);
    out.put_slice(&(len as u32).to_le_bytes()[..3]);
    out.put_u32_le(crc);
    out.put_slice(body);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn decode_all(stream: &[u8]) -> Result<Vec<u8>, SnappyError> {
        let mut decoder = ChunkDecoder::new();
        let mut src = BytesMut::from(stream);
        let mut out = BytesMut::new();
        while decoder.decode_chunk(&mut src, &mut out)? {}
        assert!(src.is_empty(), "undecoded bytes left");
        Ok(out.to_vec())
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 700) as u8)
            .collect()
    }

    #[test]
    fn our_streams_decode_with_the_snap_crate_and_back() {
        for len in [0, 1, 100, MAX_CHUNK_DATA, MAX_CHUNK_DATA + 1, 300_000] {
            let data = sample(len);
            let mut ours = BytesMut::new();
            let mut encoder = ChunkEncoder::new();
            encoder.encode(&data[..len / 2], &mut ours);
            encoder.encode(&data[len / 2..], &mut ours);
            let mut theirs = Vec::new();
            snap::read::FrameDecoder::new(&ours[..])
                .read_to_end(&mut theirs)
                .unwrap();
            assert_eq!(theirs, data, "snap reading ours, {len} bytes");
            assert_eq!(
                decode_all(&ours).unwrap(),
                data,
                "ours reading ours, {len} bytes"
            );
        }
    }

    #[test]
    fn snap_crate_streams_decode_here_whatever_the_split() {
        let data = sample(200_000);
        let mut theirs = snap::write::FrameEncoder::new(Vec::new());
        theirs.write_all(&data).unwrap();
        let stream = theirs.into_inner().unwrap();
        assert_eq!(decode_all(&stream).unwrap(), data);
        for piece in [1, 5, 4099] {
            let mut decoder = ChunkDecoder::new();
            let (mut src, mut out) = (BytesMut::new(), BytesMut::new());
            for bytes in stream.chunks(piece) {
                src.extend_from_slice(bytes);
                while decoder.decode_chunk(&mut src, &mut out).unwrap() {}
            }
            assert_eq!(out.to_vec(), data, "{piece}-byte pieces");
        }
    }

    #[test]
    fn skippable_chunks_are_skipped_without_buffering() {
        let mut stream = BytesMut::from(&STREAM_IDENTIFIER[..]);
        stream.put_slice(&[0x80, 0x10, 0x00, 0x00]);
        stream.put_slice(&[7; 16]);
        stream.put_slice(&[0xfe, 0, 0, 0]); // padding
        ChunkEncoder {
            identifier_sent: true,
            ..ChunkEncoder::new()
        }
        .encode(b"after", &mut stream);
        assert_eq!(decode_all(&stream).unwrap(), b"after");
    }

    #[test]
    fn malformed_streams_are_rejected() {
        assert_eq!(
            decode_all(b"\x00\x05\x00\x00abcde"),
            Err(SnappyError::MissingStreamIdentifier)
        );
        assert_eq!(
            decode_all(b"\xff\x06\x00\x00sNaPpZ"),
            Err(SnappyError::BadStreamIdentifier)
        );
        let mut reserved = BytesMut::from(&STREAM_IDENTIFIER[..]);
        reserved.put_slice(&[0x02, 0, 0, 0]);
        assert_eq!(decode_all(&reserved), Err(SnappyError::ReservedChunk(0x02)));
        let mut oversized = BytesMut::from(&STREAM_IDENTIFIER[..]);
        oversized.put_slice(&[CHUNK_UNCOMPRESSED, 0x05, 0x00, 0x01]);
        assert_eq!(
            decode_all(&oversized),
            Err(SnappyError::ChunkTooLarge(65_541))
        );
        let mut corrupt_crc = BytesMut::new();
        ChunkEncoder::new().encode(b"hello hello hello hello", &mut corrupt_crc);
        let crc_at = STREAM_IDENTIFIER.len() + HEADER_LEN;
        corrupt_crc[crc_at] ^= 1;
        assert_eq!(decode_all(&corrupt_crc), Err(SnappyError::BadChecksum));
    }

    #[test]
    fn crc_matches_the_reference_check_value() {
        // CRC-32C("123456789") = 0xe3069283 (RFC 3720).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }
}
