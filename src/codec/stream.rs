//! Whole connection streams: a decoder and an encoder for whichever wire
//! format a connection speaks, optionally behind snappy compression, and
//! restartable at a `DecoderRestart`. The connection machines use them; so
//! can tools that read or write captured streams.

use bytes::BytesMut;

use super::borrowed::once;
use super::gob::{GobDecoder, GobEncoder, GobLimits};
use super::native::{NativeDecoder, NativeEncoder};
use super::snappy::{ChunkDecoder, ChunkEncoder};
use super::{Direction, WireFormat};
use crate::error::{DecodeError, ProtocolError, UsageError};
use crate::message::{CompressionAlgorithm, Message, MessageRef};

#[derive(Debug, Clone)]
enum FormatDecoder {
    Native(NativeDecoder),
    Gob(GobDecoder),
}

impl FormatDecoder {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self {
            FormatDecoder::Native(decoder) => decoder.decode(src),
            FormatDecoder::Gob(decoder) => decoder.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self {
            FormatDecoder::Native(decoder) => decoder.decode_eof(src),
            FormatDecoder::Gob(decoder) => decoder.decode_eof(src),
        }
    }

    fn decode_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        match self {
            FormatDecoder::Native(decoder) => decoder.decode_visiting(src, visit),
            FormatDecoder::Gob(decoder) => decoder.decode_visiting(src, visit),
        }
    }

    fn decode_eof_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        match self {
            FormatDecoder::Native(decoder) => decoder.decode_eof_visiting(src, visit),
            FormatDecoder::Gob(decoder) => decoder.decode_eof_visiting(src, visit),
        }
    }
}

/// What the stream decoder's borrowing path got from a format decoder: a
/// `KVs` message already handed to the caller, or any other message, owned,
/// not yet handed over (a restart is applied first).
enum Step<T> {
    Visited(T),
    Owned(Message),
}

/// The decompression in front of a decoder: raw chunks are taken off the
/// input one at a time, only when the decoder needs more plain bytes, so
/// the input past a restart point is never consumed by the old stream.
#[derive(Debug, Clone)]
struct Decompression {
    chunks: ChunkDecoder,
    plain: BytesMut,
}

/// Decodes one direction of a connection in its wire format, across
/// decoder restarts and into compressed streams.
///
/// A restart is applied by [`restart`](Self::restart) (what a client machine
/// does after validating it), or automatically when built with
/// [`following_restarts`](Self::following_restarts) (what a tool reading a
/// capture wants).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    format: WireFormat,
    max_message_len: usize,
    direction: Option<Direction>,
    decoder: FormatDecoder,
    decompression: Option<Decompression>,
    follow_restarts: bool,
    /// An error was returned: the stream is out of step for good.
    failed: bool,
    /// The work of the decoders replaced at restarts.
    retired_work: u64,
}

impl StreamDecoder {
    /// A decoder for a stream in `format` whose messages are at most
    /// `max_message_len` bytes, accepting only messages that travel in
    /// `direction` (any, if `None`).
    pub fn new(
        format: WireFormat,
        max_message_len: usize,
        direction: Option<Direction>,
    ) -> StreamDecoder {
        StreamDecoder {
            format,
            max_message_len,
            direction,
            decoder: Self::fresh(format, max_message_len, direction),
            decompression: None,
            follow_restarts: false,
            failed: false,
            retired_work: 0,
        }
    }

    /// Applies every `DecoderRestart` as soon as it is decoded (after
    /// returning it), instead of waiting for [`restart`](Self::restart).
    pub fn following_restarts(mut self) -> StreamDecoder {
        self.follow_restarts = true;
        self
    }

