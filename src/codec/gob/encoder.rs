//! The gob stream encoder: Go's `gob.Encoder` output for [`Message`]s, with
//! every type defined up front (see the schema module) so that a message's
//! bytes depend on nothing but the message.

use bytes::{BufMut, BytesMut};

use super::names::registered_name;
use super::schema::{self, put_all_definitions};
use super::types::{TypeId, id};
use super::wire::{put_bytes, put_float, put_int, put_uint, uint_len};
use crate::codec::{DEFAULT_MAX_CLIENT_MESSAGE_LEN, DEFAULT_MAX_SERVER_MESSAGE_LEN};
use crate::error::UsageError;
use crate::message::{
    CompressionAlgorithm, Message, MessageKind, Revision, SerializedUpdate, Timestamp,
};

/// Encodes [`Message`]s as a gob stream that Go's `gob.Decoder` (and so
/// upstream Typha and Felix, of either protocol generation) accepts.
///
/// The first call writes the type definitions before the message. Each
/// message is one gob message wrapping an `Envelope`, with zero-valued
/// fields omitted as Go omits them. So an update's empty value is omitted
/// like no value: Go decodes both as nil, a deletion (see
/// [`SerializedUpdate`]).
#[derive(Debug, Clone)]
pub struct GobEncoder {
    definitions_sent: bool,
    max_message_len: usize,
    scratch: BytesMut,
}

impl GobEncoder {
    /// An encoder that refuses to produce messages longer than
    /// `max_message_len` bytes (set it to what the peer accepts).
    pub fn new(max_message_len: usize) -> GobEncoder {
        GobEncoder {
            definitions_sent: false,
            max_message_len,
            scratch: BytesMut::new(),
        }
    }

    /// An encoder for a client, limited to what upstream servers accept.
    pub fn for_client() -> GobEncoder {
        GobEncoder::new(DEFAULT_MAX_CLIENT_MESSAGE_LEN)
    }

    /// An encoder for a server.
    pub fn for_server() -> GobEncoder {
        GobEncoder::new(DEFAULT_MAX_SERVER_MESSAGE_LEN)
    }

    /// Whether the type definitions have been written.
    pub(crate) fn stream_started(&self) -> bool {
        self.definitions_sent
    }

    /// Records that the caller wrote the type definitions itself (prebuilt).
    pub(crate) fn mark_stream_started(&mut self) {
        self.definitions_sent = true;
    }

    /// Writes the type definitions now if they have not been written yet:
    /// for callers that append pre-encoded messages after this encoder's
    /// output.
    pub fn start_stream(&mut self, dst: &mut BytesMut) {
        if !self.definitions_sent {
            put_all_definitions(dst);
            self.definitions_sent = true;
        }
    }

    /// Appends `message` (preceded by the type definitions on the first
    /// call) to `dst`. On error nothing is appended.
    pub fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), UsageError> {
        crate::codec::check_peer_limits(message)?;
        self.scratch.clear();
        put_envelope(&mut self.scratch, message);
        let len = self.scratch.len();
        if len > self.max_message_len {
            return Err(UsageError::FrameTooLarge {
                message: message.kind(),
                len,
                max: self.max_message_len,
            });
        }
        self.start_stream(dst);
        put_uint(dst, len as u64);
        dst.put_slice(&self.scratch);
        Ok(())
    }
}

/// The type id of each message's struct in the schema.
fn message_type(kind: MessageKind) -> TypeId {
    match kind {
        MessageKind::ClientHello => schema::CLIENT_HELLO,
        MessageKind::ServerHello => schema::SERVER_HELLO,
        MessageKind::Kvs => schema::KVS,
        MessageKind::SyncStatus => schema::SYNC_STATUS,
        MessageKind::Ping => schema::PING,
        MessageKind::Pong => schema::PONG,
        MessageKind::DecoderRestart => schema::DECODER_RESTART,
        MessageKind::Ack => schema::ACK,
        MessageKind::Checksum => schema::CHECKSUM,
    }
}

