//! Property tests of the gob codec: every message round-trips through
//! this crate's encoder and decoder, whatever the input splits, and the
//! decoder refuses what it must.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::gob_bytes::{
    ack_value_body, gob_int, gob_uint, put_message, slice_of_string_definition,
};

use bytes::{BufMut, BytesMut};
use common::strategies::{as_received, message, split_points};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::codec::gob::{GobDecoder, GobEncoder, GobError, GobLimits};
use syncproto::codec::{
    Direction, MAX_UPDATES_PER_MESSAGE, StreamDecoder, StreamEncoder, WireFormat,
};
use syncproto::message::{ClientHello, CompressionAlgorithm, Message, SerializedUpdate};
use syncproto::{DecodeError, message::MessageKind};

fn encode(messages: &[Message]) -> BytesMut {
    let mut encoder = GobEncoder::new(usize::MAX);
    let mut out = BytesMut::new();
    for message in messages {
        encoder.encode(message, &mut out).unwrap();
    }
    out
}

fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Message> {
    common::pieces::decode_in_pieces(&mut GobDecoder::new(GobLimits::default()), stream, cuts)
}

/// What a message looks like after a trip through gob: the protocol version
/// exists only in the native hellos.
fn through_gob(message: &Message) -> Message {
    match as_received(message) {
        Message::ClientHello(mut hello) => {
            hello.protocol_version = 0;
            Message::ClientHello(hello)
        }
        Message::ServerHello(mut hello) => {
            hello.protocol_version = 0;
            Message::ServerHello(hello)
        }
        other => other,
    }
}

