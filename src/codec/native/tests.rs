//! Unit tests of the native format: exact bytes and every rejection.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::codec::{MAX_COMPRESSION_ALGORITHMS, MAX_UPDATES_PER_MESSAGE};
use crate::error::{DecodeError, UsageError};
use crate::message::{
    ClientHello, Message, MessageKind, Ping, Revision, SerializedUpdate, SyncStatus, Timestamp,
};

fn encode_all(messages: &[Message]) -> BytesMut {
    let mut encoder = NativeEncoder::for_server();
    let mut out = BytesMut::new();
    for message in messages {
        encoder.encode(message, &mut out).unwrap();
    }
    out
}

/// A stream holding the preamble and one frame with the given body.
fn stream_with_body(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::from(&PREAMBLE[..]);
    varint::write(&mut out, body.len() as u64);
    out.put_slice(body);
    out
}

/// Decodes one message, accepting either direction.
fn decode_one(mut stream: BytesMut) -> Result<Option<Message>, DecodeError> {
    NativeDecoder::new(crate::codec::DEFAULT_MAX_SERVER_MESSAGE_LEN).decode(&mut stream)
}

#[test]
fn sync_status_frame_bytes() {
    let wire = encode_all(&[Message::SyncStatus(SyncStatus::InSync)]);
    assert_eq!(&wire[..], b"\xC3SYNCPR\x01\x02\x03\x02");
}

#[test]
fn kvs_frame_bytes() {
    let update = SerializedUpdate::upsert("/k", "v", "7");
    let wire = encode_all(&[Message::Kvs(vec![update])]);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0xC3, b'S', b'Y', b'N', b'C', b'P', b'R', 0x01, // preamble
        0x0e,                                           // frame length 14
        0x02,                                           // tag: Kvs
        0x01,                                           // one update
        0x02, b'/', b'k',                               // key
        0x01, 0x01, b'v',                               // value: Some, 1 byte
        0x01, 0x01, b'7',                               // revision: String "7"
        0x00,                                           // v3 resource version ""
        0x00,                                           // ttl 0
        0x02,                                           // update type Updated
    ];
    assert_eq!(&wire[..], expected);
}

#[test]
fn preamble_is_written_once() {
    let wire = encode_all(&[Message::Ack, Message::Ack]);
    assert_eq!(&wire[..], b"\xC3SYNCPR\x01\x01\x07\x01\x07");
}

#[test]
fn decoded_updates_keep_only_what_they_hold() {
    // A small value is copied out of its frame; a large one that is most
    // of its frame is shared with it.
    for (len, shared) in [(4096, false), (200 * 1024, true)] {
        let value = Bytes::from(vec![b'x'; len]);
        let update = SerializedUpdate::upsert("/calico/v1/Ready", value.clone(), "1");
        let mut stream = encode_all(&[Message::Kvs(vec![update])]);
        let input_range = stream.as_ptr_range();
        let message = NativeDecoder::for_client().decode(&mut stream).unwrap();
        let Some(Message::Kvs(updates)) = message else {
            panic!("expected Kvs, got {message:?}");
        };
        let decoded = updates[0].value.as_ref().unwrap();
        assert_eq!(decoded, &value);
        assert_eq!(input_range.contains(&decoded.as_ptr()), shared, "{len}");
        assert!(
            !input_range.contains(&updates[0].key.as_ptr()),
            "key shared"
        );
    }
}

