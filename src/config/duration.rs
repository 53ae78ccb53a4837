//! Durations as Istio's YAML writes them: protobuf JSON (`1.5s`) and Go syntax
//! (`1h2m`, `300ms`, `10us`), which Kubernetes' CEL `duration()` accepts.

use std::time::Duration;

/// Parses a duration string; returns a message suitable for a diagnostic on failure.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?} (expected e.g. \"1s\", \"0.5s\", \"100ms\", \"1h\")");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with('-') {
        return Err(format!("duration {s:?} must not be negative"));
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
pub fn validate(s: &str) -> Result<Duration, String> {
    let d = parse(s)?;
    if d < Duration::from_millis(1) {
        return Err("duration must be greater than 1ms".into());
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
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
        assert!(validate("0.5ms").unwrap_err().contains("greater than 1ms"));
        assert!(validate("0s").unwrap_err().contains("greater than 1ms"));
        assert!(validate("1.0005s").unwrap_err().contains("ms precision"));
    }
}
