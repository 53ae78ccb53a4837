//! Durations as Istio's YAML writes them: protobuf JSON (`1.5s`) and Go syntax
//! (`1h2m`, `300ms`, `10us`), which Kubernetes' CEL `duration()` accepts.

use std::time::Duration;

/// Why a duration is refused; its `Display` is the diagnostic `validate` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a duration (or beyond u64::MAX seconds).
    Invalid(String),
    Negative(String),
    /// Under Istio's 1 ms minimum.
    TooShort,
    /// Finer than Istio's millisecond precision.
    TooPrecise,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Invalid(s) => write!(
                f,
                "invalid duration {s:?} (expected e.g. \"1s\", \"0.5s\", \"100ms\", \"1h\")"
            ),
            DurationError::Negative(s) => write!(f, "duration {s:?} must not be negative"),
            DurationError::TooShort => write!(f, "duration must be greater than 1ms"),
            DurationError::TooPrecise => write!(f, "only durations to ms precision are supported"),
        }
    }
}

impl std::error::Error for DurationError {}

impl From<DurationError> for String {
    fn from(e: DurationError) -> String {
        e.to_string()
    }
}

/// Parses a duration string.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Invalid(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0; // nanoseconds
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut frac_ns: u128 = 0;
        let mut div: u128 = 1;
        for c in frac_part.chars().take(18) {
            frac_ns = frac_ns * 10 + u128::from(c.to_digit(10).ok_or_else(bad)?);
            div *= 10;
        }
        total = total
            .checked_add(int.checked_mul(scale).ok_or_else(bad)?)
            .and_then(|v| v.checked_add(frac_ns * scale / div))
            .ok_or_else(bad)?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Istio's `ValidateDuration`: at least 1ms, and a whole number of milliseconds.
pub fn validate(s: &str) -> Result<Duration, DurationError> {
    let d = parse(s)?;
    if d < Duration::from_millis(1) {
        return Err(DurationError::TooShort);
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(DurationError::TooPrecise);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proto_and_go_forms() {
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("300s").unwrap(), Duration::from_secs(300));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "s",
            "1",
            "1x",
            "-1s",
            "1..2s",
            "abc",
            ".s",
            "1s2",
            "99999999999999999999999h",
        ] {
            assert!(parse(s).is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn validate_enforces_istio_limits() {
        assert!(validate("1ms").is_ok());
        assert_eq!(validate("0.5ms"), Err(DurationError::TooShort));
        assert_eq!(validate("0s"), Err(DurationError::TooShort));
        assert_eq!(validate("1.0005s"), Err(DurationError::TooPrecise));
        assert!(validate("0s")
            .unwrap_err()
            .to_string()
            .contains("greater than 1ms"));
    }
}
