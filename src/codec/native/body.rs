//! Message bodies: the postcard layout of each message inside a frame.
//!
//! A body is a varint message tag followed by the message's fields in
//! postcard's encoding; together that is exactly postcard's encoding of an
//! enum whose variants are the messages in tag order. The layout structs
//! below borrow from the frame, so parsing copies nothing: a `KVs` body
//! becomes [`SerializedUpdateRef`](crate::message::SerializedUpdateRef)s
//! (read by `kvs`, which has a faster path for the usual update and falls
//! back on [`UpdateLayout`]), which the borrowing API hands out as they are
//! and the owning API detaches from the frame (see `codec::retain`) so that
//! what an application keeps does not pin it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::kvs::decode_kvs;
use super::varint::{self, VarintRead};
use crate::codec::Direction;
use crate::codec::MAX_COMPRESSION_ALGORITHMS;
use crate::codec::read_ahead::Buffered;
use crate::codec::retain::detach_update;
use crate::error::DecodeError;
use crate::message::{
    Checksum, ClientHello, CompressionAlgorithm, DecoderRestart, Message, MessageKind, Ping, Pong,
    Revision, SerializedUpdate, ServerHello, SyncStatus, SyncerType, Timestamp, TimestampError,
    Zone,
};

/// Message tags, the first varint of every body. Append only: a tag, once
/// assigned, keeps its meaning forever.
pub(crate) mod tag {
    pub(crate) const CLIENT_HELLO: u64 = 0;
    pub(crate) const SERVER_HELLO: u64 = 1;
    pub(crate) const KVS: u64 = 2;
    pub(crate) const SYNC_STATUS: u64 = 3;
    pub(crate) const PING: u64 = 4;
    pub(crate) const PONG: u64 = 5;
    pub(crate) const DECODER_RESTART: u64 = 6;
    pub(crate) const ACK: u64 = 7;
    /// Protocol version 2.
    pub(crate) const CHECKSUM: u64 = 8;
}

/// Bytes that postcard writes as one length-prefixed run instead of a
/// sequence of `u8`s (same wire bytes, one copy instead of a loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawBytes<'a>(pub(super) &'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(deserializer).map(RawBytes)
    }
}

#[derive(Serialize, Deserialize)]
struct ClientHelloLayout<'a> {
    hostname: &'a str,
    info: &'a str,
    version: &'a str,
    syncer_type: &'a str,
    supports_decoder_restart: bool,
    #[serde(borrow, deserialize_with = "at_most_a_few_names")]
    supported_compression_algorithms: Vec<&'a str>,
    supports_modern_policy_keys: bool,
    client_conn_id: u64,
    protocol_version: u32,
}

/// The offered compression algorithms, refusing a list longer than
/// [`MAX_COMPRESSION_ALGORITHMS`] while reading it rather than after
/// collecting a peer's million names. The refusal is the layout's only
/// custom serde error (see [`client_hello_error`]).
fn at_most_a_few_names<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<&'de str>, D::Error> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Vec<&'de str>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {MAX_COMPRESSION_ALGORITHMS} names")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<&'de str>()? {
                if names.len() == MAX_COMPRESSION_ALGORITHMS {
                    return Err(serde::de::Error::invalid_length(names.len() + 1, &self));
                }
                names.push(name);
            }
            Ok(names)
        }
    }
    deserializer.deserialize_seq(Names)
}

/// postcard drops a custom error's text, so name the one a client hello
/// can raise.
fn client_hello_error(error: postcard::Error) -> DecodeError {
    match error {
        postcard::Error::SerdeDeCustom => DecodeError::MalformedBody {
            message: MessageKind::ClientHello,
            reason: format!(
                "more than {MAX_COMPRESSION_ALGORITHMS} compression algorithms offered"
            ),
        },
        other => malformed(MessageKind::ClientHello)(other),
    }
}

/// What protocol version 2 appends to both hellos. (A version-1 peer
/// stops before it; decoding then reads every field as false.)
#[derive(Serialize, Deserialize, Default)]
struct HelloV2 {
    supports_checksum: bool,
}

