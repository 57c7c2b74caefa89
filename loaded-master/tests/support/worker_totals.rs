//! The totals each worker logs when it stops (`worker/N: stopping: 12 packets, ...`).

use super::balancer::{assert_balancer_gone, worker_count, Master};
use super::TestNet;
use std::collections::HashMap;

/// One worker's `stopping: ...` line, as {"packets": n, "dropped malformed": n, ...}.
pub fn worker_summaries(log: &str) -> Vec<(String, HashMap<String, u64>)> {
    log.lines()
        .filter_map(|line| {
            let (head, summary) = line.split_once(": stopping: ")?;
            let worker = head.rsplit(' ').next()?.to_string();
            if !worker.starts_with("worker/") {
                return None;
            }
            let counts = summary
                .split(", ")
                .filter_map(|part| {
                    let (n, label) = part.trim().split_once(' ')?;
                    Some((label.to_string(), n.parse().ok()?))
                })
                .collect();
            Some((worker, counts))
        })
        .collect()
}

/// Stops the master, checks that every worker reported its totals, and returns their sum.
pub fn stop_and_sum_summaries(net: &TestNet, master: &Master) -> HashMap<String, u64> {
    let status = master.stop(net);
    let log = master.log(net);
    assert!(
        status.is_some_and(|s| s.success()),
        "loaded-master did not stop cleanly ({status:?}); its output:\n{log}"
    );
    assert_balancer_gone(net);
    let summaries = worker_summaries(&log);
    let mut workers: Vec<&str> = summaries.iter().map(|(w, _)| w.as_str()).collect();
    workers.sort();
    workers.dedup();
    assert_eq!(
        workers.len(),
        worker_count(),
        "each of the {} workers must log its `stopping: ...` totals; got {workers:?}; \
         the master's output:\n{log}",
        worker_count()
    );
    let mut total = HashMap::new();
    for (_, counts) in summaries {
        for (label, n) in counts {
            *total.entry(label).or_insert(0) += n;
        }
    }
    total
}
