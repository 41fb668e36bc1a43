//! Decoding the protocol's values out of gob: the `Envelope`, each message
//! struct (fields matched by name, unknown ones skipped), `SerializedUpdate`,
//! the `Revision` interface and `time.Time`.

use super::GobError;
use super::names::message_kind_for_name;
use super::session::{Session, Stop};
use super::types::{OpaqueKind, TypeId, WireType, id};
use crate::codec::borrowed::Decoded;
use crate::codec::read_ahead::ReadAhead;
use crate::codec::{MAX_COMPRESSION_ALGORITHMS, MAX_UPDATES_PER_MESSAGE};
use crate::error::DecodeError;
use crate::message::{
    Checksum, ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, Ping, Pong,
    RevisionRef, SerializedUpdateRef, ServerHello, SyncStatus, Timestamp, UpdateType,
};

/// What a local field requires of the sender's type for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// One of gob's predefined types.
    Basic(TypeId),
    /// A slice of strings (`[]CompressionAlgorithm`).
    StringSlice,
    /// A slice of structs (`[]SerializedUpdate`).
    StructSlice,
    /// A GobEncoder (`time.Time`).
    Time,
    /// An empty interface (`Revision`, `Envelope.Message`).
    Interface,
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Basic(id::BOOL) => "bool",
            Expect::Basic(id::INT) => "int",
            Expect::Basic(id::UINT) => "uint",
            Expect::Basic(id::BYTES) => "[]byte",
            Expect::Basic(_) => "string",
            Expect::StringSlice => "[]string",
            Expect::StructSlice => "[]struct",
            Expect::Time => "time.Time (GobEncoder)",
            Expect::Interface => "interface{}",
        }
    }
}

/// How to treat each field of a sender's struct, by field number.
#[derive(Debug, Clone, Copy)]
enum Slot<T> {
    Use(T),
    Skip(TypeId),
}

/// Matches the fields of the sender's struct `struct_id` against the local
/// fields (name, tag, requirement), as Go's decoder does when it compiles an
/// engine: by name, checking that each matched field's type is compatible.
fn compile<T: Copy>(
    session: &Session<'_, '_>,
    struct_id: TypeId,
    owner: &'static str,
    locals: &[(&'static str, T, Expect)],
) -> Result<Vec<Slot<T>>, GobError> {
    let WireType::Struct { fields, .. } = session.lookup_required(struct_id)? else {
        return Err(GobError::NotAStruct(owner));
    };
    fields
        .iter()
        .map(|field| {
            let Some((name, tag, expect)) = locals.iter().find(|(name, ..)| *name == field.name)
            else {
                return Ok(Slot::Skip(field.id));
            };
            if !compatible(session, field.id, *expect) {
                return Err(GobError::FieldType {
                    owner,
                    field: name,
                    expected: expect.describe(),
                });
            }
            Ok(Slot::Use(*tag))
        })
        .collect()
}

fn compatible(session: &Session<'_, '_>, field: TypeId, expect: Expect) -> bool {
    match expect {
        Expect::Basic(basic) => field == basic,
        Expect::Interface => field == id::INTERFACE,
        Expect::StringSlice => matches!(
            session.lookup(field),
            Some(WireType::Slice { elem: id::STRING })
        ),
        Expect::StructSlice => match session.lookup(field) {
            Some(WireType::Slice { elem }) => {
                matches!(session.lookup(*elem), Some(WireType::Struct { .. }))
            }
            _ => false,
        },
        Expect::Time => matches!(
            session.lookup(field),
            Some(WireType::Opaque {
                kind: OpaqueKind::GobEncoder,
                ..
            })
        ),
    }
}

/// Reads a struct with a compiled plan, handing each used field's tag to
/// `on_field` and skipping the rest.
fn read_planned<'m, 't, T: Copy>(
    session: &mut Session<'m, 't>,
    plan: &[Slot<T>],
    mut on_field: impl FnMut(&mut Session<'m, 't>, T) -> Result<(), Stop>,
) -> Result<(), Stop> {
    session.read_struct(plan.len(), |session, index| match plan.get(index) {
        Some(Slot::Use(tag)) => on_field(session, *tag),
        Some(Slot::Skip(field_type)) => session.skip(*field_type),
        None => Err(GobError::FieldOutOfRange.into()),
    })
}

/// Decodes the top-level value of type `value_type`: an `Envelope` whose
/// `Message` field holds one protocol message. `accepts` says which message
/// kinds may arrive on this stream; others are refused by name, before
/// their contents are decoded. A `KVs` message's updates borrow the
/// messages read.
pub(crate) fn decode_envelope<'m>(
    session: &mut Session<'m, '_>,
    value_type: TypeId,
    accepts: impl Fn(MessageKind) -> bool,
) -> Result<Decoded<'m>, Stop> {
    if value_type < id::FIRST_USER {
        return Err(GobError::NotAnEnvelope.into());
    }
    let plan = compile(
        session,
        value_type,
        "Envelope",
        &[("Message", (), Expect::Interface)],
    )
    .map_err(|error| match error {
        GobError::NotAStruct(_) => GobError::NotAnEnvelope,
        other => other,
    })?;
    if !plan.iter().any(|slot| matches!(slot, Slot::Use(()))) {
        return Err(GobError::NotAnEnvelope.into());
    }
    let mut message = None;
    read_planned(session, &plan, |session, ()| {
        message = Some(decode_message_interface(session, &accepts)?);
        Ok(())
    })?;
    if !session.reader.is_empty() {
        return Err(GobError::ExtraData.into());
    }
    message.ok_or(GobError::NilMessage.into())
}

