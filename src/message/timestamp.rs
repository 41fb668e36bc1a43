//! Wall-clock timestamps that round-trip Go's `time.Time` exactly.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from Go's epoch (0001-01-01T00:00:00Z) to the Unix epoch.
pub const GO_SECONDS_AT_UNIX_EPOCH: i64 = 62_135_596_800;

const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// The zone a [`Timestamp`] was taken in, as far as Go's binary form of
/// `time.Time` records it: UTC, or a fixed offset from it.
///
/// Go writes UTC as the offset "-1 minutes", which is why a fixed offset of
/// -60..=-119 seconds cannot be represented (Go's own `MarshalBinary` refuses
/// it too), and why UTC and a zero offset are different zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Zone {
    /// Coordinated Universal Time (Go's `time.UTC`).
    #[default]
    Utc,
    /// A fixed offset east of UTC (Go's `time.FixedZone` or a local zone).
    Fixed(FixedOffset),
}

/// An offset east of UTC that Go's binary form of `time.Time` can carry:
/// made only by [`Zone::fixed`], so every timestamp encodes exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedOffset(i32);

impl FixedOffset {
    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.0
    }
}

impl Zone {
    /// A fixed zone `offset_seconds` east of UTC, or `None` when Go's binary
    /// form of `time.Time` cannot carry that offset.
    pub fn fixed(offset_seconds: i32) -> Option<Zone> {
        let minutes = offset_seconds / 60;
        let fits = (i32::from(i16::MIN)..=i32::from(i16::MAX)).contains(&minutes) && minutes != -1;
        fits.then_some(Zone::Fixed(FixedOffset(offset_seconds)))
    }

    /// Seconds east of UTC (0 for UTC).
    pub fn offset_seconds(self) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(offset) => offset.seconds(),
        }
    }
}

/// Why bytes could not be read as Go's binary form of `time.Time`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The version byte was neither 1 nor 2.
    #[error("unsupported time.Time binary version {0} (expected 1 or 2)")]
    UnsupportedVersion(u8),
    /// The length does not match the version (15 bytes for 1, 16 for 2).
    #[error("time.Time binary version {version} must be {expected} bytes, got {actual}")]
    BadLength {
        /// The version byte read.
        version: u8,
        /// The length that version requires.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The nanoseconds field is outside `0..1_000_000_000`.
    #[error("nanoseconds {0} out of range 0..1000000000")]
    NanosOutOfRange(i64),
    /// The zone offset cannot be represented (see [`Zone`]).
    #[error("zone offset of {0} seconds cannot be represented")]
    BadZoneOffset(i32),
}

/// A wall-clock instant with the zone it was recorded in, as carried by the
/// `Ping` and `Pong` messages.
///
/// It stores exactly what Go's `time.Time.MarshalBinary` writes: whole
/// seconds since 0001-01-01T00:00:00Z, nanoseconds, and the [`Zone`]; so a
/// timestamp decoded from a Go peer is re-encoded bit for bit. The crate
/// never reads a clock: callers build timestamps from their own clock with
/// [`Timestamp::from_system_time`] or [`Timestamp::from_unix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp {
    go_seconds: i64,
    nanos: u32,
    zone: Zone,
}

