//! The gob wire format: Go's `encoding/gob`, as upstream Typha and Felix
//! speak it.
//!
//! Each message is a gob value `Envelope{Message interface{}}` whose
//! concrete type is registered as
//! `github.com/projectcalico/typha/pkg/syncproto.Msg<Name>`. A gob stream is
//! a sequence of messages, each `uint(length)` then a body; a body is either
//! a type definition (`int(-id)` and a `wireType`) or a value (`int(id)`
//! and its encoding). The stream is stateful: definitions sent earlier give
//! meaning to the ids of later values.
//!
//! [`GobDecoder`] interprets whatever definitions the sender sent, matches
//! struct fields by name, skips fields and types it does not know, and
//! accepts both protocol generations (a v3.2.5 peer simply lacks the newer
//! fields, which then read as zero). [`GobEncoder`] writes streams Go's
//! decoder accepts; it defines all its types up front with fixed ids, so an
//! encoded message can be shared between streams.
//!
//! Limits ([`GobLimits`]) bound what a peer can make the decoder do: the
//! size of one message (refused from its length prefix), the number of type
//! definitions per stream, the nesting depth of values, and (as in Go) the
//! length of an interface's type name.

mod decoder;
pub(crate) mod encoder;
mod names;
pub(crate) mod schema;
mod session;
mod types;
mod values;
mod wire;

pub use decoder::GobDecoder;
pub use encoder::GobEncoder;
pub use names::CHECKSUM_NAME;

use crate::codec::{DEFAULT_MAX_CLIENT_MESSAGE_LEN, DEFAULT_MAX_SERVER_MESSAGE_LEN};

/// Bounds on what one gob stream may make a decoder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GobLimits {
    /// The longest message accepted (checked against its length prefix).
    pub max_message_len: usize,
    /// How many type definitions one stream may send.
    pub max_types: usize,
    /// How deeply values may nest (structs in slices in structs…).
    pub max_depth: usize,
    /// How many bytes all of a stream's type definitions may take together
    /// (upstream's take about 2 KiB): definitions are kept for the life of
    /// the stream, so this bounds what a peer can make the decoder hold.
    pub max_definition_bytes: usize,
}

impl GobLimits {
    /// For a server reading a client: upstream's 1 MiB message limit.
    pub fn for_server() -> GobLimits {
        GobLimits {
            max_message_len: DEFAULT_MAX_CLIENT_MESSAGE_LEN,
            ..GobLimits::default()
        }
    }

    /// For a client reading a server.
    pub fn for_client() -> GobLimits {
        GobLimits::default()
    }
}

impl Default for GobLimits {
    /// 64 MiB messages, 256 type definitions taking at most 64 KiB
    /// (upstream sends about a dozen, about 2 KiB), nesting 32 deep (the
    /// protocol needs 4).
    fn default() -> GobLimits {
        GobLimits {
            max_message_len: DEFAULT_MAX_SERVER_MESSAGE_LEN,
            max_types: 256,
            max_depth: 32,
            max_definition_bytes: 64 * 1024,
        }
    }
}

/// What is wrong with a gob stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GobError {
    /// A value ran past the end of its message.
    #[error("value runs past the end of its message")]
    UnexpectedEnd,
    /// An integer's length byte announces more than eight bytes.
    #[error("invalid integer length byte {0:#04x}")]
    BadUint(u8),
    /// A boolean other than 0 or 1.
    #[error("invalid boolean {0}")]
    BadBool(u64),
    /// A length or count larger than what is left of the message.
    #[error("length {len} exceeds the {remaining} bytes left in the message")]
    LengthBeyondMessage {
        /// The length read.
        len: u64,
        /// Bytes left in the message.
        remaining: usize,
    },
    /// A zero-length message.
    #[error("empty message")]
    EmptyMessage,
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// An interface type name longer than Go's 1024 bytes.
    #[error("interface type name of {0} bytes exceeds 1024")]
    NameTooLong(usize),
    /// A struct field number past the struct's last field.
    #[error("struct field number out of range")]
    FieldOutOfRange,
    /// A type definition that does not make sense.
    #[error("bad type definition: {0}")]
    BadTypeDefinition(&'static str),
    /// A type definition for an id below gob's user range (64).
    #[error("type id {0} is not a user type id")]
    BadTypeId(i64),
    /// A second definition for the same id.
    #[error("type {0} defined twice")]
    DuplicateType(i64),
    /// The stream's type definitions take more bytes than the limit.
    #[error("type definitions take more than {max} bytes")]
    DefinitionsTooLarge {
        /// The configured budget.
        max: usize,
    },
    /// One value spans more messages or bytes than allowed (a value is
    /// split only where it carries new type definitions).
    #[error(
        "a value spans {messages} messages and {bytes} bytes, over the limit of {max_messages} messages or {max_bytes} bytes"
    )]
    ValueTooLarge {
        /// Messages the value has taken so far.
        messages: usize,
        /// Bytes the value has taken so far.
        bytes: usize,
        /// The most messages one value may span.
        max_messages: usize,
        /// The most bytes one value may take.
        max_bytes: usize,
    },
    /// More type definitions than the limit.
    #[error("more than {max} type definitions")]
    TooManyTypes {
        /// The configured limit.
        max: usize,
    },
    /// A reference to a type that was never defined.
    #[error("unknown type id {0}")]
    UnknownType(i64),
    /// Values nested deeper than the limit.
    #[error("values nested deeper than {max}")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// An array whose element count differs from its type's length.
    #[error("array of length {expected} holds {got} elements")]
    ArrayLengthMismatch {
        /// The length in the type definition.
        expected: u64,
        /// The count in the value.
        got: u64,
    },
    /// Bytes left in a message after its value.
    #[error("extra data after a value")]
    ExtraData,
    /// A top-level value that is not an `Envelope` struct.
    #[error("top-level value is not an Envelope")]
    NotAnEnvelope,
    /// A type this crate needs to be a struct is something else.
    #[error("{0} is not a struct")]
    NotAStruct(&'static str),
    /// An `Envelope` with no message in it.
    #[error("envelope holds no message")]
    NilMessage,
    /// An interface value of a type that is not registered: an unknown
    /// message, or a revision of a type that is not a Go basic type. Fatal,
    /// as it is to Go.
    #[error("type not registered: {0:?}")]
    UnregisteredName(String),
    /// A field whose type on the wire is not what the field requires.
    #[error("{owner}.{field} must be {expected}")]
    FieldType {
        /// The struct holding the field.
        owner: &'static str,
        /// The field.
        field: &'static str,
        /// The type it requires.
        expected: &'static str,
    },
    /// A number that does not fit its Go type.
    #[error("{value} does not fit in {target}")]
    ValueOutOfRange {
        /// The Go type or field.
        target: &'static str,
        /// The value received.
        value: String,
    },
    /// A top-level non-struct value that does not start with a 0 delta.
    #[error("non-zero delta before a singleton value")]
    NonZeroSingletonDelta,
}
