//! Calendar dates from Unix time, for the few places that print one (a test message's `Date:`
//! header, the stand-in token endpoint's timestamps), without a date crate.

/// `Thu, 26 Nov 2026 21:41:11 +0000` (RFC 5322 §3.3), in UTC.
pub fn rfc5322(unix_seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = clock(unix_seconds);
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {hh:02}:{mm:02}:{ss:02} +0000")
}

/// `2026-11-26 21:41:11Z`, the form Entra uses in error bodies.
pub fn utc_timestamp(unix_seconds: u64) -> String {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    let (hh, mm, ss) = clock(unix_seconds);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}Z")
}

/// `2026-11-26T21:41:11Z` (RFC 3339), for JSON.
pub fn rfc3339(unix_seconds: u64) -> String {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    let (hh, mm, ss) = clock(unix_seconds);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// A calendar day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Day {
    /// Parses `YYYY-MM-DD`, refusing dates that do not exist (2027-02-30).
    pub fn parse(text: &str) -> Option<Day> {
        let mut parts = text.trim().splitn(3, '-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: u32 = parts.next()?.parse().ok()?;
        let d: u32 = parts.next()?.parse().ok()?;
        let day = Day(days_from_civil(y, m, d));
        (civil_from_days(day.0) == (y, m, d)).then_some(day)
    }

    pub fn today() -> Day {
        Day((now_unix() / 86_400) as i64)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Seconds since the epoch, now (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn clock(unix_seconds: u64) -> (u64, u64, u64) {
    let t = unix_seconds % 86_400;
    (t / 3600, t / 60 % 60, t % 60)
}

/// (year, month, day) to days since 1970-01-01; the inverse of `civil_from_days`. Out-of-range
/// months or days give a day that does not convert back, which `Day::parse` detects.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m.clamp(1, 12)), i64::from(d.clamp(1, 31)));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): Howard Hinnant's
/// algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(1_795_729_271), "Thu, 26 Nov 2026 21:41:11 +0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(utc_timestamp(1_795_729_271), "2026-11-26 21:41:11Z");
        assert_eq!(rfc3339(1_795_729_271), "2026-11-26T21:41:11Z");
    }

    #[test]
    fn days_parse_and_print() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("2026-11-26"), Some(Day(1_795_729_271 / 86_400)));
        assert_eq!(
            Day::parse("2000-02-29").map(|d| d.to_string()).as_deref(),
            Some("2000-02-29")
        );
        for bad in [
            "2027-02-30",
            "2027-13-01",
            "2027-00-10",
            "27-5",
            "tomorrow",
            "2027-05-01x",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
    }
}
