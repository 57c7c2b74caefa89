//! When a dead child is started again.
//!
//! Giving up after a few deaths turns any fault that repeats (a packet that crashes a
//! worker, a flapping link) into a full outage, so a child is always started again, at
//! once the first time, then after a delay that doubles with every death in a row, up to
//! a cap; the delay is logged. Only a child that never gets as far as reporting Ready,
//! several lives in a row, means the fault is in the setup itself (a jail that cannot be
//! entered, a binary that will not start): restarting cannot help, and the master stops.

use std::time::{Duration, Instant};

/// Deaths further apart than this do not count as "in a row".
pub const CALM_AFTER: Duration = Duration::from_secs(60);
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Lives in a row that ended before Ready that make a setup fault.
pub const SETUP_FAILURES: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Start it again after this delay (zero: at once).
    RestartAfter(Duration),
    /// It never got ready, SETUP_FAILURES lives in a row: stop.
    GiveUp { lives: u32 },
}

/// One child's recent deaths.
#[derive(Clone, Debug, Default)]
pub struct RestartPolicy {
    last_death: Option<Instant>,
    /// Deaths in a row (none further apart than CALM_AFTER).
    in_a_row: u32,
    /// Lives in a row that ended before the child reported Ready.
    never_ready: u32,
}

impl RestartPolicy {
    /// The child died at `now`; `was_ready`: it had reported Ready in that life.
    pub fn died(&mut self, now: Instant, was_ready: bool) -> Next {
        let calm = self
            .last_death
            .is_none_or(|last| now.saturating_duration_since(last) > CALM_AFTER);
        self.in_a_row = if calm { 1 } else { self.in_a_row + 1 };
        self.last_death = Some(now);
        self.never_ready = if was_ready { 0 } else { self.never_ready + 1 };
        if self.never_ready >= SETUP_FAILURES {
            return Next::GiveUp {
                lives: self.never_ready,
            };
        }
        Next::RestartAfter(delay_after(self.in_a_row))
    }
}

/// None after the first death, then 1 s, 2 s, 4 s ... up to MAX_DELAY.
fn delay_after(deaths_in_a_row: u32) -> Duration {
    if deaths_in_a_row <= 1 {
        return Duration::ZERO;
    }
    let doublings = (deaths_in_a_row - 2).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_death_restarts_at_once_and_repeated_ones_back_off_to_the_cap() {
        let mut policy = RestartPolicy::default();
        let start = Instant::now();
        let delays: Vec<Next> = (0..10)
            .map(|i| policy.died(start + Duration::from_secs(i), true))
            .collect();
        let secs = |s| Next::RestartAfter(Duration::from_secs(s));
        assert_eq!(
            delays,
            [
                secs(0),
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(32),
                secs(60),
                secs(60),
                secs(60)
            ]
        );
    }

    #[test]
    fn a_calm_minute_starts_the_count_again() {
        let mut policy = RestartPolicy::default();
        let start = Instant::now();
        policy.died(start, true);
        assert_eq!(
            policy.died(start + Duration::from_secs(1), true),
            Next::RestartAfter(FIRST_DELAY)
        );
        assert_eq!(
            policy.died(start + Duration::from_secs(200), true),
            Next::RestartAfter(Duration::ZERO)
        );
    }

    #[test]
    fn a_child_that_never_gets_ready_is_a_setup_fault() {
        let mut policy = RestartPolicy::default();
        let start = Instant::now();
        for i in 0..SETUP_FAILURES - 1 {
            assert!(matches!(
                policy.died(start + Duration::from_secs(u64::from(i) * 100), false),
                Next::RestartAfter(_)
            ));
        }
        assert_eq!(
            policy.died(start + Duration::from_secs(1000), false),
            Next::GiveUp {
                lives: SETUP_FAILURES
            }
        );
        // One good life in between resets it: the setup works.
        let mut policy = RestartPolicy::default();
        for i in 0..3 {
            policy.died(start + Duration::from_secs(i), false);
        }
        policy.died(start + Duration::from_secs(3), true);
        for i in 4..4 + u64::from(SETUP_FAILURES) - 1 {
            assert!(matches!(
                policy.died(start + Duration::from_secs(i), false),
                Next::RestartAfter(_)
            ));
        }
    }
}
