//! Durations of the health checks: whole seconds as the original wrote them (`30`), and,
//! for the short cycles fast failover wants, decimal seconds (`0.5`) or milliseconds
//! (`500ms`). One millisecond is the finest step: the prober's polls count in milliseconds,
//! so a finer value would be a promise it cannot keep.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A value that is not a duration in the key's range. Says what would have been accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    pub key: String,
    pub text: String,
    pub range: RangeInclusive<Duration>,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be a duration from {} to {}: seconds (2, 0.5, 2s) or milliseconds (500ms), not '{}'",
            self.key,
            Human(*self.range.start()),
            Human(*self.range.end()),
            self.text
        )
    }
}

impl std::error::Error for DurationError {}

/// `2`, `2s`, `0.5`, `0.25s`, `1.125`, `500ms`. No sign, no exponent, at most three
/// decimals, so `check_cycle=-1` or `1e3` is refused rather than guessed at.
pub fn parse(
    key: &str,
    text: &str,
    range: RangeInclusive<Duration>,
) -> Result<Duration, DurationError> {
    let refuse = || DurationError {
        key: key.to_owned(),
        text: text.to_owned(),
        range: range.clone(),
    };
    let value = match text.strip_suffix("ms") {
        Some(millis) => whole(millis).map(Duration::from_millis),
        None => seconds(text.strip_suffix('s').unwrap_or(text)),
    }
    .ok_or_else(refuse)?;
    if !range.contains(&value) {
        return Err(refuse());
    }
    Ok(value)
}

/// ASCII digits only; `None` for anything else, including overflow.
fn whole(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `N` or `N.F` with one to three decimals.
fn seconds(text: &str) -> Option<Duration> {
    let (secs, fraction) = match text.split_once('.') {
        Some((secs, fraction)) => (secs, Some(fraction)),
        None => (text, None),
    };
    let secs = whole(secs)?;
    let millis = match fraction {
        None => 0,
        Some(fraction) if (1..=3).contains(&fraction.len()) => {
            let padded = format!("{fraction:0<3}");
            whole(&padded)?
        }
        Some(_) => return None,
    };
    secs.checked_mul(1000)?
        .checked_add(millis)
        .map(Duration::from_millis)
}

/// The form a config file takes: `30` for whole seconds, `500ms` otherwise, so that
/// `loaded-master -t` prints what parses back to the same value.
pub struct InConfig(pub Duration);

impl fmt::Display for InConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

/// The form a message takes: `2 s`, `500 ms`.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: RangeInclusive<Duration> = Duration::from_millis(10)..=Duration::from_secs(3600);

    fn ok(text: &str) -> Duration {
        parse("check_timeout", text, RANGE).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn seconds_decimals_and_milliseconds() {
        assert_eq!(ok("2"), Duration::from_secs(2));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("0.5s"), Duration::from_millis(500));
        assert_eq!(ok("1.25"), Duration::from_millis(1250));
        assert_eq!(ok("0.010"), Duration::from_millis(10));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("3600"), Duration::from_secs(3600));
        assert_eq!(ok("1500ms"), Duration::from_millis(1500));
    }

    #[test]
    fn refused_values_say_what_is_accepted() {
        let error = parse("check_timeout", "fast", RANGE).unwrap_err();
        assert_eq!(
            error.to_string(),
            "check_timeout must be a duration from 10 ms to 3600 s: seconds (2, 0.5, 2s) \
             or milliseconds (500ms), not 'fast'"
        );
        for bad in [
            "",
            "-1",
            "+1",
            ".5",
            "1.",
            "0.0001",
            "1.5ms",
            "1e3",
            "5m",
            "1 s",
            "500 ms",
            "ms",
            "s",
            "0",
            "0.009",
            "9ms",
            "3601",
            "3600.001",
            "99999999999999999999",
        ] {
            assert!(parse("check_timeout", bad, RANGE).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_config_form_parses_back() {
        for text in ["2", "0.5", "500ms", "1.001", "3600", "0.010", "2s"] {
            let value = ok(text);
            assert_eq!(ok(&InConfig(value).to_string()), value, "{text}");
        }
        assert_eq!(InConfig(Duration::from_millis(500)).to_string(), "500ms");
        assert_eq!(InConfig(Duration::from_secs(30)).to_string(), "30");
        assert_eq!(Human(Duration::from_millis(1500)).to_string(), "1500 ms");
        assert_eq!(Human(Duration::from_secs(2)).to_string(), "2 s");
    }
}
