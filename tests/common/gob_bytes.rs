//! Gob bytes written by hand, for tests of what Go's encoder would (or
//! never would) send.

use bytes::{BufMut, BytesMut};
use syncproto::Message;
use syncproto::codec::gob::GobEncoder;

/// A gob `int` (zig-zag, then as a `uint`).
pub fn gob_int(value: i64) -> Vec<u8> {
    let unsigned = if value < 0 {
        (!(value as u64) << 1) | 1
    } else {
        (value as u64) << 1
    };
    gob_uint(unsigned)
}

/// A gob `uint`: one byte below 128, else the negated byte count and the
/// big-endian bytes.
pub fn gob_uint(value: u64) -> Vec<u8> {
    if value < 0x80 {
        return vec![value as u8];
    }
    let bytes: Vec<u8> = value
        .to_be_bytes()
        .into_iter()
        .skip_while(|byte| *byte == 0)
        .collect();
    let mut out = vec![(bytes.len() as u8).wrapping_neg()];
    out.extend(bytes);
    out
}

/// Appends one gob message: its length, then `body`.
pub fn put_message(stream: &mut BytesMut, body: &[u8]) {
    stream.put_slice(&gob_uint(body.len() as u64));
    stream.put_slice(body);
}

/// The definition of type `id` as `[]string`, filling its message.
pub fn slice_of_string_definition(id: i64) -> Vec<u8> {
    named_slice_of_string_definition(id, "")
}

/// The definition of type `id` as `[]string` named `name` (so as long as
/// the caller wants), filling its message.
pub fn named_slice_of_string_definition(id: i64, name: &str) -> Vec<u8> {
    let mut body = gob_int(-id);
    // wireType{SliceT: sliceType{CommonType{Name}, Elem: string (id 6)}}
    body.push(0x02);
    if !name.is_empty() {
        body.extend([0x01, 0x01]);
        body.extend(gob_uint(name.len() as u64));
        body.extend(name.as_bytes());
        body.extend([0x00, 0x01, 0x0c, 0x00, 0x00]);
    } else {
        body.extend([0x02, 0x0c, 0x00, 0x00]);
    }
    body
}

/// The body of the value message our encoder writes for an Ack, and where
/// its interface's type name ends.
pub fn ack_value_body() -> (Vec<u8>, usize) {
    let mut definitions = BytesMut::new();
    GobEncoder::for_server().start_stream(&mut definitions);
    let mut stream = BytesMut::new();
    let mut encoder = GobEncoder::new(usize::MAX);
    encoder.encode(&Message::Ack, &mut stream).unwrap();
    let value = &stream[definitions.len()..];
    // One message: a one-byte length, then the body.
    let body = value[1..].to_vec();
    assert_eq!(usize::from(value[0]), body.len());
    let name = b"syncproto.MsgACK";
    let name_end = body
        .windows(name.len())
        .position(|window| window == name)
        .expect("the Ack value names its type")
        + name.len();
    (body, name_end)
}
