//! The revision attached to each update: a dynamically typed value on the
//! wire, text for the application.

use std::borrow::Cow;
use std::fmt;

use bytestring::ByteString;

use crate::gofmt;

/// The revision of a key/value pair.
///
/// Upstream declares `SerializedUpdate.Revision` as `interface{}`: in
/// practice a string (the datastore's resource version), but older senders
/// used integers, and a receiver must accept any basic Go type. Each variant
/// is one Go basic type, so a value decoded from a Go peer is re-encoded as
/// exactly the type it arrived as (gob tells integer sizes apart only by the
/// type's registered name).
///
/// The [`Display`](fmt::Display) rendering is Go's `%v`, which is what
/// upstream's `ToUpdate` turns a revision into; `Nil` renders as `<nil>`.
/// Floats compare by bit pattern, except that every NaN equals every other
/// NaN of the same type: so every revision equals itself, and a revision
/// survives gob, which carries a `float32` as a `float64` (quieting a
/// signalling NaN on the way, as Go does).
#[derive(Debug, Clone, Default)]
pub enum Revision {
    /// No revision (a nil interface on the wire).
    #[default]
    Nil,
    /// Go `string`, the common case (sharing the input buffer when decoded).
    String(ByteString),
    /// Go `bool`.
    Bool(bool),
    /// Go `int` (64-bit on every platform upstream ships for).
    Int(i64),
    /// Go `int8`.
    Int8(i8),
    /// Go `int16`.
    Int16(i16),
    /// Go `int32`.
    Int32(i32),
    /// Go `int64`.
    Int64(i64),
    /// Go `uint` (64-bit).
    Uint(u64),
    /// Go `uint8`.
    Uint8(u8),
    /// Go `uint16`.
    Uint16(u16),
    /// Go `uint32`.
    Uint32(u32),
    /// Go `uint64`.
    Uint64(u64),
    /// Go `uintptr` (64-bit).
    Uintptr(u64),
    /// Go `float32`.
    Float32(f32),
    /// Go `float64`.
    Float64(f64),
    /// Go `complex64` (real, imaginary).
    Complex64(f32, f32),
    /// Go `complex128` (real, imaginary).
    Complex128(f64, f64),
}

impl Revision {
    /// Whether this is [`Revision::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Revision::Nil)
    }

    /// The revision as the text an application sees (as `to_string`),
    /// borrowing when it already is a string.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Revision::String(text) => Cow::Borrowed(text),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// Go's name for the type of the value (`"string"`, `"int64"`, …);
    /// `None` for [`Revision::Nil`]. These are the names gob registers the
    /// basic types under.
    pub fn go_type_name(&self) -> Option<&'static str> {
        Some(match self {
            Revision::Nil => return None,
            Revision::String(_) => "string",
            Revision::Bool(_) => "bool",
            Revision::Int(_) => "int",
            Revision::Int8(_) => "int8",
            Revision::Int16(_) => "int16",
            Revision::Int32(_) => "int32",
            Revision::Int64(_) => "int64",
            Revision::Uint(_) => "uint",
            Revision::Uint8(_) => "uint8",
            Revision::Uint16(_) => "uint16",
            Revision::Uint32(_) => "uint32",
            Revision::Uint64(_) => "uint64",
            Revision::Uintptr(_) => "uintptr",
            Revision::Float32(_) => "float32",
            Revision::Float64(_) => "float64",
            Revision::Complex64(..) => "complex64",
            Revision::Complex128(..) => "complex128",
        })
    }
}

