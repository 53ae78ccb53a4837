//! UTC civil time for `%START_TIME%`, without a date crate: the days-from-epoch
//! conversion (Howard Hinnant's `civil_from_days`) and the strftime subset Envoy's
//! `DateFormatter` accepts, compiled once and written without allocating.
//!
//! Envoy formats `%START_TIME(fmt)%` with absl's `FormatTime` in UTC, after replacing
//! its own `%s`, `%f` and `%1f`..`%9f`; absl adds `%E#S`, `%E*S`, `%E#f`, `%Ez` to C's
//! strftime. Without `(fmt)` the time is `%Y-%m-%dT%H:%M:%E3SZ`
//! (`2024-06-02T13:24:57.930Z`).

use super::digits::{push_i64, push_padded, push_u64};
use super::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// Envoy's `AccessLogDateTimeFormatter` default: UTC, milliseconds.
pub const ENVOY_DEFAULT: &str = "%Y-%m-%dT%H:%M:%E3SZ";

/// A time broken down in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Seconds since the epoch (negative before 1970).
    pub epoch: i64,
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0..1_000_000_000
    pub nanos: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// Day of the year, 1..=366.
    pub yday: u32,
}

impl Utc {
    pub fn of(t: SystemTime) -> Utc {
        let (secs, nanos) = epoch_parts(t);
        Utc::from_epoch(secs, nanos)
    }

    /// `secs` since the epoch plus `nanos` (0..1e9) of the next second.
    pub fn from_epoch(secs: i64, nanos: u32) -> Utc {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            epoch: secs,
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            nanos,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        }
    }
}

/// Seconds since the epoch, floored, and the nanoseconds past them: a time before 1970
/// has negative seconds and still a fraction in `0..1e9`, as strftime wants.
pub fn epoch_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Hinnant's
/// `civil_from_days`: 400-year eras of 146097 days, years starting in March so the
/// leap day is last).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One conversion of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text between conversions, as written in text lines and as escaped in JSON ones.
    Literal { raw: Box<[u8]>, json: Box<[u8]> },
    /// `%Y`
    Year,
    /// `%C`
    Century,
    /// `%y`
    Year2,
    /// `%m`
    Month,
    /// `%d`
    Day,
    /// `%e`: space-padded.
    DaySpace,
    /// `%H`
    Hour,
    /// `%I`
    Hour12,
    /// `%p`
    AmPm,
    /// `%M`
    Minute,
    /// `%S`
    Second,
    /// `%j`
    YearDay,
    /// `%a`
    WeekdayShort,
    /// `%A`
    WeekdayLong,
    /// `%u`: Monday = 1 .. Sunday = 7.
    WeekdayIso,
    /// `%w`: Sunday = 0.
    WeekdayNum,
    /// `%b`, `%h`
    MonthShort,
    /// `%B`
    MonthLong,
    /// `%s`: Envoy's epoch seconds.
    Epoch,
    /// `%f` (9), `%1f`..`%9f` (Envoy), `%E#f` (absl): that many fraction digits, truncated.
    Fraction(u8),
    /// `%E*f`: the fraction's digits without trailing zeros.
    FractionFull,
    /// `%E#S` (absl): seconds, then `.` and that many fraction digits (none for 0).
    SecondsFraction(u8),
    /// `%E*S` (absl): seconds, then the fraction without trailing zeros, if any.
    SecondsFull,
    /// `%z`: always `+0000`.
    Offset,
    /// `%Ez`: `+00:00`.
    OffsetColon,
    /// `%E*z`: `+00:00:00`.
    OffsetColonSeconds,
    /// `%Z`: `UTC`.
    Zone,
}

/// A compiled `%START_TIME(...)%` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    pieces: Vec<Piece>,
}

impl Default for TimeFormat {
    fn default() -> Self {
        TimeFormat::parse(ENVOY_DEFAULT).expect("Envoy's default time format compiles")
    }
}

