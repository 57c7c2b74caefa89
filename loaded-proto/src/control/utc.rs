//! Unix seconds as a UTC date and time for people, without a date library: the status
//! listing needs nothing more.

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = date_of_day(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The Gregorian date `days` after 1970-01-01, counted in 400-year cycles of 146097 days
/// whose years start on 1 March, so that the leap day ends a year.
fn date_of_day(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719468 counted from 0000-03-01.
    let days = days + 719_468;
    let cycle = days / 146_097;
    let day_of_cycle = days % 146_097;
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March, whose lengths repeat 31, 30, 31, 30, 31 every five months.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = cycle * 400 + year_of_cycle + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_agree_with_gnu_date() {
        // Expected values from `date -u -d @SECONDS '+%F %T'`.
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_765_000_000, "2025-12-06 05:46:40"),
            (4_102_444_799, "2099-12-31 23:59:59"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(format_utc(seconds), format!("{expected} UTC"));
        }
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let mut previous = date_of_day(0);
        for day in 1..200_000 {
            let (year, month, date) = date_of_day(day);
            let (py, pm, pd) = previous;
            let next_day = (year, month, date) == (py, pm, pd + 1);
            let next_month = (year, month, date) == (py, pm + 1, 1);
            let next_year = (year, month, date) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} then {year}-{month}-{date}"
            );
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            if month == 2 && date == 29 {
                assert!(leap, "{year}-02-29");
            }
            previous = (year, month, date);
        }
    }
}
