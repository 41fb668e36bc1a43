//! The type definitions this crate's encoder sends, with fixed ids.
//!
//! Go's encoder defines each type the first time a value needs it, so its
//! type ids depend on what was sent before. This encoder instead sends every
//! definition once at the start of a stream, always with the same ids; after
//! that, the encoding of a message depends only on the message. That is what
//! lets a server encode an update once and send the same bytes to every
//! client. Go's decoder accepts definitions ahead of use (they are ordinary
//! messages it stores by id).

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, BytesMut};

use super::types::{TypeId, WireType, id, read_wire_type};
use super::wire::{Reader, put_bytes, put_int, put_uint};

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

/// The schema's own copy of a struct field name, if any message type has
/// a field called `name`: what a decoder keeps instead of allocating a copy
/// of each name a peer's definitions carry (Go's definitions use the same
/// field names, its structs being the ones this schema describes).
pub(crate) fn known_field_name(name: &str) -> Option<&'static str> {
    // Sorted and deduplicated once: looked up for every field of every
    // definition a peer sends.
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = DEFINITIONS
            .iter()
            .flat_map(|(_, definition)| match definition {
                Definition::Struct(_, fields) => fields.iter().map(|(field, _)| *field).collect(),
                Definition::Slice(..) | Definition::GobEncoder(_) => Vec::new(),
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    });
    let index = names.binary_search(&name).ok()?;
    names.get(index).copied()
}

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

/// The definition of `type_id` this schema sends, if `unread` (what
/// follows the id in a peer's definition message) starts with exactly its
/// bytes: the parsed definition and its length in bytes.
///
/// Every stream this crate's encoder writes (a client's to its server, a
/// server's to each client, again after every decoder restart) starts with
/// the same 14 definitions; a server with thousands of such clients would
/// otherwise parse and allocate them once per connection. The table holds
/// each body as encoded here and its parse by the ordinary reader, and a
/// `wireType` ends at its own terminating 0, so when the unread bytes start
/// with a body, reading them would consume exactly those bytes and yield
/// exactly that definition: taking it from the table changes nothing but
/// the cost. Definitions that differ in any byte (Go's encoder, other ids)
/// are parsed as before.
pub(crate) fn canonical_definition(
    type_id: TypeId,
    unread: &[u8],
) -> Option<(&'static Arc<WireType>, usize)> {
    /// Each definition's id, its body as encoded here, and that parsed.
    type Table = Vec<(TypeId, Vec<u8>, Arc<WireType>)>;
    static TABLE: OnceLock<Table> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        DEFINITIONS
            .iter()
            .filter_map(|(type_id, definition)| {
                let mut body = BytesMut::new();
                put_definition(&mut body, *type_id, definition);
                let wire = read_wire_type(&mut Reader::new(&body)).ok()?;
                Some((*type_id, body.to_vec(), Arc::new(wire)))
            })
            .collect()
    });
    let (_, body, wire) = table.iter().find(|(id, ..)| *id == type_id)?;
    unread.starts_with(body).then_some((wire, body.len()))
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

#[cfg(test)]
mod tests {
    use super::super::encoder::put_message;
    use super::*;
    use crate::codec::gob::GobDecoder;
    use crate::message::{ClientHello, Message, SerializedUpdate};

    fn body(type_id: TypeId, definition: &Definition) -> Vec<u8> {
        let mut body = BytesMut::new();
        put_definition(&mut body, type_id, definition);
        body.to_vec()
    }

    #[test]
    fn canonical_definitions_are_what_the_reader_reads() {
        for (type_id, definition) in DEFINITIONS.iter() {
            let mut unread = body(*type_id, definition);
            let parsed = read_wire_type(&mut Reader::new(&unread)).unwrap();
            let (wire, len) = canonical_definition(*type_id, &unread).unwrap();
            assert_eq!((&**wire, len), (&parsed, unread.len()), "{type_id}");
            // Followed by more (a value after a nested definition): the
            // same definition, the same length.
            unread.extend_from_slice(&[1, 2, 3]);
            assert_eq!(canonical_definition(*type_id, &unread).unwrap().1, len);
            // Under another id, or cut short: read, not looked up.
            assert!(canonical_definition(type_id + 100, &unread).is_none());
            assert!(canonical_definition(*type_id, &unread[..len - 1]).is_none());
        }
    }

    /// This crate's stream header with every struct's type name changed in
    /// one byte: the same types, which the table must not match.
    fn renamed_header() -> Vec<u8> {
        let mut all = BytesMut::new();
        for (type_id, definition) in DEFINITIONS.iter() {
            let renamed = match definition {
                Definition::Struct(name, fields) => {
                    Definition::Struct(&name[..name.len() - 1], fields)
                }
                Definition::Slice(name, elem) => Definition::Slice(&name[..name.len() - 1], *elem),
                Definition::GobEncoder(name) => Definition::GobEncoder(&name[..name.len() - 1]),
            };
            let mut message = BytesMut::new();
            put_int(&mut message, -type_id);
            let renamed_body = body(*type_id, &renamed);
            assert!(canonical_definition(*type_id, &renamed_body).is_none());
            message.extend_from_slice(&renamed_body);
            put_uint(&mut all, message.len() as u64);
            all.extend_from_slice(&message);
        }
        all.to_vec()
    }

    #[test]
    fn looked_up_and_read_definitions_decode_alike() {
        let messages = [
            Message::ClientHello(ClientHello {
                hostname: "felix-1".into(),
                supports_decoder_restart: true,
                ..ClientHello::default()
            }),
            Message::Kvs(vec![
                SerializedUpdate::upsert("/calico/v1/config/A", "1", "7"),
                SerializedUpdate::deletion(
                    "/calico/v1/config/B",
                    crate::message::Revision::Int64(8),
                ),
            ]),
            Message::Ack,
        ];
        let decode = |header: &[u8]| {
            let mut stream = BytesMut::from(header);
            for message in &messages {
                put_message(&mut stream, message);
            }
            let mut decoder = GobDecoder::new(crate::codec::gob::GobLimits::for_client());
            std::iter::from_fn(|| decoder.decode(&mut stream).unwrap()).collect::<Vec<_>>()
        };
        let mut canonical = BytesMut::new();
        put_all_definitions(&mut canonical);
        assert_eq!(decode(&canonical), messages);
        assert_eq!(decode(&renamed_header()), messages);
    }
}