impl TimeFormat {
    /// Compiles a strftime format; an empty one is Envoy's default. An unknown or
    /// unsupported conversion is an error naming it, as is `%n`: Envoy refuses newlines
    /// in time formats (a log line must stay one line).
    pub fn parse(format: &str) -> Result<TimeFormat, String> {
        if format.is_empty() {
            return Ok(TimeFormat::default());
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = format.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let Some((_, spec)) = chars.next() else {
                return Err(format!("time format {format:?} ends in a lone %"));
            };
            let mut push = |p: &[Piece], lit: &mut String| {
                flush(lit, &mut pieces);
                pieces.extend_from_slice(p);
            };
            use Piece::*;
            match spec {
                '%' => lit.push('%'),
                't' => lit.push('\t'),
                'n' => {
                    return Err(format!(
                        "time format {format:?} has a newline (%n); a log line is one line"
                    ))
                }
                'Y' => push(&[Year], &mut lit),
                'C' => push(&[Century], &mut lit),
                'y' => push(&[Year2], &mut lit),
                'm' => push(&[Month], &mut lit),
                'd' => push(&[Day], &mut lit),
                'e' => push(&[DaySpace], &mut lit),
                'H' => push(&[Hour], &mut lit),
                'I' => push(&[Hour12], &mut lit),
                'p' => push(&[AmPm], &mut lit),
                'M' => push(&[Minute], &mut lit),
                'S' => push(&[Second], &mut lit),
                'j' => push(&[YearDay], &mut lit),
                'a' => push(&[WeekdayShort], &mut lit),
                'A' => push(&[WeekdayLong], &mut lit),
                'u' => push(&[WeekdayIso], &mut lit),
                'w' => push(&[WeekdayNum], &mut lit),
                'b' | 'h' => push(&[MonthShort], &mut lit),
                'B' => push(&[MonthLong], &mut lit),
                's' => push(&[Epoch], &mut lit),
                'f' => push(&[Fraction(9)], &mut lit),
                'z' => push(&[Offset], &mut lit),
                'Z' => push(&[Zone], &mut lit),
                // The composites, in the C locale.
                'T' | 'X' => push(
                    &[Hour, lit_piece(":"), Minute, lit_piece(":"), Second],
                    &mut lit,
                ),
                'R' => push(&[Hour, lit_piece(":"), Minute], &mut lit),
                'F' => push(
                    &[Year, lit_piece("-"), Month, lit_piece("-"), Day],
                    &mut lit,
                ),
                'D' | 'x' => push(
                    &[Month, lit_piece("/"), Day, lit_piece("/"), Year2],
                    &mut lit,
                ),
                'r' => push(
                    &[
                        Hour12,
                        lit_piece(":"),
                        Minute,
                        lit_piece(":"),
                        Second,
                        lit_piece(" "),
                        AmPm,
                    ],
                    &mut lit,
                ),
                'c' => push(
                    &[
                        WeekdayShort,
                        lit_piece(" "),
                        MonthShort,
                        lit_piece(" "),
                        DaySpace,
                        lit_piece(" "),
                        Hour,
                        lit_piece(":"),
                        Minute,
                        lit_piece(":"),
                        Second,
                        lit_piece(" "),
                        Year,
                    ],
                    &mut lit,
                ),
                // Envoy's `%1f`..`%9f`.
                '1'..='9' if chars.peek().map(|&(_, c)| c) == Some('f') => {
                    chars.next();
                    push(&[Fraction(spec as u8 - b'0')], &mut lit);
                }
                // absl's extensions: `%E#S`, `%E*S`, `%E#f`, `%E*f`, `%Ez`, `%E*z`.
                'E' => {
                    let a = chars.next().map(|(_, c)| c);
                    let b = chars.peek().map(|&(_, c)| c);
                    let piece = match (a, b) {
                        (Some('z'), _) => OffsetColon,
                        (Some('*'), Some('S')) => SecondsFull,
                        (Some('*'), Some('f')) => FractionFull,
                        (Some('*'), Some('z')) => OffsetColonSeconds,
                        (Some(d @ '0'..='9'), Some('S')) => SecondsFraction(d as u8 - b'0'),
                        (Some(d @ '1'..='9'), Some('f')) => Fraction(d as u8 - b'0'),
                        _ => {
                            let end = chars.peek().map_or(format.len(), |&(i, _)| i);
                            return Err(unsupported(format, &format[at..end]));
                        }
                    };
                    if !matches!(piece, OffsetColon) {
                        chars.next();
                    }
                    push(&[piece], &mut lit);
                }
                _ => {
                    let end = chars.peek().map_or(format.len(), |&(i, _)| i);
                    return Err(unsupported(format, &format[at..end]));
                }
            }
        }
        flush(&mut lit, &mut pieces);
        Ok(TimeFormat { pieces })
    }