/// Reads what newer peers append to a hello: version 2's fields if
/// present, ignoring anything after them (a yet newer peer's).
fn hello_v2(rest: &[u8], message: MessageKind) -> Result<HelloV2, DecodeError> {
    if rest.is_empty() {
        return Ok(HelloV2::default());
    }
    postcard::take_from_bytes::<HelloV2>(rest)
        .map(|(fields, _newer_fields)| fields)
        .map_err(malformed(message))
}

#[derive(Serialize, Deserialize)]
struct ChecksumLayout {
    checksum: u64,
    kv_count: i64,
}

#[derive(Serialize, Deserialize)]
struct ServerHelloLayout<'a> {
    version: &'a str,
    syncer_type: &'a str,
    supports_node_resource_updates: bool,
    server_conn_id: u64,
    protocol_version: u32,
}

/// A revision: the variant index is the Go type. Append only.
#[derive(Serialize, Deserialize)]
pub(super) enum RevisionLayout<'a> {
    Nil,
    #[serde(borrow)]
    String(RawBytes<'a>),
    Bool(bool),
    Int(i64),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Uint(u64),
    Uint8(u8),
    Uint16(u16),
    Uint32(u32),
    Uint64(u64),
    Uintptr(u64),
    Float32(f32),
    Float64(f64),
    Complex64(f32, f32),
    Complex128(f64, f64),
}

/// An update. Its strings are read as byte strings (the same bytes on the
/// wire) and checked for UTF-8 once, as they are detached from the frame.
#[derive(Serialize, Deserialize)]
pub(super) struct UpdateLayout<'a> {
    #[serde(borrow)]
    pub(super) key: RawBytes<'a>,
    #[serde(borrow)]
    pub(super) value: Option<RawBytes<'a>>,
    #[serde(borrow)]
    pub(super) revision: RevisionLayout<'a>,
    #[serde(borrow)]
    pub(super) v3_resource_version: RawBytes<'a>,
    pub(super) ttl_nanos: i64,
    pub(super) update_type: u8,
}

#[derive(Serialize, Deserialize)]
enum ZoneLayout {
    Utc,
    Fixed(i32),
}

#[derive(Serialize, Deserialize)]
struct TimestampLayout {
    go_seconds: i64,
    nanos: u32,
    zone: ZoneLayout,
}

#[derive(Serialize, Deserialize)]
struct DecoderRestartLayout<'a> {
    message: &'a str,
    compression_algorithm: &'a str,
}

/// A frame's message as [`decode_body`] leaves it: a `KVs` message's
/// updates still to be read (by [`decode_kvs`]), anything else decoded.
pub(crate) enum Body<'a> {
    /// The bytes after a `KVs` tag: the count and the updates.
    Kvs(&'a [u8]),
    /// Any other message.
    Other(Message),
}

/// Decodes one frame's body (which `frame` must hold exactly) into an
/// owned message: updates detached from the frame (see `codec::retain`).
/// `buffered` is how the decoder's input arrived (see `read_ahead`).
pub(crate) fn decode(
    frame: &Bytes,
    direction: Option<Direction>,
    buffered: Buffered,
) -> Result<Message, DecodeError> {
    match decode_body(frame, direction)? {
        Body::Kvs(body) => {
            decode_kvs(body, buffered, |update| detach_update([frame], &update)).map(Message::Kvs)
        }
        Body::Other(message) => Ok(message),
    }
}

