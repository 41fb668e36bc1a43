//! The gob stream decoder: splits the input into gob messages and decodes
//! each top-level `Envelope` into a [`Message`].

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::session::{Limits, Session, Stop, TopLevel};
use super::types::TypeRegistry;
use super::values::decode_envelope;
use super::{GobError, GobLimits};
use crate::codec::Direction;
use crate::codec::borrowed::{Decoded, once};
use crate::codec::read_ahead::Buffered;
use crate::codec::retain::detach_update;
use crate::error::DecodeError;
use crate::message::{Message, MessageRef};

/// The messages a decoded value was read from, which its updates borrow.
type Used<'m> = std::iter::Take<std::collections::vec_deque::Iter<'m, Bytes>>;

/// The most messages one value may span: one more than the new types a
/// value of this protocol can carry, with room to spare.
const MAX_MESSAGES_PER_VALUE: usize = 32;

/// Decodes a gob byte stream, as Go's `gob.Decoder` would, into
/// [`Message`]s.
///
/// Shaped like a tokio-util `Decoder`: feed it the connection's read buffer
/// and it takes complete values off the front, leaving the rest in place, so
/// input may be split at any byte boundary. It interprets the sender's type
/// definitions (whatever ids the sender chose), matches struct fields by
/// name and skips those it does not know. It takes bytes off the input only
/// as far as the value it returns, so after a
/// [`DecoderRestart`](crate::message::DecoderRestart) the bytes of the next
/// stream are still in the buffer for the next decoder.
#[derive(Debug, Clone)]
pub struct GobDecoder {
    types: TypeRegistry,
    /// Whole messages split off the input that the next value needs.
    messages: VecDeque<Bytes>,
    limits: GobLimits,
    direction: Option<Direction>,
    /// Whether type definitions arrived since the last value: like Go, a
    /// stream may not end between definitions and the value they announce.
    definitions_pending: bool,
    /// How many messages were queued when the last attempt found them
    /// incomplete: nothing can change until another one arrives, so they
    /// are not parsed again before (that would make a trickled message cost
    /// a re-parse of everything queued for each of its bytes).
    stalled_at: Option<usize>,
    /// Bytes parsed so far, re-parses included.
    work: u64,
    failed: bool,
}

impl GobDecoder {
    /// A decoder with the given limits that accepts every message kind.
    pub fn new(limits: GobLimits) -> GobDecoder {
        GobDecoder {
            types: TypeRegistry::new(limits.max_types, limits.max_definition_bytes),
            messages: VecDeque::new(),
            limits,
            direction: None,
            definitions_pending: false,
            stalled_at: None,
            work: 0,
            failed: false,
        }
    }

    /// A decoder for a server reading what a client sends: upstream's 1 MiB
    /// message limit, and only client messages accepted.
    pub fn for_server() -> GobDecoder {
        GobDecoder::new(GobLimits::for_server()).accepting(Direction::ClientToServer)
    }

    /// A decoder for a client reading what a server sends.
    pub fn for_client() -> GobDecoder {
        GobDecoder::new(GobLimits::for_client()).accepting(Direction::ServerToClient)
    }

    /// Refuses messages that never travel in `direction` (by their type
    /// name, before their contents are decoded).
    pub fn accepting(mut self, direction: Direction) -> GobDecoder {
        self.direction = Some(direction);
        self
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &GobLimits {
        &self.limits
    }

    /// The direction this decoder accepts, if restricted.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// Bytes held for a value still incomplete: whole messages it spans so
    /// far (at most `max_message_len + max_definition_bytes`; what is left
    /// of an incomplete message stays in the caller's buffer).
    pub fn buffered(&self) -> usize {
        self.messages.iter().map(Bytes::len).sum()
    }

    /// The bytes this decoder has parsed so far, counting every re-parse:
    /// its work, for tests and fuzzing that check it stays linear in the
    /// input. A value split across messages is parsed again as each of
    /// its messages arrives (at most 32 of them), never as bytes trickle in.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Takes the next complete message off the front of `src`.
    ///
    /// Call with the connection's accumulated input after each read.
    /// Returns `Ok(None)` when `src` does not yet hold a complete value, and
    /// `Ok(Some(_))` for each complete message: call again until `None`.
    /// Once an error is returned the stream cannot be resynchronised and
    /// every later call returns [`DecodeError::Failed`].
    ///
    /// Updates come out owned and detached from the input (see
    /// [`SerializedUpdate`](crate::message::SerializedUpdate)): for
    /// applications that keep them. To apply each update and drop it,
    /// [`decode_borrowed`](Self::decode_borrowed) is cheaper.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        self.decode_with(src, &mut owned)
    }