fn decode_message_interface<'m>(
    session: &mut Session<'m, '_>,
    accepts: &impl Fn(MessageKind) -> bool,
) -> Result<Decoded<'m>, Stop> {
    let name = session.read_interface_name()?;
    if name.is_empty() {
        return Err(GobError::NilMessage.into());
    }
    let kind =
        message_kind_for_name(name).ok_or_else(|| GobError::UnregisteredName(name.to_owned()))?;
    if !accepts(kind) {
        return Err(DecodeError::WrongDirection(kind).into());
    }
    let concrete = session.type_sequence()?;
    // The value's byte count; Go's decoder ignores it too (it does not cover
    // nested definitions that Go's encoder frames separately).
    session.reader.read_uint()?;
    session.nested(|session| decode_message(session, kind, concrete))
}

fn decode_message<'m>(
    session: &mut Session<'m, '_>,
    kind: MessageKind,
    struct_id: TypeId,
) -> Result<Decoded<'m>, Stop> {
    match kind {
        MessageKind::Kvs => decode_kvs(session, struct_id).map(Decoded::Kvs),
        other => decode_other(session, other, struct_id).map(Decoded::Other),
    }
}

/// Decodes any message but `KVs`.
fn decode_other(
    session: &mut Session<'_, '_>,
    kind: MessageKind,
    struct_id: TypeId,
) -> Result<Message, Stop> {
    match kind {
        MessageKind::ClientHello => {
            decode_client_hello(session, struct_id).map(Message::ClientHello)
        }
        MessageKind::ServerHello => {
            decode_server_hello(session, struct_id).map(Message::ServerHello)
        }
        // Read by `decode_message`, never here.
        MessageKind::Kvs => Err(GobError::NotAStruct("MsgKVs").into()),
        MessageKind::SyncStatus => {
            let mut raw = 0;
            let plan = compile(
                session,
                struct_id,
                "MsgSyncStatus",
                &[("SyncStatus", (), Expect::Basic(id::UINT))],
            )?;
            read_planned(session, &plan, |session, ()| {
                raw = read_u8(session, "SyncStatus")?;
                Ok(())
            })?;
            let status = SyncStatus::from_wire(raw)
                .ok_or(Stop::Error(DecodeError::InvalidSyncStatus(raw)))?;
            Ok(Message::SyncStatus(status))
        }
        MessageKind::Ping => {
            let mut ping = Ping::default();
            let plan = compile(
                session,
                struct_id,
                "MsgPing",
                &[("Timestamp", (), Expect::Time)],
            )?;
            read_planned(session, &plan, |session, ()| {
                ping.timestamp = read_time(session)?;
                Ok(())
            })?;
            Ok(Message::Ping(ping))
        }
        MessageKind::Pong => {
            let mut pong = Pong::default();
            let plan = compile(
                session,
                struct_id,
                "MsgPong",
                &[
                    ("PingTimestamp", false, Expect::Time),
                    ("PongTimestamp", true, Expect::Time),
                ],
            )?;
            read_planned(session, &plan, |session, is_pong| {
                let time = read_time(session)?;
                match is_pong {
                    false => pong.ping_timestamp = time,
                    true => pong.pong_timestamp = time,
                }
                Ok(())
            })?;
            Ok(Message::Pong(pong))
        }
        MessageKind::DecoderRestart => {
            let mut restart = DecoderRestart::default();
            let plan = compile(
                session,
                struct_id,
                "MsgDecoderRestart",
                &[
                    ("Message", false, Expect::Basic(id::STRING)),
                    ("CompressionAlgorithm", true, Expect::Basic(id::STRING)),
                ],
            )?;
            read_planned(session, &plan, |session, is_algorithm| {
                let text = session.reader.read_str()?;
                match is_algorithm {
                    false => restart.message = text.to_owned(),
                    true if text.is_empty() => restart.compression_algorithm = None,
                    true => {
                        restart.compression_algorithm = Some(CompressionAlgorithm::from_wire(text))
                    }
                }
                Ok(())
            })?;
            Ok(Message::DecoderRestart(restart))
        }
        MessageKind::Ack => {
            let plan = compile::<()>(session, struct_id, "MsgACK", &[])?;
            read_planned(session, &plan, |_, ()| Ok(()))?;
            Ok(Message::Ack)
        }
        MessageKind::Checksum => {
            let mut checksum = Checksum::default();
            let plan = compile(
                session,
                struct_id,
                "MsgChecksum",
                &[
                    ("Checksum", false, Expect::Basic(id::UINT)),
                    ("KVCount", true, Expect::Basic(id::INT)),
                ],
            )?;
            read_planned(session, &plan, |session, is_count| {
                match is_count {
                    false => checksum.checksum = session.reader.read_uint()?,
                    true => checksum.kv_count = session.reader.read_int()?,
                }
                Ok(())
            })?;
            Ok(Message::Checksum(checksum))
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum HelloField {
    Hostname,
    Info,
    Version,
    SyncerType,
    SupportsDecoderRestart,
    Compression,
    ModernPolicyKeys,
    ConnId,
    SupportsChecksum,
}

fn decode_client_hello(
    session: &mut Session<'_, '_>,
    struct_id: TypeId,
) -> Result<ClientHello, Stop> {
    use HelloField::*;
    let plan = compile(
        session,
        struct_id,
        "MsgClientHello",
        &[
            ("Hostname", Hostname, Expect::Basic(id::STRING)),
            ("Info", Info, Expect::Basic(id::STRING)),
            ("Version", Version, Expect::Basic(id::STRING)),
            ("SyncerType", SyncerType, Expect::Basic(id::STRING)),
            (
                "SupportsDecoderRestart",
                SupportsDecoderRestart,
                Expect::Basic(id::BOOL),
            ),
            (
                "SupportedCompressionAlgorithms",
                Compression,
                Expect::StringSlice,
            ),
            (
                "SupportsModernPolicyKeys",
                ModernPolicyKeys,
                Expect::Basic(id::BOOL),
            ),
            ("ClientConnID", ConnId, Expect::Basic(id::UINT)),
            (
                "SupportsChecksum",
                SupportsChecksum,
                Expect::Basic(id::BOOL),
            ),
        ],
    )?;
    let mut hello = ClientHello::default();
    read_planned(session, &plan, |session, field| {
        let reader = &mut session.reader;
        match field {
            Hostname => hello.hostname = reader.read_str()?.to_owned(),
            Info => hello.info = reader.read_str()?.to_owned(),
            Version => hello.version = reader.read_str()?.to_owned(),
            SyncerType => {
                hello.syncer_type = crate::message::SyncerType::from_wire(reader.read_str()?)
            }
            SupportsDecoderRestart => hello.supports_decoder_restart = reader.read_bool()?,
            Compression => {
                let count = session.read_count()?;
                if count > MAX_COMPRESSION_ALGORITHMS as u64 {
                    return Err(DecodeError::MalformedBody {
                        message: MessageKind::ClientHello,
                        reason: format!(
                            "{count} compression algorithms offered, over the limit of {MAX_COMPRESSION_ALGORITHMS}"
                        ),
                    }
                    .into());
                }
                let mut algorithms = Vec::new();
                for _ in 0..count {
                    algorithms.push(CompressionAlgorithm::from_wire(session.reader.read_str()?));
                }
                hello.supported_compression_algorithms = algorithms;
            }
            ModernPolicyKeys => hello.supports_modern_policy_keys = reader.read_bool()?,
            ConnId => hello.client_conn_id = reader.read_uint()?,
            SupportsChecksum => hello.supports_checksum = reader.read_bool()?,
        }
        Ok(())
    })?;
    Ok(hello)
}

fn decode_server_hello(
    session: &mut Session<'_, '_>,
    struct_id: TypeId,
) -> Result<ServerHello, Stop> {
    use HelloField::*;
    let plan = compile(
        session,
        struct_id,
        "MsgServerHello",
        &[
            ("Version", Version, Expect::Basic(id::STRING)),
            ("SyncerType", SyncerType, Expect::Basic(id::STRING)),
            (
                "SupportsNodeResourceUpdates",
                SupportsDecoderRestart,
                Expect::Basic(id::BOOL),
            ),
            ("ServerConnID", ConnId, Expect::Basic(id::UINT)),
            (
                "SupportsChecksum",
                SupportsChecksum,
                Expect::Basic(id::BOOL),
            ),
        ],
    )?;
    // An old server sends no syncer type: that means Felix.
    let mut hello = ServerHello::default();
    read_planned(session, &plan, |session, field| {
        let reader = &mut session.reader;
        match field {
            SyncerType => {
                hello.syncer_type = crate::message::SyncerType::from_wire(reader.read_str()?)
            }
            SupportsDecoderRestart => hello.supports_node_resource_updates = reader.read_bool()?,
            ConnId => hello.server_conn_id = reader.read_uint()?,
            SupportsChecksum => hello.supports_checksum = reader.read_bool()?,
            _ => hello.version = reader.read_str()?.to_owned(),
        }
        Ok(())
    })?;
    Ok(hello)
}

#[derive(Debug, Clone, Copy)]
enum UpdateField {
    Key,
    Value,
    Revision,
    ResourceVersion,
    Ttl,
    UpdateType,
}

fn decode_kvs<'m>(
    session: &mut Session<'m, '_>,
    struct_id: TypeId,
) -> Result<Vec<SerializedUpdateRef<'m>>, Stop> {
    let plan = compile(
        session,
        struct_id,
        "MsgKVs",
        &[("KVs", (), Expect::StructSlice)],
    )?;
    let mut updates = Vec::new();
    let slice_of = |session: &Session<'_, '_>, field_type: TypeId| match session.lookup(field_type)
    {
        Some(WireType::Slice { elem }) => Some(*elem),
        _ => None,
    };
    let element = match session.lookup_required(struct_id)? {
        WireType::Struct { fields, .. } => fields
            .iter()
            .find(|field| field.name == "KVs")
            .and_then(|field| slice_of(session, field.id)),
        _ => None,
    };
    read_planned(session, &plan, |session, ()| {
        let element = element.ok_or(GobError::NotAStruct("SerializedUpdate"))?;
        updates = decode_update_slice(session, element)?;
        Ok(())
    })?;
    Ok(updates)
}

fn decode_update_slice<'m>(
    session: &mut Session<'m, '_>,
    element: TypeId,
) -> Result<Vec<SerializedUpdateRef<'m>>, Stop> {
    use UpdateField::*;
    let plan = compile(
        session,
        element,
        "SerializedUpdate",
        &[
            ("Key", Key, Expect::Basic(id::STRING)),
            ("Value", Value, Expect::Basic(id::BYTES)),
            ("Revision", Revision, Expect::Interface),
            (
                "V3ResourceVersion",
                ResourceVersion,
                Expect::Basic(id::STRING),
            ),
            ("TTL", Ttl, Expect::Basic(id::INT)),
            ("UpdateType", UpdateType, Expect::Basic(id::UINT)),
        ],
    )?;
    let count = session.read_count()?;
    if count > MAX_UPDATES_PER_MESSAGE as u64 {
        return Err(DecodeError::TooManyUpdates {
            count,
            max: MAX_UPDATES_PER_MESSAGE,
        }
        .into());
    }
    // Grow with what actually arrives rather than with what the count says.
    let mut updates = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
    let mut read_ahead = ReadAhead::new(session.reader.unread(), session.buffered);
    for _ in 0..count {
        // Go ends every struct with a 0, so an update takes at least a byte;
        // an update cut off by the end of the message would take none.
        if session.reader.is_empty() {
            return Err(GobError::UnexpectedEnd.into());
        }
        read_ahead.touch(session.reader.unread());
        updates.push(session.nested(|session| decode_update(session, &plan))?);
    }
    Ok(updates)
}

