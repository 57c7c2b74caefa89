//! What a worker counts, and the periodic summary it logs.
//!
//! Drops are reported at most once per interval, as totals per reason, so a flood of bad
//! packets costs one log line a minute rather than one per packet.

use crate::datapath::balancer::{Direction, ServerTraffic};
use crate::datapath::nat::{DropReason, Outcome};
use crate::nfqueue::{BurstSummary, QueuedPacket};
use loaded_proto::counters::{BlockTotals, WorkerCounters, DROP_REASON_SLOTS};
use std::time::{Duration, Instant};

// Every reason has its counter in the shared block (counted at `DropReason::index`).
const _: () = assert!(DropReason::ALL.len() <= DROP_REASON_SLOTS);

/// One decided packet in the shared counters the master reads for `loadedctl`: a relaxed
/// load and store per counter, on cache lines only this worker writes.
#[inline]
pub fn count_shared(
    shared: &WorkerCounters,
    outcome: Outcome,
    traffic: Option<ServerTraffic>,
    bytes: usize,
) {
    shared.count_packet();
    match outcome {
        Outcome::Rewritten => shared.count_rewritten(),
        Outcome::Drop(reason) => shared.count_drop(reason.index()),
        Outcome::NotOurs => {}
    }
    let Some(traffic) = traffic else {
        return;
    };
    if traffic.new_flow {
        shared.count_new_flow(traffic.slot);
    }
    if outcome == Outcome::Rewritten {
        match traffic.direction {
            Direction::ToServer => shared.count_to_server(traffic.slot, bytes as u64),
            Direction::FromServer => shared.count_from_server(traffic.slot, bytes as u64),
        }
    }
}

/// What the queue socket saw besides the packets, in the shared counters.
pub fn count_shared_burst(shared: &WorkerCounters, summary: &BurstSummary) {
    shared.add_receive_overruns(summary.overruns);
    shared.add_verdict_errors(summary.verdicts_refused);
}

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

/// A worker's counts: what the master reads lives in the shared block only (one increment
/// per counter and packet); this worker's own reports are derived from it, since the block
/// as it was when this worker started (a restarted worker goes on with its predecessor's).
pub struct Counters {
    shared: WorkerCounters,
    at_start: BlockTotals,
    /// What only the log reports: not_ours, unreadable, gso_packets, checksums_completed.
    local: Totals,
    reported: Totals,
    last_report: Instant,
    no_backend_reported: bool,
}

impl Counters {
    pub fn new(shared: WorkerCounters) -> Counters {
        Counters {
            at_start: shared.read(),
            shared,
            local: Totals::default(),
            reported: Totals::default(),
            last_report: Instant::now(),
            no_backend_reported: false,
        }
    }

    /// The counts since this worker started.
    pub fn totals(&self) -> Totals {
        let now = self.shared.read();
        let start = &self.at_start;
        Totals {
            packets: now.packets.wrapping_sub(start.packets),
            rewritten: now.rewritten.wrapping_sub(start.rewritten),
            dropped: std::array::from_fn(|i| now.drops[i].wrapping_sub(start.drops[i])),
            verdict_errors: now.verdict_errors.wrapping_sub(start.verdict_errors),
            receive_overruns: now.receive_overruns.wrapping_sub(start.receive_overruns),
            ..self.local.clone()
        }
    }

    /// What the queue socket saw besides the packets (each counted by `count`).
    pub fn count_burst(&mut self, summary: &BurstSummary) {
        count_shared_burst(&self.shared, summary);
        self.local.unreadable += summary.unreadable;
    }

    /// Offload seen on a packet: GSO, and a checksum completed on a rewritten one.
    pub fn count_offload(&mut self, queued: &QueuedPacket, outcome: Outcome) {
        if queued.is_gso() {
            self.local.gso_packets += 1;
        }
        if queued.checksum_not_ready() && outcome == Outcome::Rewritten {
            self.local.checksums_completed += 1;
        }
    }

    /// A decided packet, with the server it went to or came from (`traffic`).
    pub fn count(&mut self, outcome: Outcome, traffic: Option<ServerTraffic>, bytes: usize) {
        count_shared(&self.shared, outcome, traffic, bytes);
        match outcome {
            Outcome::Rewritten => {}
            Outcome::NotOurs => self.local.not_ours += 1,
            Outcome::Drop(reason) => {
                if reason == DropReason::NoBackend && !self.no_backend_reported {
                    // Once per outage, at once: the operator needs to know now.
                    self.no_backend_reported = true;
                    log::error!("no live server for a new client: dropping new flows");
                }
            }
        }
        if outcome == Outcome::Rewritten {
            self.no_backend_reported = false;
        }
    }