    fn fresh(
        format: WireFormat,
        max_message_len: usize,
        direction: Option<Direction>,
    ) -> FormatDecoder {
        match format {
            WireFormat::Native => {
                let decoder = NativeDecoder::new(max_message_len);
                FormatDecoder::Native(match direction {
                    Some(direction) => decoder.accepting(direction),
                    None => decoder,
                })
            }
            WireFormat::Gob => {
                let decoder = GobDecoder::new(GobLimits {
                    max_message_len,
                    ..GobLimits::default()
                });
                FormatDecoder::Gob(match direction {
                    Some(direction) => decoder.accepting(direction),
                    None => decoder,
                })
            }
        }
    }

    /// The wire format being decoded.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// Bytes held inside: decompressed bytes not yet decoded, and a gob
    /// value's messages while it is incomplete. (What is left of an
    /// incomplete message or chunk stays in the caller's buffer.)
    pub fn buffered(&self) -> usize {
        let decoder = match &self.decoder {
            FormatDecoder::Native(_) => 0,
            FormatDecoder::Gob(decoder) => decoder.buffered(),
        };
        let plain = self
            .decompression
            .as_ref()
            .map_or(0, |decompression| decompression.plain.len());
        decoder + plain
    }

    /// The bytes parsed so far, by this decoder and those it replaced at
    /// restarts, decompression included, counting every re-parse: the
    /// decoding work, for tests and fuzzing that check it stays linear in
    /// the input.
    pub fn work(&self) -> u64 {
        let decoder = match &self.decoder {
            FormatDecoder::Native(decoder) => decoder.work(),
            FormatDecoder::Gob(decoder) => decoder.work(),
        };
        let chunks = self
            .decompression
            .as_ref()
            .map_or(0, |decompression| decompression.chunks.work());
        self.retired_work + decoder + chunks
    }