impl PartialEq for Revision {
    fn eq(&self, other: &Revision) -> bool {
        use Revision::*;
        match (self, other) {
            (Nil, Nil) => true,
            (String(a), String(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) | (Int64(a), Int64(b)) => a == b,
            (Int8(a), Int8(b)) => a == b,
            (Int16(a), Int16(b)) => a == b,
            (Int32(a), Int32(b)) => a == b,
            (Uint(a), Uint(b)) | (Uint64(a), Uint64(b)) | (Uintptr(a), Uintptr(b)) => a == b,
            (Uint8(a), Uint8(b)) => a == b,
            (Uint16(a), Uint16(b)) => a == b,
            (Uint32(a), Uint32(b)) => a == b,
            (Float32(a), Float32(b)) => same_f64(f64::from(*a), f64::from(*b)),
            (Float64(a), Float64(b)) => same_f64(*a, *b),
            (Complex64(ar, ai), Complex64(br, bi)) => {
                same_f64(f64::from(*ar), f64::from(*br)) && same_f64(f64::from(*ai), f64::from(*bi))
            }
            (Complex128(ar, ai), Complex128(br, bi)) => same_f64(*ar, *br) && same_f64(*ai, *bi),
            _ => false,
        }
    }
}

impl Eq for Revision {}

/// Bit-for-bit equality, with all NaNs equal.
fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

impl From<String> for Revision {
    fn from(text: String) -> Revision {
        Revision::String(text.into())
    }
}

impl From<&str> for Revision {
    fn from(text: &str) -> Revision {
        Revision::String(text.into())
    }
}

impl From<ByteString> for Revision {
    fn from(text: ByteString) -> Revision {
        Revision::String(text)
    }
}

impl From<i64> for Revision {
    fn from(value: i64) -> Revision {
        Revision::Int64(value)
    }
}

impl From<u64> for Revision {
    fn from(value: u64) -> Revision {
        Revision::Uint64(value)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::Nil => f.write_str("<nil>"),
            Revision::String(text) => f.write_str(text),
            Revision::Bool(value) => write!(f, "{value}"),
            Revision::Int(value) | Revision::Int64(value) => write!(f, "{value}"),
            Revision::Int8(value) => write!(f, "{value}"),
            Revision::Int16(value) => write!(f, "{value}"),
            Revision::Int32(value) => write!(f, "{value}"),
            Revision::Uint(value) | Revision::Uint64(value) | Revision::Uintptr(value) => {
                write!(f, "{value}")
            }
            Revision::Uint8(value) => write!(f, "{value}"),
            Revision::Uint16(value) => write!(f, "{value}"),
            Revision::Uint32(value) => write!(f, "{value}"),
            Revision::Float32(value) => gofmt::write_float(f, f64::from(*value), true),
            Revision::Float64(value) => gofmt::write_float(f, *value, false),
            Revision::Complex64(re, im) => {
                gofmt::write_complex(f, f64::from(*re), f64::from(*im), true)
            }
            Revision::Complex128(re, im) => gofmt::write_complex(f, *re, *im, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings were printed by go1.19's fmt.Printf("%v", x).
    #[test]
    fn renders_like_go_percent_v() {
        let cases = [
            (Revision::Nil, "<nil>"),
            (Revision::from("12345"), "12345"),
            (Revision::from(""), ""),
            (Revision::Bool(true), "true"),
            (Revision::Int8(-7), "-7"),
            (Revision::Int(42), "42"),
            (Revision::from(i64::MIN), "-9223372036854775808"),
            (Revision::Uint8(200), "200"),
            (Revision::from(u64::MAX), "18446744073709551615"),
            (Revision::Float64(1e6), "1e+06"),
            (Revision::Float64(2.5), "2.5"),
            (Revision::Float32(0.1), "0.1"),
            (Revision::Complex128(1.0, 2.0), "(1+2i)"),
            (Revision::Complex128(-1.5, -2.0), "(-1.5-2i)"),
            (Revision::Complex64(0.1, 1e6), "(0.1+1e+06i)"),
            (Revision::Complex128(1e-7, 3.0), "(1e-07+3i)"),
        ];
        for (revision, want) in cases {
            assert_eq!(revision.to_string(), want, "{revision:?}");
            assert_eq!(revision.as_text(), want, "{revision:?}");
        }
    }

    #[test]
    fn string_revisions_borrow_as_text() {
        let revision = Revision::from("abc");
        assert!(matches!(revision.as_text(), Cow::Borrowed("abc")));
    }

    #[test]
    fn equality_distinguishes_go_types_and_accepts_nan() {
        assert_ne!(Revision::Int(5), Revision::Int64(5));
        assert_ne!(Revision::Int64(5), Revision::Uint64(5));
        assert_ne!(Revision::Uint64(5), Revision::Uintptr(5));
        assert_ne!(Revision::from("5"), Revision::Int64(5));
        let nan = Revision::Float64(f64::NAN);
        assert_eq!(nan, nan.clone());
        // Any NaN is NaN; but signed zeros differ, as their bits do.
        let signalling = f32::from_bits(0x7f80_0001);
        assert_eq!(Revision::Float32(signalling), Revision::Float32(f32::NAN));
        assert_ne!(Revision::Float64(0.0), Revision::Float64(-0.0));
    }

    #[test]
    fn go_type_names() {
        assert_eq!(Revision::Nil.go_type_name(), None);
        assert_eq!(Revision::from("x").go_type_name(), Some("string"));
        assert_eq!(Revision::Uintptr(1).go_type_name(), Some("uintptr"));
        assert_eq!(
            Revision::Complex64(0.0, 0.0).go_type_name(),
            Some("complex64")
        );
    }
}
