//! The type definitions this crate's encoder sends, with fixed ids.
//!
//! Go's encoder defines each type the first time a value needs it, so its
//! type ids depend on what was sent before. This encoder instead sends every
//! definition once at the start of a stream, always with the same ids; after
//! that, the encoding of a message depends only on the message. That is what
//! lets a server encode an update once and send the same bytes to every
//! client. Go's decoder accepts definitions ahead of use (they are ordinary
//! messages it stores by id).

use bytes::{BufMut, BytesMut};

use super::types::{TypeId, id};
use super::wire::{put_bytes, put_int, put_uint};

pub(crate) const ENVELOPE: TypeId = 65;
pub(crate) const CLIENT_HELLO: TypeId = 66;
pub(crate) const COMPRESSION_SLICE: TypeId = 67;
pub(crate) const SERVER_HELLO: TypeId = 68;
pub(crate) const KVS: TypeId = 69;
pub(crate) const UPDATE_SLICE: TypeId = 70;
pub(crate) const UPDATE: TypeId = 71;
pub(crate) const SYNC_STATUS: TypeId = 72;
pub(crate) const PING: TypeId = 73;
pub(crate) const TIME: TypeId = 74;
pub(crate) const PONG: TypeId = 75;
pub(crate) const DECODER_RESTART: TypeId = 76;
pub(crate) const ACK: TypeId = 77;
pub(crate) const CHECKSUM: TypeId = 78;

/// A definition to send: upstream's Go type names and field layouts.
enum Definition {
    Struct(&'static str, &'static [(&'static str, TypeId)]),
    Slice(&'static str, TypeId),
    GobEncoder(&'static str),
}

const DEFINITIONS: [(TypeId, Definition); 14] = [
    (
        ENVELOPE,
        Definition::Struct("Envelope", &[("Message", id::INTERFACE)]),
    ),
    (
        CLIENT_HELLO,
        Definition::Struct(
            "MsgClientHello",
            &[
                ("Hostname", id::STRING),
                ("Info", id::STRING),
                ("Version", id::STRING),
                ("SyncerType", id::STRING),
                ("SupportsDecoderRestart", id::BOOL),
                ("SupportedCompressionAlgorithms", COMPRESSION_SLICE),
                ("SupportsModernPolicyKeys", id::BOOL),
                ("ClientConnID", id::UINT),
                ("SupportsChecksum", id::BOOL),
            ],
        ),
    ),
    (
        COMPRESSION_SLICE,
        Definition::Slice("[]syncproto.CompressionAlgorithm", id::STRING),
    ),
    (
        SERVER_HELLO,
        Definition::Struct(
            "MsgServerHello",
            &[
                ("Version", id::STRING),
                ("SyncerType", id::STRING),
                ("SupportsNodeResourceUpdates", id::BOOL),
                ("ServerConnID", id::UINT),
                ("SupportsChecksum", id::BOOL),
            ],
        ),
    ),
    (KVS, Definition::Struct("MsgKVs", &[("KVs", UPDATE_SLICE)])),
    (
        UPDATE_SLICE,
        Definition::Slice("[]syncproto.SerializedUpdate", UPDATE),
    ),
    (
        UPDATE,
        Definition::Struct(
            "SerializedUpdate",
            &[
                ("Key", id::STRING),
                ("Value", id::BYTES),
                ("Revision", id::INTERFACE),
                ("V3ResourceVersion", id::STRING),
                ("TTL", id::INT),
                ("UpdateType", id::UINT),
            ],
        ),
    ),
    (
        SYNC_STATUS,
        Definition::Struct("MsgSyncStatus", &[("SyncStatus", id::UINT)]),
    ),
    (PING, Definition::Struct("MsgPing", &[("Timestamp", TIME)])),
    (TIME, Definition::GobEncoder("Time")),
    (
        PONG,
        Definition::Struct(
            "MsgPong",
            &[("PingTimestamp", TIME), ("PongTimestamp", TIME)],
        ),
    ),
    (
        DECODER_RESTART,
        Definition::Struct(
            "MsgDecoderRestart",
            &[
                ("Message", id::STRING),
                ("CompressionAlgorithm", id::STRING),
            ],
        ),
    ),
    (ACK, Definition::Struct("MsgACK", &[])),
    (
        CHECKSUM,
        Definition::Struct(
            "MsgChecksum",
            &[("Checksum", id::UINT), ("KVCount", id::INT)],
        ),
    ),
];

/// Field numbers of gob's own `wireType` struct that this schema uses.
const WIRE_SLICE_T: u64 = 1;
const WIRE_STRUCT_T: u64 = 2;
const WIRE_GOB_ENCODER_T: u64 = 4;

/// Appends `CommonType { Name, Id }` as a struct field value.
fn put_common(out: &mut BytesMut, name: &str, type_id: TypeId) {
    put_uint(out, 1); // Name
    put_bytes(out, name.as_bytes());
    put_uint(out, 1); // Id
    put_int(out, type_id);
    put_uint(out, 0);
}

/// Appends the `wireType` value defining `type_id`.
fn put_definition(out: &mut BytesMut, type_id: TypeId, definition: &Definition) {
    match definition {
        Definition::Struct(name, fields) => {
            put_uint(out, WIRE_STRUCT_T + 1);
            put_uint(out, 1); // structType.CommonType
            put_common(out, name, type_id);
            if !fields.is_empty() {
                put_uint(out, 1); // structType.Field
                put_uint(out, fields.len() as u64);
                for (field, field_type) in fields.iter() {
                    put_uint(out, 1); // fieldType.Name
                    put_bytes(out, field.as_bytes());
                    put_uint(out, 1); // fieldType.Id
                    put_int(out, *field_type);
                    put_uint(out, 0);
                }
            }
            put_uint(out, 0);
        }
        Definition::Slice(name, elem) => {
            put_uint(out, WIRE_SLICE_T + 1);
            put_uint(out, 1); // sliceType.CommonType
            put_common(out, name, type_id);
            put_uint(out, 1); // sliceType.Elem
            put_int(out, *elem);
            put_uint(out, 0);
        }
        Definition::GobEncoder(name) => {
            put_uint(out, WIRE_GOB_ENCODER_T + 1);
            put_uint(out, 1); // gobEncoderType.CommonType
            put_common(out, name, type_id);
            put_uint(out, 0);
        }
    }
    put_uint(out, 0); // end of wireType
}

/// Appends every definition as its own gob message, in id order.
pub(crate) fn put_all_definitions(out: &mut BytesMut) {
    // The same bytes for every stream: built once, copied after (every gob
    // connection starts with them, a server's thousands included).
    static ALL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    out.put_slice(ALL.get_or_init(|| {
        let mut all = BytesMut::new();
        let mut body = BytesMut::new();
        for (type_id, definition) in DEFINITIONS.iter() {
            body.clear();
            put_int(&mut body, -type_id);
            put_definition(&mut body, *type_id, definition);
            put_uint(&mut all, body.len() as u64);
            all.put_slice(&body);
        }
        all.to_vec()
    }));
}
