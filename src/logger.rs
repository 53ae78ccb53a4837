//! The process's one logger behind the `log` facade (Pingora logs through it too).
//!
//! One line per record on stderr:
//! `2026-11-30T08:46:22.123Z INFO  meshgate::server: listening on 0.0.0.0:80`
//! (RFC 3339 UTC timestamp with milliseconds, level, target, message).
//!
//! Filtering takes env_logger's simple form: comma-separated parts, where a bare level
//! (`off`, `error`, `warn`, `info`, `debug`, `trace`) sets the default and `target=level`
//! sets the level of every target starting with `target` (the longest prefix wins; as in
//! env_logger, `pingora` also covers `pingora_core`, `pingora_proxy`, ...). Example:
//! `info,pingora=warn,meshgate::http=debug`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The level of records whose target no directive names, when the spec sets none.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

/// Installs the logger: filter from `spec`, else the `RUST_LOG` environment variable,
/// else `info`. Only the first call installs anything (later calls, or a logger already
/// installed by someone else, are no-ops). Invalid parts of the spec are ignored, with
/// one warning line naming them.
pub fn init(spec: Option<&str>) {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    let spec = match spec {
        Some(s) => s.to_string(),
        None => std::env::var("RUST_LOG").unwrap_or_default(),
    };
    let (filter, invalid) = parse_spec(&spec);
    if LOGGER.set(Logger { filter }).is_err() {
        return;
    }
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if log::set_logger(logger).is_err() {
        return;
    }
    log::set_max_level(logger.filter.max_level());
    if !invalid.is_empty() {
        // Written whatever the filter says: the operator asked for something we ignore.
        let parts: Vec<String> = invalid.iter().map(|p| format!("{p:?}")).collect();
        let msg = format!(
            "ignoring invalid part(s) of the log filter {spec:?}: {} (expected LEVEL or TARGET=LEVEL; \
             levels: off, error, warn, info, debug, trace)",
            parts.join(", ")
        );
        write_line(&format_line(
            SystemTime::now(),
            Level::Warn,
            module_path!(),
            format_args!("{msg}"),
        ));
    }
}

struct Logger {
    filter: Filter,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            write_line(&format_line(
                SystemTime::now(),
                record.level(),
                record.target(),
                *record.args(),
            ));
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One `write_all` of a whole line: `Stderr` holds its lock for the call, so lines from
/// different threads never interleave. Errors (stderr closed) are ignored.
fn write_line(line: &str) {
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `TIMESTAMP LEVEL TARGET: MESSAGE\n`, the level padded to 5 columns.
fn format_line(
    time: SystemTime,
    level: Level,
    target: &str,
    args: std::fmt::Arguments<'_>,
) -> String {
    let mut line = format_timestamp(time);
    // Writing into a String cannot fail, except through a faulty Display impl: then the
    // line keeps what was written (format! would panic).
    let _ = write!(line, " {:<5} {target}: ", level.as_str());
    let _ = line.write_fmt(args);
    line.push('\n');
    line
}

/// Level filter: a default plus `(target prefix, level)` directives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    default: LevelFilter,
    directives: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// The level of the longest directive prefixing `target`, else the default.
    fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .filter(|(prefix, _)| target.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |&(_, level)| level)
    }

    /// The most verbose level any target can log at (for `log::set_max_level`).
    fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|&(_, level)| level)
            .fold(self.default, Ord::max)
    }
}

/// Parses a spec; returns the filter and the parts it ignored. Empty parts are skipped;
/// when a level or a target is given twice, the last one wins.
fn parse_spec(spec: &str) -> (Filter, Vec<&str>) {
    let mut filter = Filter {
        default: DEFAULT_LEVEL,
        directives: Vec::new(),
    };
    let mut invalid = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None => match part.parse::<LevelFilter>() {
                Ok(level) => filter.default = level,
                Err(_) => invalid.push(part),
            },
            Some((target, level)) => {
                let target = target.trim();
                match level.trim().parse::<LevelFilter>() {
                    Ok(level) if !target.is_empty() => {
                        filter.directives.retain(|(t, _)| t != target);
                        filter.directives.push((target.to_string(), level));
                    }
                    _ => invalid.push(part),
                }
            }
        }
    }
    (filter, invalid)
}