fn decode_update<'m>(
    session: &mut Session<'m, '_>,
    plan: &[Slot<UpdateField>],
) -> Result<SerializedUpdateRef<'m>, Stop> {
    let mut update = SerializedUpdateRef::default();
    let mut update_type = 0u8;
    // Each part borrows the message it was read from: a field read later
    // may move the reader to another message (an interface value's type
    // definition ends the message it is met in), and every message read
    // stays alive until the value is handed over. Strings are checked for
    // UTF-8 once every field is read, as before any other check.
    let (mut key, mut value, mut revision_text, mut resource_version) =
        (&[][..], &[][..], None, &[][..]);
    read_planned(session, plan, |session, field| {
        match field {
            UpdateField::Key => key = session.reader.read_slice()?,
            UpdateField::Value => value = session.reader.read_slice()?,
            UpdateField::Revision => match decode_revision(session)? {
                RevisionRead::Value(read) => update.revision = read,
                RevisionRead::String(text) => revision_text = Some(text),
            },
            UpdateField::ResourceVersion => resource_version = session.reader.read_slice()?,
            UpdateField::Ttl => update.ttl_nanos = session.reader.read_int()?,
            UpdateField::UpdateType => update_type = read_u8(session, "UpdateType")?,
        }
        Ok(())
    })?;
    let utf8 = |bytes| std::str::from_utf8(bytes).map_err(|_| Stop::from(GobError::InvalidUtf8));
    update.key = utf8(key)?;
    // Go decodes a zero-length byte slice as nil: a deletion.
    update.value = (!value.is_empty()).then_some(value);
    if let Some(text) = revision_text {
        update.revision = RevisionRef::String(utf8(text)?);
    }
    update.v3_resource_version = utf8(resource_version)?;
    update.update_type = UpdateType::from_wire(update_type)
        .ok_or(Stop::Error(DecodeError::InvalidUpdateType(update_type)))?;
    Ok(update)
}

