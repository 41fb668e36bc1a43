// criterion's macros generate undocumented functions; a benchmark reports
// a broken setup by panicking.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

//! Fan-out cost: what one more client costs a server sharing a
//! `SnapshotCache`, in CPU (criterion) and in memory (resident set growth
//! over many idle connections, printed before the timings), on
//! `syncproto::synthetic`'s 10 000-endpoint snapshot (with its 300 KiB
//! value) and 1 000 of its changes.
//!
//! Run with `cargo bench --bench fanout`. Per-client CPU is the slope
//! between the 1- and 100-client timings of each group.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use syncproto::Now;
use syncproto::codec::{StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::message::{ClientHello, CompressionAlgorithm, Message, SyncStatus, Timestamp};
use syncproto::records::Record;
use syncproto::server::{ServerConfig, ServerConnection};

const SNAPSHOT_KEYS: usize = 10_000;

fn now() -> Now {
    Now::new(
        Instant::now(),
        Timestamp::from_unix(1_700_000_000, 0).expect("in range"),
    )
}

/// What a client sends: its hello, then (compressed) two acks.
fn client_bytes(format: WireFormat, compressed: bool) -> (BytesMut, BytesMut) {
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut hello = BytesMut::new();
    let message = Message::ClientHello(ClientHello {
        hostname: "bench".into(),
        supports_modern_policy_keys: true,
        supports_decoder_restart: compressed,
        supported_compression_algorithms: if compressed {
            vec![CompressionAlgorithm::Snappy]
        } else {
            Vec::new()
        },
        ..ClientHello::default()
    });
    encoder.encode(&message, &mut hello).expect("encodes");
    let mut ack = BytesMut::new();
    encoder.encode(&Message::Ack, &mut ack).expect("encodes");
    (hello, ack)
}

/// Connects one server-side connection to the cache and drains everything
/// it has to send; returns the bytes sent.
fn serve_one(
    cache: &SnapshotCache,
    format: WireFormat,
    compressed: bool,
) -> (ServerConnection, usize) {
    let (hello, ack) = client_bytes(format, compressed);
    let config = ServerConfig {
        ping_interval: Duration::from_secs(3600),
        pong_timeout: Duration::from_secs(7200),
        ..ServerConfig::default()
    };
    let mut server = ServerConnection::new(config, now()).expect("config");
    server
        .follow(cache.subscribe(Instant::now()))
        .expect("follow");
    server.handle_input(now(), &hello);
    let mut sent = 0;
    let mut acks = if compressed { 2 } else { 0 };
    loop {
        while let Some(bytes) = server.poll_transmit(Instant::now()) {
            sent += bytes.len();
        }
        if acks == 0 {
            break;
        }
        server.handle_input(now(), &ack);
        acks -= 1;
    }
    assert!(
        server.is_flushed(),
        "connection did not finish the snapshot"
    );
    (server, sent)
}

fn snapshot_cache() -> SnapshotCache {
    let cache = SnapshotCache::new(CacheConfig::default());
    let start = Instant::now();
    cache.apply(start, syncproto::synthetic::snapshot(SNAPSHOT_KEYS, 1));
    cache.set_status(start, SyncStatus::InSync);
    cache
}

const FLAVOURS: [(&str, WireFormat, bool); 4] = [
    ("native", WireFormat::Native, false),
    ("native+snappy", WireFormat::Native, true),
    ("gob", WireFormat::Gob, false),
    ("gob+snappy", WireFormat::Gob, true),
];

fn snapshot_to_n_clients(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/snapshot_10k");
    group.sample_size(10);
    for (name, format, compressed) in FLAVOURS {
        let cache = snapshot_cache();
        // Warm the shared encodings: the figures are per additional client.
        let _ = serve_one(&cache, format, compressed);
        for clients in [1usize, 100] {
            group.throughput(Throughput::Elements(clients as u64));
            group.bench_with_input(BenchmarkId::new(name, clients), &clients, |b, &clients| {
                b.iter(|| {
                    let mut sent = 0;
                    for _ in 0..clients {
                        sent += serve_one(&cache, format, compressed).1;
                    }
                    black_box(sent)
                });
            });
        }
    }
    group.finish();
}

fn updates_to_n_clients(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/1k_updates");
    group.sample_size(10);
    // Updates, deletions and new endpoints, with a resync and in-sync flip.
    let changes = syncproto::synthetic::changes(SNAPSHOT_KEYS, 1000, 1);
    for (name, format, compressed) in FLAVOURS {
        for clients in [1usize, 100] {
            group.throughput(Throughput::Elements(clients as u64));
            group.bench_with_input(BenchmarkId::new(name, clients), &clients, |b, &clients| {
                // By reference, so that dropping the cache and connections
                // is not timed.
                b.iter_batched_ref(
                    || {
                        let cache = snapshot_cache();
                        let servers: Vec<ServerConnection> = (0..clients)
                            .map(|_| serve_one(&cache, format, compressed).0)
                            .collect();
                        (cache, servers, changes.clone())
                    },
                    |(cache, servers, changes)| {
                        let start = Instant::now();
                        let mut sent = 0;
                        for change in changes.drain(..) {
                            match change {
                                Record::Update(update) => {
                                    cache.apply(start, [update]);
                                }
                                Record::Status(status) => cache.set_status(start, status),
                            }
                            for server in servers.iter_mut() {
                                while let Some(bytes) = server.poll_transmit(start) {
                                    sent += bytes.len();
                                }
                            }
                        }
                        black_box(sent)
                    },
                    criterion::BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

/// Two threads: one applies 2 000 single-update changes to the cache as
/// fast as it can, the other round-robins over 1 000 connections following
/// it, handing out what each has, until every connection has sent every
/// change. What the readers and the writer cost each other (a shared lock
/// on the hot path shows here, not in the one-thread benchmarks).
fn concurrent_writer_and_readers(c: &mut Criterion) {
    const CONNECTIONS: usize = 1_000;
    const CHANGES: usize = 2_000;
    let mut group = c.benchmark_group("fanout/concurrent");
    group.sample_size(10);
    group.throughput(Throughput::Elements((CONNECTIONS * CHANGES) as u64));
    group.bench_function("1000_readers_2000_changes", |b| {
        b.iter_batched(
            || {
                let cache = SnapshotCache::new(CacheConfig::default());
                let start = Instant::now();
                cache.apply(start, syncproto::synthetic::snapshot(100, 1));
                cache.set_status(start, SyncStatus::InSync);
                let servers: Vec<ServerConnection> = (0..CONNECTIONS)
                    .map(|_| serve_one(&cache, WireFormat::Native, false).0)
                    .collect();
                (cache, servers)
            },
            |(cache, mut servers)| {
                let writer_cache = cache.clone();
                let writer = std::thread::spawn(move || {
                    for index in 0..CHANGES {
                        let update = syncproto::message::SerializedUpdate::upsert(
                            format!("/calico/v1/config/Bench{}", index % 500),
                            format!("{index}"),
                            "1",
                        );
                        writer_cache.apply(Instant::now(), [update]);
                    }
                });
                let last = cache.stats().sequence + CHANGES as u64;
                let mut sent = 0usize;
                let mut done = vec![false; CONNECTIONS];
                let mut remaining = CONNECTIONS;
                while remaining > 0 {
                    let writer_done = writer.is_finished();
                    for (server, done) in servers.iter_mut().zip(done.iter_mut()) {
                        if *done {
                            continue;
                        }
                        while let Some(bytes) = server.poll_transmit(Instant::now()) {
                            sent += bytes.len();
                        }
                        if writer_done && server.is_flushed() {
                            *done = true;
                            remaining -= 1;
                        }
                    }
                }
                writer.join().expect("writer");
                assert!(cache.stats().sequence >= last);
                black_box(sent)
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// Resident memory of this process, from /proc (Linux); 0 elsewhere.
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Memory per idle connection that has taken the snapshot and follows the
/// cache: resident-set growth over 10 000 of them.
fn report_memory_per_connection() {
    const CONNECTIONS: usize = 10_000;
    for (name, format, compressed) in FLAVOURS {
        let cache = snapshot_cache();
        let _ = serve_one(&cache, format, compressed);
        let before = resident_bytes();
        let servers: Vec<ServerConnection> = (0..CONNECTIONS)
            .map(|_| serve_one(&cache, format, compressed).0)
            .collect();
        let after = resident_bytes();
        println!(
            "fanout/memory_per_idle_connection/{name}: {} bytes ({CONNECTIONS} connections, resident set growth)",
            after.saturating_sub(before) / CONNECTIONS
        );
        drop(servers);
    }
}

fn memory(_: &mut Criterion) {
    report_memory_per_connection();
}

criterion_group!(
    benches,
    memory,
    snapshot_to_n_clients,
    updates_to_n_clients,
    concurrent_writer_and_readers
);
criterion_main!(benches);
