//! Feeding a stream to a decoder in pieces, whichever decoder it is.

use bytes::BytesMut;
use syncproto::codec::StreamDecoder;
use syncproto::codec::gob::GobDecoder;
use syncproto::codec::native::NativeDecoder;
use syncproto::{DecodeError, Message};

/// The decoders' shared shape (tokio-util style).
pub trait Decode {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError>;
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError>;
}

macro_rules! decode_impl {
    ($($decoder:ty),*) => {$(
        impl Decode for $decoder {
            fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
                <$decoder>::decode(self, src)
            }
            fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
                <$decoder>::decode_eof(self, src)
            }
        }
    )*};
}

decode_impl!(NativeDecoder, GobDecoder, StreamDecoder);

/// Feeds `stream` to `decoder` in the pieces the cut points make, decoding
/// everything available after each piece; the stream must end cleanly.
pub fn decode_in_pieces(decoder: &mut impl Decode, stream: &[u8], cuts: &[usize]) -> Vec<Message> {
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        while let Some(message) = decoder.decode(&mut buffer).expect("decodes") {
            decoded.push(message);
        }
    }
    assert_eq!(
        decoder.decode_eof(&mut buffer),
        Ok(None),
        "stream ended mid-message"
    );
    assert!(buffer.is_empty(), "{} bytes left undecoded", buffer.len());
    decoded
}