/// Writes struct fields, numbering them and omitting zero values, as Go's
/// encoder does.
struct Fields<'a> {
    out: &'a mut BytesMut,
    last: i64,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut BytesMut) -> Fields<'a> {
        Fields { out, last: -1 }
    }

    /// Starts field number `index`; the caller writes its value next.
    fn field(&mut self, index: i64) -> &mut BytesMut {
        put_uint(self.out, (index - self.last) as u64);
        self.last = index;
        self.out
    }

    fn string(&mut self, index: i64, value: &str) {
        if !value.is_empty() {
            put_bytes(self.field(index), value.as_bytes());
        }
    }

    fn boolean(&mut self, index: i64, value: bool) {
        if value {
            put_uint(self.field(index), 1);
        }
    }

    fn uint(&mut self, index: i64, value: u64) {
        if value != 0 {
            put_uint(self.field(index), value);
        }
    }

    fn int(&mut self, index: i64, value: i64) {
        if value != 0 {
            put_int(self.field(index), value);
        }
    }

    fn time(&mut self, index: i64, value: &Timestamp) {
        if !value.is_zero() {
            let (bytes, len) = value.to_go_binary();
            put_bytes(self.field(index), &bytes[..len]);
        }
    }

    fn end(self) {
        put_uint(self.out, 0);
    }
}

/// Appends the body of one gob message: `Envelope{Message: message}`.
fn put_envelope(out: &mut BytesMut, message: &Message) {
    let mut value = BytesMut::new();
    put_message_struct(&mut value, message);
    put_int(out, schema::ENVELOPE);
    put_uint(out, 1); // Envelope.Message
    put_bytes(out, registered_name(message.kind()).as_bytes());
    put_int(out, message_type(message.kind()));
    put_bytes(out, &value);
    put_uint(out, 0); // end of Envelope
}

fn put_message_struct(out: &mut BytesMut, message: &Message) {
    let mut fields = Fields::new(out);
    match message {
        Message::ClientHello(hello) => {
            fields.string(0, &hello.hostname);
            fields.string(1, &hello.info);
            fields.string(2, &hello.version);
            fields.string(3, hello.syncer_type.as_str());
            fields.boolean(4, hello.supports_decoder_restart);
            if !hello.supported_compression_algorithms.is_empty() {
                let out = fields.field(5);
                put_uint(out, hello.supported_compression_algorithms.len() as u64);
                for algorithm in &hello.supported_compression_algorithms {
                    put_bytes(out, CompressionAlgorithm::as_str(algorithm).as_bytes());
                }
            }
            fields.boolean(6, hello.supports_modern_policy_keys);
            fields.uint(7, hello.client_conn_id);
            fields.boolean(8, hello.supports_checksum);
        }
        Message::ServerHello(hello) => {
            fields.string(0, &hello.version);
            fields.string(1, hello.syncer_type.as_str());
            fields.boolean(2, hello.supports_node_resource_updates);
            fields.uint(3, hello.server_conn_id);
            fields.boolean(4, hello.supports_checksum);
        }
        Message::Kvs(updates) => {
            if !updates.is_empty() {
                let out = fields.field(0);
                put_uint(out, updates.len() as u64);
                for update in updates {
                    put_update(out, update);
                }
            }
        }
        Message::SyncStatus(status) => fields.uint(0, u64::from(status.to_wire())),
        Message::Ping(ping) => fields.time(0, &ping.timestamp),
        Message::Pong(pong) => {
            fields.time(0, &pong.ping_timestamp);
            fields.time(1, &pong.pong_timestamp);
        }
        Message::DecoderRestart(restart) => {
            fields.string(0, &restart.message);
            if let Some(algorithm) = &restart.compression_algorithm {
                fields.string(1, algorithm.as_str());
            }
        }
        Message::Ack => {}
        Message::Checksum(checksum) => {
            fields.uint(0, checksum.checksum);
            fields.int(1, checksum.kv_count);
        }
    }
    fields.end();
}

/// Appends one whole gob message holding `message`, without any type
/// definitions (valid after [`put_all_definitions`]).
pub(crate) fn put_message(out: &mut BytesMut, message: &Message) {
    let mut body = BytesMut::new();
    put_envelope(&mut body, message);
    put_uint(out, body.len() as u64);
    out.put_slice(&body);
}

