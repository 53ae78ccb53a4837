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
use std::sync::atomic::{AtomicU64, Ordering};
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
///
/// Most of a line's time changes once a second: that part is formatted once per second
/// per thread and copied from then on ([`CACHE`]); only the fraction of the second is
/// written for each line.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    pieces: Vec<Piece>,
    /// The pieces split into runs that depend on the second only and pieces that
    /// depend on the fraction.
    steps: Box<[Step]>,
    /// The pieces of each [`Step::Second`], in order.
    runs: Runs,
    /// This format's key in the per-thread cache: unique per compiled format (a clone,
    /// the same format, shares it).
    id: u64,
}

impl PartialEq for TimeFormat {
    fn eq(&self, other: &TimeFormat) -> bool {
        self.pieces == other.pieces
    }
}

impl Eq for TimeFormat {}

/// A step of writing a time.
#[derive(Debug, Clone)]
enum Step {
    /// Pieces that depend on the second only: copied from the cache.
    Second,
    /// `%f`, `%3f`, ...: that many digits of the fraction.
    Fraction(u8),
    /// `%E*f`: the fraction without trailing zeros.
    FractionFull,
    /// The end of `%E*S`: `.` and the fraction without trailing zeros, if it has any.
    DotFractionFull,
}

/// The pieces of each [`Step::Second`] of a format, in order.
type Runs = Box<[Box<[Piece]>]>;

/// Splits pieces into [`Step`]s, and the pieces that depend on the second only into one
/// run per [`Step::Second`].
fn plan(pieces: &[Piece]) -> (Box<[Step]>, Runs) {
    let mut steps = Vec::new();
    let mut runs: Vec<Vec<Piece>> = Vec::new();
    let second = |p: Piece, steps: &mut Vec<Step>, runs: &mut Vec<Vec<Piece>>| {
        if !matches!(steps.last(), Some(Step::Second)) {
            steps.push(Step::Second);
            runs.push(Vec::new());
        }
        runs.last_mut().expect("a run was pushed").push(p);
    };
    for p in pieces {
        match p {
            Piece::Fraction(n) => steps.push(Step::Fraction(*n)),
            Piece::FractionFull => steps.push(Step::FractionFull),
            Piece::SecondsFraction(0) => second(Piece::Second, &mut steps, &mut runs),
            Piece::SecondsFraction(n) => {
                second(Piece::Second, &mut steps, &mut runs);
                second(lit_piece("."), &mut steps, &mut runs);
                steps.push(Step::Fraction(*n));
            }
            Piece::SecondsFull => {
                second(Piece::Second, &mut steps, &mut runs);
                steps.push(Step::DotFractionFull);
            }
            p => second(p.clone(), &mut steps, &mut runs),
        }
    }
    (
        steps.into(),
        runs.into_iter().map(Vec::into_boxed_slice).collect(),
    )
}

/// The formats' second-dependent parts as last written on this thread, one entry per
/// format and encoding: `text` holds the runs of [`Step::Second`] end to end, `ends`
/// where each stops.
struct Cached {
    id: u64,
    json: bool,
    secs: i64,
    text: Vec<u8>,
    ends: Vec<usize>,
}

/// Entries kept per thread: a config holds a format or two; a reload's new ones push
/// out the oldest.
const CACHED_FORMATS: usize = 8;

thread_local! {
    static CACHE: std::cell::RefCell<Vec<Cached>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
        let (steps, runs) = plan(&pieces);
        Ok(TimeFormat {
            pieces,
            steps,
            runs,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Appends `t` formatted; in a JSON string (`json`) the literal text is escaped (the
    /// conversions never need it).
    pub fn write(&self, t: SystemTime, out: &mut Vec<u8>, json: bool) {
        let (secs, nanos) = epoch_parts(t);
        let cached = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return false;
            };
            let at = match cache.iter().position(|c| c.id == self.id && c.json == json) {
                Some(at) => at,
                None => {
                    if cache.len() == CACHED_FORMATS {
                        cache.remove(0);
                    }
                    cache.push(Cached {
                        id: self.id,
                        json,
                        // Not a second: rendered below.
                        secs: i64::MIN,
                        text: Vec::new(),
                        ends: Vec::new(),
                    });
                    cache.len() - 1
                }
            };
            let c = &mut cache[at];
            if c.secs != secs || secs == i64::MIN {
                self.render_seconds(secs, json, c);
            }
            let mut start = 0;
            let mut ends = c.ends.iter();
            for step in self.steps.iter() {
                match step {
                    Step::Second => {
                        let end = *ends.next().expect("one end per run");
                        out.extend_from_slice(&c.text[start..end]);
                        start = end;
                    }
                    step => write_fraction(step, nanos, out),
                }
            }
            true
        });
        if cached != Ok(true) {
            self.write_uncached(secs, nanos, out, json);
        }
    }

    /// Renders the runs of [`Step::Second`] for `secs` into `c`.
    fn render_seconds(&self, secs: i64, json: bool, c: &mut Cached) {
        let u = Utc::from_epoch(secs, 0);
        c.text.clear();
        c.ends.clear();
        for run in self.runs.iter() {
            for p in run.iter() {
                write_piece(p, &u, &mut c.text, json);
            }
            c.ends.push(c.text.len());
        }
        c.secs = secs;
    }

    /// Writes every piece from the broken-down time (no cache).
    fn write_uncached(&self, secs: i64, nanos: u32, out: &mut Vec<u8>, json: bool) {
        let u = Utc::from_epoch(secs, nanos);
        for p in &self.pieces {
            write_piece(p, &u, out, json);
        }
    }
}