    /// Appends `t` formatted; in a JSON string (`json`) the literal text is escaped (the
    /// conversions never need it).
    pub fn write(&self, t: SystemTime, out: &mut Vec<u8>, json: bool) {
        let u = Utc::of(t);
        for p in &self.pieces {
            match p {
                Piece::Literal { raw, json: escaped } => {
                    out.extend_from_slice(if json { escaped } else { raw })
                }
                Piece::Year => push_i64(out, u.year),
                Piece::Century => push_padded(out, u.year.div_euclid(100).unsigned_abs(), 2),
                Piece::Year2 => push_padded(out, u.year.rem_euclid(100) as u64, 2),
                Piece::Month => push_padded(out, u.month.into(), 2),
                Piece::Day => push_padded(out, u.day.into(), 2),
                Piece::DaySpace => {
                    if u.day < 10 {
                        out.push(b' ');
                    }
                    push_u64(out, u.day.into());
                }
                Piece::Hour => push_padded(out, u.hour.into(), 2),
                Piece::Hour12 => push_padded(out, ((u.hour + 11) % 12 + 1).into(), 2),
                Piece::AmPm => out.extend_from_slice(if u.hour < 12 { b"AM" } else { b"PM" }),
                Piece::Minute => push_padded(out, u.minute.into(), 2),
                Piece::Second => push_padded(out, u.second.into(), 2),
                Piece::YearDay => push_padded(out, u.yday.into(), 3),
                Piece::WeekdayShort => {
                    out.extend_from_slice(&WEEKDAYS[u.weekday as usize].as_bytes()[..3])
                }
                Piece::WeekdayLong => {
                    out.extend_from_slice(WEEKDAYS[u.weekday as usize].as_bytes())
                }
                Piece::WeekdayIso => {
                    push_u64(out, if u.weekday == 0 { 7 } else { u.weekday.into() })
                }
                Piece::WeekdayNum => push_u64(out, u.weekday.into()),
                Piece::MonthShort => {
                    out.extend_from_slice(&MONTHS[u.month as usize - 1].as_bytes()[..3])
                }
                Piece::MonthLong => out.extend_from_slice(MONTHS[u.month as usize - 1].as_bytes()),
                Piece::Epoch => push_i64(out, u.epoch),
                Piece::Fraction(n) => push_fraction(out, u.nanos, *n),
                Piece::FractionFull => push_fraction(out, u.nanos, significant_digits(u.nanos)),
                Piece::SecondsFraction(n) => {
                    push_padded(out, u.second.into(), 2);
                    if *n > 0 {
                        out.push(b'.');
                        push_fraction(out, u.nanos, *n);
                    }
                }
                Piece::SecondsFull => {
                    push_padded(out, u.second.into(), 2);
                    let n = significant_digits(u.nanos);
                    if n > 0 {
                        out.push(b'.');
                        push_fraction(out, u.nanos, n);
                    }
                }
                Piece::Offset => out.extend_from_slice(b"+0000"),
                Piece::OffsetColon => out.extend_from_slice(b"+00:00"),
                Piece::OffsetColonSeconds => out.extend_from_slice(b"+00:00:00"),
                Piece::Zone => out.extend_from_slice(b"UTC"),
            }
        }
    }
}

fn lit_piece(s: &str) -> Piece {
    Piece::Literal {
        raw: s.as_bytes().into(),
        json: s.as_bytes().into(),
    }
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if lit.is_empty() {
        return;
    }
    let mut escaped = Vec::with_capacity(lit.len());
    json::escape_into(lit.as_bytes(), &mut escaped);
    pieces.push(Piece::Literal {
        raw: lit.as_bytes().into(),
        json: escaped.into(),
    });
    lit.clear();
}

fn unsupported(format: &str, spec: &str) -> String {
    format!("time format {format:?}: unsupported conversion {spec}")
}

/// Digits of a fraction of a second that are not trailing zeros (absl's `%E*S`).
fn significant_digits(nanos: u32) -> u8 {
    if nanos == 0 {
        return 0;
    }
    let mut n = 9;
    let mut v = nanos;
    while v % 10 == 0 {
        v /= 10;
        n -= 1;
    }
    n
}

