//! gob's type system as it travels on the wire: the predefined type ids and
//! the `wireType` definitions a sender transmits for its own types.

use std::borrow::Cow;
use std::sync::Arc;

use super::GobError;
use super::wire::Reader;

/// A gob type id. Negative on the wire when it introduces a definition.
pub(crate) type TypeId = i64;

/// The ids gob predefines; a sender's own types start at [`FIRST_USER`](id::FIRST_USER).
pub(crate) mod id {
    use super::TypeId;

    pub(crate) const BOOL: TypeId = 1;
    pub(crate) const INT: TypeId = 2;
    pub(crate) const UINT: TypeId = 3;
    pub(crate) const FLOAT: TypeId = 4;
    pub(crate) const BYTES: TypeId = 5;
    pub(crate) const STRING: TypeId = 6;
    pub(crate) const COMPLEX: TypeId = 7;
    pub(crate) const INTERFACE: TypeId = 8;
    /// The lowest id a sender may define (Go's `firstUserId`).
    pub(crate) const FIRST_USER: TypeId = 64;
}

/// One field of a struct definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDef {
    /// Borrowed from the schema when it is a field name this crate knows
    /// (every field of upstream's messages): every connection's peer sends
    /// the same names, and a server decoding thousands of hellos should not
    /// allocate each one. Only names nobody matches against are owned.
    pub(crate) name: Cow<'static, str>,
    pub(crate) id: TypeId,
}

/// A type definition a sender transmitted (Go's `wireType`, one of whose
/// members is set). Type names are read (and must be UTF-8) but not kept:
/// like Go's decoder, this one matches types by structure and fields by
/// name, never types by name, so keeping them would only cost an
/// allocation per definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireType {
    Array {
        elem: TypeId,
        len: u64,
    },
    Slice {
        elem: TypeId,
    },
    Struct {
        fields: Vec<FieldDef>,
    },
    Map {
        key: TypeId,
        elem: TypeId,
    },
    /// A type with its own encoding (GobEncoder, BinaryMarshaler or
    /// TextMarshaler): a length-prefixed byte string on the wire.
    Opaque {
        kind: OpaqueKind,
    },
}

/// Which custom-encoding interface an opaque type uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpaqueKind {
    GobEncoder,
    BinaryMarshaler,
    TextMarshaler,
}

/// The definitions received on one stream, with a cap on their number.
#[derive(Debug, Clone)]
pub(crate) struct TypeRegistry {
    /// Sorted by id, for binary search: at most `max_types` entries, and
    /// senders define ids in increasing order (Go's and this crate's
    /// encoders both do), so an insert is normally a push — cheaper than a
    /// hash map for the dozen definitions every connection starts with.
    /// Shared so that skipping a value of a defined type does not copy its
    /// definition for every element.
    types: Vec<(TypeId, Arc<WireType>)>,
    max_types: usize,
    /// Wire bytes of the definitions held, against `max_definition_bytes`.
    definition_bytes: usize,
    max_definition_bytes: usize,
}

impl TypeRegistry {
    pub(crate) fn new(max_types: usize, max_definition_bytes: usize) -> TypeRegistry {
        TypeRegistry {
            types: Vec::new(),
            max_types,
            definition_bytes: 0,
            max_definition_bytes,
        }
    }

    pub(crate) fn get(&self, id: TypeId) -> Option<&Arc<WireType>> {
        let index = self.types.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        self.types.get(index).map(|(_, wire)| wire)
    }

    pub(crate) fn len(&self) -> usize {
        self.types.len()
    }

    pub(crate) fn max_types(&self) -> usize {
        self.max_types
    }

    pub(crate) fn definition_bytes(&self) -> usize {
        self.definition_bytes
    }

    pub(crate) fn max_definition_bytes(&self) -> usize {
        self.max_definition_bytes
    }

    /// Adds (or replaces) the definition of `id`.
    pub(crate) fn insert(&mut self, id: TypeId, wire: Arc<WireType>) {
        match self.types.binary_search_by_key(&id, |(id, _)| *id) {
            Ok(index) => {
                if let Some(slot) = self.types.get_mut(index) {
                    slot.1 = wire;
                }
            }
            // Bounded by `max_types` (checked before staging), so the shift
            // of an out-of-order insert is bounded too.
            Err(index) => self.types.insert(index, (id, wire)),
        }
    }

    /// Counts `wire_bytes` more of definitions against the budget.
    pub(crate) fn add_definition_bytes(&mut self, wire_bytes: usize) {
        self.definition_bytes = self.definition_bytes.saturating_add(wire_bytes);
    }
}

/// Reads the `CommonType { Name string; Id typeId }` struct (the name is
/// checked for UTF-8 and dropped: see [`WireType`]).
fn read_common(reader: &mut Reader<'_>) -> Result<(), GobError> {
    read_fixed_struct(reader, 2, |reader, field| {
        match field {
            0 => {
                reader.read_str()?;
            }
            _ => {
                reader.read_int()?;
            }
        }
        Ok(())
    })
}