/// Decodes one frame's body (which `frame` must hold exactly), all but a
/// `KVs` message's updates.
pub(crate) fn decode_body(
    frame: &[u8],
    direction: Option<Direction>,
) -> Result<Body<'_>, DecodeError> {
    let (tag, tag_len) = match varint::read(frame, varint::MAX_U64_LEN) {
        VarintRead::Done(tag, len) => (tag, len),
        VarintRead::Incomplete if frame.is_empty() => return Err(DecodeError::EmptyFrame),
        VarintRead::Incomplete | VarintRead::Malformed => return Err(DecodeError::MalformedTag),
    };
    let body = &frame[tag_len..];
    if let (Some(direction), Some(kind)) = (direction, kind_of_tag(tag))
        && !direction.carries(kind)
    {
        return Err(DecodeError::WrongDirection(kind));
    }
    match tag {
        tag::CLIENT_HELLO => {
            // Hellos tolerate trailing bytes: they are exchanged before either
            // side knows the other's version, so newer peers append fields.
            let (layout, rest) = postcard::take_from_bytes::<ClientHelloLayout<'_>>(body)
                .map_err(client_hello_error)?;
            let v2 = hello_v2(rest, MessageKind::ClientHello)?;
            let mut hello = client_hello_from(&layout);
            hello.supports_checksum = v2.supports_checksum;
            Ok(Body::Other(Message::ClientHello(hello)))
        }
        tag::SERVER_HELLO => {
            let (layout, rest) = postcard::take_from_bytes::<ServerHelloLayout<'_>>(body)
                .map_err(malformed(MessageKind::ServerHello))?;
            let v2 = hello_v2(rest, MessageKind::ServerHello)?;
            Ok(Body::Other(Message::ServerHello(ServerHello {
                version: layout.version.to_owned(),
                syncer_type: SyncerType::from_wire(layout.syncer_type),
                supports_node_resource_updates: layout.supports_node_resource_updates,
                server_conn_id: layout.server_conn_id,
                supports_checksum: v2.supports_checksum,
                protocol_version: layout.protocol_version,
            })))
        }
        tag::KVS => Ok(Body::Kvs(body)),
        _ => decode_other(tag, body).map(Body::Other),
    }
}

/// Decodes the body of a message that is neither a hello nor `KVs`.
fn decode_other(tag: u64, body: &[u8]) -> Result<Message, DecodeError> {
    match tag {
        tag::SYNC_STATUS => {
            let value: u8 = strict(MessageKind::SyncStatus, body)?;
            SyncStatus::from_wire(value)
                .map(Message::SyncStatus)
                .ok_or(DecodeError::InvalidSyncStatus(value))
        }
        tag::PING => {
            let layout: TimestampLayout = strict(MessageKind::Ping, body)?;
            Ok(Message::Ping(Ping {
                timestamp: timestamp_from(layout)?,
            }))
        }
        tag::PONG => {
            let (ping, pong): (TimestampLayout, TimestampLayout) = strict(MessageKind::Pong, body)?;
            Ok(Message::Pong(Pong {
                ping_timestamp: timestamp_from(ping)?,
                pong_timestamp: timestamp_from(pong)?,
            }))
        }
        tag::DECODER_RESTART => {
            let layout: DecoderRestartLayout<'_> = strict(MessageKind::DecoderRestart, body)?;
            Ok(Message::DecoderRestart(DecoderRestart {
                message: layout.message.to_owned(),
                compression_algorithm: match layout.compression_algorithm {
                    "" => None,
                    name => Some(CompressionAlgorithm::from_wire(name)),
                },
            }))
        }
        tag::ACK => match body.len() {
            0 => Ok(Message::Ack),
            count => Err(DecodeError::TrailingBytes {
                message: MessageKind::Ack,
                count,
            }),
        },
        tag::CHECKSUM => {
            let layout: ChecksumLayout = strict(MessageKind::Checksum, body)?;
            Ok(Message::Checksum(Checksum {
                checksum: layout.checksum,
                kv_count: layout.kv_count,
            }))
        }
        unknown => Err(DecodeError::UnknownMessageTag(unknown)),
    }
}

fn kind_of_tag(tag: u64) -> Option<MessageKind> {
    Some(match tag {
        tag::CLIENT_HELLO => MessageKind::ClientHello,
        tag::SERVER_HELLO => MessageKind::ServerHello,
        tag::KVS => MessageKind::Kvs,
        tag::SYNC_STATUS => MessageKind::SyncStatus,
        tag::PING => MessageKind::Ping,
        tag::PONG => MessageKind::Pong,
        tag::DECODER_RESTART => MessageKind::DecoderRestart,
        tag::ACK => MessageKind::Ack,
        tag::CHECKSUM => MessageKind::Checksum,
        _ => return None,
    })
}

/// Decodes a body that must be consumed exactly.
fn strict<'a, T: Deserialize<'a>>(message: MessageKind, body: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(malformed(message))?;
    match rest.len() {
        0 => Ok(value),
        count => Err(DecodeError::TrailingBytes { message, count }),
    }
}

