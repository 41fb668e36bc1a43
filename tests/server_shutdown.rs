//! A server connection stopping gracefully
//! ([`ServerConnection::stop_sending`]): what is ready goes out whole,
//! nothing new is produced, the client's last pongs still count, and the
//! client's close ends it.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::harness::{Link, Pair, client_config, decode_server_output};
use syncproto::codec::WireFormat;
use syncproto::message::{Message, SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerEvent};
use syncproto::{CloseReason, UsageError};

fn synced() -> Pair {
    let mut pair = Pair::new(
        client_config(WireFormat::Gob, true),
        ServerConfig::default(),
        Link::default(),
    );
    pair.settle();
    pair.server
        .send_snapshot(
            vec![SerializedUpdate::upsert("/calico/v1/config/A", "1", "1")],
            SyncStatus::InSync,
        )
        .unwrap();
    pair.settle();
    pair
}

fn pings(pair: &Pair) -> usize {
    decode_server_output(pair)
        .iter()
        .filter(|message| matches!(message, Message::Ping(_)))
        .count()
}

#[test]
fn what_is_ready_goes_out_and_the_last_pong_still_counts() {
    let mut pair = synced();
    // A ping is produced while the socket is full: ready, not yet written.
    pair.server_output_blocked = true;
    pair.run_for(Duration::from_secs(12));
    assert_eq!(pair.server.pings_sent(), 1);
    assert_eq!(pings(&pair), 0);
    pair.server.stop_sending();
    assert!(pair.server.is_stopping());
    assert!(!pair.server.is_flushed(), "the ping is still to go");
    assert_eq!(
        pair.server.send_updates(vec![SerializedUpdate::upsert(
            "/calico/v1/config/B",
            "2",
            "2"
        )]),
        Err(UsageError::Stopping)
    );
    pair.server_output_blocked = false;
    pair.settle();
    // The ping went out whole, and its pong came back and counted.
    assert_eq!(pings(&pair), 1);
    assert!(pair.server.is_flushed());
    assert_eq!(pair.server.unanswered_pings(), 0);
    assert!(matches!(
        pair.server_events.last(),
        Some(ServerEvent::Pong {
            round_trip: Some(_)
        })
    ));
    // Nothing more is produced: no pings, and no timeouts either.
    pair.run_for(Duration::from_secs(120));
    assert_eq!(pair.server.pings_sent(), 1);
    assert_eq!(pair.server.poll_timeout(), None);
    assert!(!pair.server.is_closed());
    // The client's close is the expected end.
    pair.client_closes_socket();
    assert_eq!(pair.server.close_reason(), Some(&CloseReason::Local));
}

#[test]
fn before_the_handshake_there_is_nothing_to_finish() {
    let mut pair = Pair::new(
        client_config(WireFormat::Native, false),
        ServerConfig::default(),
        Link::default(),
    );
    pair.server.stop_sending();
    assert_eq!(pair.server.close_reason(), Some(&CloseReason::Local));
}

/// The client's side: a pong owed for a ping that came just before a clean
/// end of stream is still handed out, so that a server reading on after
/// half-closing gets it.
#[test]
fn a_client_still_answers_a_ping_that_came_right_before_the_end() {
    let mut pair = synced();
    // The first ping is produced but not delivered...
    pair.server_output_blocked = true;
    pair.run_for(Duration::from_secs(12));
    assert_eq!(pair.server.pings_sent(), 1);
    let answered = pair.server.pongs_received();
    // ...then it and the end of stream reach the client together.
    pair.server.stop_sending();
    let bytes: Vec<_> =
        std::iter::from_fn(|| pair.server.poll_transmit(pair.clock.now().instant)).collect();
    let now = pair.clock.now();
    for chunk in &bytes {
        pair.client.handle_input(now, chunk);
    }
    pair.client.handle_eof(now);
    assert_eq!(pair.client.close_reason(), Some(&CloseReason::PeerClosed));
    let owed: Vec<_> = std::iter::from_fn(|| pair.client.poll_transmit()).collect();
    for chunk in &owed {
        pair.server.handle_input(now, chunk);
    }
    assert_eq!(pair.server.pongs_received(), answered + 1);
    assert_eq!(pair.server.unanswered_pings(), 0);
}
