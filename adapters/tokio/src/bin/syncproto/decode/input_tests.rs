//! The reader thread's chunks against a one-shot read: every way of
//! cutting a capture into chunks (messages straddling chunk boundaries,
//! leftovers longer than the headroom, short reads from a pipe) decodes
//! to the same messages and fails with the same message at the same byte.

use std::io::{self, Cursor, Read};
use std::path::Path;

use bytes::BytesMut;
use syncproto::Message;
use syncproto::codec::StreamEncoder;
use syncproto::message::{CompressionAlgorithm, DecoderRestart};

use super::*;

/// What a decode comes to: each message (its `Debug` form), then the
/// failure that ended it, if any.
type Outcome = (Vec<String>, Option<String>);

fn decode_with(capture: &[u8], reader: impl Read + Send + 'static, chunking: Chunking) -> Outcome {
    let mut input = Input::start("capture".to_owned(), reader, chunking);
    let mut messages = Vec::new();
    let result = decode(&mut input, None, |message| {
        messages.push(format!("{message:?}"));
        Ok(())
    });
    if result.is_ok() {
        assert_eq!(input.read, capture.len() as u64);
    }
    (messages, result.err().map(|failure| format!("{failure:?}")))
}

/// The capture read in one chunk.
fn one_shot(capture: &[u8]) -> Outcome {
    let whole = Chunking {
        chunk: capture.len().max(1),
        headroom: 0,
        buffers: 1,
    };
    decode_with(capture, Cursor::new(capture.to_vec()), whole)
}

/// Hands out at most a few bytes per read, a different few each time, as
/// a pipe might.
struct Trickle {
    bytes: Cursor<Vec<u8>>,
    reads: usize,
}

impl Read for Trickle {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let most = [1, 5, 2, 300, 17][self.reads % 5];
        let len = buffer.len().min(most);
        self.bytes.read(&mut buffer[..len])
    }
}

/// Chunkings from a byte at a time to a chunk larger than the capture,
/// headrooms from none (every leftover is joined by copying) to more than
/// any message. Tiny chunks, slow (a channel round trip per byte, and the
/// decoder retrying the message it is in), are tried with one headroom
/// and pool each.
fn chunkings() -> Vec<Chunking> {
    let mut chunkings = vec![
        Chunking {
            chunk: 1,
            headroom: 16,
            buffers: 2,
        },
        Chunking {
            chunk: 3,
            headroom: 0,
            buffers: 1,
        },
    ];
    for chunk in [7, 64, 1000, 1 << 20] {
        for headroom in [0, 100, 1 << 16] {
            for buffers in [1, 3] {
                chunkings.push(Chunking {
                    chunk,
                    headroom,
                    buffers,
                });
            }
        }
    }
    chunkings
}

fn assert_chunkings_agree(name: &str, capture: &[u8]) {
    let expected = one_shot(capture);
    assert!(!expected.0.is_empty() || expected.1.is_some(), "{name}");
    for chunking in chunkings() {
        // A channel round trip every few bytes, in a debug build: only
        // on small captures.
        if chunking.chunk < 64 && capture.len() > 10_000 {
            continue;
        }
        let got = decode_with(capture, Cursor::new(capture.to_vec()), chunking);
        assert_eq!(got, expected, "{name}, {chunking:?}");
    }
    let trickle = Trickle {
        bytes: Cursor::new(capture.to_vec()),
        reads: 0,
    };
    let got = decode_with(capture, trickle, Chunking::DEFAULT);
    assert_eq!(got, expected, "{name}, a trickle");
}

/// A session in `format`, then, when `compressed`, a restart into a
/// snappy-compressed stream of it again.
fn capture(format: WireFormat, compressed: bool) -> Vec<u8> {
    let session = syncproto::synthetic::session(6, 2, 7);
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut stream = BytesMut::new();
    for message in &session {
        encoder.encode(message, &mut stream).unwrap();
    }
    if compressed {
        let restart = Message::DecoderRestart(DecoderRestart {
            message: "compressed from here".into(),
            compression_algorithm: Some(CompressionAlgorithm::Snappy),
        });
        encoder.encode(&restart, &mut stream).unwrap();
        encoder.restart(true);
        for message in &session {
            encoder.encode(message, &mut stream).unwrap();
        }
    }
    stream.to_vec()
}

fn captures() -> Vec<(String, Vec<u8>)> {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/gob/compressed_session.new.bin");
    vec![
        ("native".to_owned(), capture(WireFormat::Native, false)),
        ("gob".to_owned(), capture(WireFormat::Gob, false)),
        ("gob, compressed".to_owned(), capture(WireFormat::Gob, true)),
        (
            "golden compressed session".to_owned(),
            std::fs::read(golden).unwrap(),
        ),
    ]
}

#[test]
fn every_chunking_decodes_a_capture_as_one_read_does() {
    for (name, capture) in captures() {
        assert_chunkings_agree(&name, &capture);
    }
}

#[test]
fn every_chunking_fails_a_truncated_capture_as_one_read_does() {
    for (name, capture) in captures() {
        for cut in [1, capture.len() / 3] {
            let truncated = &capture[..capture.len() - cut];
            let (_, failure) = one_shot(truncated);
            assert!(failure.is_some(), "{name} less {cut} bytes decodes");
            assert_chunkings_agree(&format!("{name} less {cut} bytes"), truncated);
        }
    }
}

#[test]
fn every_chunking_fails_a_damaged_capture_as_one_read_does() {
    for (name, capture) in captures() {
        for at in [9, capture.len() / 2, capture.len() - 2] {
            let mut damaged = capture.clone();
            damaged[at] ^= 0xa5;
            assert_chunkings_agree(&format!("{name} damaged at {at}"), &damaged);
        }
    }
}

/// A read error ends the decode with the capture's name and the error, as
/// a read on the decoding thread did, after what was read before it.
#[test]
fn a_read_error_is_an_input_failure_naming_the_capture() {
    struct Failing(Cursor<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buffer)? {
                0 => Err(io::Error::other("the disk is on fire")),
                read => Ok(read),
            }
        }
    }
    let capture = capture(WireFormat::Native, false);
    let (all, _) = one_shot(&capture);
    for chunk in [100, 1 << 20] {
        let chunking = Chunking {
            chunk,
            ..Chunking::DEFAULT
        };
        let reader = Failing(Cursor::new(capture.clone()));
        let (messages, failure) = decode_with(&capture, reader, chunking);
        let failure = failure.expect("a read error fails the decode");
        assert!(
            failure.contains("code: 3") && failure.contains("\"capture: the disk is on fire\""),
            "{failure}"
        );
        assert!(all.starts_with(&messages), "{chunk}");
    }
}

/// Nothing to read is an empty capture, however the input is read.
#[test]
fn an_empty_input_is_an_empty_capture() {
    for chunking in [Chunking::DEFAULT, chunkings()[0]] {
        let (messages, failure) = decode_with(&[], io::empty(), chunking);
        assert!(messages.is_empty());
        assert!(
            failure.unwrap().contains("capture: the capture is empty"),
            "{chunking:?}"
        );
    }
}