pub(super) fn malformed(message: MessageKind) -> impl Fn(postcard::Error) -> DecodeError {
    move |error| DecodeError::MalformedBody {
        message,
        reason: error.to_string(),
    }
}

fn client_hello_from(layout: &ClientHelloLayout<'_>) -> ClientHello {
    ClientHello {
        hostname: layout.hostname.to_owned(),
        info: layout.info.to_owned(),
        version: layout.version.to_owned(),
        syncer_type: SyncerType::from_wire(layout.syncer_type),
        supports_decoder_restart: layout.supports_decoder_restart,
        supported_compression_algorithms: layout
            .supported_compression_algorithms
            .iter()
            .map(|name| CompressionAlgorithm::from_wire(name))
            .collect(),
        supports_modern_policy_keys: layout.supports_modern_policy_keys,
        client_conn_id: layout.client_conn_id,
        // Read after the layout, if the peer sent it.
        supports_checksum: false,
        protocol_version: layout.protocol_version,
    }
}

fn revision_layout(revision: &Revision) -> RevisionLayout<'_> {
    match revision {
        Revision::Nil => RevisionLayout::Nil,
        Revision::String(text) => RevisionLayout::String(RawBytes(text.as_bytes())),
        Revision::Bool(value) => RevisionLayout::Bool(*value),
        Revision::Int(value) => RevisionLayout::Int(*value),
        Revision::Int8(value) => RevisionLayout::Int8(*value),
        Revision::Int16(value) => RevisionLayout::Int16(*value),
        Revision::Int32(value) => RevisionLayout::Int32(*value),
        Revision::Int64(value) => RevisionLayout::Int64(*value),
        Revision::Uint(value) => RevisionLayout::Uint(*value),
        Revision::Uint8(value) => RevisionLayout::Uint8(*value),
        Revision::Uint16(value) => RevisionLayout::Uint16(*value),
        Revision::Uint32(value) => RevisionLayout::Uint32(*value),
        Revision::Uint64(value) => RevisionLayout::Uint64(*value),
        Revision::Uintptr(value) => RevisionLayout::Uintptr(*value),
        Revision::Float32(value) => RevisionLayout::Float32(*value),
        Revision::Float64(value) => RevisionLayout::Float64(*value),
        Revision::Complex64(re, im) => RevisionLayout::Complex64(*re, *im),
        Revision::Complex128(re, im) => RevisionLayout::Complex128(*re, *im),
    }
}

fn timestamp_from(layout: TimestampLayout) -> Result<Timestamp, DecodeError> {
    let zone = match layout.zone {
        ZoneLayout::Utc => Zone::Utc,
        ZoneLayout::Fixed(offset) => {
            Zone::fixed(offset).ok_or(TimestampError::BadZoneOffset(offset))?
        }
    };
    Timestamp::from_go_parts(layout.go_seconds, layout.nanos, zone).ok_or(
        DecodeError::InvalidTimestamp(TimestampError::NanosOutOfRange(i64::from(layout.nanos))),
    )
}

fn timestamp_layout(timestamp: &Timestamp) -> TimestampLayout {
    TimestampLayout {
        go_seconds: timestamp.go_seconds(),
        nanos: timestamp.nanos(),
        zone: match timestamp.zone() {
            Zone::Utc => ZoneLayout::Utc,
            Zone::Fixed(offset) => ZoneLayout::Fixed(offset.seconds()),
        },
    }
}

/// A postcard output that appends to a `BytesMut`.
struct Append<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn append<T: Serialize + ?Sized>(out: &mut BytesMut, value: &T) {
    // Appending to a growable buffer cannot fail, and every layout here is
    // plain data postcard can always encode.
    let _infallible = postcard::serialize_with_flavor(value, Append(out));
}

/// Appends one update's encoding: the unit a `Kvs` body repeats, so that
/// pre-encoded updates can be concatenated into a body.
pub(crate) fn encode_update(update: &SerializedUpdate, out: &mut BytesMut) {
    append(
        out,
        &UpdateLayout {
            key: RawBytes(update.key.as_bytes()),
            value: update.effective_value().map(|value| RawBytes(value)),
            revision: revision_layout(&update.revision),
            v3_resource_version: RawBytes(update.v3_resource_version.as_bytes()),
            ttl_nanos: update.ttl_nanos,
            update_type: update.update_type.to_wire(),
        },
    );
}