#[test]
fn oversize_frame_is_refused_from_its_length_prefix() {
    let mut decoder = NativeDecoder::new(1000);
    let mut stream = BytesMut::from(&PREAMBLE[..]);
    varint::write(&mut stream, 1001);
    // Only the prefix has arrived: the refusal must not wait for the body.
    assert_eq!(
        decoder.decode(&mut stream),
        Err(DecodeError::FrameTooLarge {
            len: 1001,
            max: 1000
        })
    );
    assert!(stream.capacity() < 1001, "buffer grew for a refused frame");
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let update = SerializedUpdate::upsert("/k", vec![0u8; 100], "1");
    let stream = encode_all(&[Message::Kvs(vec![update])]);
    let frame_len = stream.len() - PREAMBLE.len() - 1;
    let mut decoder = NativeDecoder::new(frame_len);
    assert!(decoder.decode(&mut stream.clone()).unwrap().is_some());
    let mut decoder = NativeDecoder::new(frame_len - 1);
    assert!(matches!(
        decoder.decode(&mut stream.clone()),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn huge_claimed_length_is_refused_without_allocation() {
    let mut stream = BytesMut::from(&PREAMBLE[..]);
    varint::write(&mut stream, u64::from(u32::MAX));
    assert_eq!(
        decode_one(stream),
        Err(DecodeError::FrameTooLarge {
            len: u64::from(u32::MAX),
            max: crate::codec::DEFAULT_MAX_SERVER_MESSAGE_LEN
        })
    );
}

#[test]
fn malformed_length_prefix_is_rejected() {
    let mut stream = BytesMut::from(&PREAMBLE[..]);
    stream.put_slice(&[0x80; 5]);
    assert_eq!(decode_one(stream), Err(DecodeError::MalformedLength));
}

#[test]
fn truncated_frames_are_reported_at_end_of_stream() {
    let full = encode_all(&[Message::Ping(Ping {
        timestamp: Timestamp::from_unix(1_700_000_000, 1).unwrap(),
    })]);
    for cut in 1..full.len() {
        if cut == PREAMBLE.len() {
            // A stream that holds only the preamble ended cleanly.
            let mut decoder = NativeDecoder::for_client();
            let mut partial = BytesMut::from(&full[..cut]);
            assert_eq!(decoder.decode_eof(&mut partial), Ok(None));
            continue;
        }
        let mut decoder = NativeDecoder::for_client();
        let mut partial = BytesMut::from(&full[..cut]);
        assert_eq!(decoder.decode(&mut partial), Ok(None), "cut at {cut}");
        assert!(
            matches!(
                decoder.decode_eof(&mut partial),
                Err(DecodeError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    let mut decoder = NativeDecoder::for_client();
    let mut whole = full.clone();
    assert!(decoder.decode_eof(&mut whole).unwrap().is_some());
    assert_eq!(decoder.decode_eof(&mut whole), Ok(None));
    assert!(decoder.is_at_frame_boundary());
}

#[test]
fn bad_preamble_is_rejected_on_the_first_wrong_byte() {
    // The first bytes of an upstream gob stream.
    let gob = BytesMut::from(&[0x22u8, 0xff, 0x81][..]);
    assert_eq!(
        decode_one(gob),
        Err(DecodeError::BadPreamble {
            expected: &PREAMBLE,
            found: vec![0x22, 0xff, 0x81]
        })
    );
    let partial_magic = BytesMut::from(&b"\xC3SY"[..]);
    assert_eq!(decode_one(partial_magic), Ok(None));
    let wrong_later = BytesMut::from(&b"\xC3SYNX"[..]);
    assert!(matches!(
        decode_one(wrong_later),
        Err(DecodeError::BadPreamble { .. })
    ));
}

#[test]
fn unknown_framing_version_is_rejected() {
    let stream = BytesMut::from(&b"\xC3SYNCPR\x02"[..]);
    assert_eq!(
        decode_one(stream),
        Err(DecodeError::UnsupportedFramingVersion(2))
    );
}

#[test]
fn unknown_message_tag_is_rejected() {
    assert_eq!(
        decode_one(stream_with_body(&[9])),
        Err(DecodeError::UnknownMessageTag(9))
    );
    assert_eq!(
        decode_one(stream_with_body(&[0xff, 0x01])),
        Err(DecodeError::UnknownMessageTag(255))
    );
    assert_eq!(
        decode_one(stream_with_body(&[0xff; 11])),
        Err(DecodeError::MalformedTag)
    );
}

#[test]
fn empty_frame_is_rejected() {
    assert_eq!(
        decode_one(stream_with_body(&[])),
        Err(DecodeError::EmptyFrame)
    );
}

#[test]
fn out_of_range_enums_are_rejected() {
    assert_eq!(
        decode_one(stream_with_body(&[3, 3])),
        Err(DecodeError::InvalidSyncStatus(3))
    );
    // One update: key "", value None, revision Nil, "", ttl 0, type 9.
    assert_eq!(
        decode_one(stream_with_body(&[2, 1, 0, 0, 0, 0, 0, 9])),
        Err(DecodeError::InvalidUpdateType(9))
    );
}

#[test]
fn invalid_timestamps_are_rejected() {
    // Ping: go_seconds 0, nanos 1e9 (varint), zone Utc.
    let mut body = vec![4, 0];
    varint::write(&mut body, 1_000_000_000);
    body.push(0);
    assert!(matches!(
        decode_one(stream_with_body(&body)),
        Err(DecodeError::InvalidTimestamp(_))
    ));
    // Ping: zone Fixed(-60 s), which collides with Go's UTC marker.
    let body = [4, 0, 0, 1, 119];
    assert!(matches!(
        decode_one(stream_with_body(&body)),
        Err(DecodeError::InvalidTimestamp(_))
    ));
}

#[test]
fn trailing_bytes_are_rejected_except_in_hellos() {
    assert_eq!(
        decode_one(stream_with_body(&[7, 0])),
        Err(DecodeError::TrailingBytes {
            message: MessageKind::Ack,
            count: 1
        })
    );
    assert_eq!(
        decode_one(stream_with_body(&[3, 2, 0, 0])),
        Err(DecodeError::TrailingBytes {
            message: MessageKind::SyncStatus,
            count: 2
        })
    );
    assert_eq!(
        decode_one(stream_with_body(&[2, 0, 1])),
        Err(DecodeError::TrailingBytes {
            message: MessageKind::Kvs,
            count: 1
        })
    );
    // A newer peer's hello with an extra trailing field still decodes.
    let hello = ClientHello {
        hostname: "node-1".into(),
        ..ClientHello::default()
    };
    let mut wire = encode_all(&[Message::ClientHello(hello.clone())]);
    let frame_len = wire[PREAMBLE.len()];
    wire[PREAMBLE.len()] = frame_len + 2;
    wire.put_slice(&[0x01, 0x2a]);
    assert_eq!(decode_one(wire), Ok(Some(Message::ClientHello(hello))));
}

#[test]
fn malformed_bodies_name_the_message() {
    // Kvs claiming two updates but holding none.
    assert!(matches!(
        decode_one(stream_with_body(&[2, 2])),
        Err(DecodeError::MalformedBody {
            message: MessageKind::Kvs,
            ..
        })
    ));
    // A revision variant index past the last Go type.
    assert!(matches!(
        decode_one(stream_with_body(&[2, 1, 0, 0, 18, 0, 0, 1])),
        Err(DecodeError::MalformedBody {
            message: MessageKind::Kvs,
            ..
        })
    ));
    // A key that is not UTF-8.
    assert!(matches!(
        decode_one(stream_with_body(&[2, 1, 1, 0xff, 0, 0, 0, 0, 1])),
        Err(DecodeError::MalformedBody {
            message: MessageKind::Kvs,
            ..
        })
    ));
}

#[test]
fn an_update_count_over_the_limit_is_refused_before_decoding() {
    let mut body = vec![2];
    varint::write(&mut body, u64::MAX);
    assert_eq!(
        decode_one(stream_with_body(&body)),
        Err(DecodeError::TooManyUpdates {
            count: u64::MAX,
            max: MAX_UPDATES_PER_MESSAGE,
        })
    );
}

#[test]
fn an_update_count_the_bytes_cannot_hold_reserves_nothing() {
    let mut body = vec![2];
    varint::write(&mut body, MAX_UPDATES_PER_MESSAGE as u64);
    assert!(matches!(
        decode_one(stream_with_body(&body)),
        Err(DecodeError::MalformedBody {
            message: MessageKind::Kvs,
            ..
        })
    ));
}

#[test]
fn a_hello_offering_too_many_compression_algorithms_is_refused() {
    let hello = |count: usize| {
        Message::ClientHello(ClientHello {
            supported_compression_algorithms: vec![
                crate::message::CompressionAlgorithm::Snappy;
                count
            ],
            ..ClientHello::default()
        })
    };
    for (count, accepted) in [
        (MAX_COMPRESSION_ALGORITHMS, true),
        (MAX_COMPRESSION_ALGORITHMS + 1, false),
    ] {
        // Past the limit the encoder refuses, so write the body directly.
        let mut body = BytesMut::new();
        super::body::encode(&hello(count), &mut body);
        match decode_one(stream_with_body(&body)) {
            Ok(Some(decoded)) => assert!(accepted, "{count} accepted: {decoded:?}"),
            Err(DecodeError::MalformedBody { message, reason }) => {
                assert!(!accepted, "{count} refused: {reason}");
                assert_eq!(message, MessageKind::ClientHello);
                assert!(reason.contains("compression algorithms"), "{reason}");
            }
            other => panic!("{count}: {other:?}"),
        }
    }
}

#[test]
fn decoder_stays_failed_after_an_error() {
    let mut decoder = NativeDecoder::for_client();
    let mut stream = stream_with_body(&[99]);
    stream.put_slice(&encode_all(&[Message::Ack])[PREAMBLE.len()..]);
    assert_eq!(
        decoder.decode(&mut stream),
        Err(DecodeError::UnknownMessageTag(99))
    );
    assert_eq!(decoder.decode(&mut stream), Err(DecodeError::Failed));
}

#[test]
fn encoder_refuses_frames_over_its_limit_and_writes_nothing() {
    let mut encoder = NativeEncoder::new(16);
    let mut out = BytesMut::new();
    let big = Message::Kvs(vec![SerializedUpdate::upsert(
        "/k",
        vec![0u8; 64],
        Revision::Nil,
    )]);
    assert!(matches!(
        encoder.encode(&big, &mut out),
        Err(UsageError::FrameTooLarge {
            message: MessageKind::Kvs,
            max: 16,
            ..
        })
    ));
    assert!(out.is_empty());
    // The preamble is still owed to the first message that fits.
    encoder.encode(&Message::Ack, &mut out).unwrap();
    assert_eq!(&out[..], b"\xC3SYNCPR\x01\x01\x07");
}

#[test]
fn each_side_refuses_the_other_sides_messages_by_tag() {
    let mut kvs = encode_all(&[Message::Kvs(vec![SerializedUpdate::upsert("/k", "v", "1")])]);
    assert_eq!(
        NativeDecoder::for_server().decode(&mut kvs),
        Err(DecodeError::WrongDirection(MessageKind::Kvs))
    );
    let mut hello = encode_all(&[Message::ClientHello(ClientHello::default())]);
    assert_eq!(
        NativeDecoder::for_client().decode(&mut hello),
        Err(DecodeError::WrongDirection(MessageKind::ClientHello))
    );
    let mut ack = encode_all(&[Message::Ack]);
    assert_eq!(
        NativeDecoder::for_server().decode(&mut ack),
        Ok(Some(Message::Ack))
    );
}