    /// Like [`decode`](Self::decode), but hands the message to
    /// `on_message` and returns what it returns: a `KVs` message's updates
    /// as [`SerializedUpdateRef`](crate::message::SerializedUpdateRef)s
    /// borrowing the input, without an allocation or a reference count per
    /// update, any other message owned.
    ///
    /// For consumers that apply each update and drop it (a relay, a
    /// checksum, a tool counting or printing a capture); copy out what
    /// must outlive the callback. Every input decodes, and fails, as with
    /// [`decode`](Self::decode); `on_message` is called only for a whole,
    /// valid message (a value that spans messages is handed over once all
    /// of them have arrived).
    pub fn decode_borrowed<R>(
        &mut self,
        src: &mut BytesMut,
        on_message: impl FnOnce(MessageRef<'_>) -> R,
    ) -> Result<Option<R>, DecodeError> {
        self.decode_visiting(src, &mut once(on_message))
            .map(Option::flatten)
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

    /// [`decode_borrowed`](Self::decode_borrowed) with a callback that may
    /// be called again: what the stream decoder drives.
    pub(crate) fn decode_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        self.decode_with(src, &mut |decoded: Decoded<'_>, _: Used<'_>| {
            decoded.visit(&mut *visit)
        })
    }

    /// [`decode_eof_borrowed`](Self::decode_eof_borrowed) with a callback
    /// that may be called again.
    pub(crate) fn decode_eof_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        self.decode_eof_with(src, &mut |decoded: Decoded<'_>, _: Used<'_>| {
            decoded.visit(&mut *visit)
        })
    }