/// Appends one whole frame (length prefix and body) holding `Kvs` of
/// updates already encoded by [`encode_update`], copying each unit.
pub(crate) fn put_kvs_frame(out: &mut BytesMut, units: &[&[u8]]) {
    let units_len: usize = units.iter().map(|unit| unit.len()).sum();
    let count = units.len() as u64;
    let body_len = varint::len(tag::KVS) + varint::len(count) + units_len;
    out.reserve(varint::len(body_len as u64) + body_len);
    varint::write(out, body_len as u64);
    varint::write(out, tag::KVS);
    varint::write(out, count);
    for unit in units {
        out.put_slice(unit);
    }
}

/// Appends one whole frame (length prefix and body) holding `message`.
pub(crate) fn put_frame(out: &mut BytesMut, message: &Message) {
    let mut body = BytesMut::new();
    encode(message, &mut body);
    varint::write(out, body.len() as u64);
    out.put_slice(&body);
}

/// Appends the body of `message` (tag and fields) to `out`.
pub(crate) fn encode(message: &Message, out: &mut BytesMut) {
    match message {
        Message::ClientHello(hello) => {
            varint::write(out, tag::CLIENT_HELLO);
            let algorithms: Vec<&str> = hello
                .supported_compression_algorithms
                .iter()
                .map(CompressionAlgorithm::as_str)
                .collect();
            append(
                out,
                &ClientHelloLayout {
                    hostname: &hello.hostname,
                    info: &hello.info,
                    version: &hello.version,
                    syncer_type: hello.syncer_type.as_str(),
                    supports_decoder_restart: hello.supports_decoder_restart,
                    supported_compression_algorithms: algorithms,
                    supports_modern_policy_keys: hello.supports_modern_policy_keys,
                    client_conn_id: hello.client_conn_id,
                    protocol_version: hello.protocol_version,
                },
            );
            append(
                out,
                &HelloV2 {
                    supports_checksum: hello.supports_checksum,
                },
            );
        }
        Message::ServerHello(hello) => {
            varint::write(out, tag::SERVER_HELLO);
            append(
                out,
                &ServerHelloLayout {
                    version: &hello.version,
                    syncer_type: hello.syncer_type.as_str(),
                    supports_node_resource_updates: hello.supports_node_resource_updates,
                    server_conn_id: hello.server_conn_id,
                    protocol_version: hello.protocol_version,
                },
            );
            append(
                out,
                &HelloV2 {
                    supports_checksum: hello.supports_checksum,
                },
            );
        }
        Message::Kvs(updates) => {
            varint::write(out, tag::KVS);
            varint::write(out, updates.len() as u64);
            for update in updates {
                encode_update(update, out);
            }
        }
        Message::SyncStatus(status) => {
            varint::write(out, tag::SYNC_STATUS);
            out.put_u8(status.to_wire());
        }
        Message::Ping(ping) => {
            varint::write(out, tag::PING);
            append(out, &timestamp_layout(&ping.timestamp));
        }
        Message::Pong(pong) => {
            varint::write(out, tag::PONG);
            append(
                out,
                &(
                    timestamp_layout(&pong.ping_timestamp),
                    timestamp_layout(&pong.pong_timestamp),
                ),
            );
        }
        Message::DecoderRestart(restart) => {
            varint::write(out, tag::DECODER_RESTART);
            append(
                out,
                &DecoderRestartLayout {
                    message: &restart.message,
                    compression_algorithm: restart
                        .compression_algorithm
                        .as_ref()
                        .map_or("", CompressionAlgorithm::as_str),
                },
            );
        }
        Message::Ack => varint::write(out, tag::ACK),
        Message::Checksum(checksum) => {
            varint::write(out, tag::CHECKSUM);
            append(
                out,
                &ChecksumLayout {
                    checksum: checksum.checksum,
                    kv_count: checksum.kv_count,
                },
            );
        }
    }
}
