//! The contract's date rules: every instant task-svc accepts, stores and returns is one that
//! RFC 3339 can write, so every client reads back what it sent.
//!
//! RFC 3339 §5.6 has a four-digit year (`date-fullyear = 4DIGIT`), so only instants in years
//! 0000-9999 *in UTC* (the form responses use) can be written. The range is checked after the
//! offset is applied: `9999-12-31T23:30:00-01:00` is year 10000 in UTC and is refused.

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Timelike, Utc};

/// Years RFC 3339 can write (`date-fullyear = 4DIGIT`).
pub const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// Why a `due_date` was refused; the message is the client's 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error(
        "due_date must be an RFC 3339 date-time (2024-01-15T10:00:00Z, 2024-01-15T10:00:00+02:00) or a date YYYY-MM-DD (2024-01-15)"
    )]
    Syntax,
    #[error("due_date must lie within the years 0000 to 9999 once converted to UTC")]
    OutOfRange,
    #[error("due_date cannot be a leap second (23:59:60)")]
    LeapSecond,
}

/// True when `ts` can be written as RFC 3339 in UTC, i.e. its year is within [`YEARS`].
pub fn is_representable(ts: &DateTime<Utc>) -> bool {
    YEARS.contains(&ts.year())
}

/// A `due_date` as the contract defines it, in UTC, truncated to milliseconds (the precision
/// responses show, so what is stored is what is returned):
///
/// - an RFC 3339 §5.6 `date-time`: `T` (or `t`) between date and time, seconds required,
///   optional fraction, `Z`/`z` or a `±hh:mm` offset; no leap second (it would be stored as
///   the next second instead);
/// - or exactly `YYYY-MM-DD` (ten ASCII characters), taken as midnight UTC.
///
/// Either way the instant must lie within years 0000-9999 in UTC ([`DateError::OutOfRange`]).
pub fn parse_due_date(value: &str) -> Result<DateTime<Utc>, DateError> {
    let ts = if value.len() == 10 {
        date_only(value)?.and_hms_opt(0, 0, 0).ok_or(DateError::Syntax)?.and_utc()
    } else {
        date_time(value)?
    };
    if !is_representable(&ts) {
        return Err(DateError::OutOfRange);
    }
    Ok(ts.trunc_subsecs(3))
}

/// `YYYY-MM-DD` and nothing else: no sign, no single digits, no spaces.
fn date_only(value: &str) -> Result<NaiveDate, DateError> {
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<u32, DateError> {
        b[range].iter().try_fold(0u32, |n, &d| {
            if d.is_ascii_digit() { Ok(n * 10 + u32::from(d - b'0')) } else { Err(DateError::Syntax) }
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(DateError::Syntax);
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    // Four digits fit an i32.
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(DateError::Syntax)
}

fn date_time(value: &str) -> Result<DateTime<Utc>, DateError> {
    // chrono reads RFC 3339 but also takes a space for `T` and U+2212 as the offset's minus sign;
    // RFC 3339's grammar is ASCII with `T` (any case) there.
    if !value.is_ascii() || !matches!(value.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(DateError::Syntax);
    }
    let ts = DateTime::parse_from_rfc3339(value).map_err(|_| DateError::Syntax)?;
    // chrono keeps a leap second as nanoseconds beyond one second.
    if ts.nanosecond() >= 1_000_000_000 {
        return Err(DateError::LeapSecond);
    }
    Ok(ts.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(value: &str) -> String {
        platform::timestamp::format(&parse_due_date(value).unwrap())
    }

    #[test]
    fn the_range_is_checked_after_the_offset_is_applied() {
        assert_eq!(parse_due_date("9999-12-31T23:30:00-01:00"), Err(DateError::OutOfRange));
        assert_eq!(parse_due_date("0000-01-01T00:30:00+01:00"), Err(DateError::OutOfRange));
        assert_eq!(parse_due_date("9999-12-31T23:59:59.999999999-00:01"), Err(DateError::OutOfRange));
        assert_eq!(utc("9999-12-31T23:30:00+01:00"), "9999-12-31T22:30:00.000Z");
        assert_eq!(utc("0000-01-01T00:30:00-01:00"), "0000-01-01T01:30:00.000Z");
        assert_eq!(utc("9999-12-31T23:59:59.999999Z"), "9999-12-31T23:59:59.999Z");
        assert_eq!(utc("0000-01-01T00:00:00Z"), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_date_only_form_is_exactly_yyyy_mm_dd() {
        assert_eq!(utc("2024-01-15"), "2024-01-15T00:00:00.000Z");
        assert_eq!(utc("0000-01-01"), "0000-01-01T00:00:00.000Z");
        assert_eq!(utc("9999-12-31"), "9999-12-31T00:00:00.000Z");
        assert_eq!(utc("2024-02-29"), "2024-02-29T00:00:00.000Z");
        for bad in [
            "+2024-1-15",
            "+2024-01-15",
            "-2024-01-15",
            "2024-1-15",
            "2024-01-5",
            " 2024-1-15",
            "2024-01-1 ",
            " 2024-01-15",
            "2024-01-15 ",
            "02024-01-15",
            "2024/01/15",
            "2024-13-01",
            "2023-02-29",
            "2024-00-10",
            "2024-01-00",
            "２０２４-01-15",
            "20240115",
            "",
        ] {
            assert_eq!(parse_due_date(bad), Err(DateError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn date_times_follow_rfc3339_section_5_6() {
        assert_eq!(utc("2024-01-15t10:00:00.5z"), "2024-01-15T10:00:00.500Z");
        assert_eq!(utc("2024-01-15T10:00:00-00:00"), "2024-01-15T10:00:00.000Z");
        assert_eq!(utc("2024-01-15T10:00:00+23:59"), "2024-01-14T10:01:00.000Z");
        for bad in [
            "2024-01-15 10:00:00Z",
            "2024-01-15T10:00:00",
            "2024-01-15T10:00Z",
            "2024-01-15T10:00:00.Z",
            "2024-01-15T10:00:00\u{2212}01:00",
            "2024-01-15T10:00:00+24:00",
            "2024-01-15T10:00:00+0100",
            "2024-01-15T24:00:00Z",
            "+10000-01-01T00:30:00.000Z",
            "-0001-12-31T23:00:00.000Z",
            "2024-01-15T10:00:00Z ",
        ] {
            assert_eq!(parse_due_date(bad), Err(DateError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_due_date("2016-12-31T23:59:60Z"), Err(DateError::LeapSecond));
    }

    #[test]
    fn representable_years() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(is_representable(&at("0000-01-01T00:00:00Z")));
        assert!(is_representable(&at("9999-12-31T23:59:59.999Z")));
        assert!(!is_representable(&at("9999-12-31T23:30:00-01:00")));
        assert!(!is_representable(&at("0000-01-01T00:30:00+01:00")));
    }
}
