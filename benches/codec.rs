//! Codec throughput on a realistic stream (`syncproto::synthetic::session`:
//! a 10 000-endpoint snapshot with a few values over 100 KiB, then 2 000
//! live changes with deletions and pings): decode and encode in each wire
//! format, key parsing, `would_be_no_op`, and building a cache's snapshot.
//!
//! Run with `cargo bench --bench codec`; criterion reports MB/s (bytes
//! groups) and KVs/s (elements groups).

// criterion's macros generate undocumented functions; a benchmark reports
// a broken setup by panicking.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use syncproto::Message;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::key::{DefaultKeyParser, KeyParser};
use syncproto::message::{CompressionAlgorithm, DecoderRestart, SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerConnection};

const FLAVOURS: [(&str, WireFormat, bool); 3] = [
    ("native", WireFormat::Native, false),
    ("gob", WireFormat::Gob, false),
    ("gob+snappy", WireFormat::Gob, true),
];

fn session() -> Vec<Message> {
    syncproto::synthetic::session(10_000, 2_000, 1)
}

fn kv_count(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| match m {
            Message::Kvs(updates) => updates.len() as u64,
            _ => 0,
        })
        .sum()
}

/// The session as one stream (behind snappy after a restart when
/// `compressed`).
fn encode(messages: &[Message], format: WireFormat, compressed: bool) -> BytesMut {
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut out = BytesMut::new();
    if compressed {
        let restart = Message::DecoderRestart(DecoderRestart {
            message: String::new(),
            compression_algorithm: Some(CompressionAlgorithm::Snappy),
        });
        encoder.encode(&restart, &mut out).unwrap();
        encoder.restart(true);
    }
    for message in messages {
        encoder.encode(message, &mut out).unwrap();
    }
    out
}

fn decode_all(mut input: BytesMut, format: WireFormat) -> usize {
    let mut decoder = StreamDecoder::new(format, usize::MAX, None).following_restarts();
    let mut count = 0;
    while let Some(message) = decoder.decode(&mut input).unwrap() {
        black_box(&message);
        count += 1;
    }
    count
}

fn decode(c: &mut Criterion) {
    let messages = session();
    let kvs = kv_count(&messages);
    for (unit, throughput) in [("bytes", None), ("kvs", Some(kvs))] {
        let mut group = c.benchmark_group(format!("codec/decode_{unit}"));
        group.sample_size(20);
        for (name, format, compressed) in FLAVOURS {
            let stream = encode(&messages, format, compressed);
            group.throughput(match throughput {
                None => Throughput::Bytes(stream.len() as u64),
                Some(kvs) => Throughput::Elements(kvs),
            });
            // The stream is copied into a fresh buffer outside the timing,
            // as a connection's read buffer would hold it.
            group.bench_function(name, |b| {
                b.iter_batched(
                    || stream.clone(),
                    |input| decode_all(input, format),
                    BatchSize::LargeInput,
                )
            });
        }
        group.finish();
    }
}

fn encode_bench(c: &mut Criterion) {
    let messages = session();
    let mut group = c.benchmark_group("codec/encode_bytes");
    group.sample_size(20);
    for (name, format, compressed) in FLAVOURS {
        let size = encode(&messages, format, compressed).len();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(name, |b| {
            b.iter(|| encode(&messages, format, compressed).len())
        });
    }
    group.finish();
}

fn keys(c: &mut Criterion) {
    let updates: Vec<SerializedUpdate> = syncproto::synthetic::snapshot(10_000, 1);
    let parser = DefaultKeyParser;
    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(updates.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            updates
                .iter()
                .filter(|u| parser.parse(&u.key).is_ok())
                .count()
        })
    });
    group.bench_function("validate", |b| {
        b.iter(|| {
            updates
                .iter()
                .filter(|u| parser.validate(&u.key).is_ok())
                .count()
        })
    });
    group.finish();
}

/// What the default key parser costs a client: the whole session through a
/// `ClientConnection` (native, checksums as the hello says), with
/// `ClientConfig::default()`'s parser and without one.
fn client_keys(c: &mut Criterion) {
    let messages = session();
    let stream = encode(&messages, WireFormat::Native, false);
    let mut group = c.benchmark_group("keys/client_receive");
    group.sample_size(20);
    group.throughput(Throughput::Elements(kv_count(&messages)));
    for (name, parser) in [
        ("no_parser", None),
        ("default_parser", ClientConfig::default().key_parser),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = ClientConfig {
                    key_parser: parser.clone(),
                    ..ClientConfig::default()
                };
                let mut client = ClientConnection::new(config, syncproto_now()).unwrap();
                client.handle_input(syncproto_now(), &stream);
                let mut updates = 0;
                while let Some(event) = client.poll_event() {
                    if let ClientEvent::Updates(batch) = &event {
                        updates += batch.len();
                    }
                    black_box(&event);
                }
                updates
            })
        });
    }
    group.finish();
}