impl Timestamp {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z), what an upstream client
    /// leaves in `Pong.PongTimestamp`.
    pub const ZERO: Timestamp = Timestamp {
        go_seconds: 0,
        nanos: 0,
        zone: Zone::Utc,
    };

    /// Builds a timestamp from Go's representation: seconds since
    /// 0001-01-01T00:00:00Z, nanoseconds, zone. `None` when `nanos` is a
    /// second or more.
    pub fn from_go_parts(go_seconds: i64, nanos: u32, zone: Zone) -> Option<Timestamp> {
        (nanos < NANOS_PER_SECOND).then_some(Timestamp {
            go_seconds,
            nanos,
            zone,
        })
    }

    /// A UTC timestamp `seconds` and `nanos` after the Unix epoch; `None`
    /// when out of Go's range or `nanos` is a second or more.
    pub fn from_unix(seconds: i64, nanos: u32) -> Option<Timestamp> {
        let go_seconds = seconds.checked_add(GO_SECONDS_AT_UNIX_EPOCH)?;
        Timestamp::from_go_parts(go_seconds, nanos, Zone::Utc)
    }

    /// The UTC timestamp of a [`SystemTime`] the caller read from its clock.
    pub fn from_system_time(time: SystemTime) -> Option<Timestamp> {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => {
                Timestamp::from_unix(i64::try_from(after.as_secs()).ok()?, after.subsec_nanos())
            }
            Err(before) => {
                let before = before.duration();
                let mut seconds = -i64::try_from(before.as_secs()).ok()?;
                let mut nanos = before.subsec_nanos();
                if nanos > 0 {
                    seconds = seconds.checked_sub(1)?;
                    nanos = NANOS_PER_SECOND - nanos;
                }
                Timestamp::from_unix(seconds, nanos)
            }
        }
    }

    /// The same instant recorded in another zone.
    pub fn with_zone(self, zone: Zone) -> Timestamp {
        Timestamp { zone, ..self }
    }

    /// Whole seconds since 0001-01-01T00:00:00Z (Go's internal epoch).
    pub fn go_seconds(&self) -> i64 {
        self.go_seconds
    }

    /// Whole seconds since the Unix epoch, `None` if that overflows an `i64`.
    pub fn unix_seconds(&self) -> Option<i64> {
        self.go_seconds.checked_sub(GO_SECONDS_AT_UNIX_EPOCH)
    }

    /// Nanoseconds within the second, always below 1 000 000 000.
    pub fn nanos(&self) -> u32 {
        self.nanos
    }

    /// The zone the timestamp was recorded in.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// Whether this is Go's zero time in UTC: the value gob omits from a
    /// struct as a zero field.
    pub fn is_zero(&self) -> bool {
        *self == Timestamp::ZERO
    }

    /// The instant as a [`SystemTime`], `None` if the platform cannot hold it.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let seconds = self.unix_seconds()?;
        let whole = Duration::from_secs(seconds.unsigned_abs());
        let base = if seconds >= 0 {
            UNIX_EPOCH.checked_add(whole)?
        } else {
            UNIX_EPOCH.checked_sub(whole)?
        };
        base.checked_add(Duration::from_nanos(u64::from(self.nanos)))
    }

    /// Go's `time.Time.MarshalBinary` output: version 1 (15 bytes), or
    /// version 2 (16 bytes) when the zone offset has a seconds part. Returns
    /// the buffer and how many of its bytes are used.
    pub fn to_go_binary(&self) -> ([u8; 16], usize) {
        let (offset_minutes, offset_seconds) = match self.zone {
            Zone::Utc => (-1i16, 0i8),
            // `Zone::fixed`, the only way to make a `FixedOffset`, keeps the
            // minutes within i16 (and off -1, UTC's marker) and the
            // remainder within -59..=59, so these narrowings are exact.
            Zone::Fixed(offset) => {
                let offset = offset.seconds();
                ((offset / 60) as i16, (offset % 60) as i8)
            }
        };
        let mut out = [0u8; 16];
        out[0] = if offset_seconds == 0 { 1 } else { 2 };
        out[1..9].copy_from_slice(&self.go_seconds.to_be_bytes());
        // nanos < 1e9 < i32::MAX: Go writes it as a signed 32-bit value.
        out[9..13].copy_from_slice(&self.nanos.to_be_bytes());
        out[13..15].copy_from_slice(&offset_minutes.to_be_bytes());
        out[15] = offset_seconds.to_be_bytes()[0];
        (out, if out[0] == 1 { 15 } else { 16 })
    }

    /// Reads Go's `time.Time.MarshalBinary` output (versions 1 and 2).
    ///
    /// The version 2 seconds byte is read as signed, as Go's encoder writes
    /// it (go1.19's decoder reads it unsigned: golang/go issue #78528).
    pub fn from_go_binary(bytes: &[u8]) -> Result<Timestamp, TimestampError> {
        let (&version, _) = bytes
            .split_first()
            .ok_or(TimestampError::UnsupportedVersion(0))?;
        let expected = match version {
            1 => 15,
            2 => 16,
            other => return Err(TimestampError::UnsupportedVersion(other)),
        };
        if bytes.len() != expected {
            return Err(TimestampError::BadLength {
                version,
                expected,
                actual: bytes.len(),
            });
        }
        let mut fixed = [0u8; 16];
        fixed[..expected].copy_from_slice(bytes);
        let go_seconds = i64::from_be_bytes([
            fixed[1], fixed[2], fixed[3], fixed[4], fixed[5], fixed[6], fixed[7], fixed[8],
        ]);
        let nanos = i32::from_be_bytes([fixed[9], fixed[10], fixed[11], fixed[12]]);
        let nanos = u32::try_from(nanos)
            .ok()
            .filter(|n| *n < NANOS_PER_SECOND)
            .ok_or(TimestampError::NanosOutOfRange(i64::from(nanos)))?;
        let minutes = i16::from_be_bytes([fixed[13], fixed[14]]);
        let seconds = if version == 2 { fixed[15] as i8 } else { 0 };
        let offset = i32::from(minutes) * 60 + i32::from(seconds);
        let zone = if offset == -60 {
            Zone::Utc
        } else {
            Zone::fixed(offset).ok_or(TimestampError::BadZoneOffset(offset))?
        };
        Ok(Timestamp {
            go_seconds,
            nanos,
            zone,
        })
    }
}

