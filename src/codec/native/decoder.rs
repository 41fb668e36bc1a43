//! The native stream decoder: preamble, then length-prefixed frames.

use bytes::{Buf, BytesMut};

use super::varint::{self, VarintRead};
use super::{FRAMING_VERSION, MAGIC, MAX_LENGTH_PREFIX_LEN, PREAMBLE, body, kvs};
use crate::codec::borrowed::{Decoded, once};
use crate::codec::read_ahead::Buffered;
use crate::codec::{DEFAULT_MAX_CLIENT_MESSAGE_LEN, DEFAULT_MAX_SERVER_MESSAGE_LEN, Direction};
use crate::error::DecodeError;
use crate::message::{Message, MessageRef};

/// Where the decoder is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the preamble.
    Preamble,
    /// Waiting for (the rest of) a frame's length prefix.
    Header,
    /// The length prefix said this many body bytes follow.
    Body(usize),
    /// An error was returned; the stream is out of step.
    Failed,
}

/// Decodes a native-format byte stream into [`Message`]s.
///
/// Shaped like a tokio-util `Decoder`: feed it the connection's read buffer
/// and it takes complete frames off the front, leaving partial input in
/// place for the next call, so input may be split at any byte boundary.
/// Nothing is reserved for a frame before its bytes arrive, and a frame
/// longer than the configured maximum is refused from its length prefix.
#[derive(Debug, Clone)]
pub struct NativeDecoder {
    state: State,
    max_frame_len: usize,
    direction: Option<Direction>,
    /// Bytes parsed so far.
    work: u64,
}

