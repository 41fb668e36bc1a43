//! Property tests of protocol transitions: random scripts of datastore
//! changes, status changes, time advances and byte-stream splits, run
//! through the in-memory pair harness.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;
use syncproto::message::ByteString;

use bytes::Bytes;
use common::harness::{Link, Pair, apply_updates, decode_server_output};
use proptest::collection::vec;
use proptest::prelude::*;
use syncproto::CloseReason;
use syncproto::client::{ClientConfig, ClientEvent};
use syncproto::codec::WireFormat;
use syncproto::message::{CompressionAlgorithm, Message, SerializedUpdate, SyncStatus, UpdateType};
use syncproto::server::{ServerConfig, ServerEvent};

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, Vec<u8>),
    Delete(u8),
    Status(SyncStatus),
    Advance(Duration),
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Both sides stay up.
    Healthy,
    ClientCloses,
    ServerCloses,
    /// The server's socket closes under the client.
    ServerSocketCloses,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Upsert(k, v)),
        2 => (0u8..40).prop_map(Op::Delete),
        1 => proptest::sample::select(SyncStatus::ALL.to_vec()).prop_map(Op::Status),
        2 => (0u64..25_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
    ]
}

fn link() -> impl Strategy<Value = Link> {
    (proptest::option::of(1usize..64), 0u64..800, any::<u64>()).prop_map(
        |(max_chunk, latency, seed)| Link {
            max_chunk,
            latency: Duration::from_millis(latency),
            seed,
        },
    )
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        4 => Just(Ending::Healthy),
        1 => Just(Ending::ClientCloses),
        1 => Just(Ending::ServerCloses),
        1 => Just(Ending::ServerSocketCloses),
    ]
}

fn key(index: u8) -> ByteString {
    format!("/calico/v1/host/node-{index:03}/config/Key").into()
}

/// Checks the invariants every run must keep, whatever its ending.
fn check_event_discipline(pair: &Pair) -> Result<(), TestCaseError> {
    let client_closes = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Closed(_)))
        .count();
    let server_closes = pair
        .server_events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed(_)))
        .count();
    prop_assert!(client_closes <= 1 && server_closes <= 1);
    if client_closes == 1 {
        prop_assert!(matches!(
            pair.client_events.last(),
            Some(ClientEvent::Closed(_))
        ));
    }
    if server_closes == 1 {
        prop_assert!(matches!(
            pair.server_events.last(),
            Some(ServerEvent::Closed(_))
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn client_view_converges_to_the_server_datastore(
        initial in vec((0u8..40, vec(any::<u8>(), 0..40)), 0..60),
        ops in vec(op(), 0..40),
        link in link(),
        ending in ending(),
        seed in any::<u64>(),
        format in prop_oneof![Just(WireFormat::Native), Just(WireFormat::Gob)],
        compressed in any::<bool>(),
    ) {
        let server_config = ServerConfig { rng_seed: seed, ..ServerConfig::default() };
        let client_config = ClientConfig {
            wire_format: format,
            compression: if compressed { vec![CompressionAlgorithm::Snappy] } else { Vec::new() },
            ..ClientConfig::default()
        };
        let mut pair = Pair::new(client_config, server_config, link);
        pair.settle();

        let initial: BTreeMap<ByteString, Bytes> =
            initial.into_iter().map(|(k, v)| (key(k), Bytes::from(v))).collect();
        let snapshot: Vec<SerializedUpdate> = initial
            .iter()
            .map(|(k, v)| SerializedUpdate {
                update_type: UpdateType::New,
                ..SerializedUpdate::upsert(k.clone(), v.clone(), "1")
            })
            .collect();
        pair.server.send_snapshot(snapshot, SyncStatus::InSync).unwrap();
        // An empty value is a deletion on every wire: no client holds one.
        let mut datastore: BTreeMap<ByteString, Bytes> =
            initial.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let mut status = SyncStatus::InSync;

        for op in ops {
            match op {
                Op::Upsert(k, v) => {
                    let value = Bytes::from(v);
                    if value.is_empty() {
                        datastore.remove(&key(k));
                    } else {
                        datastore.insert(key(k), value.clone());
                    }
                    pair.server.send_updates(vec![SerializedUpdate::upsert(key(k), value, "2")]).unwrap();
                }
                Op::Delete(k) => {
                    datastore.remove(&key(k));
                    pair.server.send_updates(vec![SerializedUpdate::deletion(key(k), "3")]).unwrap();
                }
                Op::Status(new) => {
                    status = new;
                    pair.server.send_status(new).unwrap();
                }
                Op::Advance(by) => pair.run_for(by),
            }
            pair.pump();
        }
        // Let everything in flight land, and every ping be answered.
        pair.settle();
        pair.run_for(Duration::from_secs(1));
        pair.settle();

        // Whatever happened, the view so far is the datastore, and every ping
        // the server wrote was answered exactly once.
        let mut view = BTreeMap::new();
        apply_updates(&mut view, &pair.client_events);
        prop_assert_eq!(&view, &datastore);
        let last_status = pair.client_events.iter().rev().find_map(|e| match e {
            ClientEvent::Status(s) => Some(*s),
            _ => None,
        });
        prop_assert_eq!(last_status, Some(status));
        let pings = decode_server_output(&pair)
            .iter()
            .filter(|m| matches!(m, Message::Ping(_)))
            .count();
        let pongs = pair.server_events.iter().filter(|e| matches!(e, ServerEvent::Pong { .. })).count();
        prop_assert_eq!(pings, pongs);
        prop_assert_eq!(pair.server.unanswered_pings(), 0);
        prop_assert!(!pair.client.is_closed() && !pair.server.is_closed());
        prop_assert_eq!(pair.server.wire_format(), Some(format));
        prop_assert_eq!(pair.server.compression().is_some(), compressed);

        match ending {
            Ending::Healthy => {}
            Ending::ClientCloses => {
                pair.client.close();
                pair.client_closes_socket();
                prop_assert_eq!(pair.client.close_reason(), Some(&CloseReason::Local));
                prop_assert_eq!(pair.server.close_reason(), Some(&CloseReason::PeerClosed));
            }
            Ending::ServerCloses => {
                pair.server.close();
                pair.server_closes_socket();
                prop_assert_eq!(pair.server.close_reason(), Some(&CloseReason::Local));
                prop_assert_eq!(pair.client.close_reason(), Some(&CloseReason::PeerClosed));
            }
            Ending::ServerSocketCloses => {
                pair.server_closes_socket();
                prop_assert_eq!(pair.client.close_reason(), Some(&CloseReason::PeerClosed));
            }
        }
        // Closed machines stay silent.
        pair.run_for(Duration::from_secs(120));
        check_event_discipline(&pair)?;
        if pair.client.is_closed() {
            prop_assert_eq!(pair.client.poll_transmit(), None);
        }
        if pair.server.is_closed() {
            prop_assert_eq!(pair.server.poll_transmit(pair.clock.now().instant), None);
        }
    }
}
