//! The gob golden vectors written by the Go reference peer
//! (`tests/golden/gob/`), and their JSON description of each message.

use std::path::PathBuf;

use serde_json::{Value, json};
use syncproto::Message;
use syncproto::message::{Revision, SerializedUpdate, Timestamp};

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gob")
}

/// The raw stream and the JSON array describing its messages.
pub fn load(name: &str) -> (Vec<u8>, Vec<Value>) {
    let dir = golden_dir();
    let bin = std::fs::read(dir.join(format!("{name}.bin"))).expect("golden .bin");
    let json = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("golden .json");
    let messages: Vec<Value> = serde_json::from_str(&json).expect("golden JSON");
    (bin, messages)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn timestamp(ts: &Timestamp) -> Value {
    let (bytes, len) = ts.to_go_binary();
    Value::String(hex(&bytes[..len]))
}

/// Standard base64, as Go's encoding/json writes []byte.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn revision(revision: &Revision) -> Value {
    match revision.go_type_name() {
        None => Value::Null,
        Some(go_type) => json!({"go_type": go_type, "text": revision.to_string()}),
    }
}

fn update(update: &SerializedUpdate) -> Value {
    json!({
        "Key": &*update.key,
        "Value": update.value.as_ref().map(|v| base64(v)),
        "Revision": revision(&update.revision),
        "V3ResourceVersion": &*update.v3_resource_version,
        "TTL": update.ttl_nanos,
        "UpdateType": update.update_type.to_wire(),
    })
}

/// A decoded message in the reference peer's JSON form (every field of the
/// newest layout; compare with [`assert_matches_golden`], which only looks
/// at the fields the golden object has).
pub fn to_json(message: &Message) -> Value {
    match message {
        Message::ClientHello(h) => json!({
            "type": "ClientHello",
            "Hostname": h.hostname,
            "Info": h.info,
            "Version": h.version,
            "SyncerType": h.syncer_type.as_str(),
            "SupportsDecoderRestart": h.supports_decoder_restart,
            "SupportedCompressionAlgorithms":
                h.supported_compression_algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "SupportsModernPolicyKeys": h.supports_modern_policy_keys,
            "ClientConnID": h.client_conn_id,
            "SupportsChecksum": h.supports_checksum,
        }),
        Message::ServerHello(h) => json!({
            "type": "ServerHello",
            "Version": h.version,
            "SyncerType": h.syncer_type.as_str(),
            "SupportsNodeResourceUpdates": h.supports_node_resource_updates,
            "ServerConnID": h.server_conn_id,
            "SupportsChecksum": h.supports_checksum,
        }),
        Message::Kvs(updates) => json!({
            "type": "KVs",
            "KVs": updates.iter().map(update).collect::<Vec<_>>(),
        }),
        Message::SyncStatus(s) => json!({"type": "SyncStatus", "SyncStatus": s.to_wire()}),
        Message::Ping(p) => json!({"type": "Ping", "Timestamp": timestamp(&p.timestamp)}),
        Message::Pong(p) => json!({
            "type": "Pong",
            "PingTimestamp": timestamp(&p.ping_timestamp),
            "PongTimestamp": timestamp(&p.pong_timestamp),
        }),
        Message::DecoderRestart(r) => json!({
            "type": "DecoderRestart",
            "Message": r.message,
            "CompressionAlgorithm": r.compression_algorithm.as_ref().map_or("", |a| a.as_str()),
        }),
        Message::Ack => json!({"type": "ACK"}),
        Message::Checksum(c) => json!({
            "type": "Checksum",
            "Checksum": c.checksum,
            "KVCount": c.kv_count,
        }),
    }
}

/// Checks that every field the golden object describes has the same value
/// in the decoded message (an old layout's object has fewer fields).
pub fn assert_matches_golden(decoded: &Message, golden: &Value, context: &str) {
    let ours = to_json(decoded);
    let golden_fields = golden.as_object().expect("golden message is an object");
    for (field, expected) in golden_fields {
        let actual = &ours[field];
        // SyncerType "" from an old peer is Felix in the model.
        if field == "SyncerType" && expected == "" {
            assert_eq!(actual, "felix", "{context}: {field}");
            continue;
        }
        if field == "KVs" {
            let (actual, expected) = (actual.as_array().unwrap(), expected.as_array().unwrap());
            assert_eq!(actual.len(), expected.len(), "{context}: KV count");
            for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
                for (kv_field, e_value) in e.as_object().unwrap() {
                    assert_eq!(&a[kv_field], e_value, "{context}: KV {i} field {kv_field}");
                }
            }
            continue;
        }
        assert_eq!(actual, expected, "{context}: field {field}");
    }
}