impl NativeDecoder {
    /// A decoder that refuses frames longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> NativeDecoder {
        NativeDecoder {
            state: State::Preamble,
            max_frame_len,
            direction: None,
            work: 0,
        }
    }

    /// Refuses messages that never travel in `direction` (by their tag,
    /// before their bodies are decoded).
    pub fn accepting(mut self, direction: Direction) -> NativeDecoder {
        self.direction = Some(direction);
        self
    }

    /// A decoder for a server reading what a client sends (client messages
    /// only), with upstream's 1 MiB limit ([`DEFAULT_MAX_CLIENT_MESSAGE_LEN`]).
    pub fn for_server() -> NativeDecoder {
        NativeDecoder::new(DEFAULT_MAX_CLIENT_MESSAGE_LEN).accepting(Direction::ClientToServer)
    }

    /// A decoder for a client reading what a server sends (server messages
    /// only)
    /// ([`DEFAULT_MAX_SERVER_MESSAGE_LEN`]).
    pub fn for_client() -> NativeDecoder {
        NativeDecoder::new(DEFAULT_MAX_SERVER_MESSAGE_LEN).accepting(Direction::ServerToClient)
    }

    /// The largest frame body this decoder accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The bytes this decoder has parsed so far, counting every re-parse:
    /// its work, for tests and fuzzing that check it stays linear in the
    /// input. A frame's body is parsed once, when it is whole; an
    /// incomplete one costs only a look at its length prefix.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Takes the next complete message off the front of `src`.
    ///
    /// Call with the connection's accumulated input after each read.
    /// Returns `Ok(None)` when `src` holds no complete frame yet (what it
    /// does hold stays in `src`), and `Ok(Some(_))` for each complete
    /// message, which is removed from `src`: call again until `None`. Once
    /// an error is returned the stream cannot be resynchronised and every
    /// later call returns [`DecodeError::Failed`].
    ///
    /// Updates come out owned and detached from the input (see
    /// [`SerializedUpdate`](crate::message::SerializedUpdate)): for
    /// applications that keep them. To apply each update and drop it,
    /// [`decode_borrowed`](Self::decode_borrowed) is cheaper.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let result = self.decode_owned(src);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn decode_owned(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let Some(len) = self.next_frame(src)? else {
            return Ok(None);
        };
        let buffered = Buffered::of(src.len());
        let frame = src.split_to(len).freeze();
        body::decode(&frame, self.direction, buffered).map(Some)
    }

    /// Like [`decode`](Self::decode), but hands the message to
    /// `on_message` and returns what it returns: a `KVs` message's updates
    /// as [`SerializedUpdateRef`](crate::message::SerializedUpdateRef)s
    /// borrowing the frame in `src`, without an allocation or a reference
    /// count per update, any other message owned.
    ///
    /// For consumers that apply each update and drop it (a relay, a
    /// checksum, a tool counting or printing a capture); copy out what
    /// must outlive the callback. Every input decodes, and fails, as with
    /// [`decode`](Self::decode), and leaves the same bytes in `src`;
    /// `on_message` is called only for a whole, valid message.
    pub fn decode_borrowed<R>(
        &mut self,
        src: &mut BytesMut,
        on_message: impl FnOnce(MessageRef<'_>) -> R,
    ) -> Result<Option<R>, DecodeError> {
        self.decode_visiting(src, &mut once(on_message))
            .map(Option::flatten)
    }

    /// [`decode_borrowed`](Self::decode_borrowed) with a callback that may
    /// be called again: what the stream decoder drives.
    pub(crate) fn decode_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let result = self.decode_in_place(src, visit);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn decode_in_place<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let Some(len) = self.next_frame(src)? else {
            return Ok(None);
        };
        let buffered = Buffered::of(src.len());
        let frame = &src[..len];
        let visited = match body::decode_body(frame, self.direction) {
            Ok(body::Body::Kvs(body)) => kvs::decode_kvs(body, buffered, |update| update)
                .map(|updates| Decoded::Kvs(updates).visit(&mut *visit)),
            Ok(body::Body::Other(message)) => Ok(visit(MessageRef::Other(message))),
            Err(error) => Err(error),
        };
        // Consumed whether it decoded or not, as `decode` does.
        src.advance(len);
        visited.map(Some)
    }

    /// Like [`decode`](Self::decode), for when the peer has closed its side
    /// and `src` is all that will ever arrive: a partial frame left over is
    /// a [`DecodeError::Truncated`] error rather than `Ok(None)`.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let decoded = self.decode(src)?;
        self.at_eof(src, decoded)
    }

    /// Like [`decode_borrowed`](Self::decode_borrowed), for when `src` is
    /// all that will ever arrive, as [`decode_eof`](Self::decode_eof).
    pub fn decode_eof_borrowed<R>(
        &mut self,
        src: &mut BytesMut,
        on_message: impl FnOnce(MessageRef<'_>) -> R,
    ) -> Result<Option<R>, DecodeError> {
        self.decode_eof_visiting(src, &mut once(on_message))
            .map(Option::flatten)
    }

    /// [`decode_eof_borrowed`](Self::decode_eof_borrowed) with a callback
    /// that may be called again.
    pub(crate) fn decode_eof_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let decoded = self.decode_visiting(src, visit)?;
        self.at_eof(src, decoded)
    }

    /// What a decode at the end of the input returns: `decoded`, or an
    /// error if nothing was and a partial frame is left.
    fn at_eof<T>(&mut self, src: &BytesMut, decoded: Option<T>) -> Result<Option<T>, DecodeError> {
        match decoded {
            Some(message) => Ok(Some(message)),
            None if src.is_empty() && self.is_at_frame_boundary() => Ok(None),
            None => {
                self.state = State::Failed;
                Err(DecodeError::Truncated {
                    buffered: src.len(),
                })
            }
        }
    }

    /// Whether the decoder is between frames with no partial input pending:
    /// the only place where a clean end of stream may occur.
    pub fn is_at_frame_boundary(&self) -> bool {
        matches!(self.state, State::Preamble | State::Header)
    }

    /// Reads up to the next whole frame: its length once `src` starts with
    /// all of it (the caller takes it off), `None` until then.
    fn next_frame(&mut self, src: &mut BytesMut) -> Result<Option<usize>, DecodeError> {
        loop {
            match self.state {
                State::Failed => return Err(DecodeError::Failed),
                State::Preamble => {
                    if !self.take_preamble(src)? {
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
                State::Header => {
                    if !self.take_header(src)? {
                        return Ok(None);
                    }
                }
                State::Body(len) => {
                    if src.len() < len {
                        return Ok(None);
                    }
                    self.work += len as u64;
                    self.state = State::Header;
                    return Ok(Some(len));
                }
            }
        }
    }

    /// Reads a frame's length prefix once it has arrived whole: consumes it
    /// and moves on to the body (refused from its length if too long);
    /// `false` while it is incomplete.
    fn take_header(&mut self, src: &mut BytesMut) -> Result<bool, DecodeError> {
        self.work += src.len().min(MAX_LENGTH_PREFIX_LEN) as u64;
        match varint::read(src, MAX_LENGTH_PREFIX_LEN) {
            VarintRead::Incomplete => Ok(false),
            VarintRead::Malformed => Err(DecodeError::MalformedLength),
            VarintRead::Done(len, prefix_len) => {
                // The error is built only when refused: `ok_or` built and
                // dropped one on every frame, which showed up in profiles.
                let Some(len) = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= self.max_frame_len)
                else {
                    return Err(DecodeError::FrameTooLarge {
                        len,
                        max: self.max_frame_len,
                    });
                };
                let _prefix = src.split_to(prefix_len);
                self.state = State::Body(len);
                Ok(true)
            }
        }
    }

    /// Checks (as much as has arrived of) the preamble; consumes it and
    /// returns `true` once it is complete and valid.
    fn take_preamble(&mut self, src: &mut BytesMut) -> Result<bool, DecodeError> {
        let seen = src.len().min(MAGIC.len());
        self.work += seen as u64 + 1;
        if src[..seen] != MAGIC[..seen] {
            return Err(DecodeError::BadPreamble {
                expected: &PREAMBLE,
                found: src[..src.len().min(PREAMBLE.len())].to_vec(),
            });
        }
        let Some(&version) = src.get(MAGIC.len()) else {
            return Ok(false);
        };
        if version != FRAMING_VERSION {
            return Err(DecodeError::UnsupportedFramingVersion(version));
        }
        let _preamble = src.split_to(PREAMBLE.len());
        Ok(true)
    }
}
