//! Property tests of the native codec: every message round-trips, and the
//! decoder's output does not depend on how the input is split.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::BytesMut;
use common::strategies::{as_received, message, split_points};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use syncproto::Message;
use syncproto::codec::native::{NativeDecoder, NativeEncoder};

fn encode(messages: &[Message]) -> BytesMut {
    let mut encoder = NativeEncoder::for_server();
    let mut out = BytesMut::new();
    for message in messages {
        encoder.encode(message, &mut out).unwrap();
    }
    out
}

/// Decodes `stream` fed in the pieces the cut points make (both
/// directions' messages are generated, so either is accepted).
fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Message> {
    let mut decoder = NativeDecoder::new(syncproto::codec::DEFAULT_MAX_SERVER_MESSAGE_LEN);
    common::pieces::decode_in_pieces(&mut decoder, stream, cuts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let stream = encode(std::slice::from_ref(&message));
        prop_assert_eq!(decode_in_pieces(&stream, &[]), vec![as_received(&message)]);
    }

    #[test]
    fn reencoding_a_decoded_stream_gives_the_same_bytes(messages in vec(message(), 0..6)) {
        let stream = encode(&messages);
        let decoded = decode_in_pieces(&stream, &[]);
        prop_assert_eq!(&encode(&decoded)[..], &stream[..]);
    }

    #[test]
    fn chunking_does_not_change_what_is_decoded(
        messages in vec(message(), 1..8),
        seeds in vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let stream = encode(&messages);
        let whole = decode_in_pieces(&stream, &[]);
        let cuts = split_points(stream.len(), &seeds);
        prop_assert_eq!(decode_in_pieces(&stream, &cuts), whole.clone());
        prop_assert_eq!(whole, messages.iter().map(as_received).collect::<Vec<_>>());
    }
}

#[test]
fn input_fed_one_byte_at_a_time_decodes_like_the_whole() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..64 {
        let messages = vec(message(), 1..6)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let stream = encode(&messages);
        let every_byte: Vec<usize> = (1..stream.len()).collect();
        let expected: Vec<Message> = messages.iter().map(as_received).collect();
        assert_eq!(decode_in_pieces(&stream, &every_byte), expected);
    }
}
