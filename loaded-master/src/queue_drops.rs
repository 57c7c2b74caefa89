//! The kernel's own count of the packets it could not give our workers, per queue: those
//! refused because the queue was full (`nfq_len`), and those lost because a worker's
//! socket buffer was full (an overrun). A worker only learns that an overrun happened, not
//! how many packets it cost; /proc/net/netfilter/nfnetlink_queue has the exact numbers,
//! and only the master can read it.

use std::collections::{BTreeMap, BTreeSet};

pub const PROC_PATH: &str = "/proc/net/netfilter/nfnetlink_queue";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    pub queue_full: u64,
    pub overruns: u64,
}

/// The drop counters of the queues in `ours`, by queue number, from the file's text:
/// `queue portid waiting copy_mode copy_range queue_dropped user_dropped id_sequence 1`.
pub fn parse(text: &str, ours: &BTreeSet<u16>) -> BTreeMap<u16, Drops> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let queue: u16 = fields.first()?.parse().ok()?;
            if !ours.contains(&queue) {
                return None;
            }
            Some((
                queue,
                Drops {
                    queue_full: fields.get(5)?.parse().ok()?,
                    overruns: fields.get(6)?.parse().ok()?,
                },
            ))
        })
        .collect()
}

/// Remembers the last counters seen, to report what changed since.
#[derive(Debug, Default)]
pub struct DropWatch {
    last: BTreeMap<u16, Drops>,
}

impl DropWatch {
    /// Lines to log for the queues whose counters grew since the last call. A queue seen
    /// for the first time (or bound anew, its counters restarting) only sets the baseline.
    pub fn update(&mut self, now: BTreeMap<u16, Drops>) -> Vec<String> {
        let mut lines = Vec::new();
        for (queue, drops) in &now {
            let Some(before) = self.last.get(queue) else {
                continue;
            };
            let queue_full = drops.queue_full.saturating_sub(before.queue_full);
            let overruns = drops.overruns.saturating_sub(before.overruns);
            if queue_full + overruns > 0 {
                lines.push(format!(
                    "NFQUEUE {queue}: the kernel dropped {} packets since the last report \
                     ({queue_full} with the queue full, {overruns} with the worker's socket \
                     buffer full)",
                    queue_full + overruns
                ));
            }
        }
        self.last = now;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "    0  12345     0 2 65531     5    7   100  1\n\
                              1  12346     3 2 65531     0    0    42  1\n\
                              9  99999     0 2 65531   500  500   900  1\n";

    #[test]
    fn reads_our_queues_only() {
        let drops = parse(SAMPLE, &BTreeSet::from([0, 1]));
        assert_eq!(drops.len(), 2);
        assert_eq!(
            drops[&0],
            Drops {
                queue_full: 5,
                overruns: 7
            }
        );
        assert_eq!(drops[&1], Drops::default());
        assert!(parse("garbage\n0 1\n", &BTreeSet::from([0, 1])).is_empty());
    }

    #[test]
    fn reports_growth_after_the_baseline() {
        let mut watch = DropWatch::default();
        assert!(watch
            .update(parse(SAMPLE, &BTreeSet::from([0, 1])))
            .is_empty());
        let later = SAMPLE.replacen("     5    7   100", "     6   17   200", 1);
        let lines = watch.update(parse(&later, &BTreeSet::from([0, 1])));
        assert_eq!(
            lines,
            [
                "NFQUEUE 0: the kernel dropped 11 packets since the last report (1 with the queue \
              full, 10 with the worker's socket buffer full)"
            ]
        );
        assert!(watch
            .update(parse(&later, &BTreeSet::from([0, 1])))
            .is_empty());
    }
}
