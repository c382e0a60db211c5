//! FHIR dates with their precision (FHIR R4 datatypes.html#dateTime, search.html#date).
//!
//! A date is a range, not an instant: `2020` means all of 2020, `2020-03-04T10:15:00Z` the second
//! it names. Search compares ranges, so each value is kept as `[start, end)` in milliseconds since
//! the Unix epoch (UTC).

use chrono::{
    DateTime, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};

/// A half-open range of time `[start, end)`, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
}

/// Open ends of a `Period` (FHIR R4 datatypes.html#Period: a missing end means "ongoing").
pub const MIN_MS: i64 = i64::MIN / 2;
pub const MAX_MS: i64 = i64::MAX / 2;

/// Parse a FHIR `date`, `dateTime` or `instant` into the range its precision covers.
///
/// A time without an offset is read as UTC: R4 requires an offset whenever a time is given, and
/// UTC is the least surprising reading of data that omits it.
pub fn parse_range(value: &str) -> Option<DateRange> {
    let value = value.trim();
    let (date_part, time_part) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let mut parts = date_part.split('-');
    let year: i32 = parse_digits(parts.next()?, 4)?;
    let month = parts.next().map(|m| parse_digits::<u32>(m, 2));
    let day = parts.next().map(|d| parse_digits::<u32>(d, 2));
    if parts.next().is_some() {
        return None;
    }
    match (month, day, time_part) {
        (None, None, None) => {
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let end = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
            Some(range_of_dates(start, end))
        }
        (Some(Some(m)), None, None) => {
            let start = NaiveDate::from_ymd_opt(year, m, 1)?;
            let end = start.checked_add_months(Months::new(1))?;
            Some(range_of_dates(start, end))
        }
        (Some(Some(m)), Some(Some(d)), None) => {
            let start = NaiveDate::from_ymd_opt(year, m, d)?;
            Some(range_of_dates(start, start.succ_opt()?))
        }
        (Some(Some(m)), Some(Some(d)), Some(t)) => {
            let date = NaiveDate::from_ymd_opt(year, m, d)?;
            parse_time_range(date, t)
        }
        _ => None,
    }
}

fn parse_digits<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn range_of_dates(start: NaiveDate, end: NaiveDate) -> DateRange {
    DateRange {
        start: start.and_time(NaiveTime::MIN).and_utc().timestamp_millis(),
        end: end.and_time(NaiveTime::MIN).and_utc().timestamp_millis(),
    }
}

fn parse_time_range(date: NaiveDate, t: &str) -> Option<DateRange> {
    // Split off the offset: `Z`, `+hh:mm` or `-hh:mm`.
    let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
        (c, FixedOffset::east_opt(0)?)
    } else if let Some(pos) = t.rfind(['+', '-']) {
        let (c, o) = t.split_at(pos);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (h, m) = o[1..].split_once(':')?;
        let secs = sign * (parse_digits::<i32>(h, 2)? * 3600 + parse_digits::<i32>(m, 2)? * 60);
        (c, FixedOffset::east_opt(secs)?)
    } else {
        (t, FixedOffset::east_opt(0)?)
    };
    let mut pieces = clock.split(':');
    let hour: u32 = parse_digits(pieces.next()?, 2)?;
    let minute: u32 = parse_digits(pieces.next()?, 2)?;
    let (second, fraction, precision) = match pieces.next() {
        None => (0, 0, Duration::minutes(1)),
        Some(s) => {
            let (whole, frac) = match s.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (s, None),
            };
            let second: u32 = parse_digits(whole, 2)?;
            match frac {
                None => (second, 0, Duration::seconds(1)),
                Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                    // Milliseconds are the finest precision we keep.
                    let ms: u32 = format!("{:0<3}", &f[..f.len().min(3)]).parse().ok()?;
                    (second, ms, Duration::milliseconds(1))
                }
                Some(_) => return None,
            }
        }
    };
    if pieces.next().is_some() {
        return None;
    }
    let time = NaiveTime::from_hms_milli_opt(hour, minute, second.min(59), fraction)?;
    let local = NaiveDateTime::new(date, time);
    let instant: DateTime<FixedOffset> = offset.from_local_datetime(&local).single()?;
    let start = instant.with_timezone(&Utc).timestamp_millis();
    Some(DateRange {
        start,
        end: start + precision.num_milliseconds(),
    })
}

/// Render milliseconds since the epoch as an RFC 3339 instant, e.g. for `meta.lastUpdated`.
pub fn format_instant(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn a_year_covers_the_whole_year() {
        let r = parse_range("2020").unwrap();
        assert_eq!(r.start, ms("2020-01-01T00:00:00Z"));
        assert_eq!(r.end, ms("2021-01-01T00:00:00Z"));
    }

    #[test]
    fn a_month_covers_the_month_including_leap_february() {
        let r = parse_range("2024-02").unwrap();
        assert_eq!(r.start, ms("2024-02-01T00:00:00Z"));
        assert_eq!(r.end, ms("2024-03-01T00:00:00Z"));
    }

    #[test]
    fn a_day_covers_the_day() {
        let r = parse_range("1957-12-31").unwrap();
        assert_eq!(r.end - r.start, 86_400_000);
        assert_eq!(r.end, ms("1958-01-01T00:00:00Z"));
    }

    #[test]
    fn a_date_time_with_offset_is_converted_to_utc_with_second_precision() {
        let r = parse_range("2019-05-31T12:00:00+02:00").unwrap();
        assert_eq!(r.start, ms("2019-05-31T10:00:00Z"));
        assert_eq!(r.end - r.start, 1000);
        let r = parse_range("2019-05-31T12:00:00-05:00").unwrap();
        assert_eq!(r.start, ms("2019-05-31T17:00:00Z"));
    }

    #[test]
    fn an_instant_with_fraction_has_millisecond_precision() {
        let r = parse_range("2018-11-12T03:35:20.715Z").unwrap();
        assert_eq!(r.start, ms("2018-11-12T03:35:20.715Z"));
        assert_eq!(r.end - r.start, 1);
    }

    #[test]
    fn garbage_is_not_a_date() {
        for bad in [
            "",
            "20",
            "2020-13",
            "2020-02-30",
            "2020-1-1",
            "yesterday",
            "2020-01-01T25:00:00Z",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_format_as_rfc3339_with_milliseconds() {
        assert_eq!(
            format_instant(ms("2026-12-03T19:40:00.123Z")),
            "2026-12-03T19:40:00.123Z"
        );
    }
}
