//! The server never sends a message larger than the client accepts
//! (`ServerConfig::max_server_message_len`): when one would not fit, the
//! connection closes with a usage error, as its one final event, and sends
//! nothing more.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::harness::Clock;
use syncproto::client::{ClientConfig, ClientConnection};
use syncproto::codec::WireFormat;
use syncproto::message::{CompressionAlgorithm, MessageKind};
use syncproto::server::{ServerConfig, ServerConnection, ServerEvent};
use syncproto::{CloseReason, Now, UsageError};

const FORMATS: [(WireFormat, bool); 4] = [
    (WireFormat::Native, false),
    (WireFormat::Native, true),
    (WireFormat::Gob, false),
    (WireFormat::Gob, true),
];

fn client_config(format: WireFormat, compressed: bool) -> ClientConfig {
    ClientConfig {
        wire_format: format,
        compression: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        key_parser: None,
        ..ClientConfig::default()
    }
}

/// What a client speaking `format` sends first: its hello.
fn client_hello(format: WireFormat, compressed: bool, now: Now) -> Vec<u8> {
    let mut client = ClientConnection::new(client_config(format, compressed), now).unwrap();
    let mut out = Vec::new();
    while let Some(bytes) = client.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn drain(server: &mut ServerConnection) -> (Vec<ServerEvent>, Vec<Bytes>) {
    let events = std::iter::from_fn(|| server.poll_event()).collect();
    let sent = std::iter::from_fn(|| server.poll_transmit()).collect();
    (events, sent)
}

#[test]
fn a_server_hello_over_the_limit_closes_once_and_sends_nothing() {
    let mut clock = Clock::new();
    for (format, compressed) in FORMATS {
        let context = format!("{format:?}, compressed {compressed}");
        let now = clock.now();
        let mut server = ServerConnection::new(
            ServerConfig {
                // Far longer than the limit in either format; the restart
                // that would start compression fits in it on its own.
                version: "v".repeat(200),
                max_server_message_len: 100,
                ..ServerConfig::default()
            },
            now,
        )
        .unwrap();
        server.handle_input(now, &client_hello(format, compressed, now));
        let (events, sent) = drain(&mut server);
        assert!(sent.is_empty(), "{context}: sent {sent:?}");
        match events.as_slice() {
            [
                ServerEvent::Closed(CloseReason::Usage(UsageError::FrameTooLarge {
                    message: MessageKind::ServerHello,
                    max: 100,
                    ..
                })),
            ] => {}
            other => panic!("{context}: events {other:?}"),
        }
        assert!(server.is_closed(), "{context}");
        assert_eq!(server.poll_timeout(), None, "{context}");
        // Nothing brings it back.
        clock.advance(Duration::from_secs(60));
        server.handle_timeout(clock.now());
        let (events, sent) = drain(&mut server);
        assert!(events.is_empty() && sent.is_empty(), "{context}");
    }
}
