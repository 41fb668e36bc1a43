//! Arbitrary client bytes and time steps into a server machine that serves
//! a small snapshot and live updates: no panic, one final event then
//! silence, and output that always decodes.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::Now;
use syncproto::codec::native::{NativeDecoder, NativeEncoder};
use syncproto::message::{ClientHello, Message, SerializedUpdate, SyncStatus, Timestamp};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    AdvanceMillis(u16),
    AdvanceSeconds(u8),
    Update(u8, Vec<u8>),
    Status(u8),
    ReadOutput,
    Eof,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Script {
    valid_hello: bool,
    steps: Vec<Step>,
}

fuzz_target!(|script: Script| {
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    let now = |elapsed: Duration| {
        let wall =
            Timestamp::from_unix(1_700_000_000 + elapsed.as_secs() as i64, 0).expect("in range");
        Now::new(start + elapsed, wall)
    };
    let config = ServerConfig {
        max_client_message_len: 4096,
        max_queued_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, now(elapsed)).expect("valid config");
    let snapshot: Vec<SerializedUpdate> = (0..150)
        .map(|i| SerializedUpdate::upsert(format!("/k/{i:03}"), vec![b'v'; i], "1"))
        .collect();
    let _ = server.send_snapshot(snapshot, SyncStatus::InSync);
    if script.valid_hello {
        let mut hello = BytesMut::new();
        NativeEncoder::for_client()
            .encode(&Message::ClientHello(ClientHello::default()), &mut hello)
            .expect("encodes");
        server.handle_input(now(elapsed), &hello);
    }
    let mut output = BytesMut::new();
    let mut decoder = NativeDecoder::for_client();
    let mut closed = false;
    for step in script.steps {
        match step {
            Step::Input(bytes) => server.handle_input(now(elapsed), &bytes),
            Step::AdvanceMillis(ms) => elapsed += Duration::from_millis(u64::from(ms)),
            Step::AdvanceSeconds(s) => elapsed += Duration::from_secs(u64::from(s)),
            Step::Update(key, value) => {
                let _ = server.send_updates(vec![SerializedUpdate::upsert(
                    format!("/k/{key}"),
                    value,
                    "2",
                )]);
            }
            Step::Status(status) => {
                if let Some(status) = SyncStatus::from_wire(status % 3) {
                    let _ = server.send_status(status);
                }
            }
            Step::ReadOutput => {
                while let Some(bytes) = server.poll_transmit() {
                    assert!(!closed, "transmit after close");
                    output.extend_from_slice(&bytes);
                }
                while let Some(message) =
                    decoder.decode(&mut output).expect("server output decodes")
                {
                    assert!(!matches!(
                        message,
                        Message::ClientHello(_) | Message::Pong(_) | Message::Ack
                    ));
                }
            }
            Step::Eof => server.handle_eof(now(elapsed)),
            Step::Close => server.close(),
        }
        if server
            .poll_timeout()
            .is_some_and(|deadline| deadline <= start + elapsed)
        {
            server.handle_timeout(now(elapsed));
        }
        while let Some(event) = server.poll_event() {
            assert!(!closed, "event after the final one: {event:?}");
            closed = matches!(event, ServerEvent::Closed(_));
        }
        if closed {
            assert!(server.poll_transmit().is_none(), "transmit after close");
            assert!(server.poll_timeout().is_none());
        }
    }
});
