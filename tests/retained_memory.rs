//! What an application that simply keeps the updates a client hands it
//! keeps alive: no more than about the live keys and values, however the
//! server batched them. Measured with a counting allocator: a snapshot of
//! 10 000 KVs, then rounds of changes that overwrite most of every message
//! and leave a few survivors in each (so a survivor that pinned its whole
//! message would keep the rest of it alive with it).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::collections::BTreeMap;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use bytes::BytesMut;
use syncproto::Now;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::message::{
    ByteString, Message, SerializedUpdate, ServerHello, SyncStatus, Timestamp,
};

/// Counts the bytes allocated and freed (stats_alloc's instrumented
/// system allocator).
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The bytes allocated and not yet freed, as far as this allocator saw.
fn live_heap() -> isize {
    let stats = ALLOCATOR.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

const KEYS: usize = 10_000;
const BATCH: usize = 100;
const ROUNDS: usize = 50;
/// Updates per message left alive by the next round.
const SURVIVORS: usize = 3;

/// Keys like an endpoint's, and values of 300 to 800 bytes of JSON-ish
/// text, like an endpoint's (the same in every round: only where they are
/// sent matters here).
fn data() -> Vec<(String, String)> {
    (0..KEYS)
        .map(|index| {
            let len = 300 + (index * 7919) % 500;
            let mut value = format!("{{\"index\":{index},\"pad\":\"");
            value.extend(std::iter::repeat_n(
                'x',
                len.saturating_sub(value.len() + 2),
            ));
            value.push_str("\"}");
            (syncproto::synthetic::endpoint_key(index), value)
        })
        .collect()
}

/// The server's stream: hello, snapshot, in-sync, then the rounds. In round
/// `r` (from 1) every message holds `BATCH` keys; all but `SURVIVORS` of
/// them are written again in round `r + 1`.
fn stream(format: WireFormat) -> BytesMut {
    let data = data();
    let update = |index: usize, round: usize| {
        let (key, value) = &data[index];
        SerializedUpdate::upsert(key.as_str(), value.clone(), round.to_string())
    };
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut wire = BytesMut::new();
    let mut send = |message: Message| encoder.encode(&message, &mut wire).unwrap();
    send(Message::ServerHello(ServerHello::default()));
    for batch in (0..KEYS).collect::<Vec<_>>().chunks(BATCH) {
        send(Message::Kvs(
            batch.iter().map(|&index| update(index, 0)).collect(),
        ));
    }
    send(Message::SyncStatus(SyncStatus::InSync));
    // Each round rewrites the keys that are not yet survivors: every
    // message of round r leaves SURVIVORS keys that no later round touches.
    let mut rewritten: Vec<usize> = (0..KEYS).collect();
    for round in 1..=ROUNDS {
        let mut next = Vec::new();
        for batch in rewritten.chunks(BATCH) {
            send(Message::Kvs(
                batch.iter().map(|&index| update(index, round)).collect(),
            ));
            next.extend(batch.iter().skip(SURVIVORS).copied());
        }
        rewritten = next;
    }
    wire
}

/// Feeds the stream to a client machine in 64 KiB reads, keeping the
/// latest update of each key; returns what it kept.
fn keep_updates(format: WireFormat, wire: &[u8]) -> BTreeMap<ByteString, SerializedUpdate> {
    let now = Now::new(Instant::now(), Timestamp::ZERO);
    let config = ClientConfig {
        wire_format: format,
        key_parser: None,
        ..ClientConfig::default()
    };
    let mut client = ClientConnection::new(config, now).unwrap();
    let mut kept = BTreeMap::new();
    for read in wire.chunks(64 * 1024) {
        client.handle_input(now, read);
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Updates(updates) => {
                    for update in updates {
                        kept.insert(update.key.clone(), update);
                    }
                }
                ClientEvent::Closed(reason) => panic!("closed: {reason}"),
                _ => {}
            }
        }
    }
    kept
}

#[test]
fn retained_memory_is_bounded_by_the_live_data() {
    for format in [WireFormat::Native, WireFormat::Gob] {
        let wire = stream(format);
        let kept = keep_updates(format, &wire);
        drop(wire);
        assert_eq!(kept.len(), KEYS);
        let live: usize = kept
            .values()
            .map(|update| update.key.len() + update.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        // What the kept updates hold alive: the heap with them, less the
        // heap once they are gone.
        let with = live_heap();
        drop(kept);
        let without = live_heap();
        let retained = (with - without) as usize;
        eprintln!(
            "{format:?}: {KEYS} keys, {live} live key and value bytes, {retained} bytes retained ({:.2}×)",
            retained as f64 / live as f64
        );
        assert!(
            retained <= 2 * live,
            "{format:?}: {retained} bytes kept alive for {live} live"
        );
    }
}
