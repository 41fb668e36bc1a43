//! The two wire formats agree: a message encoded in native and in gob
//! decodes to the same value from both (up to what gob cannot carry: the
//! native protocol version).

#![no_main]

use arbitrary::Unstructured;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use syncproto::Message;
use syncproto::UsageError;
use syncproto::codec::{StreamDecoder, StreamEncoder, WireFormat};
use syncproto::message::{
    Checksum, ClientHello, CompressionAlgorithm, DecoderRestart, Ping, Pong, Revision,
    SerializedUpdate, ServerHello, SyncStatus, SyncerType, Timestamp, UpdateType, Zone,
};

fn timestamp(u: &mut Unstructured<'_>) -> arbitrary::Result<Timestamp> {
    let zone = match u.int_in_range(0..=2)? {
        0 => Zone::Utc,
        _ => Zone::fixed(u.int_in_range(-(32_767 * 60)..=32_767 * 60)?).unwrap_or(Zone::Utc),
    };
    Ok(
        Timestamp::from_go_parts(u.arbitrary()?, u.int_in_range(0..=999_999_999)?, zone)
            .unwrap_or(Timestamp::ZERO),
    )
}

fn revision(u: &mut Unstructured<'_>) -> arbitrary::Result<Revision> {
    Ok(match u.int_in_range(0..=17)? {
        0 => Revision::Nil,
        1 => Revision::String(u.arbitrary::<String>()?.into()),
        2 => Revision::Bool(u.arbitrary()?),
        3 => Revision::Int(u.arbitrary()?),
        4 => Revision::Int8(u.arbitrary()?),
        5 => Revision::Int16(u.arbitrary()?),
        6 => Revision::Int32(u.arbitrary()?),
        7 => Revision::Int64(u.arbitrary()?),
        8 => Revision::Uint(u.arbitrary()?),
        9 => Revision::Uint8(u.arbitrary()?),
        10 => Revision::Uint16(u.arbitrary()?),
        11 => Revision::Uint32(u.arbitrary()?),
        12 => Revision::Uint64(u.arbitrary()?),
        13 => Revision::Uintptr(u.arbitrary()?),
        14 => Revision::Float32(u.arbitrary()?),
        15 => Revision::Float64(u.arbitrary()?),
        16 => Revision::Complex64(u.arbitrary()?, u.arbitrary()?),
        _ => Revision::Complex128(u.arbitrary()?, u.arbitrary()?),
    })
}

fn update(u: &mut Unstructured<'_>) -> arbitrary::Result<SerializedUpdate> {
    let value: Option<Vec<u8>> = u.arbitrary()?;
    Ok(SerializedUpdate {
        key: u.arbitrary::<String>()?.into(),
        value: value.map(Bytes::from),
        revision: revision(u)?,
        v3_resource_version: u.arbitrary::<String>()?.into(),
        ttl_nanos: u.arbitrary()?,
        update_type: UpdateType::ALL[u.int_in_range(0..=3)?],
    })
}

fn algorithms(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<CompressionAlgorithm>> {
    let names: Vec<String> = u.arbitrary()?;
    Ok(names
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| CompressionAlgorithm::from_wire(n))
        .collect())
}

fn message(u: &mut Unstructured<'_>) -> arbitrary::Result<Message> {
    let syncer = |u: &mut Unstructured<'_>| -> arbitrary::Result<SyncerType> {
        Ok(SyncerType::from_wire(&u.arbitrary::<String>()?))
    };
    Ok(match u.int_in_range(0..=8)? {
        0 => Message::ClientHello(ClientHello {
            hostname: u.arbitrary()?,
            info: u.arbitrary()?,
            version: u.arbitrary()?,
            syncer_type: syncer(u)?,
            supports_decoder_restart: u.arbitrary()?,
            supported_compression_algorithms: algorithms(u)?,
            supports_modern_policy_keys: u.arbitrary()?,
            client_conn_id: u.arbitrary()?,
            supports_checksum: u.arbitrary()?,
            protocol_version: 0,
        }),
        1 => Message::ServerHello(ServerHello {
            version: u.arbitrary()?,
            syncer_type: syncer(u)?,
            supports_node_resource_updates: u.arbitrary()?,
            server_conn_id: u.arbitrary()?,
            supports_checksum: u.arbitrary()?,
            protocol_version: 0,
        }),
        2 => {
            let count = u.int_in_range(0..=8)?;
            Message::Kvs(
                (0..count)
                    .map(|_| update(u))
                    .collect::<arbitrary::Result<_>>()?,
            )
        }
        3 => Message::SyncStatus(SyncStatus::ALL[u.int_in_range(0..=2)?]),
        4 => Message::Ping(Ping {
            timestamp: timestamp(u)?,
        }),
        5 => Message::Pong(Pong {
            ping_timestamp: timestamp(u)?,
            pong_timestamp: timestamp(u)?,
        }),
        6 => {
            let name: String = u.arbitrary()?;
            Message::DecoderRestart(DecoderRestart {
                message: u.arbitrary()?,
                compression_algorithm: (!name.is_empty())
                    .then(|| CompressionAlgorithm::from_wire(&name)),
            })
        }
        7 => Message::Ack,
        _ => Message::Checksum(Checksum {
            checksum: u.arbitrary()?,
            kv_count: u.arbitrary()?,
        }),
    })
}

/// The message back through `format`'s encoder and decoder, or why the
/// encoder refused it (it carries more than a peer accepts).
fn through(format: WireFormat, message: &Message) -> Result<Message, UsageError> {
    let mut encoder = StreamEncoder::new(format, usize::MAX);
    let mut bytes = BytesMut::new();
    encoder.encode(message, &mut bytes)?;
    let mut decoder = StreamDecoder::new(format, usize::MAX, None);
    let decoded = decoder
        .decode(&mut bytes)
        .expect("what the encoder wrote decodes")
        .expect("complete");
    assert!(bytes.is_empty(), "{format:?} left bytes");
    Ok(decoded)
}

/// `message` as every decoder hands it back: an empty value is a deletion
/// on every wire, so it comes back as none.
fn as_received(message: Message) -> Message {
    match message {
        Message::Kvs(updates) => Message::Kvs(
            updates
                .into_iter()
                .map(SerializedUpdate::normalized)
                .collect(),
        ),
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(message) = message(&mut u) else {
        return;
    };
    match (
        through(WireFormat::Native, &message),
        through(WireFormat::Gob, &message),
    ) {
        (Ok(native), Ok(gob)) => {
            assert_eq!(native, as_received(message), "native changed the message");
            assert_eq!(gob, native, "gob and native disagree");
        }
        (Err(native), Err(gob)) => assert_eq!(native, gob, "the formats refuse differently"),
        (native, gob) => panic!("one format refused: native {native:?}, gob {gob:?}"),
    }
});
