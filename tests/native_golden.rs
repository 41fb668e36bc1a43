//! The native format pinned to bytes (FORMAT.md): one golden vector per
//! message type and per revision kind under `tests/golden/native/`, each a
//! whole stream (preamble and one frame). Checked both ways: encoding the
//! message gives the file's bytes, and decoding the file gives the message.
//! A reordered field, tag or variant fails here.
//!
//! `SYNCPROTO_WRITE_GOLDEN=1 cargo test --test native_golden` rewrites the
//! files (then review the diff: a change to committed vectors is a change
//! to the format).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use bytes::BytesMut;
use syncproto::Message;
use syncproto::codec::native::{NativeDecoder, NativeEncoder};
use syncproto::message::{
    Checksum, ClientHello, CompressionAlgorithm, DecoderRestart, Ping, Pong, Revision,
    SerializedUpdate, ServerHello, SyncStatus, SyncerType, Timestamp, UpdateType, Zone,
};

fn at(unix: i64, nanos: u32, zone: Zone) -> Timestamp {
    Timestamp::from_unix(unix, nanos).unwrap().with_zone(zone)
}

fn client_hello(protocol_version: u32, supports_checksum: bool) -> ClientHello {
    ClientHello {
        hostname: "node-1".into(),
        info: "felix".into(),
        version: "v3.30.0".into(),
        syncer_type: SyncerType::Felix,
        supports_decoder_restart: true,
        supported_compression_algorithms: vec![CompressionAlgorithm::Snappy],
        supports_modern_policy_keys: true,
        client_conn_id: 300,
        supports_checksum,
        protocol_version,
    }
}

fn server_hello(protocol_version: u32, supports_checksum: bool) -> ServerHello {
    ServerHello {
        version: "v3.30.0".into(),
        syncer_type: SyncerType::Bgp,
        supports_node_resource_updates: true,
        server_conn_id: 42,
        supports_checksum,
        protocol_version,
    }
}

fn update_with(revision: Revision) -> SerializedUpdate {
    SerializedUpdate {
        key: "/calico/v1/config/K".into(),
        value: Some("v".into()),
        revision,
        v3_resource_version: "".into(),
        ttl_nanos: 0,
        update_type: UpdateType::Updated,
    }
}

/// Every vector: its file name and the message it holds.
fn vectors() -> Vec<(&'static str, Message)> {
    let mut vectors = vec![
        ("client_hello", Message::ClientHello(client_hello(2, true))),
        ("server_hello", Message::ServerHello(server_hello(2, true))),
        (
            "kvs",
            Message::Kvs(vec![
                SerializedUpdate {
                    key: "/calico/v1/config/LogSeverityScreen".into(),
                    value: Some("Info".into()),
                    revision: "17".into(),
                    v3_resource_version: "".into(),
                    ttl_nanos: 0,
                    update_type: UpdateType::New,
                },
                SerializedUpdate {
                    key: "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/p".into(),
                    value: Some(r#"{"spec":{}}"#.into()),
                    revision: "18".into(),
                    v3_resource_version: "1234".into(),
                    ttl_nanos: 90_000_000_000,
                    update_type: UpdateType::Updated,
                },
                SerializedUpdate::deletion("/calico/v1/Ready", "19"),
            ]),
        ),
        ("kvs_empty", Message::Kvs(Vec::new())),
        ("sync_status", Message::SyncStatus(SyncStatus::InSync)),
        (
            "ping",
            Message::Ping(Ping {
                timestamp: at(1_700_000_000, 123_456_789, Zone::Utc),
            }),
        ),
        (
            "pong",
            Message::Pong(Pong {
                ping_timestamp: at(1_700_000_000, 0, Zone::Utc),
                pong_timestamp: at(1_700_000_001, 5, Zone::fixed(-3600).unwrap()),
            }),
        ),
        (
            "decoder_restart",
            Message::DecoderRestart(DecoderRestart {
                message: "enable compression: snappy;send binary snapshot".into(),
                compression_algorithm: Some(CompressionAlgorithm::Snappy),
            }),
        ),
        (
            "decoder_restart_plain",
            Message::DecoderRestart(DecoderRestart {
                message: "plain".into(),
                compression_algorithm: None,
            }),
        ),
        ("ack", Message::Ack),
        (
            "checksum",
            Message::Checksum(Checksum {
                checksum: 0x4b60_7981_3954_9d1d,
                kv_count: 1,
            }),
        ),
    ];
    let revisions = [
        ("nil", Revision::Nil),
        ("string", Revision::String("123".into())),
        ("bool", Revision::Bool(true)),
        ("int", Revision::Int(-2)),
        ("int8", Revision::Int8(-3)),
        ("int16", Revision::Int16(-300)),
        ("int32", Revision::Int32(70_000)),
        ("int64", Revision::Int64(-1)),
        ("uint", Revision::Uint(2)),
        ("uint8", Revision::Uint8(200)),
        ("uint16", Revision::Uint16(300)),
        ("uint32", Revision::Uint32(70_000)),
        ("uint64", Revision::Uint64(u64::MAX)),
        ("uintptr", Revision::Uintptr(4096)),
        ("float32", Revision::Float32(1.5)),
        ("float64", Revision::Float64(-2.25)),
        ("complex64", Revision::Complex64(1.0, -1.0)),
        ("complex128", Revision::Complex128(0.5, 2.0)),
    ];
    for (name, revision) in revisions {
        let name: &'static str = Box::leak(format!("revision_{name}").into_boxed_str());
        vectors.push((name, Message::Kvs(vec![update_with(revision)])));
    }
    vectors
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/native")
        .join(format!("{name}.bin"))
}

#[test]
fn every_message_and_revision_kind_matches_its_golden_bytes_both_ways() {
    let write = std::env::var("SYNCPROTO_WRITE_GOLDEN").is_ok_and(|v| v == "1");
    for (name, message) in vectors() {
        let mut encoded = BytesMut::new();
        NativeEncoder::new(usize::MAX)
            .encode(&message, &mut encoded)
            .unwrap();
        if write {
            std::fs::create_dir_all(path(name).parent().unwrap()).unwrap();
            std::fs::write(path(name), &encoded).unwrap();
        }
        let golden = std::fs::read(path(name))
            .unwrap_or_else(|error| panic!("{name}: {error} (SYNCPROTO_WRITE_GOLDEN=1 writes it)"));
        assert_eq!(
            hex(&encoded),
            hex(&golden),
            "{name}: the encoder no longer writes the pinned bytes"
        );
        let mut input = BytesMut::from(&golden[..]);
        let decoded = NativeDecoder::new(usize::MAX).decode(&mut input).unwrap();
        assert_eq!(decoded.as_ref(), Some(&message), "{name}");
        assert!(input.is_empty(), "{name}: bytes left over");
    }
}

/// Hellos as a version-1 peer wrote them (before the version-2 fields were
/// appended) still decode, every newer field read as false. Decode-only:
/// this crate now writes version 2.
#[test]
fn version_1_hellos_still_decode() {
    for (name, message) in [
        (
            "client_hello_v1",
            Message::ClientHello(client_hello(1, false)),
        ),
        (
            "server_hello_v1",
            Message::ServerHello(server_hello(1, false)),
        ),
    ] {
        let golden = std::fs::read(path(name)).unwrap();
        let mut input = BytesMut::from(&golden[..]);
        let decoded = NativeDecoder::new(usize::MAX).decode(&mut input).unwrap();
        assert_eq!(decoded.as_ref(), Some(&message), "{name}");
        assert!(input.is_empty(), "{name}: bytes left over");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