    /// Takes the next complete message off the front of `src` (the raw
    /// bytes of the connection), as the format decoders do: `Ok(None)` until
    /// a whole message has arrived, and bytes past it left in `src`.
    ///
    /// After an error every call returns [`DecodeError::Failed`].
    ///
    /// Updates come out owned and detached from the input (see
    /// [`SerializedUpdate`](crate::message::SerializedUpdate)): for
    /// applications that keep them. To apply each update and drop it,
    /// [`decode_borrowed`](Self::decode_borrowed) is cheaper.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        if self.failed {
            return Err(DecodeError::Failed);
        }
        let result = self.decode_following(src);
        self.failed = result.is_err();
        result
    }

    fn decode_following(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let message = self.decode_next(src)?;
        if let Some(message) = &message {
            self.follow(message)?;
        }
        Ok(message)
    }

    /// Applies `message` if it is a restart and restarts are followed.
    fn follow(&mut self, message: &Message) -> Result<(), DecodeError> {
        if self.follow_restarts
            && let Message::DecoderRestart(restart) = message
        {
            self.restart(restart.compression_algorithm.as_ref())
                .map_err(|error| DecodeError::Restart(Box::new(error)))?;
        }
        Ok(())
    }

    /// Like [`decode`](Self::decode), but hands the message to
    /// `on_message` and returns what it returns: a `KVs` message's updates
    /// as [`SerializedUpdateRef`](crate::message::SerializedUpdateRef)s
    /// borrowing the decoder's input (`src`, or the decompressed bytes),
    /// without an allocation or a reference count per update; any other
    /// message owned.
    ///
    /// For consumers that apply each update and drop it (a relay, a
    /// checksum, a tool counting or printing a capture): the owning
    /// [`decode`](Self::decode) copies every key, value and string out of
    /// the input, which is what an application that keeps updates wants,
    /// and wasted work for one that does not. Copy out what must outlive the
    /// callback ([`to_update`](crate::message::SerializedUpdateRef::to_update)).
    ///
    /// Every input decodes, and fails, exactly as with [`decode`](Self::decode),
    /// leaving the same bytes in `src`, across restarts and compression;
    /// `on_message` is called only for a whole, valid message, and a
    /// restart being followed is applied before it is handed over.
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
        let mut visit = once(on_message);
        if let Some(visited) = self.decode_visiting(src, &mut visit)? {
            return Ok(visited);
        }
        let result = match &mut self.decompression {
            None => self.decoder.decode_eof_visiting(src, &mut visit),
            Some(decompression) if src.is_empty() => self
                .decoder
                .decode_eof_visiting(&mut decompression.plain, &mut visit),
            Some(_) => Err(DecodeError::Truncated {
                buffered: src.len(),
            }),
        };
        self.failed = result.is_err();
        result.map(Option::flatten)
    }

    fn decode_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        if self.failed {
            return Err(DecodeError::Failed);
        }
        let result = self.decode_following_visiting(src, visit);
        self.failed = result.is_err();
        result
    }

    fn decode_following_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let step =
            self.decode_next_visiting(src, &mut |message: MessageRef<'_>| match message {
                MessageRef::Kvs(_) => Step::Visited(visit(message)),
                MessageRef::Other(message) => Step::Owned(message),
            })?;
        match step {
            None => Ok(None),
            Some(Step::Visited(visited)) => Ok(Some(visited)),
            Some(Step::Owned(message)) => {
                self.follow(&message)?;
                Ok(Some(visit(MessageRef::Other(message))))
            }
        }
    }

    fn decode_next_visiting<T>(
        &mut self,
        src: &mut BytesMut,
        visit: &mut impl FnMut(MessageRef<'_>) -> T,
    ) -> Result<Option<T>, DecodeError> {
        let Some(decompression) = &mut self.decompression else {
            return self.decoder.decode_visiting(src, visit);
        };
        loop {
            if let Some(visited) = self
                .decoder
                .decode_visiting(&mut decompression.plain, visit)?
            {
                return Ok(Some(visited));
            }
            if !decompression
                .chunks
                .decode_chunk(src, &mut decompression.plain)?
            {
                return Ok(None);
            }
        }
    }

    fn decode_next(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let Some(decompression) = &mut self.decompression else {
            return self.decoder.decode(src);
        };
        loop {
            if let Some(message) = self.decoder.decode(&mut decompression.plain)? {
                return Ok(Some(message));
            }
            if !decompression
                .chunks
                .decode_chunk(src, &mut decompression.plain)?
            {
                return Ok(None);
            }
        }
    }

    /// Like [`decode`](Self::decode), for when `src` is all that will ever
    /// arrive: a message left incomplete is [`DecodeError::Truncated`].
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        if let Some(message) = self.decode(src)? {
            return Ok(Some(message));
        }
        let result = match &mut self.decompression {
            None => self.decoder.decode_eof(src),
            Some(decompression) if src.is_empty() => {
                self.decoder.decode_eof(&mut decompression.plain)
            }
            Some(_) => Err(DecodeError::Truncated {
                buffered: src.len(),
            }),
        };
        self.failed = result.is_err();
        result
    }

    /// Replaces the decoder with a fresh one for the stream that starts
    /// right after a `DecoderRestart`, behind a decompressor if one is
    /// named. Call right after `decode` returned the restart; the bytes
    /// still in the input are the new stream's.
    pub fn restart(
        &mut self,
        compression: Option<&CompressionAlgorithm>,
    ) -> Result<(), ProtocolError> {
        if self
            .decompression
            .as_ref()
            .is_some_and(|decompression| !decompression.plain.is_empty())
        {
            return Err(ProtocolError::DataAfterRestart);
        }
        let work_so_far = self.work();
        self.decompression = match compression {
            None => None,
            Some(CompressionAlgorithm::Snappy) => Some(Decompression {
                chunks: ChunkDecoder::new(),
                plain: BytesMut::new(),
            }),
            Some(other) => {
                return Err(ProtocolError::UnsupportedCompression(
                    other.as_str().to_owned(),
                ));
            }
        };
        self.decoder = Self::fresh(self.format, self.max_message_len, self.direction);
        self.retired_work = work_so_far;
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum FormatEncoder {
    Native(NativeEncoder),
    Gob(GobEncoder),
}

impl FormatEncoder {
    fn stream_started(&self) -> bool {
        match self {
            FormatEncoder::Native(encoder) => encoder.stream_started(),
            FormatEncoder::Gob(encoder) => encoder.stream_started(),
        }
    }

    fn mark_stream_started(&mut self) {
        match self {
            FormatEncoder::Native(encoder) => encoder.mark_stream_started(),
            FormatEncoder::Gob(encoder) => encoder.mark_stream_started(),
        }
    }
}

/// Encodes one direction of a connection in its wire format, optionally
/// compressed, restartable after a `DecoderRestart`.
#[derive(Debug, Clone)]
pub struct StreamEncoder {
    format: WireFormat,
    max_message_len: usize,
    encoder: FormatEncoder,
    compression: Option<ChunkEncoder>,
    scratch: BytesMut,
}

impl StreamEncoder {
    /// An encoder for `format` that refuses messages over
    /// `max_message_len` bytes (what the peer accepts).
    pub fn new(format: WireFormat, max_message_len: usize) -> StreamEncoder {
        StreamEncoder {
            format,
            max_message_len,
            encoder: Self::fresh(format, max_message_len),
            compression: None,
            scratch: BytesMut::new(),
        }
    }

    fn fresh(format: WireFormat, max_message_len: usize) -> FormatEncoder {
        match format {
            WireFormat::Native => FormatEncoder::Native(NativeEncoder::new(max_message_len)),
            WireFormat::Gob => FormatEncoder::Gob(GobEncoder::new(max_message_len)),
        }
    }

    /// Appends `message` to `dst` (compressed, when the stream is). Fails
    /// when the message is more than a peer accepts: over the frame limit
    /// ([`UsageError::FrameTooLarge`]) or carrying too many updates or
    /// compression algorithms ([`UsageError::OverPeerLimit`]). On error
    /// nothing is appended.
    pub fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), UsageError> {
        self.write(dst, |encoder, target| match encoder {
            FormatEncoder::Native(encoder) => encoder.encode(message, target),
            FormatEncoder::Gob(encoder) => encoder.encode(message, target),
        })
    }

    /// Writes the stream's header now (the native preamble or the gob type
    /// definitions, behind the snappy stream identifier when compressed) if
    /// it has not been written: for callers that append pre-encoded frames
    /// after this encoder's output.
    pub fn start_stream(&mut self, dst: &mut BytesMut) {
        // A fresh compressed stream starts with the same bytes on every
        // connection: copy them rather than compress the header again.
        if let Some(compression) = &mut self.compression
            && compression.at_stream_start()
            && !self.encoder.stream_started()
        {
            dst.extend_from_slice(super::prebuilt::compressed_stream_start(self.format));
            compression.identifier_written();
            self.encoder.mark_stream_started();
            return;
        }
        let _infallible = self.write(dst, |encoder, target| {
            match encoder {
                FormatEncoder::Native(encoder) => encoder.start_stream(target),
                FormatEncoder::Gob(encoder) => encoder.start_stream(target),
            }
            Ok(())
        });
    }

    /// Runs `produce` on the format encoder, straight into `dst`, or into
    /// scratch space compressed into `dst` when the stream is compressed.
    fn write(
        &mut self,
        dst: &mut BytesMut,
        produce: impl FnOnce(&mut FormatEncoder, &mut BytesMut) -> Result<(), UsageError>,
    ) -> Result<(), UsageError> {
        let Some(compression) = &mut self.compression else {
            return produce(&mut self.encoder, dst);
        };
        self.scratch.clear();
        produce(&mut self.encoder, &mut self.scratch)?;
        compression.encode(&self.scratch, dst);
        Ok(())
    }

    /// Starts a new stream (call after encoding a `DecoderRestart`): a fresh
    /// encoder, behind a fresh snappy compressor when `compressed`.
    pub fn restart(&mut self, compressed: bool) {
        self.compression = compressed.then(ChunkEncoder::new);
        self.encoder = Self::fresh(self.format, self.max_message_len);
    }
}
