//! Which cores get a worker. Each worker is pinned to its core and serves the queue of the
//! same number, and the queue rule spreads packets over a range of queues, so the cores
//! form one contiguous range, `FIRST_CORE..=LAST_CORE`, and each of them must be one the
//! master may run on (its affinity: a cpuset or `taskset` may allow, say, CPUs 2-3 only).

use std::fmt;
use std::ops::RangeInclusive;

/// Why no range of cores could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoresError {
    /// The affinity mask lists no CPU.
    NoAllowedCpu,
    /// FIRST_CORE lies above the last core (given or defaulted).
    FirstAboveLast { first: u16, last: u16 },
    /// A core of the range is not in the affinity mask: a worker could not be pinned there.
    NotAllowed {
        core: u16,
        range: RangeInclusive<u16>,
        allowed: Vec<u16>,
    },
}

impl fmt::Display for CoresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoresError::NoAllowedCpu => f.write_str("this process may run on no CPU"),
            CoresError::FirstAboveLast { first, last } => {
                write!(f, "FIRST_CORE={first} is above the last core {last}")
            }
            CoresError::NotAllowed {
                core,
                range,
                allowed,
            } => write!(
                f,
                "core {core} of the worker cores {}-{} is not one this process may run on \
                 (allowed: {}); set FIRST_CORE and LAST_CORE within them",
                range.start(),
                range.end(),
                cpu_list(allowed)
            ),
        }
    }
}

impl std::error::Error for CoresError {}

/// The worker cores: `first..=last` where each bound defaults to the allowed CPUs: `first`
/// to the lowest allowed CPU, `last` to the end of the run of consecutive allowed CPUs that
/// starts at `first`. Every core of the range must be allowed. `allowed` need not be
/// sorted.
pub fn choose_worker_cores(
    first: Option<u16>,
    last: Option<u16>,
    allowed: &[u16],
) -> Result<RangeInclusive<u16>, CoresError> {
    let mut allowed = allowed.to_vec();
    allowed.sort_unstable();
    allowed.dedup();
    let lowest = *allowed.first().ok_or(CoresError::NoAllowedCpu)?;
    let first = first.unwrap_or(lowest);
    let last = match last {
        Some(last) => last,
        None => {
            let mut end = first;
            while end < u16::MAX && allowed.binary_search(&(end + 1)).is_ok() {
                end += 1;
            }
            end
        }
    };
    if first > last {
        return Err(CoresError::FirstAboveLast { first, last });
    }
    if let Some(core) = (first..=last).find(|core| allowed.binary_search(core).is_err()) {
        return Err(CoresError::NotAllowed {
            core,
            range: first..=last,
            allowed,
        });
    }
    Ok(first..=last)
}

/// `0-3,6,8-9`: the notation of cpusets and `taskset -c`.
fn cpu_list(sorted: &[u16]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_allowed_cpus_from_zero_by_default() {
        assert_eq!(choose_worker_cores(None, None, &[0, 1, 2, 3]), Ok(0..=3));
        assert_eq!(choose_worker_cores(None, None, &[0]), Ok(0..=0));
    }

    #[test]
    fn a_cpuset_that_does_not_start_at_zero() {
        assert_eq!(choose_worker_cores(None, None, &[2, 3]), Ok(2..=3));
        assert_eq!(choose_worker_cores(None, None, &[3, 2]), Ok(2..=3));
        assert_eq!(choose_worker_cores(None, Some(2), &[2, 3]), Ok(2..=2));
    }

    #[test]
    fn the_default_range_stops_at_a_gap() {
        assert_eq!(choose_worker_cores(None, None, &[1, 2, 5, 6]), Ok(1..=2));
        assert_eq!(choose_worker_cores(Some(5), None, &[1, 2, 5, 6]), Ok(5..=6));
    }

    #[test]
    fn explicit_cores_must_be_allowed() {
        assert_eq!(
            choose_worker_cores(Some(1), Some(2), &[0, 1, 2, 3]),
            Ok(1..=2)
        );
        assert_eq!(
            choose_worker_cores(Some(0), None, &[2, 3]),
            Err(CoresError::NotAllowed {
                core: 0,
                range: 0..=0,
                allowed: vec![2, 3]
            })
        );
        let gap = choose_worker_cores(Some(1), Some(5), &[1, 2, 5, 6]).unwrap_err();
        assert_eq!(
            gap.to_string(),
            "core 3 of the worker cores 1-5 is not one this process may run on \
             (allowed: 1-2,5-6); set FIRST_CORE and LAST_CORE within them"
        );
    }

    #[test]
    fn first_above_last_and_no_cpu_are_errors() {
        assert_eq!(
            choose_worker_cores(Some(3), Some(1), &[0, 1, 2, 3]),
            Err(CoresError::FirstAboveLast { first: 3, last: 1 })
        );
        assert_eq!(
            choose_worker_cores(Some(5), None, &[0, 1, 2, 3]),
            Err(CoresError::NotAllowed {
                core: 5,
                range: 5..=5,
                allowed: vec![0, 1, 2, 3]
            })
        );
        assert_eq!(
            choose_worker_cores(None, None, &[]),
            Err(CoresError::NoAllowedCpu)
        );
    }

    #[test]
    fn cpu_lists_read_like_taskset() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[4]), "4");
        assert_eq!(cpu_list(&[]), "");
    }
}