/// RFC 3339 UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ` (times before the epoch
/// print as the epoch).
fn format_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, millis * 1_000_000)
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(at(1_000_000_000, 0)),
            "2001-09-09T01:46:40.000Z"
        );
        // Leap days: 2000 (divisible by 400) and 2024.
        assert_eq!(
            format_timestamp(at(951_782_400, 5)),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(
            format_timestamp(at(1_709_251_199, 999)),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_timestamp(at(1_709_251_200, 0)),
            "2024-03-01T00:00:00.000Z"
        );
        // 2100 is not a leap year: Feb 28th is followed by March 1st.
        assert_eq!(
            format_timestamp(at(4_107_542_400, 0)),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(at(1_796_028_382, 123)),
            "2026-11-30T08:46:22.123Z"
        );
        assert_eq!(
            format_timestamp(at(1_767_225_599, 0)),
            "2025-12-31T23:59:59.000Z"
        );
        // Before the epoch: clamped.
        assert_eq!(
            format_timestamp(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn civil_dates_follow_the_calendar_for_five_centuries() {
        // Walks day by day from 1970 and checks each date follows the previous one.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(500 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn line_format() {
        let line = format_line(
            at(1_796_028_382, 123),
            Level::Info,
            "meshgate::server",
            format_args!("listening on {}", "0.0.0.0:80"),
        );
        assert_eq!(
            line,
            "2026-11-30T08:46:22.123Z INFO  meshgate::server: listening on 0.0.0.0:80\n"
        );
        let line = format_line(UNIX_EPOCH, Level::Error, "x", format_args!("boom"));
        assert_eq!(line, "1970-01-01T00:00:00.000Z ERROR x: boom\n");
    }

    #[test]
    fn empty_spec_is_info() {
        for spec in ["", " ", ",", " , ,"] {
            let (filter, invalid) = parse_spec(spec);
            assert_eq!(filter.default, LevelFilter::Info, "{spec:?}");
            assert!(filter.directives.is_empty());
            assert!(invalid.is_empty());
        }
    }

    #[test]
    fn bare_level_sets_default() {
        let (filter, invalid) = parse_spec("warn");
        assert_eq!(filter.default, LevelFilter::Warn);
        assert!(invalid.is_empty());
        assert_eq!(parse_spec("OFF").0.default, LevelFilter::Off);
        assert_eq!(parse_spec("Trace").0.default, LevelFilter::Trace);
        // The last one wins.
        assert_eq!(parse_spec("debug,error").0.default, LevelFilter::Error);
    }

    #[test]
    fn target_directives() {
        let (filter, invalid) = parse_spec("info, pingora = warn ,meshgate::http=debug");
        assert!(invalid.is_empty(), "{invalid:?}");
        assert_eq!(filter.default, LevelFilter::Info);
        assert_eq!(filter.level_for("meshgate::server"), LevelFilter::Info);
        assert_eq!(filter.level_for("meshgate::http"), LevelFilter::Debug);
        assert_eq!(
            filter.level_for("meshgate::http::mirror"),
            LevelFilter::Debug
        );
        // Plain string prefixes, as in env_logger.
        assert_eq!(filter.level_for("pingora_core::server"), LevelFilter::Warn);
        assert_eq!(filter.level_for("pingora"), LevelFilter::Warn);
        assert_eq!(filter.level_for("rustls::conn"), LevelFilter::Info);
        assert_eq!(filter.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        for spec in [
            "meshgate=error,meshgate::http=trace",
            "meshgate::http=trace,meshgate=error",
        ] {
            let (filter, _) = parse_spec(spec);
            assert_eq!(filter.level_for("meshgate::http::ctx"), LevelFilter::Trace);
            assert_eq!(filter.level_for("meshgate::tcp"), LevelFilter::Error);
            assert_eq!(filter.level_for("other"), LevelFilter::Info);
        }
        // A repeated target: the last one wins.
        let (filter, _) = parse_spec("a=debug,a=off");
        assert_eq!(filter.directives, vec![("a".to_string(), LevelFilter::Off)]);
        assert_eq!(filter.level_for("a::b"), LevelFilter::Off);
        assert_eq!(filter.max_level(), LevelFilter::Info);
    }

    #[test]
    fn invalid_parts_are_ignored_and_reported() {
        let (filter, invalid) = parse_spec("warn,loud,x=verbose,=debug,y=,meshgate=trace");
        assert_eq!(invalid, vec!["loud", "x=verbose", "=debug", "y="]);
        assert_eq!(filter.default, LevelFilter::Warn);
        assert_eq!(
            filter.directives,
            vec![("meshgate".to_string(), LevelFilter::Trace)]
        );
    }

    #[test]
    fn off_default_disables_everything_but_directives() {
        let (filter, _) = parse_spec("off,meshgate=warn");
        let logger = Logger { filter };
        let meta = |level, target| Metadata::builder().level(level).target(target).build();
        assert!(!logger.enabled(&meta(Level::Error, "pingora_core")));
        assert!(logger.enabled(&meta(Level::Warn, "meshgate::server")));
        assert!(!logger.enabled(&meta(Level::Info, "meshgate::server")));
    }

    #[test]
    fn init_twice_is_a_no_op() {
        // The only test installing the logger; "off" keeps the test output quiet.
        init(Some("off"));
        assert_eq!(log::max_level(), LevelFilter::Off);
        init(Some("trace"));
        assert_eq!(log::max_level(), LevelFilter::Off);
    }
}
