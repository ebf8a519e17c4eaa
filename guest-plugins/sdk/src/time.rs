//! Calendar arithmetic on UTC timestamps in milliseconds, without a date library: plugins are small and the boundary
//! speaks milliseconds since the Unix epoch.

use std::fmt;

/// Milliseconds in a second.
pub const SECOND_MS: i64 = 1_000;
/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in a day (UTC has no daylight saving; leap seconds are not counted by Unix time).
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A calendar day (proleptic Gregorian, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

/// An ISO 8601 week: weeks start on Monday, and week 1 is the week with the year's first Thursday, so the first or
/// last days of a calendar year may belong to a week of the neighbouring ISO year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    /// The ISO week-numbering year.
    pub year: i32,
    /// The week, 1 to 53.
    pub week: u8,
}

impl Date {
    /// The date of a day, if it exists (`month` 1 to 12, `day` 1 to the month's length).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// The UTC date of an instant given in milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Date {
        Date::from_days(ms.div_euclid(DAY_MS))
    }

    /// The date `days` days after 1970-01-01 (negative: before).
    pub fn from_days(days: i64) -> Date {
        // Howard Hinnant's civil_from_days: exact for the whole proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year: year as i32,
            month: month as u8,
            day: day as u8,
        }
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Milliseconds since the Unix epoch at the start (00:00 UTC) of the day.
    pub fn start_ms(self) -> i64 {
        self.days_since_epoch().saturating_mul(DAY_MS)
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        u32::from(self.month)
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u32 {
        u32::from(self.day)
    }

    /// The ISO weekday: 1 for Monday to 7 for Sunday.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (4).
        ((self.days_since_epoch() + 3).rem_euclid(7) + 1) as u32
    }

    /// The ISO 8601 week the day belongs to.
    pub fn iso_week(self) -> IsoWeek {
        let days = self.days_since_epoch();
        // A week belongs to the ISO year of its Thursday.
        let thursday = days - i64::from(self.weekday()) + 4;
        let year = Date::from_days(thursday).year;
        let jan1 = Date { year, month: 1, day: 1 }.days_since_epoch();
        IsoWeek {
            year,
            week: ((thursday - jan1) / 7 + 1) as u8,
        }
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for IsoWeek {
    /// `YYYY-Www`, e.g. `2026-W02`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_dates_across_centuries() {
        for days in (-800_000..800_000).step_by(37) {
            let d = Date::from_days(days);
            assert_eq!(d.days_since_epoch(), days, "{d}");
            assert_eq!(Some(d), Date::new(d.year(), d.month(), d.day()));
        }
    }

    #[test]
    fn known_dates_have_known_weekdays_and_iso_weeks() {
        let d = |y, m, day| Date::new(y, m, day).unwrap();
        assert_eq!(Date::from_unix_ms(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_unix_ms(-1).to_string(), "1969-12-31");
        assert_eq!(d(1970, 1, 1).weekday(), 4);
        assert_eq!(d(2026, 1, 10).weekday(), 6);
        // 2026-01-01 is a Thursday: week 1 of 2026 starts on Monday 2025-12-29.
        assert_eq!(d(2025, 12, 29).iso_week().to_string(), "2026-W01");
        assert_eq!(d(2025, 12, 28).iso_week().to_string(), "2025-W52");
        assert_eq!(d(2026, 1, 10).iso_week().to_string(), "2026-W02");
        // 2021-01-03 (a Sunday) still belongs to 2020's week 53.
        assert_eq!(d(2021, 1, 3).iso_week().to_string(), "2020-W53");
        assert_eq!(d(2000, 2, 29).start_ms(), 951_782_400_000);
        assert_eq!(Date::new(2100, 2, 29), None);
    }
}
