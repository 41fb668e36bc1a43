//! proptest strategies that generate every message the protocol has, with
//! values in their canonical form (the form decoding produces), so that
//! `decode(encode(m)) == m` is the property to check.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use syncproto::message::{
    Checksum, ClientHello, CompressionAlgorithm, DecoderRestart, Message, Ping, Pong, Revision,
    SerializedUpdate, ServerHello, SyncStatus, SyncerType, Timestamp, UpdateType, Zone,
};

/// Short text that may hold any Unicode, escapes included.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9/%.-]{0,24}",
        1 => "\\PC{0,12}",
    ]
}

pub fn syncer_type() -> impl Strategy<Value = SyncerType> {
    prop_oneof![
        Just(SyncerType::Felix),
        Just(SyncerType::Bgp),
        Just(SyncerType::TunnelIpAllocation),
        Just(SyncerType::NodeStatus),
        "[A-Za-z-]{1,12}".prop_map(|name| SyncerType::from_wire(&name)),
    ]
}

pub fn compression() -> impl Strategy<Value = CompressionAlgorithm> {
    prop_oneof![
        Just(CompressionAlgorithm::Snappy),
        "[a-z0-9]{1,8}".prop_map(|name| CompressionAlgorithm::from_wire(&name)),
    ]
}

pub fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![
        Just(Revision::Nil),
        text().prop_map(Revision::from),
        any::<bool>().prop_map(Revision::Bool),
        any::<i64>().prop_map(Revision::Int),
        any::<i8>().prop_map(Revision::Int8),
        any::<i16>().prop_map(Revision::Int16),
        any::<i32>().prop_map(Revision::Int32),
        any::<i64>().prop_map(Revision::Int64),
        any::<u64>().prop_map(Revision::Uint),
        any::<u8>().prop_map(Revision::Uint8),
        any::<u16>().prop_map(Revision::Uint16),
        any::<u32>().prop_map(Revision::Uint32),
        any::<u64>().prop_map(Revision::Uint64),
        any::<u64>().prop_map(Revision::Uintptr),
        any::<f32>().prop_map(Revision::Float32),
        any::<f64>().prop_map(Revision::Float64),
        (any::<f32>(), any::<f32>()).prop_map(|(re, im)| Revision::Complex64(re, im)),
        (any::<f64>(), any::<f64>()).prop_map(|(re, im)| Revision::Complex128(re, im)),
    ]
}

pub fn update_type() -> impl Strategy<Value = UpdateType> {
    proptest::sample::select(UpdateType::ALL.to_vec())
}

pub fn value() -> impl Strategy<Value = Option<Bytes>> {
    option::weighted(0.8, vec(any::<u8>(), 0..200).prop_map(Bytes::from))
}

pub fn update() -> impl Strategy<Value = SerializedUpdate> {
    (
        text(),
        value(),
        revision(),
        text(),
        any::<i64>(),
        update_type(),
    )
        .prop_map(
            |(key, value, revision, v3_resource_version, ttl_nanos, update_type)| {
                SerializedUpdate {
                    key: key.into(),
                    value,
                    revision,
                    v3_resource_version: v3_resource_version.into(),
                    ttl_nanos,
                    update_type,
                }
            },
        )
}

pub fn zone() -> impl Strategy<Value = Zone> {
    prop_oneof![
        Just(Zone::Utc),
        (-(0x7fff * 60 + 59)..=(0x7fff * 60 + 59))
            .prop_filter_map("Go cannot carry it", Zone::fixed),
    ]
}

pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        1 => Just(Timestamp::ZERO),
        4 => (any::<i64>(), 0u32..1_000_000_000, zone())
            .prop_filter_map("valid", |(s, n, z)| Timestamp::from_go_parts(s, n, z)),
    ]
}

pub fn client_hello() -> impl Strategy<Value = ClientHello> {
    (
        (text(), text(), text(), syncer_type()),
        (
            any::<bool>(),
            vec(compression(), 0..3),
            any::<bool>(),
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (hostname, info, version, syncer_type),
                (restart, algorithms, modern, conn_id, protocol_version, checksum),
            )| ClientHello {
                hostname,
                info,
                version,
                syncer_type,
                supports_decoder_restart: restart,
                supported_compression_algorithms: algorithms,
                supports_modern_policy_keys: modern,
                client_conn_id: conn_id,
                supports_checksum: checksum,
                protocol_version,
            },
        )
}

pub fn server_hello() -> impl Strategy<Value = ServerHello> {
    (
        text(),
        syncer_type(),
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(version, syncer_type, node_updates, conn_id, protocol_version, checksum)| {
                ServerHello {
                    version,
                    syncer_type,
                    supports_node_resource_updates: node_updates,
                    server_conn_id: conn_id,
                    supports_checksum: checksum,
                    protocol_version,
                }
            },
        )
}

pub fn sync_status() -> impl Strategy<Value = SyncStatus> {
    proptest::sample::select(SyncStatus::ALL.to_vec())
}

pub fn decoder_restart() -> impl Strategy<Value = DecoderRestart> {
    (text(), option::of(compression())).prop_map(|(message, compression_algorithm)| {
        DecoderRestart {
            message,
            compression_algorithm,
        }
    })
}

/// Any message, every kind equally likely.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        client_hello().prop_map(Message::ClientHello),
        server_hello().prop_map(Message::ServerHello),
        vec(update(), 0..8).prop_map(Message::Kvs),
        sync_status().prop_map(Message::SyncStatus),
        timestamp().prop_map(|timestamp| Message::Ping(Ping { timestamp })),
        (timestamp(), timestamp()).prop_map(|(ping_timestamp, pong_timestamp)| {
            Message::Pong(Pong {
                ping_timestamp,
                pong_timestamp,
            })
        }),
        decoder_restart().prop_map(Message::DecoderRestart),
        Just(Message::Ack),
        (any::<u64>(), any::<i64>()).prop_map(|(checksum, kv_count)| {
            Message::Checksum(Checksum { checksum, kv_count })
        }),
    ]
}

/// `message` as any decoder hands it back: an update's empty value comes
/// back as `None` (it is a deletion on every wire).
pub fn as_received(message: &Message) -> Message {
    match message {
        Message::Kvs(updates) => Message::Kvs(
            updates
                .iter()
                .cloned()
                .map(SerializedUpdate::normalized)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Cut points for splitting a stream of `len` bytes into pieces: a sorted,
/// de-duplicated list of offsets inside it.
pub fn split_points(len: usize, seeds: &[prop::sample::Index]) -> Vec<usize> {
    let mut points: Vec<usize> = seeds.iter().map(|seed| seed.index(len.max(1))).collect();
    points.sort_unstable();
    points.dedup();
    points
}