    /// Decodes the next message, handing it to `visit` with the messages
    /// it was read from.
    pub(crate) fn decode_with<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(Decoded<'_>, Used<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        if self.failed {
            return Err(DecodeError::Failed);
        }
        let result = self.decode_inner(src, visit);
        if result.is_err() {
            self.failed = true;
            self.messages.clear();
        }
        result
    }

    /// Like [`decode`](Self::decode), for when `src` is all that will ever
    /// arrive: a value left incomplete is a [`DecodeError::Truncated`].
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        self.decode_eof_with(src, &mut owned)
    }

    /// [`decode_with`](Self::decode_with) at the end of the input.
    pub(crate) fn decode_eof_with<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(Decoded<'_>, Used<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        match self.decode_with(src, visit)? {
            Some(message) => Ok(Some(message)),
            None if self.is_at_message_boundary() && src.is_empty() => Ok(None),
            None => {
                self.failed = true;
                let buffered = src.len() + self.messages.iter().map(Bytes::len).sum::<usize>();
                self.messages.clear();
                Err(DecodeError::Truncated { buffered })
            }
        }
    }

    /// Whether the stream may end here: no part of a value is held back
    /// waiting for more input, and no type definitions are waiting for the
    /// value they were sent for.
    pub fn is_at_message_boundary(&self) -> bool {
        self.messages.is_empty() && !self.definitions_pending
    }

    fn decode_inner<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(Decoded<'_>, Used<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        // What the caller handed over: the bytes in `src` now and those
        // already split off into queued messages.
        let buffered = Buffered::of(src.len() + self.buffered());
        loop {
            if !self.messages.is_empty() && self.stalled_at != Some(self.messages.len()) {
                match self.attempt(buffered) {
                    Ok((Some(decoded), used)) => {
                        let count = used.len();
                        let visited = visit(decoded, used);
                        // Only now: the value borrowed them.
                        self.messages.drain(..count);
                        return Ok(Some(visited));
                    }
                    // A type definition was committed: go on.
                    Ok((None, used)) => {
                        let count = used.len();
                        self.messages.drain(..count);
                    }
                    Err(Stop::Incomplete) => self.stalled_at = Some(self.messages.len()),
                    Err(Stop::Error(error)) => return Err(error),
                }
            }
            match self.split_message(src)? {
                Some(message) => {
                    self.check_span(&message)?;
                    self.messages.push_back(message);
                }
                None => return Ok(None),
            }
        }
    }

    /// Decodes what the queued messages hold: a standalone type definition
    /// (committed, `None`) or a value (`Some`), with the messages it was
    /// read from, which the caller drains once done with the value.
    /// Commits nothing unless the whole unit decodes.
    fn attempt(&mut self, buffered: Buffered) -> Result<(Option<Decoded<'_>>, Used<'_>), Stop> {
        let limits = Limits {
            max_depth: self.limits.max_depth,
        };
        let direction = self.direction;
        let GobDecoder {
            types,
            messages,
            definitions_pending,
            stalled_at,
            work,
            ..
        } = self;
        let messages = &*messages;
        *work += messages
            .iter()
            .map(|message| message.len() as u64)
            .sum::<u64>();
        let Some(mut session) = Session::new(messages, types, limits, buffered) else {
            return Err(Stop::Incomplete);
        };
        let outcome = match session.read_top_level()? {
            TopLevel::Definition => None,
            TopLevel::Value(value_type) => {
                Some(decode_envelope(&mut session, value_type, |kind| {
                    direction.is_none_or(|direction| direction.carries(kind))
                })?)
            }
        };
        *definitions_pending = outcome.is_none();
        let used = messages.iter().take(session.messages_used());
        let (staged, staged_bytes) = session.into_staged();
        for (id, wire) in staged {
            types.insert(id, wire);
        }
        types.add_definition_bytes(staged_bytes);
        *stalled_at = None;
        Ok((outcome, used))
    }

    /// Refuses to queue `next` for a value already spanning too much.
    ///
    /// Go's encoder splits a value only after each new type definition it
    /// carries, so a value spans one message more than it has new types.
    /// Every queued message costs a retry of the whole value, so this keeps
    /// both the memory and the work a value can cause bounded.
    fn check_span(&self, next: &Bytes) -> Result<(), DecodeError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let messages = self.messages.len() + 1;
        let bytes = self.messages.iter().map(Bytes::len).sum::<usize>() + next.len();
        let max_bytes = self
            .limits
            .max_message_len
            .saturating_add(self.limits.max_definition_bytes);
        if messages > MAX_MESSAGES_PER_VALUE || bytes > max_bytes {
            return Err(GobError::ValueTooLarge {
                messages,
                bytes,
                max_messages: MAX_MESSAGES_PER_VALUE,
                max_bytes,
            }
            .into());
        }
        Ok(())
    }

    /// Splits the next whole gob message (`uint(length)` then the body) off
    /// the front of `src`, refusing lengths over the limit before buffering
    /// anything for them.
    fn split_message(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        // The length prefix is looked at on every call, complete or not.
        self.work += 1 + src.len().min(8) as u64;
        let (len, prefix) = if first < 0x80 {
            (u64::from(first), 1)
        } else {
            let count = usize::from(first.wrapping_neg());
            if count > 8 {
                return Err(GobError::BadUint(first).into());
            }
            let Some(bytes) = src.get(1..1 + count) else {
                return Ok(None);
            };
            (
                bytes
                    .iter()
                    .fold(0u64, |acc, byte| acc << 8 | u64::from(*byte)),
                1 + count,
            )
        };
        let max = self.limits.max_message_len;
        // The error is built only when refused, not dropped on every
        // message (as `ok_or` did).
        let Some(len) = usize::try_from(len).ok().filter(|len| *len <= max) else {
            return Err(DecodeError::FrameTooLarge { len, max });
        };
        if len == 0 {
            return Err(GobError::EmptyMessage.into());
        }
        if src.len() < prefix + len {
            return Ok(None);
        }
        let _prefix = src.split_to(prefix);
        Ok(Some(src.split_to(len).freeze()))
    }
}

/// The owning API's visitor: the message, its updates detached from the
/// messages they were read from.
fn owned(decoded: Decoded<'_>, used: Used<'_>) -> Message {
    match decoded {
        Decoded::Kvs(updates) => Message::Kvs(
            updates
                .iter()
                .map(|update| detach_update(used.clone(), update))
                .collect(),
        ),
        Decoded::Other(message) => message,
    }
}
