//! The seam between the connection machines and the wire formats: a decoder
//! and an encoder for whichever format a connection speaks, restartable at a
//! `DecoderRestart`.

use bytes::BytesMut;

use crate::codec::WireFormat;
use crate::codec::native::{NativeDecoder, NativeEncoder};
use crate::error::{DecodeError, ProtocolError, UsageError};
use crate::message::{CompressionAlgorithm, Message};

const GOB_NOT_YET: UsageError =
    UsageError::InvalidConfig("the gob wire format is not implemented yet");

/// Decodes a connection's input in its wire format.
#[derive(Debug)]
pub(crate) enum StreamDecoder {
    Native(NativeDecoder),
}

impl StreamDecoder {
    pub(crate) fn new(
        format: WireFormat,
        max_message_len: usize,
    ) -> Result<StreamDecoder, UsageError> {
        match format {
            WireFormat::Native => Ok(StreamDecoder::Native(NativeDecoder::new(max_message_len))),
            WireFormat::Gob => Err(GOB_NOT_YET),
        }
    }

    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        match self {
            StreamDecoder::Native(decoder) => decoder.decode(src),
        }
    }

    pub(crate) fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Message>, DecodeError> {
        match self {
            StreamDecoder::Native(decoder) => decoder.decode_eof(src),
        }
    }

    /// Replaces the decoder with a fresh one for the stream that starts right
    /// after a `DecoderRestart`, behind a decompressor if one is named.
    pub(crate) fn restart(
        &mut self,
        compression: Option<&CompressionAlgorithm>,
    ) -> Result<(), ProtocolError> {
        if let Some(algorithm) = compression {
            return Err(ProtocolError::UnsupportedCompression(
                algorithm.as_str().to_owned(),
            ));
        }
        *self = match self {
            StreamDecoder::Native(decoder) => {
                StreamDecoder::Native(NativeDecoder::new(decoder.max_frame_len()))
            }
        };
        Ok(())
    }
}

/// Encodes a connection's output in its wire format.
#[derive(Debug)]
pub(crate) enum StreamEncoder {
    Native(NativeEncoder),
}

impl StreamEncoder {
    pub(crate) fn new(
        format: WireFormat,
        max_message_len: usize,
    ) -> Result<StreamEncoder, UsageError> {
        match format {
            WireFormat::Native => Ok(StreamEncoder::Native(NativeEncoder::new(max_message_len))),
            WireFormat::Gob => Err(GOB_NOT_YET),
        }
    }

    pub(crate) fn encode(
        &mut self,
        message: &Message,
        dst: &mut BytesMut,
    ) -> Result<(), UsageError> {
        match self {
            StreamEncoder::Native(encoder) => encoder.encode(message, dst),
        }
    }
}
