//! Parsers for option values that clap checks before a command runs, so
//! that a malformed one is a usage error (exit code 2) naming the option.

use std::time::Duration;

/// Parses a duration with its unit: `500ms`, `10s`, `1.5s`, `1m30s`, `2h`
/// (humantime's grammar). A bare number is refused rather than taken as
/// seconds, except `0`, which needs no unit.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if !trimmed.is_empty()
        && trimmed
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return Err(format!(
            "{text:?} has no unit: write {trimmed}s for seconds (or ms, m, h; 1m30s and 1.5s work too)"
        ));
    }
    humantime::parse_duration(trimmed)
        .map_err(|error| format!("{text:?} is not a duration ({error}); try 500ms, 10s, 1m30s"))
}

/// Checks that `text` is `host:port` (an IPv6 host in brackets), the port
/// a number up to 65535, and returns it unchanged: names are resolved when
/// connecting or listening, and an unknown one is then a network failure.
pub(crate) fn address(text: &str) -> Result<String, String> {
    let hint = "expected host:port, e.g. 127.0.0.1:5473, typha:5473 or [::1]:5473";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port: {hint}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{port:?} in {text:?} is not a port number: {hint}"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain =
        !host.is_empty() && !host.contains([':', '[', ']']) && !host.contains(char::is_whitespace);
    if bracketed || plain {
        Ok(text.to_owned())
    } else {
        Err(format!("{host:?} in {text:?} is not a host: {hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_take_humantime_forms() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(duration("10").unwrap_err().contains("10s"));
        assert!(duration("-1s").unwrap_err().contains("negative"));
        assert!(duration("ten").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn addresses_need_a_host_and_a_port() {
        for good in ["127.0.0.1:5473", "typha:5473", "[::1]:0", "0.0.0.0:65535"] {
            assert_eq!(address(good).as_deref(), Ok(good));
        }
        for bad in [
            "localhost",
            "localhost:",
            ":5473",
            "host:99999",
            "host:abc",
            "::1:5473",
            "[]:5473",
            "a b:1",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }
}
