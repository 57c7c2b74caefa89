//! What a worker counts, and the periodic summary it logs.
//!
//! Drops are reported at most once per interval, as totals per reason, so a flood of bad
//! packets costs one log line a minute rather than one per packet.

use crate::datapath::nat::{DropReason, Outcome};
use crate::nfqueue::{BurstSummary, QueuedPacket};
use std::time::{Duration, Instant};

pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub rewritten: u64,
    pub not_ours: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    /// Verdicts the kernel refused (a packet it had dropped already).
    pub verdict_errors: u64,
    /// Times the kernel could not deliver to our socket (receive buffer full).
    pub receive_overruns: u64,
    /// Datagrams from the kernel that were not readable netlink, or held a partial copy of
    /// a packet (dropped).
    pub unreadable: u64,
    /// Packets that arrived whole as several segments' worth (GSO).
    pub gso_packets: u64,
    /// Rewritten packets whose transport checksum the sender had left to offload, and
    /// that we completed.
    pub checksums_completed: u64,
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
    /// What the queue socket saw besides the packets (each counted by `count`).
    pub fn count_burst(&mut self, summary: &BurstSummary) {
        self.totals.verdict_errors += summary.verdicts_refused;
        self.totals.receive_overruns += summary.overruns;
        self.totals.unreadable += summary.unreadable;
    }

    /// Offload seen on a packet: GSO, and a checksum completed on a rewritten one.
    pub fn count_offload(&mut self, queued: &QueuedPacket, outcome: Outcome) {
        if queued.is_gso() {
            self.totals.gso_packets += 1;
        }
        if queued.checksum_not_ready() && outcome == Outcome::Rewritten {
            self.totals.checksums_completed += 1;
        }
    }

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
            || self.totals.unreadable != self.reported.unreadable
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
        let unreadable = self.totals.unreadable - before.unreadable;
        if unreadable > 0 {
            parts.push(format!("{unreadable} unreadable queue messages"));
        }
        let gso = self.totals.gso_packets - before.gso_packets;
        if gso > 0 {
            parts.push(format!("{gso} GSO packets"));
        }
        let completed = self.totals.checksums_completed - before.checksums_completed;
        if completed > 0 {
            parts.push(format!("{completed} checksums completed"));
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
