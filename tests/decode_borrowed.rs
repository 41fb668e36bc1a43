//! The borrowing decode API (`decode_borrowed`, `decode_eof_borrowed`)
//! against the owning one (`decode`, `decode_eof`), on every decoder: fed
//! the same input in the same pieces, both give the same messages (the
//! borrowed ones copied out by `to_message`), fail at the same call with
//! the same error, and leave the same bytes in the caller's buffer after
//! every call. Inputs are valid streams (both formats, with restarts into
//! and out of snappy compression) and the same streams truncated, with
//! bytes flipped, inserted or removed.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::{Bytes, BytesMut};
use common::sessions::encode_sessions;
use common::strategies::{message, split_points, update};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::Message;
use syncproto::codec::gob::{GobDecoder, GobLimits};
use syncproto::codec::native::NativeDecoder;
use syncproto::codec::{Direction, StreamDecoder, StreamEncoder, WireFormat};
use syncproto::error::DecodeError;
use syncproto::message::{CompressionAlgorithm, DecoderRestart, MessageRef};

/// One decode call's outcome, comparable across the two APIs.
type Outcome = Result<Option<Message>, DecodeError>;

/// Every call made while decoding an input: its outcome and the bytes left
/// in the buffer after it.
type Trace = Vec<(Outcome, Vec<u8>)>;

/// The two APIs of one decoder.
trait Apis {
    fn owning(&mut self, src: &mut BytesMut, eof: bool) -> Outcome;
    fn borrowing(&mut self, src: &mut BytesMut, eof: bool) -> Outcome;
}

/// Runs a borrowing call, checking that the callback is called exactly
/// once when a message is returned and never otherwise.
fn counted(
    call: impl FnOnce(&mut dyn FnMut(MessageRef<'_>) -> Message) -> Result<Option<Message>, DecodeError>,
) -> Outcome {
    let mut calls = 0;
    let outcome = call(&mut |message| {
        calls += 1;
        message.to_message()
    });
    let expected = usize::from(matches!(outcome, Ok(Some(_))));
    assert_eq!(calls, expected, "callback calls for {outcome:?}");
    outcome
}

macro_rules! apis {
    ($decoder:ty) => {
        impl Apis for $decoder {
            fn owning(&mut self, src: &mut BytesMut, eof: bool) -> Outcome {
                match eof {
                    true => self.decode_eof(src),
                    false => self.decode(src),
                }
            }

            fn borrowing(&mut self, src: &mut BytesMut, eof: bool) -> Outcome {
                counted(|visit| match eof {
                    true => self.decode_eof_borrowed(src, visit),
                    false => self.decode_borrowed(src, visit),
                })
            }
        }
    };
}

apis!(StreamDecoder);
apis!(NativeDecoder);
apis!(GobDecoder);

/// Feeds `input` in the pieces `cuts` make, decoding after each until a
/// call returns no message, then at the end decodes as at end of input
/// until it does; stops at the first error (after one more call, which
/// must say the decoder failed).
fn trace(decoder: &mut impl Apis, borrowing: bool, input: &[u8], cuts: &[usize]) -> Trace {
    let call = |decoder: &mut _, src: &mut BytesMut, eof| match borrowing {
        true => Apis::borrowing(decoder, src, eof),
        false => Apis::owning(decoder, src, eof),
    };
    let mut trace = Trace::new();
    let mut src = BytesMut::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([input.len()]) {
        src.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            let outcome = call(decoder, &mut src, false);
            let go_on = matches!(outcome, Ok(Some(_)));
            let failed = outcome.is_err();
            trace.push((outcome, src.to_vec()));
            if failed {
                trace.push((call(decoder, &mut src, false), src.to_vec()));
                return trace;
            }
            if !go_on {
                break;
            }
        }
    }
    loop {
        let outcome = call(decoder, &mut src, true);
        let go_on = matches!(outcome, Ok(Some(_)));
        trace.push((outcome, src.to_vec()));
        if !go_on {
            return trace;
        }
    }
}

/// Asserts that both APIs of decoders made by `fresh` trace `input` alike.
fn same_trace<D: Apis>(fresh: impl Fn() -> D, input: &[u8], cuts: &[usize]) -> Trace {
    let owned = trace(&mut fresh(), false, input, cuts);
    let borrowed = trace(&mut fresh(), true, input, cuts);
    assert_eq!(borrowed.len(), owned.len(), "calls made");
    for (index, (borrowed, owned)) in borrowed.iter().zip(&owned).enumerate() {
        assert_eq!(borrowed.0, owned.0, "outcome of call {index}");
        assert_eq!(borrowed.1, owned.1, "bytes left after call {index}");
    }
    owned
}

/// Any message but a restart (the sessions place those), now and then a
/// batch holding a value large enough that the owning API shares it with
/// its frame rather than copying it.
fn session_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        12 => message().prop_filter("restarts are placed between sessions", |message| {
            !matches!(message, Message::DecoderRestart(_))
        }),
        1 => (update(), 64usize * 1024..100 * 1024, vec(update(), 0..3)).prop_map(
            |(mut large, len, mut others)| {
                large.value = Some(Bytes::from(vec![b'v'; len]));
                others.insert(0, large);
                Message::Kvs(others)
            }
        ),
    ]
}