/// Appends one whole gob message `Envelope{MsgKVs{KVs: units}}` from
/// updates already encoded by [`put_update`]: the same bytes
/// [`put_message`] would write for those updates, with a copy of each unit.
pub(crate) fn put_kvs_message(out: &mut BytesMut, units: &[&[u8]]) {
    let units_len: usize = units.iter().map(|unit| unit.len()).sum();
    // MsgKVs's value: field 0 (delta 1), the count, the units, the end.
    let value_len = if units.is_empty() {
        1
    } else {
        1 + uint_len(units.len() as u64) + units_len + 1
    };
    let name = registered_name(MessageKind::Kvs).as_bytes();
    let mut head = BytesMut::with_capacity(64 + name.len());
    put_int(&mut head, schema::ENVELOPE);
    put_uint(&mut head, 1);
    put_bytes(&mut head, name);
    put_int(&mut head, schema::KVS);
    put_uint(&mut head, value_len as u64);
    let body_len = head.len() + value_len + 1;
    out.reserve(uint_len(body_len as u64) + body_len);
    put_uint(out, body_len as u64);
    out.put_slice(&head);
    if !units.is_empty() {
        put_uint(out, 1);
        put_uint(out, units.len() as u64);
        for unit in units {
            out.put_slice(unit);
        }
    }
    put_uint(out, 0); // end of MsgKVs
    put_uint(out, 0); // end of Envelope
}

/// Appends one `SerializedUpdate` struct: the unit a `MsgKVs` slice repeats.
pub(crate) fn put_update(out: &mut BytesMut, update: &SerializedUpdate) {
    let mut fields = Fields::new(out);
    fields.string(0, &update.key);
    // An empty value is omitted like every zero field (Go's encoder cannot
    // send one either): the receiver sees nil, a deletion.
    if let Some(value) = update.effective_value() {
        put_bytes(fields.field(1), value);
    }
    if !update.revision.is_nil() {
        put_revision(fields.field(2), &update.revision);
    }
    fields.string(3, &update.v3_resource_version);
    fields.int(4, update.ttl_nanos);
    fields.uint(5, u64::from(update.update_type.to_wire()));
    fields.end();
}

/// Appends a non-nil `Revision` interface value: the Go type's registered
/// name, its predefined type id, the value's byte count, and the value as a
/// top-level non-struct (a 0 field delta first).
fn put_revision(out: &mut BytesMut, revision: &Revision) {
    let mut value = BytesMut::with_capacity(16);
    value.put_u8(0);
    let wire = match revision {
        Revision::Nil => return,
        Revision::String(text) => {
            put_bytes(&mut value, text.as_bytes());
            id::STRING
        }
        Revision::Bool(flag) => {
            put_uint(&mut value, u64::from(*flag));
            id::BOOL
        }
        Revision::Int(v) | Revision::Int64(v) => int_value(&mut value, *v),
        Revision::Int8(v) => int_value(&mut value, i64::from(*v)),
        Revision::Int16(v) => int_value(&mut value, i64::from(*v)),
        Revision::Int32(v) => int_value(&mut value, i64::from(*v)),
        Revision::Uint(v) | Revision::Uint64(v) | Revision::Uintptr(v) => {
            uint_value(&mut value, *v)
        }
        Revision::Uint8(v) => uint_value(&mut value, u64::from(*v)),
        Revision::Uint16(v) => uint_value(&mut value, u64::from(*v)),
        Revision::Uint32(v) => uint_value(&mut value, u64::from(*v)),
        Revision::Float32(v) => {
            put_float(&mut value, f64::from(*v));
            id::FLOAT
        }
        Revision::Float64(v) => {
            put_float(&mut value, *v);
            id::FLOAT
        }
        Revision::Complex64(re, im) => {
            put_float(&mut value, f64::from(*re));
            put_float(&mut value, f64::from(*im));
            id::COMPLEX
        }
        Revision::Complex128(re, im) => {
            put_float(&mut value, *re);
            put_float(&mut value, *im);
            id::COMPLEX
        }
    };
    let name = revision.go_type_name().unwrap_or_default();
    out.reserve(uint_len(name.len() as u64) + name.len() + 2 + value.len());
    put_bytes(out, name.as_bytes());
    put_int(out, wire);
    put_bytes(out, &value);
}

fn int_value(out: &mut BytesMut, value: i64) -> TypeId {
    put_int(out, value);
    id::INT
}

fn uint_value(out: &mut BytesMut, value: u64) -> TypeId {
    put_uint(out, value);
    id::UINT
}
