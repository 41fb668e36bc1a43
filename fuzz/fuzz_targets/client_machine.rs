//! Arbitrary server bytes and time steps into a client machine, in either
//! wire format, with or without compression: it must not panic, must keep
//! its event discipline (one final event, then silence) and must not buffer
//! beyond its message limit. A twin machine fed the same input through
//! `handle_input_borrowed` reports the same events and sends the same
//! bytes.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::message::{CompressionAlgorithm, DecoderRestart, Message, ServerHello, Timestamp};
use syncproto::{CloseReason, Now};

const MAX_MESSAGE_LEN: usize = 16 * 1024;

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    AdvanceMillis(u16),
    AdvanceSeconds(u8),
    Eof,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Script {
    gob: bool,
    /// Offer snappy (and switch to it after the handshake when `valid_handshake`).
    compressed: bool,
    /// Start the stream with a valid ServerHello (and restart), so that the
    /// fuzzer spends its time past the handshake.
    valid_handshake: bool,
    /// That hello agrees to send snapshot checksums, so the client keeps
    /// the checksum of what it receives and compares.
    checksums: bool,
    steps: Vec<Step>,
}

fuzz_target!(|script: Script| {
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    let now = |elapsed: Duration| {
        Now::new(
            start + elapsed,
            Timestamp::from_unix(1_700_000_000, 0).expect("in range"),
        )
    };
    let format = if script.gob {
        WireFormat::Gob
    } else {
        WireFormat::Native
    };
    let config = ClientConfig {
        max_message_len: MAX_MESSAGE_LEN,
        wire_format: format,
        compression: if script.compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config.clone(), now(elapsed)).expect("valid config");
    let mut twin = ClientConnection::new(config, now(elapsed)).expect("valid config");
    // What the twin handed over borrowed (copied out) or queued.
    let mut twin_events = Vec::new();
    if script.valid_handshake {
        let mut encoder = StreamEncoder::new(format, MAX_MESSAGE_LEN);
        let mut bytes = BytesMut::new();
        encoder
            .encode(
                &Message::ServerHello(ServerHello {
                    supports_checksum: script.checksums,
                    ..ServerHello::default()
                }),
                &mut bytes,
            )
            .expect("encodes");
        if script.compressed {
            let restart = DecoderRestart {
                message: String::new(),
                compression_algorithm: Some(CompressionAlgorithm::Snappy),
            };
            encoder
                .encode(&Message::DecoderRestart(restart), &mut bytes)
                .expect("encodes");
        }
        client.handle_input(now(elapsed), &bytes);
        twin.handle_input_borrowed(now(elapsed), &bytes, |event| {
            twin_events.push(event.to_event())
        });
    }
    let mut closed = false;
    for step in script.steps {
        match step {
            Step::Input(bytes) => {
                client.handle_input(now(elapsed), &bytes);
                twin.handle_input_borrowed(now(elapsed), &bytes, |event| {
                    twin_events.push(event.to_event())
                });
            }
            Step::AdvanceMillis(ms) => elapsed += Duration::from_millis(u64::from(ms)),
            Step::AdvanceSeconds(s) => elapsed += Duration::from_secs(u64::from(s)),
            Step::Eof => {
                client.handle_eof(now(elapsed));
                twin.handle_eof(now(elapsed));
            }
            Step::Close => {
                client.close();
                twin.close();
            }
        }
        if client
            .poll_timeout()
            .is_some_and(|deadline| deadline <= start + elapsed)
        {
            client.handle_timeout(now(elapsed));
            twin.handle_timeout(now(elapsed));
        }
        let closed_earlier = closed;
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            assert!(!closed, "event after the final one: {event:?}");
            closed = matches!(event, ClientEvent::Closed(_));
            events.push(event);
        }
        twin_events.extend(std::iter::from_fn(|| twin.poll_event()));
        assert_eq!(events, twin_events, "the borrowing twin reported otherwise");
        twin_events.clear();
        // Whatever the server sends, what the client holds stays bounded:
        // an incomplete message or chunk, decompressed bytes, a gob value's
        // queued messages (the definition budget is 64 KiB).
        assert!(
            client.buffered() <= 2 * (MAX_MESSAGE_LEN + 16) + 64 * 1024 + 2 * 80 * 1024,
            "buffered {}",
            client.buffered()
        );
        let sent: Vec<_> = std::iter::from_fn(|| client.poll_transmit()).collect();
        let twin_sent: Vec<_> = std::iter::from_fn(|| twin.poll_transmit()).collect();
        assert_eq!(
            sent.concat(),
            twin_sent.concat(),
            "the borrowing twin sent otherwise"
        );
        let transmitted = sent.len();
        if closed {
            // Only a clean end of stream leaves owed output (a pong), and
            // only what was queued when it closed: never anything later.
            let owed_allowed =
                !closed_earlier && client.close_reason() == Some(&CloseReason::PeerClosed);
            if !owed_allowed {
                assert_eq!(transmitted, 0, "transmit after close");
            }
            assert!(client.poll_timeout().is_none());
        }
    }
});