fn sessions() -> impl Strategy<Value = Vec<(bool, Vec<Message>)>> {
    vec((any::<bool>(), vec(session_message(), 0..5)), 1..4)
}

/// What is done to a valid stream before decoding it.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate(prop::sample::Index),
    Flip(Vec<(prop::sample::Index, u8)>),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::None),
        2 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        3 => vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Mutation::Flip),
        1 => (any::<prop::sample::Index>(), vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<prop::sample::Index>(), 1..16usize)
            .prop_map(|(at, count)| Mutation::Remove(at, count)),
    ]
}

fn mutate(mut stream: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    if stream.is_empty() {
        return stream;
    }
    match mutation {
        Mutation::None => {}
        Mutation::Truncate(at) => stream.truncate(at.index(stream.len())),
        Mutation::Flip(flips) => {
            for (at, mask) in flips {
                let at = at.index(stream.len());
                stream[at] ^= mask;
            }
        }
        Mutation::Insert(at, bytes) => {
            let at = at.index(stream.len() + 1);
            stream.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove(at, count) => {
            let at = at.index(stream.len());
            let end = (at + count).min(stream.len());
            stream.drain(at..end);
        }
    }
    stream
}

fn stream_decoder(format: WireFormat, direction: Option<Direction>) -> StreamDecoder {
    StreamDecoder::new(format, 1 << 20, direction).following_restarts()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Stream decoders following restarts, into and out of compression,
    /// on valid and damaged streams, in any pieces.
    #[test]
    fn stream_decoders_borrow_what_they_own(
        sessions in sessions(),
        gob in any::<bool>(),
        server_side in any::<bool>(),
        mutation in mutation(),
        seeds in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let format = if gob { WireFormat::Gob } else { WireFormat::Native };
        let stream = mutate(encode_sessions(format, &[], &sessions), &mutation);
        let cuts = split_points(stream.len(), &seeds);
        let direction = server_side.then_some(Direction::ServerToClient);
        let trace = same_trace(|| stream_decoder(format, direction), &stream, &cuts);
        if matches!(mutation, Mutation::None) && !server_side {
            // A valid stream decodes whole: one message per message sent
            // and per restart, then a clean end.
            let sent: usize = sessions.iter().map(|(_, messages)| messages.len()).sum();
            let decoded = trace.iter().filter(|(outcome, _)| matches!(outcome, Ok(Some(_)))).count();
            prop_assert_eq!(decoded, sent + sessions.len() - 1);
            prop_assert!(matches!(trace.last(), Some((Ok(None), rest)) if rest.is_empty()));
        }
    }

    /// The format decoders on their own (no restarts followed: the bytes
    /// after one are another stream, which they refuse alike).
    #[test]
    fn format_decoders_borrow_what_they_own(
        messages in vec(session_message(), 0..6),
        mutation in mutation(),
        seeds in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        for format in [WireFormat::Native, WireFormat::Gob] {
            let stream = mutate(encode_sessions(format, &[], &[(false, messages.clone())]), &mutation);
            let cuts = split_points(stream.len(), &seeds);
            match format {
                WireFormat::Native => {
                    same_trace(|| NativeDecoder::new(1 << 20), &stream, &cuts);
                }
                WireFormat::Gob => {
                    same_trace(
                        || GobDecoder::new(GobLimits { max_message_len: 1 << 20, ..GobLimits::default() }),
                        &stream,
                        &cuts,
                    );
                }
            }
        }
    }
}

/// A restart to an algorithm the decoder does not know fails both APIs
/// alike, at the restart (which neither hands over).
#[test]
fn an_unknown_compression_fails_both_apis_alike() {
    for format in [WireFormat::Native, WireFormat::Gob] {
        let mut encoder = StreamEncoder::new(format, usize::MAX);
        let mut stream = BytesMut::new();
        let restart = Message::DecoderRestart(DecoderRestart {
            message: "next".into(),
            compression_algorithm: Some(CompressionAlgorithm::from_wire("zstd")),
        });
        encoder.encode(&Message::Ack, &mut stream).unwrap();
        encoder.encode(&restart, &mut stream).unwrap();
        let trace = same_trace(|| stream_decoder(format, None), &stream, &[]);
        let outcomes: Vec<_> = trace.into_iter().map(|(outcome, _)| outcome).collect();
        assert!(
            matches!(
                &outcomes[..],
                [
                    Ok(Some(Message::Ack)),
                    Err(DecodeError::Restart(_)),
                    Err(DecodeError::Failed)
                ]
            ),
            "{format:?}: {outcomes:?}"
        );
    }
}