fn no_op(c: &mut Criterion) {
    let updates = syncproto::synthetic::endpoints(10_000, 1);
    let resent: Vec<SerializedUpdate> = updates
        .iter()
        .map(|u| SerializedUpdate {
            revision: "other".into(),
            ..u.clone()
        })
        .collect();
    let mut group = c.benchmark_group("updates");
    group.throughput(Throughput::Elements(updates.len() as u64));
    group.bench_function("would_be_no_op", |b| {
        b.iter(|| {
            updates
                .iter()
                .zip(&resent)
                .filter(|(new, old)| new.would_be_no_op(old))
                .count()
        })
    });
    group.finish();
}

/// A cold cache's snapshot for the first client: every update encoded and
/// batched (or compressed) once, then handed out.
fn snapshot_assembly(c: &mut Criterion) {
    let snapshot = syncproto::synthetic::snapshot(10_000, 1);
    let mut group = c.benchmark_group("fanout/snapshot_assembly");
    group.sample_size(10);
    group.throughput(Throughput::Elements(snapshot.len() as u64));
    for (name, format, compressed) in FLAVOURS {
        group.bench_with_input(BenchmarkId::new("first_client", name), &(), |b, ()| {
            b.iter_batched(
                || {
                    let cache = SnapshotCache::new(CacheConfig::default());
                    cache.apply(Instant::now(), snapshot.clone());
                    cache.set_status(Instant::now(), SyncStatus::InSync);
                    cache
                },
                |cache| {
                    let now = syncproto_now();
                    let mut server = ServerConnection::new(ServerConfig::default(), now).unwrap();
                    server.follow(cache.subscribe(Instant::now())).unwrap();
                    let mut hello = BytesMut::new();
                    let mut client = StreamEncoder::new(format, usize::MAX);
                    let offer = syncproto::message::ClientHello {
                        supports_modern_policy_keys: true,
                        supports_decoder_restart: compressed,
                        supported_compression_algorithms: if compressed {
                            vec![CompressionAlgorithm::Snappy]
                        } else {
                            Vec::new()
                        },
                        ..Default::default()
                    };
                    client
                        .encode(&Message::ClientHello(offer), &mut hello)
                        .unwrap();
                    server.handle_input(now, &hello);
                    let mut ack = BytesMut::new();
                    client.encode(&Message::Ack, &mut ack).unwrap();
                    if compressed {
                        server.handle_input(now, &ack);
                    }
                    let mut sent = 0;
                    while let Some(bytes) = server.poll_transmit(now.instant) {
                        sent += bytes.len();
                    }
                    black_box(sent)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// What snapshot checksums cost. The server's share per change is one
/// digest of the key and value (`entry_digest_per_change`), against the
/// whole of accepting that change into a cache (`cache_apply_per_change`,
/// digest included). The client's is the digest plus a map update per
/// received update: the session decoded by a client machine with and
/// without checksums negotiated.
fn checksums(c: &mut Criterion) {
    let messages = session();
    let in_sync = messages
        .iter()
        .position(|m| matches!(m, Message::SyncStatus(SyncStatus::InSync)))
        .unwrap();
    let snapshot: Vec<SerializedUpdate> = kvs_in(&messages[..in_sync]);
    let changes: Vec<SerializedUpdate> = kvs_in(&messages[in_sync..]);
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Elements(changes.len() as u64));
    group.bench_function("entry_digest_per_change", |b| {
        b.iter(|| {
            changes.iter().fold(0u64, |checksum, update| {
                let value = update.value.as_deref().unwrap_or_default();
                checksum ^ syncproto::checksum::entry_digest(update.key.as_bytes(), value)
            })
        })
    });
    group.bench_function("cache_apply_per_change", |b| {
        b.iter_batched(
            || {
                let cache = SnapshotCache::new(CacheConfig::default());
                cache.apply(Instant::now(), snapshot.clone());
                (cache, changes.clone())
            },
            |(cache, changes)| {
                let now = Instant::now();
                for update in changes {
                    cache.apply(now, [update]);
                }
                black_box(cache.checksum())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("checksum/client_receive");
    group.sample_size(20);
    group.throughput(Throughput::Elements(kv_count(&messages)));
    for (name, negotiated) in [("without", false), ("with", true)] {
        let mut messages = messages.clone();
        if let Message::ServerHello(hello) = &mut messages[0] {
            hello.supports_checksum = negotiated;
        }
        let stream = encode(&messages, WireFormat::Native, false);
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = syncproto::client::ClientConfig {
                    key_parser: None,
                    ..Default::default()
                };
                let mut client =
                    syncproto::client::ClientConnection::new(config, syncproto_now()).unwrap();
                client.handle_input(syncproto_now(), &stream);
                let mut events = 0;
                while let Some(event) = client.poll_event() {
                    black_box(&event);
                    events += 1;
                }
                assert_eq!(client.received_checksum().is_some(), negotiated);
                events
            })
        });
    }
    group.finish();
}

/// Every update in `messages`' `KVs`, in order.
fn kvs_in(messages: &[Message]) -> Vec<SerializedUpdate> {
    messages
        .iter()
        .flat_map(|message| match message {
            Message::Kvs(updates) => updates.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn syncproto_now() -> syncproto::Now {
    syncproto::Now::new(Instant::now(), syncproto::message::Timestamp::ZERO)
}

criterion_group!(
    benches,
    checksums,
    decode,
    encode_bench,
    keys,
    client_keys,
    no_op,
    snapshot_assembly
);
criterion_main!(benches);