/// Reads a struct of one of gob's own definition types, whose field
/// numbers are fixed; `on_field` reads the field numbered `index`.
fn read_fixed_struct(
    reader: &mut Reader<'_>,
    field_count: u64,
    mut on_field: impl FnMut(&mut Reader<'_>, u64) -> Result<(), GobError>,
) -> Result<(), GobError> {
    let mut field: Option<u64> = None;
    // Like Go, a struct may end at the end of the message without its 0.
    while !reader.is_empty() {
        let delta = reader.read_uint()?;
        if delta == 0 {
            return Ok(());
        }
        let index = field.map_or(Some(delta - 1), |f| f.checked_add(delta));
        let index = index
            .filter(|index| *index < field_count)
            .ok_or(GobError::FieldOutOfRange)?;
        on_field(reader, index)?;
        field = Some(index);
    }
    Ok(())
}

/// Reads one `wireType` value (the body of a type definition).
pub(crate) fn read_wire_type(reader: &mut Reader<'_>) -> Result<WireType, GobError> {
    let mut found: Option<WireType> = None;
    read_fixed_struct(reader, 7, |reader, member| {
        let wire = match member {
            0 => read_array(reader)?,
            1 => read_slice_type(reader)?,
            2 => read_struct_type(reader)?,
            3 => read_map(reader)?,
            4..=6 => {
                let kind = match member {
                    4 => OpaqueKind::GobEncoder,
                    5 => OpaqueKind::BinaryMarshaler,
                    _ => OpaqueKind::TextMarshaler,
                };
                read_fixed_struct(reader, 1, |reader, _| read_common(reader))?;
                WireType::Opaque { kind }
            }
            _ => return Err(GobError::FieldOutOfRange),
        };
        if found.replace(wire).is_some() {
            return Err(GobError::BadTypeDefinition("more than one kind set"));
        }
        Ok(())
    })?;
    found.ok_or(GobError::BadTypeDefinition("no kind set"))
}

fn read_array(reader: &mut Reader<'_>) -> Result<WireType, GobError> {
    let (mut elem, mut len) = (0, 0);
    read_fixed_struct(reader, 3, |reader, field| {
        match field {
            0 => {
                read_common(reader)?;
            }
            1 => elem = reader.read_int()?,
            _ => {
                len = u64::try_from(reader.read_int()?)
                    .map_err(|_| GobError::BadTypeDefinition("negative array length"))?;
            }
        }
        Ok(())
    })?;
    Ok(WireType::Array { elem, len })
}

fn read_slice_type(reader: &mut Reader<'_>) -> Result<WireType, GobError> {
    let mut elem = 0;
    read_fixed_struct(reader, 2, |reader, field| {
        match field {
            0 => {
                read_common(reader)?;
            }
            _ => elem = reader.read_int()?,
        }
        Ok(())
    })?;
    Ok(WireType::Slice { elem })
}

fn read_struct_type(reader: &mut Reader<'_>) -> Result<WireType, GobError> {
    let mut fields = Vec::new();
    read_fixed_struct(reader, 2, |reader, field| {
        match field {
            0 => read_common(reader)?,
            _ => {
                let count = reader.read_uint()?;
                // Every field must take at least one byte (Go's encoder
                // always ends a field's struct with its 0), so the count
                // is bounded by the bytes present.
                if count > reader.remaining() as u64 {
                    return Err(GobError::LengthBeyondMessage {
                        len: count,
                        remaining: reader.remaining(),
                    });
                }
                // One allocation for the fields of a message struct (the
                // largest has 9); a larger count grows as fields arrive.
                fields.reserve(usize::try_from(count).unwrap_or(0).min(16));
                for _ in 0..count {
                    if reader.is_empty() {
                        return Err(GobError::UnexpectedEnd);
                    }
                    let mut field = FieldDef {
                        name: Cow::Borrowed(""),
                        id: 0,
                    };
                    read_fixed_struct(reader, 2, |reader, member| {
                        match member {
                            0 => field.name = field_name(reader.read_str()?),
                            _ => field.id = reader.read_int()?,
                        }
                        Ok(())
                    })?;
                    fields.push(field);
                }
            }
        }
        Ok(())
    })?;
    Ok(WireType::Struct { fields })
}

/// `name` borrowed from the schema when this crate knows it, else owned.
fn field_name(name: &str) -> Cow<'static, str> {
    match super::schema::known_field_name(name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_owned()),
    }
}

fn read_map(reader: &mut Reader<'_>) -> Result<WireType, GobError> {
    let (mut key, mut elem) = (0, 0);
    read_fixed_struct(reader, 3, |reader, field| {
        match field {
            0 => {
                read_common(reader)?;
            }
            1 => key = reader.read_int()?,
            _ => elem = reader.read_int()?,
        }
        Ok(())
    })?;
    Ok(WireType::Map { key, elem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_finds_ids_defined_in_any_order() {
        let mut registry = TypeRegistry::new(16, 1024);
        let slice = |elem| Arc::new(WireType::Slice { elem });
        for type_id in [70, 65, 90, 66, 64] {
            registry.insert(type_id, slice(type_id));
        }
        registry.insert(65, slice(1));
        assert_eq!(registry.len(), 5);
        for (type_id, elem) in [(64, 64), (65, 1), (66, 66), (70, 70), (90, 90)] {
            assert_eq!(
                registry.get(type_id).map(|wire| &**wire),
                Some(&*slice(elem))
            );
        }
        assert!(registry.get(67).is_none());
    }

    #[test]
    fn field_names_are_borrowed_when_known_and_kept_when_not() {
        assert!(matches!(field_name("Hostname"), Cow::Borrowed("Hostname")));
        assert!(matches!(field_name("NewField"), Cow::Owned(name) if name == "NewField"));
    }
}
