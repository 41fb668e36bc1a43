//! Text renderings that match Go's `fmt` package, so that what this crate
//! prints for a value is what upstream Felix and Typha log and compare for it.

use std::fmt::{self, Write};

/// Writes `value` as Go's `%v` does for a `float64` (or, with `single`, a
/// `float32`): the shortest digits that round-trip, in `%e` form when the
/// decimal exponent is below -4 or at least 6, else in `%f` form.
pub(crate) fn write_float(out: &mut impl Write, value: f64, single: bool) -> fmt::Result {
    if value.is_nan() {
        return out.write_str("NaN");
    }
    if value.is_infinite() {
        return out.write_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    }
    // Rust's `{:e}` yields the shortest round-tripping digits, like Go's
    // shortest formatting; only the layout differs, so re-lay them out.
    let scientific = if single {
        // Narrowing is exact here: the value came from an f32.
        format!("{:e}", value as f32)
    } else {
        format!("{value:e}")
    };
    let (mantissa, exponent) = scientific.split_once('e').ok_or(fmt::Error)?;
    let exponent: i32 = exponent.parse().map_err(|_| fmt::Error)?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if negative {
        out.write_char('-')?;
    }
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        out.write_str(first)?;
        if !rest.is_empty() {
            out.write_char('.')?;
            out.write_str(rest)?;
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        return write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    }
    // `point` is where the decimal point sits within `digits`.
    let point = exponent + 1;
    if point <= 0 {
        out.write_str("0.")?;
        for _ in point..0 {
            out.write_char('0')?;
        }
        return out.write_str(&digits);
    }
    let point = point.unsigned_abs() as usize;
    if point >= digits.len() {
        out.write_str(&digits)?;
        for _ in digits.len()..point {
            out.write_char('0')?;
        }
        return Ok(());
    }
    let (whole, fraction) = digits.split_at(point);
    write!(out, "{whole}.{fraction}")
}

/// Writes a complex number as Go's `%v` does: `(re+imi)`, both parts as
/// [`write_float`] writes them, the imaginary part always signed.
pub(crate) fn write_complex(out: &mut impl Write, re: f64, im: f64, single: bool) -> fmt::Result {
    out.write_char('(')?;
    write_float(out, re, single)?;
    // Go prints the imaginary part with the `+` flag: `+2`, `+Inf`, `+NaN`.
    if im.is_nan() || im.is_sign_positive() && !im.is_infinite() {
        out.write_char('+')?;
    }
    write_float(out, im, single)?;
    out.write_str("i)")
}

/// Writes signed nanoseconds as Go's `time.Duration.String` does
/// (`0s`, `1.5µs`, `1m1s`, `2562047h47m16.854775807s`).
pub(crate) fn write_duration(out: &mut impl Write, nanos: i64) -> fmt::Result {
    const MICRO: u64 = 1_000;
    const MILLI: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;

    let magnitude = nanos.unsigned_abs();
    if magnitude == 0 {
        return out.write_str("0s");
    }
    if nanos < 0 {
        out.write_char('-')?;
    }
    if magnitude < SECOND {
        let (unit, precision) = if magnitude < MICRO {
            ("ns", 0)
        } else if magnitude < MILLI {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        write_with_fraction(out, magnitude, precision)?;
        return out.write_str(unit);
    }
    let total_seconds = magnitude / SECOND;
    let hours = total_seconds / 3600;
    let minutes = total_seconds / 60 % 60;
    if hours > 0 {
        write!(out, "{hours}h{minutes}m")?;
    } else if minutes > 0 {
        write!(out, "{minutes}m")?;
    }
    // Seconds keep their sub-second fraction, as in Go.
    write_with_fraction(out, magnitude % (60 * SECOND), 9)?;
    out.write_char('s')
}

/// Writes `value / 10^precision` with the fraction's trailing zeros (and a
/// bare decimal point) dropped.
fn write_with_fraction(out: &mut impl Write, value: u64, precision: u32) -> fmt::Result {
    let scale = 10u64.pow(precision);
    write!(out, "{}", value / scale)?;
    let fraction = value % scale;
    if fraction == 0 {
        return Ok(());
    }
    let text = format!("{fraction:0width$}", width = precision as usize);
    write!(out, ".{}", text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, value, false).unwrap();
        s
    }

    fn float32(value: f32) -> String {
        let mut s = String::new();
        write_float(&mut s, f64::from(value), true).unwrap();
        s
    }

    fn duration(nanos: i64) -> String {
        let mut s = String::new();
        write_duration(&mut s, nanos).unwrap();
        s
    }

    // Expected strings below were printed by go1.19's fmt.Printf("%v", x).
    #[test]
    fn floats_render_like_go() {
        let cases: [(f64, &str); 15] = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (0.000123, "0.000123"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (1234567.0, "1.234567e+06"),
            (3.25, "3.25"),
            (1.0 / 3.0, "0.3333333333333333"),
        ];
        for (value, want) in cases {
            assert_eq!(float(value), want, "{value:e}");
        }
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn float32_uses_single_precision_shortest_digits() {
        assert_eq!(float32(0.1), "0.1");
        assert_eq!(float32(1e6), "1e+06");
        assert_eq!(float32(16777216.0), "1.6777216e+07");
        assert_eq!(float32(3.4e38), "3.4e+38");
    }

    #[test]
    fn durations_render_like_go() {
        let cases: [(i64, &str); 15] = [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1000, "1µs"),
            (1500, "1.5µs"),
            (1_000_000, "1ms"),
            (1_500_000, "1.5ms"),
            (999_999_999, "999.999999ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (61_000_000_000, "1m1s"),
            (3_601_000_000_000, "1h0m1s"),
            (-1500, "-1.5µs"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(duration(nanos), want, "{nanos}");
        }
    }
}
