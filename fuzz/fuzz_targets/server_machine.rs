//! Arbitrary client bytes and time steps into a server machine serving a
//! snapshot, either handed to it or from a shared cache, in whichever wire
//! format the bytes start with: no panic, one final event then silence, and
//! output that always decodes.

#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{
    Checksum, ClientHello, CompressionAlgorithm, Message, SerializedUpdate, SyncStatus, Timestamp,
};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Now};

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    /// A valid Ack (what a client sends after a restart).
    Ack,
    AdvanceMillis(u16),
    AdvanceSeconds(u8),
    Update(u8, Vec<u8>),
    Status(u8),
    ReadOutput,
    Eof,
    Close,
    /// A graceful stop: what is ready goes out, nothing new after it.
    StopSending,
    /// A checksum handed to a connection fed by hand.
    Checksum(u64, i64),
}

#[derive(Arbitrary, Debug)]
struct Script {
    /// Open with a valid hello in this format (none: raw bytes only).
    hello: Option<bool>,
    compressed: bool,
    follow_cache: bool,
    /// The valid hello asks for snapshot checksums.
    checksums: bool,
    steps: Vec<Step>,
}

fn update(key: u8, value: Vec<u8>) -> SerializedUpdate {
    SerializedUpdate::upsert(format!("/calico/v1/config/K{key}"), value, "2")
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
    let cache = SnapshotCache::new(CacheConfig::default());
    cache.apply(start, (0..150).map(|i| update(i as u8, vec![b'v'; i])));
    cache.set_status(start, SyncStatus::InSync);
    if script.follow_cache {
        server
            .follow(cache.subscribe(start))
            .expect("fresh connection");
    } else {
        let _ = server.send_snapshot(cache.snapshot_updates(), SyncStatus::InSync);
    }
    let mut client_encoder = None;
    if let Some(gob) = script.hello {
        let format = if gob {
            WireFormat::Gob
        } else {
            WireFormat::Native
        };
        let mut encoder = StreamEncoder::new(format, 4096);
        let hello = ClientHello {
            // The server refuses clients without it by default.
            supports_modern_policy_keys: true,
            supports_checksum: script.checksums,
            supports_decoder_restart: script.compressed,
            supported_compression_algorithms: if script.compressed {
                vec![CompressionAlgorithm::Snappy]
            } else {
                Vec::new()
            },
            ..ClientHello::default()
        };
        let mut bytes = BytesMut::new();
        encoder
            .encode(&Message::ClientHello(hello), &mut bytes)
            .expect("encodes");
        server.handle_input(now(elapsed), &bytes);
        client_encoder = Some(encoder);
    }
    let mut output = BytesMut::new();
    let mut decoder = None;
    let mut closed = false;
    // What the server's hello said about checksums, once decoded.
    let mut checksums_offered = None;
    // Set once output was read after a graceful stop: from then on the
    // machine must produce nothing.
    let mut stopped_and_drained = false;
    for step in script.steps {
        match step {
            Step::Input(bytes) => server.handle_input(now(elapsed), &bytes),
            Step::Ack => {
                if let Some(encoder) = client_encoder.as_mut() {
                    let mut bytes = BytesMut::new();
                    encoder.encode(&Message::Ack, &mut bytes).expect("encodes");
                    server.handle_input(now(elapsed), &bytes);
                }
            }
            Step::AdvanceMillis(ms) => elapsed += Duration::from_millis(u64::from(ms)),
            Step::AdvanceSeconds(s) => elapsed += Duration::from_secs(u64::from(s)),
            Step::Update(key, value) => {
                if script.follow_cache {
                    cache.apply(start + elapsed, [update(key, value)]);
                } else {
                    let _ = server.send_updates(vec![update(key, value)]);
                }
            }
            Step::Status(status) => {
                if let Some(status) = SyncStatus::from_wire(status % 3) {
                    if script.follow_cache {
                        cache.set_status(start + elapsed, status);
                    } else {
                        let _ = server.send_status(status);
                    }
                }
            }
            Step::ReadOutput => {
                while let Some(bytes) = server.poll_transmit(start + elapsed) {
                    assert!(!closed, "transmit after close");
                    assert!(!stopped_and_drained, "output produced after stop_sending");
                    output.extend_from_slice(&bytes);
                }
                stopped_and_drained = server.is_stopping();
                if decoder.is_none()
                    && let Some(format) = server.wire_format()
                {
                    decoder =
                        Some(StreamDecoder::new(format, usize::MAX, None).following_restarts());
                }
                if let Some(decoder) = decoder.as_mut() {
                    while let Some(message) =
                        decoder.decode(&mut output).expect("server output decodes")
                    {
                        assert!(!matches!(
                            message,
                            Message::ClientHello(_) | Message::Pong(_) | Message::Ack
                        ));
                        match &message {
                            Message::ServerHello(hello) => {
                                checksums_offered = Some(hello.supports_checksum);
                            }
                            Message::Checksum(_) => assert_eq!(
                                checksums_offered,
                                Some(true),
                                "a checksum the client did not negotiate"
                            ),
                            _ => {}
                        }
                    }
                }
            }
            Step::Eof => {
                let stopping = server.is_stopping();
                server.handle_eof(now(elapsed));
                if stopping {
                    // The expected end, unless what was left of the input
                    // was bad.
                    assert!(
                        matches!(
                            server.close_reason(),
                            Some(CloseReason::Local | CloseReason::Protocol(_))
                        ),
                        "{:?}",
                        server.close_reason()
                    );
                }
            }
            Step::Close => server.close(),
            Step::Checksum(checksum, kv_count) => {
                if !script.follow_cache {
                    let _ = server.send_checksum(Checksum { checksum, kv_count });
                }
            }
            Step::StopSending => {
                server.stop_sending();
                if server.is_stopping() {
                    assert!(server.poll_timeout().is_none());
                }
            }
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
            assert!(
                server.poll_transmit(start + elapsed).is_none(),
                "transmit after close"
            );
            assert!(server.poll_timeout().is_none());
        }
    }
});
