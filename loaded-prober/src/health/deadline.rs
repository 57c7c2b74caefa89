//! Poll timeouts that count down to one deadline, so a round's phases cannot add up to
//! more than their budget however often poll wakes early.

use nix::poll::PollTimeout;
use std::time::Instant;

/// The time left until `deadline` as a poll timeout, or `None` once it has passed.
/// Rounded up: rounding down would spin on zero-length polls in the last millisecond.
pub fn poll_timeout(deadline: Instant) -> Option<PollTimeout> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    let millis = left.as_micros().div_ceil(1000);
    Some(PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn past_deadlines_have_no_timeout() {
        assert_eq!(poll_timeout(Instant::now()), None);
    }

    #[test]
    fn short_waits_round_up_to_a_millisecond() {
        let timeout = poll_timeout(Instant::now() + Duration::from_micros(400)).unwrap();
        assert_eq!(i32::from(timeout), 1);
        let timeout = poll_timeout(Instant::now() + Duration::from_secs(2)).unwrap();
        assert!((1990..=2000).contains(&i32::from(timeout)));
    }
}