/// The first `digits` (1..=9) digits of the 9-digit nanoseconds: truncated, as Envoy
/// and absl do, never rounded.
fn push_fraction(out: &mut Vec<u8>, nanos: u32, digits: u8) {
    let digits = u32::from(digits.clamp(1, 9));
    push_padded(
        out,
        u64::from(nanos / 10u32.pow(9 - digits)),
        digits as usize,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn fmt(f: &str, t: SystemTime) -> String {
        let mut out = Vec::new();
        TimeFormat::parse(f).unwrap().write(t, &mut out, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_epochs_give_known_dates() {
        assert_eq!(
            fmt(ENVOY_DEFAULT, at(1_717_334_697, 930_000_000)),
            "2024-06-02T13:24:57.930Z"
        );
        assert_eq!(
            fmt("", at(0, 0)),
            "1970-01-01T00:00:00.000Z",
            "empty: the default"
        );
        // The leap day of a leap year, and the day after.
        assert_eq!(fmt("%F %j %a", at(1_709_164_800, 0)), "2024-02-29 060 Thu");
        assert_eq!(fmt("%F %j", at(1_709_251_200, 0)), "2024-03-01 061");
        // 2000 is a leap year (divisible by 400); 2100 is not.
        assert_eq!(fmt("%F", at(951_782_400, 0)), "2000-02-29");
        let d = days_from_civil(2100, 2, 28) + 1;
        assert_eq!(civil_from_days(d), (2100, 3, 1));
        assert_eq!(
            fmt("%F %T %A %B", at(1_735_689_599, 0)),
            "2024-12-31 23:59:59 Tuesday December"
        );
        assert_eq!(Utc::of(at(1_735_689_599, 0)).yday, 366);
    }

    #[test]
    fn civil_conversion_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn before_the_epoch_floors() {
        let t = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(epoch_parts(t), (-1, 999_000_000));
        assert_eq!(fmt(ENVOY_DEFAULT, t), "1969-12-31T23:59:59.999Z");
        assert_eq!(fmt("%s", t), "-1");
    }

    #[test]
    fn envoy_and_absl_extensions() {
        let t = at(1_717_334_697, 930_120_000);
        assert_eq!(fmt("%s.%3f", t), "1717334697.930");
        assert_eq!(fmt("%f|%1f|%6f", t), "930120000|9|930120");
        assert_eq!(
            fmt("%E6S|%E0S|%E*S|%E*f|%E2f", t),
            "57.930120|57|57.93012|93012|93"
        );
        assert_eq!(fmt("%E*S", at(5, 0)), "05", "no fraction: no dot");
        assert_eq!(fmt("%Y/%m/%dT%H:%M:%S%z", t), "2024/06/02T13:24:57+0000");
        assert_eq!(fmt("%Ez %E*z %Z %%", t), "+00:00 +00:00:00 UTC %");
        assert_eq!(
            fmt("%e|%I %p|%u %w|%y %C|%D|%R|%b %h", at(1_717_334_697, 0)),
            " 2|01 PM|7 0|24 20|06/02/24|13:24|Jun Jun"
        );
        assert_eq!(fmt("%c", at(1_717_334_697, 0)), "Sun Jun  2 13:24:57 2024");
    }

    #[test]
    fn bad_formats_are_refused_by_name() {
        assert!(TimeFormat::parse("%Q").unwrap_err().contains("%Q"));
        assert!(TimeFormat::parse("%E5Q").unwrap_err().contains("%E5"));
        assert!(TimeFormat::parse("x%").unwrap_err().contains("lone %"));
        assert!(TimeFormat::parse("%H%n").unwrap_err().contains("newline"));
    }

    #[test]
    fn literals_are_escaped_for_json() {
        let f = TimeFormat::parse("\"%Y\\").unwrap();
        let mut raw = Vec::new();
        let mut js = Vec::new();
        f.write(at(0, 0), &mut raw, false);
        f.write(at(0, 0), &mut js, true);
        assert_eq!(raw, b"\"1970\\");
        assert_eq!(js, b"\\\"1970\\\\");
    }

    #[test]
    fn numbers_are_written_in_place() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_padded(&mut out, 7, 3);
        out.push(b' ');
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, b"0 18446744073709551615 007 -9223372036854775808");
    }
}