/// A revision as read: a value, or its string, not yet checked for UTF-8
/// (that is done with the update's other strings).
enum RevisionRead<'m> {
    Value(RevisionRef<'static>),
    String(&'m [u8]),
}

/// Decodes the `Revision interface{}`: nil, or a value of a Go basic type
/// registered under its Go name.
fn decode_revision<'m>(session: &mut Session<'m, '_>) -> Result<RevisionRead<'m>, Stop> {
    let name = session.read_interface_name()?;
    if name.is_empty() {
        return Ok(RevisionRead::Value(RevisionRef::Nil));
    }
    let (kind, wire) =
        basic_kind(name).ok_or_else(|| GobError::UnregisteredName(name.to_owned()))?;
    let concrete = session.type_sequence()?;
    if concrete != wire {
        return Err(GobError::FieldType {
            owner: "Revision",
            field: kind.go_name(),
            expected: Expect::Basic(wire).describe(),
        }
        .into());
    }
    session.reader.read_uint()?; // byte count, ignored as Go does
    if session.reader.read_uint()? != 0 {
        return Err(GobError::NonZeroSingletonDelta.into());
    }
    if let Basic::String = kind {
        return Ok(RevisionRead::String(session.reader.read_slice()?));
    }
    Ok(RevisionRead::Value(read_basic(session, kind)?))
}

#[derive(Debug, Clone, Copy)]
enum Basic {
    String,
    Bool,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Uintptr,
    Float32,
    Float64,
    Complex64,
    Complex128,
}

impl Basic {
    fn go_name(self) -> &'static str {
        BASICS
            .iter()
            .find(|(_, kind, _)| kind.same(self))
            .map_or("?", |(name, ..)| name)
    }

    fn same(self, other: Basic) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// Go's basic types as gob registers them: name, kind, wire type.
const BASICS: [(&str, Basic, TypeId); 17] = [
    ("string", Basic::String, id::STRING),
    ("bool", Basic::Bool, id::BOOL),
    ("int", Basic::Int, id::INT),
    ("int8", Basic::Int8, id::INT),
    ("int16", Basic::Int16, id::INT),
    ("int32", Basic::Int32, id::INT),
    ("int64", Basic::Int64, id::INT),
    ("uint", Basic::Uint, id::UINT),
    ("uint8", Basic::Uint8, id::UINT),
    ("uint16", Basic::Uint16, id::UINT),
    ("uint32", Basic::Uint32, id::UINT),
    ("uint64", Basic::Uint64, id::UINT),
    ("uintptr", Basic::Uintptr, id::UINT),
    ("float32", Basic::Float32, id::FLOAT),
    ("float64", Basic::Float64, id::FLOAT),
    ("complex64", Basic::Complex64, id::COMPLEX),
    ("complex128", Basic::Complex128, id::COMPLEX),
];

fn basic_kind(name: &str) -> Option<(Basic, TypeId)> {
    BASICS
        .iter()
        .find(|(go, ..)| *go == name)
        .map(|(_, kind, wire)| (*kind, *wire))
}

fn read_basic(
    session: &mut Session<'_, '_>,
    kind: Basic,
) -> Result<RevisionRef<'static>, GobError> {
    let reader = &mut session.reader;
    let out_of_range = |value: String| GobError::ValueOutOfRange {
        target: kind.go_name(),
        value,
    };
    Ok(match kind {
        // Read by the caller, with the update's other strings.
        Basic::String => RevisionRef::Nil,
        Basic::Bool => RevisionRef::Bool(reader.read_bool()?),
        Basic::Int => RevisionRef::Int(reader.read_int()?),
        Basic::Int64 => RevisionRef::Int64(reader.read_int()?),
        Basic::Int8 => {
            let value = reader.read_int()?;
            RevisionRef::Int8(i8::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Int16 => {
            let value = reader.read_int()?;
            RevisionRef::Int16(i16::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Int32 => {
            let value = reader.read_int()?;
            RevisionRef::Int32(i32::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Uint => RevisionRef::Uint(reader.read_uint()?),
        Basic::Uint64 => RevisionRef::Uint64(reader.read_uint()?),
        Basic::Uintptr => RevisionRef::Uintptr(reader.read_uint()?),
        Basic::Uint8 => {
            let value = reader.read_uint()?;
            RevisionRef::Uint8(u8::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Uint16 => {
            let value = reader.read_uint()?;
            RevisionRef::Uint16(u16::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Uint32 => {
            let value = reader.read_uint()?;
            RevisionRef::Uint32(u32::try_from(value).map_err(|_| out_of_range(value.to_string()))?)
        }
        Basic::Float64 => RevisionRef::Float64(reader.read_float()?),
        Basic::Float32 => {
            let value = reader.read_float()?;
            RevisionRef::Float32(
                narrow_float(value).ok_or_else(|| out_of_range(value.to_string()))?,
            )
        }
        Basic::Complex128 => {
            let re = reader.read_float()?;
            RevisionRef::Complex128(re, reader.read_float()?)
        }
        Basic::Complex64 => {
            let (re, im) = (reader.read_float()?, reader.read_float()?);
            let narrow =
                |part: f64| narrow_float(part).ok_or_else(|| out_of_range(format!("({re}, {im})")));
            RevisionRef::Complex64(narrow(re)?, narrow(im)?)
        }
    })
}

/// Narrows to `f32` as Go's decoder does: finite values beyond `f32`'s range
/// are an overflow; infinities and NaN pass.
fn narrow_float(value: f64) -> Option<f32> {
    let magnitude = value.abs();
    if magnitude > f64::from(f32::MAX) && magnitude.is_finite() {
        return None;
    }
    Some(value as f32)
}

fn read_u8(session: &mut Session<'_, '_>, target: &'static str) -> Result<u8, Stop> {
    let value = session.reader.read_uint()?;
    u8::try_from(value).map_err(|_| {
        Stop::from(GobError::ValueOutOfRange {
            target,
            value: value.to_string(),
        })
    })
}

/// A `time.Time` field: its GobEncode bytes (MarshalBinary, versions 1
/// and 2).
fn read_time(session: &mut Session<'_, '_>) -> Result<Timestamp, Stop> {
    let bytes = session.reader.read_slice()?;
    Timestamp::from_go_binary(bytes)
        .map_err(|error| Stop::Error(DecodeError::InvalidTimestamp(error)))
}