/// Writes a [`Step`] that depends on the fraction of the second.
fn write_fraction(step: &Step, nanos: u32, out: &mut Vec<u8>) {
    match step {
        Step::Second => {}
        Step::Fraction(n) => push_fraction(out, nanos, *n),
        Step::FractionFull => push_fraction(out, nanos, significant_digits(nanos)),
        Step::DotFractionFull => {
            let n = significant_digits(nanos);
            if n > 0 {
                out.push(b'.');
                push_fraction(out, nanos, n);
            }
        }
    }
}

/// Writes one piece of `u`.
fn write_piece(p: &Piece, u: &Utc, out: &mut Vec<u8>, json: bool) {
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
        Piece::WeekdayShort => out.extend_from_slice(&WEEKDAYS[u.weekday as usize].as_bytes()[..3]),
        Piece::WeekdayLong => out.extend_from_slice(WEEKDAYS[u.weekday as usize].as_bytes()),
        Piece::WeekdayIso => push_u64(out, if u.weekday == 0 { 7 } else { u.weekday.into() }),
        Piece::WeekdayNum => push_u64(out, u.weekday.into()),
        Piece::MonthShort => out.extend_from_slice(&MONTHS[u.month as usize - 1].as_bytes()[..3]),
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

    const ALL: &str = "%Y %C %y %m %d %e %H %I %p %M %S %j %a %A %u %w %b %h %B %s|%f %3f \
        %E*f %E6S %E0S %E*S %E2f|%z %Ez %E*z %Z %T %R %F %D %r %c %% %t\"\\";

    fn both(f: &TimeFormat, t: SystemTime) -> (String, String) {
        let (mut raw, mut js) = (b"<".to_vec(), b"<".to_vec());
        f.write(t, &mut raw, false);
        f.write(t, &mut js, true);
        (
            String::from_utf8(raw).unwrap(),
            String::from_utf8(js).unwrap(),
        )
    }

    #[test]
    fn every_conversion_exactly() {
        let f = TimeFormat::parse(ALL).unwrap();
        assert_eq!(
            both(&f, at(1_717_334_697, 930_120_000)),
            (
                "<2024 20 24 06 02  2 13 01 PM 24 57 154 Sun Sunday 7 0 Jun Jun June 1717334697|\
                 930120000 930 93012 57.930120 57 57.93012 93|+0000 +00:00 +00:00:00 UTC \
                 13:24:57 13:24 2024-06-02 06/02/24 01:24:57 PM Sun Jun  2 13:24:57 2024 % \t\"\\"
                    .to_owned(),
                "<2024 20 24 06 02  2 13 01 PM 24 57 154 Sun Sunday 7 0 Jun Jun June 1717334697|\
                 930120000 930 93012 57.930120 57 57.93012 93|+0000 +00:00 +00:00:00 UTC \
                 13:24:57 13:24 2024-06-02 06/02/24 01:24:57 PM Sun Jun  2 13:24:57 2024 % \\t\\\"\\\\"
                    .to_owned()
            )
        );
        assert_eq!(
            both(&f, at(946_684_800, 0)).0,
            "<2000 20 00 01 01  1 00 12 AM 00 00 001 Sat Saturday 6 6 Jan Jan January 946684800|\
             000000000 000 0 00.000000 00 00 00|+0000 +00:00 +00:00:00 UTC \
             00:00:00 00:00 2000-01-01 01/01/00 12:00:00 AM Sat Jan  1 00:00:00 2000 % \t\"\\"
        );
        assert_eq!(
            both(&f, at(1_700_000_000 + 12 * 3600, 5)).0,
            "<2023 20 23 11 15 15 10 10 AM 13 20 319 Wed Wednesday 3 3 Nov Nov November 1700043200|\
             000000005 000 000000005 20.000000 20 20.000000005 00|+0000 +00:00 +00:00:00 UTC \
             10:13:20 10:13 2023-11-15 11/15/23 10:13:20 AM Wed Nov 15 10:13:20 2023 % \t\"\\"
        );
    }

    /// One format written for a run of times, as a thread logging requests does: the
    /// same second again, the next one, an earlier one, the other encoding, another
    /// format in between, days apart, before the epoch.
    #[test]
    fn a_run_of_times_each_exact() {
        let d = TimeFormat::default();
        let f = TimeFormat::parse("%s %H:%M:%S.%6f %E*S|%F").unwrap();
        let g = TimeFormat::parse("%a %d \"%b\" %Y %T").unwrap();
        let base = 1_717_334_697;
        let steps: &[(i64, u32, &str, &str, &str)] = &[
            (
                0,
                930_120_000,
                "2024-06-02T13:24:57.930Z",
                "1717334697 13:24:57.930120 57.93012|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:57",
            ),
            (
                0,
                930_999_999,
                "2024-06-02T13:24:57.930Z",
                "1717334697 13:24:57.930999 57.930999999|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:57",
            ),
            (
                0,
                999_999_999,
                "2024-06-02T13:24:57.999Z",
                "1717334697 13:24:57.999999 57.999999999|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:57",
            ),
            (
                1,
                0,
                "2024-06-02T13:24:58.000Z",
                "1717334698 13:24:58.000000 58|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:58",
            ),
            (
                1,
                1_000_000,
                "2024-06-02T13:24:58.001Z",
                "1717334698 13:24:58.001000 58.001|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:58",
            ),
            (
                0,
                5,
                "2024-06-02T13:24:57.000Z",
                "1717334697 13:24:57.000000 57.000000005|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:57",
            ),
            (
                62,
                0,
                "2024-06-02T13:25:59.000Z",
                "1717334759 13:25:59.000000 59|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:25:59",
            ),
            (
                38_102,
                500_000_000,
                "2024-06-02T23:59:59.500Z",
                "1717372799 23:59:59.500000 59.5|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 23:59:59",
            ),
            (
                38_103,
                0,
                "2024-06-03T00:00:00.000Z",
                "1717372800 00:00:00.000000 00|2024-06-03",
                "Mon 03 \\\"Jun\\\" 2024 00:00:00",
            ),
            (
                86_400 * 30,
                930_120_000,
                "2024-07-02T13:24:57.930Z",
                "1719926697 13:24:57.930120 57.93012|2024-07-02",
                "Tue 02 \\\"Jul\\\" 2024 13:24:57",
            ),
            (
                -base,
                0,
                "1970-01-01T00:00:00.000Z",
                "0 00:00:00.000000 00|1970-01-01",
                "Thu 01 \\\"Jan\\\" 1970 00:00:00",
            ),
            (
                -base - 1,
                250_000_000,
                "1969-12-31T23:59:59.250Z",
                "-1 23:59:59.250000 59.25|1969-12-31",
                "Wed 31 \\\"Dec\\\" 1969 23:59:59",
            ),
            (
                0,
                930_120_000,
                "2024-06-02T13:24:57.930Z",
                "1717334697 13:24:57.930120 57.93012|2024-06-02",
                "Sun 02 \\\"Jun\\\" 2024 13:24:57",
            ),
        ];
        for round in 0..3 {
            for &(ds, nanos, dw, fw, gw) in steps {
                let secs = base + ds;
                let t = if secs >= 0 {
                    UNIX_EPOCH + Duration::new(secs as u64, nanos)
                } else {
                    UNIX_EPOCH - Duration::new((-secs) as u64, 0) + Duration::new(0, nanos)
                };
                let json = round == 1;
                let w = |f: &TimeFormat| {
                    let mut out = Vec::new();
                    f.write(t, &mut out, json);
                    String::from_utf8(out).unwrap()
                };
                assert_eq!(w(&d), dw, "{secs}.{nanos}");
                assert_eq!(w(&f), fw, "{secs}.{nanos}");
                let gw = if json {
                    gw.to_owned()
                } else {
                    gw.replace("\\\"", "\"")
                };
                assert_eq!(w(&g), gw, "{secs}.{nanos}");
                // A clone (a shared format) writes the same.
                assert_eq!(w(&g.clone()), gw);
                assert_eq!(w(&TimeFormat::parse("%a %d \"%b\" %Y %T").unwrap()), gw);
            }
        }
    }

    #[test]
    fn formats_written_from_many_threads() {
        let f = std::sync::Arc::new(TimeFormat::parse(ALL).unwrap());
        let want: Vec<(String, String)> = (0..200u64)
            .map(|i| {
                both(
                    &f,
                    at(
                        1_717_334_697 + i / 3 * 7919,
                        (i * 37_000_001 % 1_000_000_000) as u32,
                    ),
                )
            })
            .collect();
        let want = std::sync::Arc::new(want);
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let (f, want) = (f.clone(), want.clone());
                std::thread::spawn(move || {
                    for round in 0..5u64 {
                        for i in 0..200u64 {
                            let i = (i + k * 50 + round) % 200;
                            let t = at(
                                1_717_334_697 + i / 3 * 7919,
                                (i * 37_000_001 % 1_000_000_000) as u32,
                            );
                            assert_eq!(both(&f, t), want[i as usize]);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
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
