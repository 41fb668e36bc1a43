//! One attempt to decode a top-level value from the messages received so
//! far: a cursor over whole messages, type definitions staged until the
//! value completes, and the generic skipping of values nobody asked for.
//!
//! A value normally lies within one message, but the type sequence of an
//! interface may continue in the following messages (Go's encoder splits a
//! value there the first time it carries a new type). If those messages have
//! not arrived yet, the attempt stops with [`Stop::Incomplete`] and is
//! retried from the start when more input comes; nothing is committed until
//! an attempt succeeds, so retries are exact.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::GobError;
use super::types::{TypeId, TypeRegistry, WireType, id, read_wire_type};
use super::wire::Reader;
use crate::codec::read_ahead::Buffered;
use crate::error::DecodeError;

/// Why an attempt stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The value continues in a message that has not arrived.
    Incomplete,
    /// The input is invalid.
    Error(DecodeError),
}

impl From<GobError> for Stop {
    fn from(error: GobError) -> Stop {
        Stop::Error(DecodeError::Gob(error))
    }
}

impl From<DecodeError> for Stop {
    fn from(error: DecodeError) -> Stop {
        Stop::Error(error)
    }
}

/// What a top-level message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopLevel {
    /// A type definition, now staged.
    Definition,
    /// A value of this type follows.
    Value(TypeId),
}

/// Limits that bound the work and memory one stream can cause.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_depth: usize,
}

/// One attempt's cursor: `'m` is how long the messages live (what decoded
/// values may borrow), `'t` the committed type definitions.
pub(crate) struct Session<'m, 't> {
    messages: &'m VecDeque<Bytes>,
    next_message: usize,
    pub(crate) reader: Reader<'m>,
    committed: &'t TypeRegistry,
    staged: Vec<(TypeId, Arc<WireType>)>,
    /// Wire bytes of the staged definitions.
    staged_bytes: usize,
    limits: Limits,
    /// How the input arrived: whether to touch ahead of the parser.
    pub(crate) buffered: Buffered,
    depth: usize,
}

impl<'m, 't> Session<'m, 't> {
    /// Starts at the first queued message; `None` if there is none.
    /// `buffered` is how the decoder's input arrived (see `read_ahead`).
    pub(crate) fn new(
        messages: &'m VecDeque<Bytes>,
        committed: &'t TypeRegistry,
        limits: Limits,
        buffered: Buffered,
    ) -> Option<Session<'m, 't>> {
        let first = messages.front()?;
        Some(Session {
            messages,
            next_message: 1,
            reader: Reader::new(first),
            committed,
            staged: Vec::new(),
            staged_bytes: 0,
            limits,
            buffered,
            depth: 0,
        })
    }

    /// How many queued messages this attempt has started reading.
    pub(crate) fn messages_used(&self) -> usize {
        self.next_message
    }

    /// The definitions received during this attempt, with their wire
    /// sizes, to commit on success.
    pub(crate) fn into_staged(self) -> (Vec<(TypeId, Arc<WireType>)>, usize) {
        (self.staged, self.staged_bytes)
    }

    /// Moves to the next message; the current one must be used up.
    fn load_next(&mut self) -> Result<(), Stop> {
        let message = self
            .messages
            .get(self.next_message)
            .ok_or(Stop::Incomplete)?;
        self.reader = Reader::new(message);
        self.next_message += 1;
        Ok(())
    }

    pub(crate) fn lookup(&self, id: TypeId) -> Option<&WireType> {
        self.lookup_shared(id).map(|wire| &**wire)
    }

    fn lookup_shared(&self, id: TypeId) -> Option<&Arc<WireType>> {
        self.committed.get(id).or_else(|| {
            self.staged
                .iter()
                .find(|(staged, _)| *staged == id)
                .map(|(_, wire)| wire)
        })
    }

    pub(crate) fn lookup_required(&self, id: TypeId) -> Result<&WireType, GobError> {
        self.lookup(id).ok_or(GobError::UnknownType(id))
    }

    /// Reads the definition of type `id` from the current message.
    fn define(&mut self, id: TypeId) -> Result<(), Stop> {
        if id < id::FIRST_USER {
            return Err(GobError::BadTypeId(id).into());
        }
        if self.lookup(id).is_some() {
            return Err(GobError::DuplicateType(id).into());
        }
        let max = self.committed.max_types();
        if self.committed.len() + self.staged.len() >= max {
            return Err(GobError::TooManyTypes { max }.into());
        }
        let (wire, wire_bytes) = match super::schema::canonical_definition(id, self.reader.unread())
        {
            Some((wire, len)) => {
                self.reader.skip(len)?;
                (Arc::clone(wire), len)
            }
            None => {
                let before = self.reader.remaining();
                let wire = read_wire_type(&mut self.reader)?;
                (Arc::new(wire), before - self.reader.remaining())
            }
        };
        let total = self.committed.definition_bytes() + self.staged_bytes + wire_bytes;
        let max = self.committed.max_definition_bytes();
        if total > max {
            return Err(GobError::DefinitionsTooLarge { max }.into());
        }
        self.staged_bytes += wire_bytes;
        self.staged.push((id, wire));
        Ok(())
    }

    /// Reads the start of a top-level unit: a type definition that must fill
    /// its message, or the type id of a value that follows.
    pub(crate) fn read_top_level(&mut self) -> Result<TopLevel, Stop> {
        let id = self.reader.read_int()?;
        if id >= 0 {
            return Ok(TopLevel::Value(id));
        }
        let defined = id.checked_neg().ok_or(GobError::BadTypeId(id))?;
        self.define(defined)?;
        if !self.reader.is_empty() {
            return Err(GobError::ExtraData.into());
        }
        Ok(TopLevel::Definition)
    }

