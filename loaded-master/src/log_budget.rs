//! How many log lines a child may have relayed: a child that logs without end (broken, or
//! taken over) must not flood syslog nor keep the master busy. A token bucket per child:
//! a burst, then a steady rate; what is over is counted and reported once it flows again.

use std::time::Instant;

/// Lines a second a child may log, on average.
pub const LINES_PER_SECOND: f64 = 100.0;
/// Lines a child may log at once (a worker's start, a burst of health changes).
pub const BURST: f64 = 500.0;

#[derive(Clone, Debug)]
pub struct LogBudget {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Relay it; `dropped_before` lines were dropped since the last one relayed.
    Relay {
        dropped_before: u64,
    },
    Drop,
}

impl LogBudget {
    pub fn new(now: Instant) -> LogBudget {
        LogBudget {
            tokens: BURST,
            refilled: now,
            dropped: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * LINES_PER_SECOND).min(BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return Verdict::Drop;
        }
        self.tokens -= 1.0;
        Verdict::Relay {
            dropped_before: std::mem::take(&mut self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_drops_are_reported() {
        let start = Instant::now();
        let mut budget = LogBudget::new(start);
        for _ in 0..BURST as usize {
            assert_eq!(budget.take(start), Verdict::Relay { dropped_before: 0 });
        }
        assert_eq!(budget.take(start), Verdict::Drop);
        assert_eq!(budget.take(start), Verdict::Drop);
        // A tenth of a second later: room for ten lines, and the two dropped are told.
        let later = start + Duration::from_millis(100);
        assert_eq!(budget.take(later), Verdict::Relay { dropped_before: 2 });
        for _ in 0..9 {
            assert_eq!(budget.take(later), Verdict::Relay { dropped_before: 0 });
        }
        assert_eq!(budget.take(later), Verdict::Drop);
    }
}