/// RFC 3339 with the recorded zone, e.g. `2018-02-01T14:30:00.5Z` or
/// `2018-02-01T15:30:00+01:00`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.zone.offset_seconds();
        let local = i128::from(self.go_seconds) + i128::from(offset);
        let days = local.div_euclid(86_400);
        let second_of_day = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days - days_from_unix_to_go_epoch());
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        if self.nanos > 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        match self.zone {
            Zone::Utc => f.write_str("Z"),
            Zone::Fixed(offset) => {
                let offset = offset.seconds();
                let sign = if offset < 0 { '-' } else { '+' };
                let magnitude = offset.unsigned_abs();
                write!(
                    f,
                    "{sign}{:02}:{:02}",
                    magnitude / 3600,
                    magnitude / 60 % 60
                )?;
                match magnitude % 60 {
                    0 => Ok(()),
                    seconds => write!(f, ":{seconds:02}"),
                }
            }
        }
    }
}

/// Days from 1970-01-01 back to 0001-01-01, negated (so Go-epoch days minus
/// this gives Unix days).
fn days_from_unix_to_go_epoch() -> i128 {
    i128::from(GO_SECONDS_AT_UNIX_EPOCH / 86_400)
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed zone built directly, to check `Zone::fixed` against.
    fn fixed(seconds: i32) -> Zone {
        Zone::Fixed(FixedOffset(seconds))
    }

    fn go_binary(ts: &Timestamp) -> Vec<u8> {
        let (bytes, len) = ts.to_go_binary();
        bytes[..len].to_vec()
    }

    #[test]
    fn zero_is_go_zero_time() {
        assert!(Timestamp::ZERO.is_zero());
        assert_eq!(Timestamp::ZERO.to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::ZERO.unix_seconds(),
            Some(-GO_SECONDS_AT_UNIX_EPOCH)
        );
        // A zero instant in another zone is not Go's zero value.
        assert!(!Timestamp::ZERO.with_zone(fixed(0)).is_zero());
    }

    #[test]
    fn binary_form_matches_go_marshal_binary() {
        // time.Date(2018, 2, 1, 14, 30, 0, 0, time.UTC).MarshalBinary() in go1.19.
        let ts = Timestamp::from_unix(1_517_495_400, 0).unwrap();
        assert_eq!(
            go_binary(&ts),
            [1, 0, 0, 0, 14, 210, 5, 27, 104, 0, 0, 0, 0, 255, 255]
        );
        assert_eq!(ts.to_string(), "2018-02-01T14:30:00Z");
    }

    #[test]
    fn round_trips_every_zone_kind_exactly() {
        let base = Timestamp::from_unix(1_700_000_000, 123_456_789).unwrap();
        for zone in [
            Zone::Utc,
            fixed(0),
            fixed(3600),
            fixed(-5 * 3600 - 30 * 60),
            fixed(-50),
            fixed(-(0x7fff * 60) - 59),
            fixed(0x7fff * 60 + 59),
            fixed(1_234),
        ] {
            let ts = base.with_zone(zone);
            let bytes = go_binary(&ts);
            let expected_version = if zone.offset_seconds() % 60 == 0 {
                1
            } else {
                2
            };
            assert_eq!(bytes[0], expected_version, "{zone:?}");
            assert_eq!(Timestamp::from_go_binary(&bytes), Ok(ts), "{zone:?}");
        }
        for go_seconds in [i64::MIN, -1, 0, 1, i64::MAX] {
            let ts = Timestamp::from_go_parts(go_seconds, 999_999_999, Zone::Utc).unwrap();
            assert_eq!(Timestamp::from_go_binary(&go_binary(&ts)), Ok(ts));
        }
    }

    #[test]
    fn zones_go_cannot_marshal_are_refused() {
        assert_eq!(Zone::fixed(-60), None);
        assert_eq!(Zone::fixed(-119), None);
        assert_eq!(Zone::fixed(-59), Some(fixed(-59)));
        assert_eq!(Zone::fixed(-120), Some(fixed(-120)));
        assert_eq!(Zone::fixed(32_768 * 60), None);
    }

    #[test]
    fn malformed_binary_is_rejected_with_the_reason() {
        assert_eq!(
            Timestamp::from_go_binary(&[]),
            Err(TimestampError::UnsupportedVersion(0))
        );
        assert_eq!(
            Timestamp::from_go_binary(&[3; 15]),
            Err(TimestampError::UnsupportedVersion(3))
        );
        assert_eq!(
            Timestamp::from_go_binary(&[1; 16]),
            Err(TimestampError::BadLength {
                version: 1,
                expected: 15,
                actual: 16
            })
        );
        let mut bad_nanos = go_binary(&Timestamp::ZERO);
        bad_nanos[9..13].copy_from_slice(&1_000_000_000i32.to_be_bytes());
        assert_eq!(
            Timestamp::from_go_binary(&bad_nanos),
            Err(TimestampError::NanosOutOfRange(1_000_000_000))
        );
        bad_nanos[9..13].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            Timestamp::from_go_binary(&bad_nanos),
            Err(TimestampError::NanosOutOfRange(-1))
        );
        // Version 2 with "-2 minutes + 30 s" = -90 s: Go cannot re-encode it.
        let mut odd_zone = vec![2];
        odd_zone.extend_from_slice(&[0; 12]);
        odd_zone.extend_from_slice(&(-2i16).to_be_bytes());
        odd_zone.push(30);
        assert_eq!(
            Timestamp::from_go_binary(&odd_zone),
            Err(TimestampError::BadZoneOffset(-90))
        );
    }

    #[test]
    fn system_time_conversion_round_trips_both_sides_of_the_epoch() {
        for (seconds, nanos) in [
            (0i64, 0u32),
            (1_700_000_000, 5),
            (-1, 999_999_999),
            (-86_400, 1),
        ] {
            let ts = Timestamp::from_unix(seconds, nanos).unwrap();
            let system = ts.to_system_time().unwrap();
            assert_eq!(Timestamp::from_system_time(system), Some(ts));
        }
    }

    #[test]
    fn display_shows_the_recorded_zone() {
        let ts = Timestamp::from_unix(1_517_495_400, 500_000_000).unwrap();
        assert_eq!(ts.to_string(), "2018-02-01T14:30:00.5Z");
        assert_eq!(
            ts.with_zone(fixed(3600)).to_string(),
            "2018-02-01T15:30:00.5+01:00"
        );
        assert_eq!(
            ts.with_zone(fixed(-(5 * 3600 + 30 * 60 + 15))).to_string(),
            "2018-02-01T08:59:45.5-05:30:15"
        );
        assert_eq!(
            Timestamp::from_unix(951_782_400, 0).unwrap().to_string(),
            "2000-02-29T00:00:00Z"
        );
    }
}