    /// Reads an interface value's `(type definition)* type id`, as Go's
    /// `decodeTypeSequence`.
    ///
    /// A byte count may follow a definition within a message (Go's encoder
    /// frames nested definitions that way); it is skipped. The sequence may
    /// continue into the next message only straight after a definition that
    /// ended its message: Go's decoder would also move on from a value cut
    /// off anywhere else, but Go's encoder never writes that, and allowing it
    /// would let one value span any number of messages (each hop here needs
    /// a definition, and those are capped by the type limit).
    pub(crate) fn type_sequence(&mut self) -> Result<TypeId, Stop> {
        let mut after_definition = false;
        loop {
            if self.reader.is_empty() {
                if !after_definition {
                    return Err(GobError::UnexpectedEnd.into());
                }
                self.load_next()?;
            }
            let id = self.reader.read_int()?;
            if id >= 0 {
                return Ok(id);
            }
            let defined = id.checked_neg().ok_or(GobError::BadTypeId(id))?;
            self.define(defined)?;
            if !self.reader.is_empty() {
                self.reader.read_uint()?;
            }
            after_definition = true;
        }
    }

    /// Runs `inner` one nesting level deeper, refusing to go past the limit.
    pub(crate) fn nested<T>(
        &mut self,
        inner: impl FnOnce(&mut Self) -> Result<T, Stop>,
    ) -> Result<T, Stop> {
        if self.depth >= self.limits.max_depth {
            return Err(GobError::TooDeep {
                max: self.limits.max_depth,
            }
            .into());
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    /// Reads an element count that the current message can hold (every
    /// element takes at least one byte, except structs cut off by the end
    /// of the message, which this bound still keeps finite).
    pub(crate) fn read_count(&mut self) -> Result<u64, GobError> {
        let count = self.reader.read_uint()?;
        if count > self.reader.remaining() as u64 {
            return Err(GobError::LengthBeyondMessage {
                len: count,
                remaining: self.reader.remaining(),
            });
        }
        Ok(count)
    }

    /// Reads the field deltas of a struct with `field_count` fields, calling
    /// `on_field` with each field's index, until the terminating 0 or the end
    /// of the message (which Go also accepts as the end of a struct).
    pub(crate) fn read_struct(
        &mut self,
        field_count: usize,
        mut on_field: impl FnMut(&mut Self, usize) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        let mut last: Option<usize> = None;
        while !self.reader.is_empty() {
            let delta = self.reader.read_uint()?;
            if delta == 0 {
                break;
            }
            let delta = usize::try_from(delta).map_err(|_| GobError::FieldOutOfRange)?;
            let index = match last {
                None => Some(delta - 1),
                Some(last) => last.checked_add(delta),
            }
            .filter(|index| *index < field_count)
            .ok_or(GobError::FieldOutOfRange)?;
            on_field(self, index)?;
            last = Some(index);
        }
        Ok(())
    }

    /// Skips a value of type `id` (a field this crate does not use).
    pub(crate) fn skip(&mut self, id: TypeId) -> Result<(), Stop> {
        match id {
            id::BOOL | id::INT | id::UINT | id::FLOAT => {
                self.reader.read_uint()?;
            }
            id::COMPLEX => {
                self.reader.read_uint()?;
                self.reader.read_uint()?;
            }
            id::BYTES | id::STRING => {
                let len = self.reader.read_len()?;
                self.reader.skip(len)?;
            }
            id::INTERFACE => self.skip_interface()?,
            _ => {
                let wire = Arc::clone(self.lookup_shared(id).ok_or(GobError::UnknownType(id))?);
                self.nested(|session| session.skip_defined(&wire))?;
            }
        }
        Ok(())
    }

    fn skip_defined(&mut self, wire: &WireType) -> Result<(), Stop> {
        match wire {
            WireType::Array { elem, len } => {
                let count = self.read_count()?;
                if count != *len {
                    return Err(GobError::ArrayLengthMismatch {
                        expected: *len,
                        got: count,
                    }
                    .into());
                }
                for _ in 0..count {
                    self.skip(*elem)?;
                }
            }
            WireType::Slice { elem } => {
                for _ in 0..self.read_count()? {
                    self.skip(*elem)?;
                }
            }
            WireType::Map { key, elem } => {
                for _ in 0..self.read_count()? {
                    self.skip(*key)?;
                    self.skip(*elem)?;
                }
            }
            WireType::Struct { fields, .. } => {
                self.read_struct(fields.len(), |session, index| match fields.get(index) {
                    Some(field) => session.skip(field.id),
                    None => Err(GobError::FieldOutOfRange.into()),
                })?;
            }
            WireType::Opaque { .. } => {
                let len = self.reader.read_len()?;
                self.reader.skip(len)?;
            }
        }
        Ok(())
    }

    /// Reads an interface's concrete type name (empty for nil), refusing
    /// names longer than Go's 1024 bytes.
    pub(crate) fn read_interface_name(&mut self) -> Result<&'m str, Stop> {
        Ok(self.reader.read_str_at_most(MAX_INTERFACE_NAME_LEN)?)
    }

    fn skip_interface(&mut self) -> Result<(), Stop> {
        if self.read_interface_name()?.is_empty() {
            return Ok(());
        }
        self.type_sequence()?;
        let len = self.reader.read_len()?;
        self.reader.skip(len)?;
        Ok(())
    }
}

/// Go refuses interface type names longer than this.
pub(crate) const MAX_INTERFACE_NAME_LEN: usize = 1024;
