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
use criterion::measurement::Measurement;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use syncproto::Message;
use syncproto::client::{ClientConfig, ClientConnection, ClientEvent};
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::fanout::{CacheConfig, SnapshotCache};
use syncproto::key::{DefaultKeyParser, KeyParser};
use syncproto::message::{CompressionAlgorithm, DecoderRestart, SerializedUpdate, SyncStatus};
use syncproto::server::{ServerConfig, ServerConnection};

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;

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

/// A cluster's keys in the proportions a Felix/BGP client receives them:
/// 200 nodes, each with its metadata, BIRD IP, Wireguard, two host config
/// settings, a host endpoint, two BGP settings, and an IPv4 and an IPv6
/// IPAM block with their affinities; 7 000 workload endpoints (escaped
/// `namespace%2fpod` names); profiles for 50 namespaces and 150 service
/// accounts (rules and labels); 400 policies of three kinds (global ones
/// with an empty namespace); tiers, network sets, global config, IP pools,
/// Kubernetes services as v3 resources, and the ready flag: 10 496 keys,
/// two thirds of them workload endpoints. Each path is its own `String`,
/// allocated in turn as a decoder would; the order is a fixed shuffle, as
/// a snapshot arrives in no particular order.
fn key_mix() -> Vec<String> {
    let mut keys = Vec::new();
    for node in 0..200 {
        let host = format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            node / 100,
            node % 100
        );
        let v4 = format!(
            "10.{}.{}.{}-26",
            64 + node / 256,
            node % 256 / 4,
            node % 4 * 64
        );
        let v6 = format!("fd00:10:244:{:x}::-122", node + 1);
        keys.extend([
            format!("/calico/v1/host/{host}/metadata"),
            format!("/calico/v1/host/{host}/bird_ip"),
            format!("/calico/v1/host/{host}/wireguard"),
            format!("/calico/v1/host/{host}/config/IpInIpTunnelAddr"),
            format!("/calico/v1/host/{host}/config/NodeIP"),
            format!("/calico/v1/host/{host}/endpoint/{host}-eth0"),
            format!("/calico/bgp/v1/host/{host}/ip_addr_v4"),
            format!("/calico/bgp/v1/host/{host}/network_v4"),
            format!("/calico/ipam/v2/assignment/ipv4/block/{v4}"),
            format!("/calico/ipam/v2/assignment/ipv6/block/{v6}"),
            format!("/calico/ipam/v2/host/{host}/ipv4/block/{v4}"),
            format!("/calico/ipam/v2/host/{host}/ipv6/block/{v6}"),
        ]);
    }
    for pod in 0..7_000 {
        keys.push(format!(
            "/calico/v1/host/ip-10-0-{}-{}.eu-west-1.compute.internal/workload/k8s/\
             team-{}%2fweb-{:08x}-{:05x}/endpoint/eth0",
            pod % 200 / 100,
            pod % 100,
            pod % 50,
            pod * 2_654_435_761_u64 % 0xffff_ffff,
            pod * 40_503 % 0xf_ffff,
        ));
    }
    for namespace in 0..50 {
        for part in ["rules", "labels"] {
            keys.push(format!(
                "/calico/v1/policy/profile/kns.team-{namespace}/{part}"
            ));
            for account in 0..3 {
                keys.push(format!(
                    "/calico/v1/policy/profile/ksa.team-{namespace}.sa-{account}/{part}"
                ));
            }
        }
        keys.push(format!(
            "/calico/v1/netset/team-{namespace}%2fallowed-egress"
        ));
        for service in 0..4 {
            keys.push(format!(
                "/calico/resources/v3/projectcalico.org/kubernetesservice/team-{namespace}/svc-{service}"
            ));
        }
    }
    for policy in 0..400 {
        keys.push(match policy % 4 {
            0 => format!("/calico/v1/policy/GlobalNetworkPolicy//default.deny-{policy}"),
            1 => format!(
                "/calico/v1/policy/KubernetesNetworkPolicy/team-{}/allow-ingress-{policy}",
                policy % 50
            ),
            _ => format!(
                "/calico/v1/policy/NetworkPolicy/team-{}/platform.allow-{policy}",
                policy % 50
            ),
        });
    }
    for tier in ["default", "platform", "security"] {
        keys.push(format!("/calico/v1/policy/tier/{tier}/metadata"));
    }
    for setting in 0..40 {
        keys.push(format!("/calico/v1/config/FelixSetting{setting}"));
    }
    keys.push("/calico/v1/ipam/v4/pool/10.64.0.0-16".to_owned());
    keys.push("/calico/v1/ipam/v6/pool/fd00:10:244::-48".to_owned());
    keys.push("/calico/v1/Ready".to_owned());
    // A fixed shuffle (Fisher-Yates on a linear congruential sequence).
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..keys.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        keys.swap(i, (state >> 33) as usize % (i + 1));
    }
    // Allocated again in shuffled order, as a decoder allocates them.
    keys.iter().map(|key| key.as_str().to_owned()).collect()
}

/// Key parsing and validation on [`key_mix`] (`parse`, `validate`), and,
/// for comparison with earlier figures, on the keys of the codec snapshot
/// (`snapshot_parse`, `snapshot_validate`: 10 000 workload endpoints and a
/// few others, each key among its update's value, so mostly cache misses).
fn keys(c: &mut Criterion) {
    let mix = key_mix();
    let parser = DefaultKeyParser;
    assert!(mix.iter().all(|key| parser.parse(key).is_ok()));
    let mut group = c.benchmark_group("keys");
    parse_and_validate_mix(&mut group, &mix);
    let updates: Vec<SerializedUpdate> = syncproto::synthetic::snapshot(10_000, 1);
    group.throughput(Throughput::Elements(updates.len() as u64));
    group.bench_function("snapshot_parse", |b| {
        b.iter(|| {
            updates
                .iter()
                .filter(|u| parser.parse(&u.key).is_ok())
                .count()
        })
    });
    group.bench_function("snapshot_validate", |b| {
        b.iter(|| {
            updates
                .iter()
                .filter(|u| parser.validate(&u.key).is_ok())
                .count()
        })
    });
    group.finish();
}

/// `parse` and `validate` on `mix` (the [`key_mix`]) in `group`, whichever
/// clock the group measures with.
fn parse_and_validate_mix<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, mix: &[String]) {
    let parser = DefaultKeyParser;
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| mix.iter().filter(|key| parser.parse(key).is_ok()).count())
    });
    group.bench_function("validate", |b| {
        b.iter(|| {
            mix.iter()
                .filter(|key| parser.validate(key).is_ok())
                .count()
        })
    });
}

/// `parse` and `validate` on [`key_mix`] again, timed in the thread's CPU
/// time rather than wall time: the figure to compare across runs on a
/// machine shared with other work.
fn keys_cpu(c: &mut Criterion<ThreadCpuTime>) {
    let mix = key_mix();
    let mut group = c.benchmark_group("keys_cpu");
    parse_and_validate_mix(&mut group, &mix);
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
criterion_group!(
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = keys_cpu
);
criterion_main!(benches, cpu_benches);