/// Messages other than `DecoderRestart`, which would restart the decoder
/// where the encoder did not.
fn not_a_restart() -> impl Strategy<Value = Message> {
    message().prop_filter("no restarts", |m| !matches!(m, Message::DecoderRestart(_)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let stream = encode(std::slice::from_ref(&message));
        prop_assert_eq!(decode_in_pieces(&stream, &[]), vec![through_gob(&message)]);
    }

    #[test]
    fn chunking_does_not_change_what_is_decoded(
        messages in vec(message(), 1..8),
        seeds in vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let stream = encode(&messages);
        let cuts = split_points(stream.len(), &seeds);
        let expected: Vec<Message> = messages.iter().map(through_gob).collect();
        prop_assert_eq!(decode_in_pieces(&stream, &cuts), expected);
    }

    #[test]
    fn compressed_streams_round_trip_across_restarts(
        before in vec(not_a_restart(), 0..4),
        after in vec(not_a_restart(), 0..4),
        format in prop_oneof![Just(WireFormat::Gob), Just(WireFormat::Native)],
        seeds in vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let restart = Message::DecoderRestart(syncproto::message::DecoderRestart {
            message: "switch".into(),
            compression_algorithm: Some(syncproto::message::CompressionAlgorithm::Snappy),
        });
        let mut encoder = StreamEncoder::new(format, usize::MAX);
        let mut stream = BytesMut::new();
        for message in &before {
            encoder.encode(message, &mut stream).unwrap();
        }
        encoder.encode(&restart, &mut stream).unwrap();
        encoder.restart(true);
        for message in &after {
            encoder.encode(message, &mut stream).unwrap();
        }
        let mut decoder = StreamDecoder::new(format, usize::MAX, None).following_restarts();
        let cuts = split_points(stream.len(), &seeds);
        let decoded = common::pieces::decode_in_pieces(&mut decoder, &stream, &cuts);
        let normalise = |m: &Message| if format == WireFormat::Gob { through_gob(m) } else { as_received(m) };
        let expected: Vec<Message> =
            before.iter().chain([&restart]).chain(after.iter()).map(normalise).collect();
        prop_assert_eq!(decoded, expected);
    }
}

/// Go omits an empty byte slice like every zero field, and decodes its
/// absence as nil: an empty value travels exactly as a deletion does.
#[test]
fn an_empty_value_travels_as_a_deletion() {
    let empty = SerializedUpdate::upsert("/calico/v1/config/Empty", Vec::new(), "1");
    let deletion = SerializedUpdate {
        value: None,
        ..empty.clone()
    };
    let stream = encode(&[Message::Kvs(vec![empty])]);
    assert_eq!(
        &stream[..],
        &encode(&[Message::Kvs(vec![deletion.clone()])])[..]
    );
    assert_eq!(
        decode_in_pieces(&stream, &[]),
        vec![Message::Kvs(vec![deletion])]
    );
}

#[test]
fn decoded_updates_keep_only_what_they_hold() {
    // A small value is copied out of its message; a large one that is most
    // of its message is shared with it.
    for (len, shared) in [(4096, false), (200 * 1024, true)] {
        let update = SerializedUpdate::upsert("/calico/v1/config/Big", vec![b'x'; len], "1");
        let mut stream = encode(&[Message::Kvs(vec![update])]);
        let input = stream.as_ptr_range();
        let decoded = GobDecoder::new(GobLimits::default())
            .decode(&mut stream)
            .unwrap();
        let Some(Message::Kvs(updates)) = decoded else {
            panic!("{decoded:?}")
        };
        let value = updates[0].value.as_ref().unwrap();
        assert_eq!(input.contains(&value.as_ptr()), shared, "{len}");
        assert!(!input.contains(&updates[0].key.as_ptr()), "key shared");
    }
}

#[test]
fn oversize_messages_are_refused_from_their_length() {
    let mut decoder = GobDecoder::new(GobLimits {
        max_message_len: 1000,
        ..GobLimits::default()
    });
    // uint 1001 = fe 03 e9, and nothing of the body yet.
    let mut stream = BytesMut::from(&[0xfe, 0x03, 0xe9][..]);
    assert_eq!(
        decoder.decode(&mut stream),
        Err(DecodeError::FrameTooLarge {
            len: 1001,
            max: 1000
        })
    );
    assert_eq!(decoder.decode(&mut stream), Err(DecodeError::Failed));
}

#[test]
fn truncated_streams_are_reported_at_end_of_stream() {
    let stream = encode(&[Message::Ack]);
    for cut in 1..stream.len() {
        let mut decoder = GobDecoder::new(GobLimits::default());
        let mut partial = BytesMut::from(&stream[..cut]);
        let result = decoder.decode_eof(&mut partial);
        assert!(
            matches!(result, Err(DecodeError::Truncated { .. })),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn a_server_decoder_refuses_server_messages_before_decoding_them() {
    let stream = encode(&[Message::Kvs(vec![SerializedUpdate::upsert(
        "/k",
        vec![0; 100],
        "1",
    )])]);
    let mut decoder = GobDecoder::for_server();
    assert_eq!(
        decoder.decode(&mut stream.clone()),
        Err(DecodeError::WrongDirection(MessageKind::Kvs))
    );
    assert_eq!(
        GobDecoder::for_server().direction(),
        Some(Direction::ClientToServer)
    );
}

/// A stream holding one hand-made message body after our definitions.
fn with_body(body: &[u8]) -> BytesMut {
    let mut stream = encode(&[Message::Ack]);
    stream.put_u8(body.len() as u8);
    stream.put_slice(body);
    stream
}

fn decode_all(mut stream: BytesMut) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = GobDecoder::new(GobLimits::default());
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut stream)? {
        out.push(message);
    }
    Ok(out)
}

#[test]
fn malformed_streams_are_refused_with_the_reason() {
    let gob = |error| Err(DecodeError::Gob(error));
    // A definition for a predefined id.
    assert_eq!(
        decode_all(with_body(&[0x03, 0x01, 0x00])),
        gob(GobError::BadTypeId(2))
    );
    // A value of an undefined user type (id 100, int 200: ff c8).
    assert_eq!(
        decode_all(with_body(&[0xff, 0xc8, 0x01])),
        gob(GobError::UnknownType(100))
    );
    // A top-level basic value is not an Envelope.
    assert_eq!(
        decode_all(with_body(&[0x0c, 0x00, 0x01, b'x'])),
        gob(GobError::NotAnEnvelope)
    );
    // A zero-length message.
    assert_eq!(decode_all(with_body(&[])), gob(GobError::EmptyMessage));
    // An integer announcing nine bytes.
    assert_eq!(decode_all(with_body(&[0xf7])), gob(GobError::BadUint(0xf7)));
    // An Envelope (id 65, int 130: ff 82) whose interface names an
    // unregistered type.
    let mut unregistered = vec![0xff, 0x82, 0x01, 0x05];
    unregistered.extend_from_slice(b"MsgXY");
    assert_eq!(
        decode_all(with_body(&unregistered)),
        gob(GobError::UnregisteredName("MsgXY".into()))
    );
    // An Envelope with a nil message.
    assert_eq!(
        decode_all(with_body(&[0xff, 0x82, 0x01, 0x00, 0x00])),
        gob(GobError::NilMessage)
    );
    // A field delta past the Envelope's single field.
    assert_eq!(
        decode_all(with_body(&[0xff, 0x82, 0x02])),
        gob(GobError::FieldOutOfRange)
    );
}

#[test]
fn interface_names_over_1024_bytes_are_refused() {
    let mut decoder = GobDecoder::new(GobLimits::default());
    let mut stream = encode(&[Message::Ack]);
    let mut body = vec![0xff, 0x82, 0x01, 0xfe, 0x04, 0x01];
    body.extend(std::iter::repeat_n(b'a', 1025));
    stream.put_slice(&[0xfe, (body.len() >> 8) as u8, body.len() as u8]);
    stream.put_slice(&body);
    let mut out = Vec::new();
    let error = loop {
        match decoder.decode(&mut stream) {
            Ok(Some(message)) => out.push(message),
            Ok(None) => panic!("incomplete"),
            Err(error) => break error,
        }
    };
    assert_eq!(error, DecodeError::Gob(GobError::NameTooLong(1025)));
}

#[test]
fn too_many_type_definitions_are_refused() {
    // Our own stream defines 13 types; then define slices of string as
    // ids 100.. until the limit of 20 trips.
    let mut stream = encode(&[Message::Ack]);
    for id in 100..120u8 {
        // int(-id) is (id - 1) << 1 | 1, over 127 so sent as ff <byte>; then
        // wireType{SliceT: sliceType{Elem: string}}.
        let body = [0xff, ((id - 1) << 1) | 1, 0x02, 0x02, 0x0c, 0x00, 0x00];
        stream.put_u8(body.len() as u8);
        stream.put_slice(&body);
    }
    let mut decoder = GobDecoder::new(GobLimits {
        max_types: 20,
        ..GobLimits::default()
    });
    assert_eq!(decoder.decode(&mut stream), Ok(Some(Message::Ack)));
    assert_eq!(
        decoder.decode(&mut stream),
        Err(DecodeError::Gob(GobError::TooManyTypes { max: 20 }))
    );
}

/// Regression (fuzz target `differential`): gob carries a float32 as a
/// float64, which quiets a signalling NaN; the revision must still compare
/// equal to what native carries bit for bit.
#[test]
fn a_signalling_nan_revision_survives_gob_as_nan() {
    let signalling = f32::from_bits(0x7f80_0001);
    let update =
        SerializedUpdate::upsert("`", "x", syncproto::message::Revision::Float32(signalling));
    let message = Message::Kvs(vec![update]);
    let stream = encode(std::slice::from_ref(&message));
    assert_eq!(decode_in_pieces(&stream, &[]), vec![message]);
}

fn first_error(decoder: &mut GobDecoder, stream: &mut BytesMut) -> DecodeError {
    loop {
        match decoder.decode(stream) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream decoded without an error"),
            Err(error) => return error,
        }
    }
}

#[test]
fn a_value_may_not_continue_into_the_next_message_without_a_definition() {
    let (body, name_end) = ack_value_body();
    let mut definitions = BytesMut::new();
    GobEncoder::for_server().start_stream(&mut definitions);
    // Whole, the value decodes.
    let mut whole = definitions.clone();
    put_message(&mut whole, &body);
    assert_eq!(decode_all(whole), Ok(vec![Message::Ack]));
    // Cut after the interface's name, as Go's encoder never cuts it (it
    // cuts only after a type definition), it is refused.
    let mut split = definitions;
    put_message(&mut split, &body[..name_end]);
    put_message(&mut split, &body[name_end..]);
    assert_eq!(
        decode_all(split),
        Err(DecodeError::Gob(GobError::UnexpectedEnd))
    );
}

/// An `Ack` value cut after its interface name: its first message ends
/// with a type definition, each of the next `more` messages holds one more
/// definition, and the last message carries the rest of the value.
fn ack_split_by_definitions(more: i64) -> BytesMut {
    let (body, name_end) = ack_value_body();
    let mut stream = BytesMut::new();
    GobEncoder::for_server().start_stream(&mut stream);
    let mut first = body[..name_end].to_vec();
    first.extend(slice_of_string_definition(200));
    put_message(&mut stream, &first);
    for id in 201..201 + more {
        put_message(&mut stream, &slice_of_string_definition(id));
    }
    put_message(&mut stream, &body[name_end..]);
    stream
}

#[test]
fn a_value_split_by_too_many_definitions_is_refused() {
    // The value would span 34 messages.
    let mut stream = ack_split_by_definitions(32);
    let mut decoder = GobDecoder::new(GobLimits::default());
    assert!(matches!(
        first_error(&mut decoder, &mut stream),
        DecodeError::Gob(GobError::ValueTooLarge {
            messages: 33,
            max_messages: 32,
            ..
        })
    ));
}

#[test]
fn a_value_split_by_a_few_definitions_decodes() {
    assert_eq!(
        decode_all(ack_split_by_definitions(1)),
        Ok(vec![Message::Ack])
    );
}

#[test]
fn type_definitions_past_their_byte_budget_are_refused() {
    let mut stream = encode(&[Message::Ack]);
    for id in 100..400 {
        put_message(&mut stream, &slice_of_string_definition(id));
    }
    let mut decoder = GobDecoder::new(GobLimits {
        max_types: 1000,
        max_definition_bytes: 2048,
        ..GobLimits::default()
    });
    assert_eq!(
        first_error(&mut decoder, &mut stream),
        DecodeError::Gob(GobError::DefinitionsTooLarge { max: 2048 })
    );
}

#[test]
fn struct_fields_cut_off_by_the_end_of_the_message_are_refused() {
    // wireType{StructT: structType{Field: [2]fieldType}} where the first
    // field (an empty name, unterminated) uses up the message: the second
    // would take no bytes at all.
    let mut body = gob_int(-100);
    body.extend([0x03, 0x02, 0x02, 0x01, 0x00]);
    let mut stream = encode(&[Message::Ack]);
    put_message(&mut stream, &body);
    assert_eq!(
        decode_all(stream),
        Err(DecodeError::Gob(GobError::UnexpectedEnd))
    );
}

/// Decodes `message` as a client and a server would, from a stream our
/// encoder wrote.
fn decode_from_encoder(message: &Message) -> Result<Vec<Message>, DecodeError> {
    decode_all(encode_with_header(message))
}

fn encode_with_header(message: &Message) -> BytesMut {
    let mut stream = BytesMut::new();
    let mut encoder = GobEncoder::new(usize::MAX);
    encoder.start_stream(&mut stream);
    encoder.encode(message, &mut stream).unwrap();
    stream
}

/// `message`, which holds `max` of something, as a peer would send it with
/// one more: the encoder refuses to write that, so the count it wrote
/// (found as `gob_uint(max)` followed by `first`, the first item's bytes)
/// is raised by one in place. Counts of the same encoded length keep the
/// rest of the stream valid up to where the decoder must stop.
fn claiming_one_more(message: &Message, max: usize, first: &[u8]) -> BytesMut {
    let mut stream = encode_with_header(message);
    let mut marker = gob_uint(max as u64);
    let count_len = marker.len();
    assert_eq!(gob_uint(max as u64 + 1).len(), count_len);
    marker.extend_from_slice(first);
    let at = stream
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("the count is in the stream");
    stream[at + count_len - 1] += 1;
    stream
}

#[test]
fn a_kvs_message_over_the_update_limit_is_refused() {
    let updates = |count: usize| Message::Kvs(vec![SerializedUpdate::deletion("", "1"); count]);
    let at_limit = updates(MAX_UPDATES_PER_MESSAGE);
    assert!(decode_from_encoder(&at_limit).is_ok());
    // An update's encoding opens with the delta to its first field sent.
    let over = claiming_one_more(&at_limit, MAX_UPDATES_PER_MESSAGE, &[]);
    assert_eq!(
        decode_all(over),
        Err(DecodeError::TooManyUpdates {
            count: MAX_UPDATES_PER_MESSAGE as u64 + 1,
            max: MAX_UPDATES_PER_MESSAGE,
        })
    );
}

#[test]
fn a_hello_offering_too_many_compression_algorithms_is_refused() {
    let at_limit = Message::ClientHello(ClientHello {
        supported_compression_algorithms: vec![CompressionAlgorithm::Snappy; 16],
        ..ClientHello::default()
    });
    assert!(decode_from_encoder(&at_limit).is_ok());
    match decode_all(claiming_one_more(&at_limit, 16, b"\x06snappy")) {
        Err(DecodeError::MalformedBody { message, reason }) => {
            assert_eq!(message, MessageKind::ClientHello);
            assert!(reason.contains("17 compression algorithms"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_decoder_stays_failed_after_an_error() {
    for format in [WireFormat::Gob, WireFormat::Native] {
        let restart = Message::DecoderRestart(syncproto::message::DecoderRestart {
            message: String::new(),
            compression_algorithm: Some(CompressionAlgorithm::Other("zstd".into())),
        });
        let mut stream = BytesMut::new();
        let mut encoder = StreamEncoder::new(format, usize::MAX);
        encoder.encode(&restart, &mut stream).unwrap();
        encoder.encode(&Message::Ack, &mut stream).unwrap();
        let mut decoder = StreamDecoder::new(format, usize::MAX, None).following_restarts();
        // The restart itself decodes; following it to an unknown algorithm
        // fails, and the Ack behind it is never handed out.
        assert!(matches!(
            decoder.decode(&mut stream),
            Err(DecodeError::Restart(_))
        ));
        assert_eq!(decoder.decode(&mut stream), Err(DecodeError::Failed));
        assert_eq!(decoder.decode_eof(&mut stream), Err(DecodeError::Failed));
    }
}
