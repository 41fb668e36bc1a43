//! The native wire format: this crate's compact encoding for Rust-to-Rust
//! links, built on postcard.
//!
//! # Layout
//!
//! ```text
//! stream   = preamble frame*
//! preamble = C3 'S' 'Y' 'N' 'C' 'P' 'R' 01        (magic, framing version 1)
//! frame    = varint(len) body                      (len ≤ the receiver's limit)
//! body     = varint(tag) fields                    (postcard)
//! ```
//!
//! The preamble's first byte, `0xC3`, can never begin a gob stream: gob
//! starts with a message length, and a first byte in `0x80..=0xF7` would
//! announce a length of more than eight bytes, which Go rejects. So a server
//! tells the formats apart from the first byte (and `0xC3` is neither a TLS
//! record nor printable text). Each direction of a connection starts with
//! the preamble, and so does the new stream after a
//! [`DecoderRestart`](crate::message::DecoderRestart).
//!
//! FORMAT.md at the repository root specifies the format for other
//! implementations, with golden vectors.
//!
//! Tags, in order: 0 `ClientHello`, 1 `ServerHello`, 2 `Kvs`, 3
//! `SyncStatus`, 4 `Ping`, 5 `Pong`, 6 `DecoderRestart`, 7 `Ack`, 8
//! `Checksum`. The fields
//! follow in the order the message structs declare them, in postcard's
//! encoding (varints for integers, zigzag for signed ones, length-prefixed
//! strings and byte strings, `0`/`1` for options and booleans, a varint
//! variant index for enums). A `Kvs` body is a varint count followed by that
//! many updates; an update's value is an option of a byte string, its
//! revision an enum whose variant index is the Go type (see
//! [`Revision`](crate::message::Revision) for the order).
//!
//! # Compatibility
//!
//! Postcard is not self-describing, so the format only ever grows at the
//! end: new message tags and new enum variants are appended, and a peer only
//! sends them after the other side's hello announced a
//! [`protocol_version`](crate::message::ClientHello::protocol_version) that
//! knows them. The hellos themselves may grow new trailing fields, which
//! older decoders skip; every other message must fill its frame exactly.

pub(crate) mod body;
mod decoder;
mod encoder;
mod kvs;
mod varint;

pub use decoder::NativeDecoder;
pub use encoder::NativeEncoder;

/// The native protocol version this crate speaks, sent in both hellos.
/// Version 2 added the hellos' `supports_checksum` and the `Checksum`
/// message (tag 8); see FORMAT.md.
pub const NATIVE_PROTOCOL_VERSION: u32 = 2;

/// The framing version in the preamble's last byte.
pub const FRAMING_VERSION: u8 = 1;

/// The magic bytes that open every native stream, before the framing version.
pub const MAGIC: [u8; 7] = *b"\xC3SYNCPR";

/// The whole preamble: [`MAGIC`] then [`FRAMING_VERSION`].
pub const PREAMBLE: [u8; 8] = *b"\xC3SYNCPR\x01";

/// A frame length prefix is a `u32` varint: at most five bytes.
const MAX_LENGTH_PREFIX_LEN: usize = 5;

#[cfg(test)]
mod kvs_tests;
#[cfg(test)]
mod tests;