    /// Logs the drops since the last report, if any, once per REPORT_INTERVAL.
    pub fn report_if_due(&mut self, now: Instant) {
        if now.duration_since(self.last_report) < REPORT_INTERVAL {
            return;
        }
        self.last_report = now;
        let totals = self.totals();
        if totals.dropped_total() != self.reported.dropped_total()
            || totals.verdict_errors != self.reported.verdict_errors
            || totals.receive_overruns != self.reported.receive_overruns
            || totals.unreadable != self.reported.unreadable
        {
            log::warn!("{}", totals.describe_since(&self.reported));
        }
        self.reported = totals;
    }

    pub fn describe_since(&self, before: &Totals) -> String {
        self.totals().describe_since(before)
    }
}

impl Totals {
    /// The counts since `before`, as the worker logs them.
    pub fn describe_since(&self, before: &Totals) -> String {
        let mut parts = vec![format!(
            "{} packets, {} rewritten, {} passed unchanged",
            self.packets - before.packets,
            self.rewritten - before.rewritten,
            self.not_ours - before.not_ours
        )];
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let n = self.dropped[i] - before.dropped[i];
            if n > 0 {
                parts.push(format!("{n} dropped {}", reason.name()));
            }
        }
        let errors = self.verdict_errors - before.verdict_errors;
        if errors > 0 {
            parts.push(format!("{errors} verdict errors"));
        }
        let overruns = self.receive_overruns - before.receive_overruns;
        if overruns > 0 {
            parts.push(format!("{overruns} receive buffer overruns"));
        }
        let unreadable = self.unreadable - before.unreadable;
        if unreadable > 0 {
            parts.push(format!("{unreadable} unreadable queue messages"));
        }
        let gso = self.gso_packets - before.gso_packets;
        if gso > 0 {
            parts.push(format!("{gso} GSO packets"));
        }
        let completed = self.checksums_completed - before.checksums_completed;
        if completed > 0 {
            parts.push(format!("{completed} checksums completed"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::counters::{SharedCounters, DROP_REASON_NAMES};

    #[test]
    fn the_shared_counters_name_the_reasons_as_the_worker_does() {
        assert_eq!(DropReason::ALL.len(), DROP_REASON_NAMES.len());
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index, "{reason:?}");
            assert_eq!(reason.name(), DROP_REASON_NAMES[index], "{reason:?}");
        }
    }

    #[test]
    fn a_packet_is_counted_with_its_server_and_reason() {
        use std::os::fd::AsFd;
        let region = loaded_proto::counters::create_region(1).unwrap();
        let reader = SharedCounters::map(region.as_fd(), 1).unwrap();
        let writer = WorkerCounters::map(region.as_fd(), 1, 0).unwrap();
        let to = |new_flow| {
            Some(ServerTraffic {
                slot: 3,
                direction: Direction::ToServer,
                new_flow,
            })
        };
        let from = Some(ServerTraffic {
            slot: 3,
            direction: Direction::FromServer,
            new_flow: false,
        });
        count_shared(&writer, Outcome::Rewritten, to(true), 60);
        count_shared(&writer, Outcome::Rewritten, to(false), 1500);
        count_shared(&writer, Outcome::Rewritten, from, 40);
        // A mapping made for a packet dropped later still counts as a new flow, the
        // packet's bytes not.
        count_shared(&writer, Outcome::Drop(DropReason::Malformed), to(true), 99);
        count_shared(&writer, Outcome::NotOurs, None, 70);
        count_shared(
            &writer,
            Outcome::Drop(DropReason::FragmentUnknownFlow),
            None,
            70,
        );
        count_shared_burst(
            &writer,
            &BurstSummary {
                overruns: 2,
                verdicts_refused: 1,
                ..BurstSummary::default()
            },
        );
        let block = reader.read(0).unwrap();
        assert_eq!((block.packets, block.rewritten), (6, 3));
        assert_eq!((block.receive_overruns, block.verdict_errors), (2, 1));
        assert_eq!(block.drops[0], 1);
        assert_eq!(block.drops[6], 1);
        let server = block.servers[3];
        assert_eq!(server.new_flows, 2);
        assert_eq!((server.packets_to, server.bytes_to), (2, 1560));
        assert_eq!((server.packets_from, server.bytes_from), (1, 40));
    }

    fn own_block() -> WorkerCounters {
        SharedCounters::anonymous(1)
            .unwrap()
            .into_worker(0)
            .unwrap()
    }

    #[test]
    fn drops_are_counted_per_reason_and_described() {
        let mut counters = Counters::new(own_block());
        counters.count(Outcome::Rewritten, None, 60);
        counters.count(Outcome::Drop(DropReason::Malformed), None, 60);
        counters.count(Outcome::Drop(DropReason::Malformed), None, 60);
        counters.count(Outcome::NotOurs, None, 60);
        let text = counters.describe_since(&Totals::default());
        assert_eq!(
            text,
            "4 packets, 1 rewritten, 1 passed unchanged, 2 dropped malformed"
        );
    }
}
