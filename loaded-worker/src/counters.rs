//! What a worker counts, and the periodic summary it logs.
//!
//! Drops are reported at most once per interval, as totals per reason, so a flood of bad
//! packets costs one log line a minute rather than one per packet.

use crate::datapath::nat::{DropReason, Outcome};
use std::time::{Duration, Instant};

pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub rewritten: u64,
    pub not_ours: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub verdict_errors: u64,
    /// Times the kernel could not deliver to our socket (receive buffer full).
    pub receive_overruns: u64,
}

impl Totals {
    fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

pub struct Counters {
    pub totals: Totals,
    reported: Totals,
    last_report: Instant,
    no_backend_reported: bool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            totals: Totals::default(),
            reported: Totals::default(),
            last_report: Instant::now(),
            no_backend_reported: false,
        }
    }
}

fn reason_index(reason: DropReason) -> usize {
    DropReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

impl Counters {
    pub fn count(&mut self, outcome: &Outcome) {
        self.totals.packets += 1;
        match outcome {
            Outcome::Rewritten => self.totals.rewritten += 1,
            Outcome::NotOurs => self.totals.not_ours += 1,
            Outcome::Drop(reason) => {
                self.totals.dropped[reason_index(*reason)] += 1;
                if *reason == DropReason::NoBackend && !self.no_backend_reported {
                    // Once per outage, at once: the operator needs to know now.
                    self.no_backend_reported = true;
                    log::error!("no live server for a new client: dropping new flows");
                }
            }
        }
        if *outcome == Outcome::Rewritten {
            self.no_backend_reported = false;
        }
    }

    /// Logs the drops since the last report, if any, once per REPORT_INTERVAL.
    pub fn report_if_due(&mut self, now: Instant) {
        if now.duration_since(self.last_report) < REPORT_INTERVAL {
            return;
        }
        self.last_report = now;
        if self.totals.dropped_total() != self.reported.dropped_total()
            || self.totals.verdict_errors != self.reported.verdict_errors
            || self.totals.receive_overruns != self.reported.receive_overruns
        {
            log::warn!("{}", self.describe_since(&self.reported.clone()));
        }
        self.reported = self.totals.clone();
    }

    pub fn describe_since(&self, before: &Totals) -> String {
        let mut parts = vec![format!(
            "{} packets, {} rewritten, {} passed unchanged",
            self.totals.packets - before.packets,
            self.totals.rewritten - before.rewritten,
            self.totals.not_ours - before.not_ours
        )];
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let n = self.totals.dropped[i] - before.dropped[i];
            if n > 0 {
                parts.push(format!("{n} dropped {}", reason.name()));
            }
        }
        let errors = self.totals.verdict_errors - before.verdict_errors;
        if errors > 0 {
            parts.push(format!("{errors} verdict errors"));
        }
        let overruns = self.totals.receive_overruns - before.receive_overruns;
        if overruns > 0 {
            parts.push(format!("{overruns} receive buffer overruns"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_per_reason_and_described() {
        let mut counters = Counters::default();
        counters.count(&Outcome::Rewritten);
        counters.count(&Outcome::Drop(DropReason::Malformed));
        counters.count(&Outcome::Drop(DropReason::Malformed));
        counters.count(&Outcome::NotOurs);
        let text = counters.describe_since(&Totals::default());
        assert_eq!(
            text,
            "4 packets, 1 rewritten, 1 passed unchanged, 2 dropped malformed"
        );
    }
}
