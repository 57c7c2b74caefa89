//! The table's notion of time: whole seconds of CLOCK_MONOTONIC_COARSE.
//!
//! That clock is the same for every process on the host (in one time namespace), so a
//! last-used time written by one worker means the same to the others; it never jumps with
//! the wall clock, and reading it is a vDSO load, cheap enough for every packet. A u32 of
//! seconds lasts 136 years of uptime.

use nix::time::{clock_gettime, ClockId};

pub fn monotonic_seconds() -> u32 {
    // Cannot fail on Linux since 2.6.32; 0 would only make every mapping look old.
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|now| now.tv_sec() as u32)
        .unwrap_or_default()
}

/// Whether a mapping last used at `last_used` has been idle for `timeout` seconds. A time
/// ahead of `now` (another worker read the clock a moment later) is fresh, not ancient.
pub fn is_idle(last_used: u32, now: u32, timeout: u32) -> bool {
    now.saturating_sub(last_used) >= timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward() {
        let before = monotonic_seconds();
        assert!(before > 0);
        assert!(monotonic_seconds() >= before);
    }

    #[test]
    fn idleness_tolerates_a_later_clock_reading() {
        assert!(!is_idle(100, 99, 300));
        assert!(!is_idle(100, 399, 300));
        assert!(is_idle(100, 400, 300));
    }
}
