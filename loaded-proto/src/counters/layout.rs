//! The bytes of the counters region, as `repr(C)` structs of atomics; all-zero bytes are
//! all counters at zero, so a freshly truncated memfd needs no initialisation.
//!
//! ```text
//! Header (64 bytes)        layout id                          one cache line
//! WorkerBlock x workers, 10368 bytes each, each starting on its own cache line:
//!   packets, rewritten, receive overruns, verdict errors
//!   drops          DROP_REASON_SLOTS x packets
//!   servers        MAX_BACKENDS x (new flows, packets/bytes to, packets/bytes from)
//! ```

use crate::flow_table::MAX_BACKENDS;
use std::mem::size_of;
use std::sync::atomic::AtomicU64;

/// Room for drop reasons per block. The worker's `DropReason::ALL` (7 today) must fit: it
/// checks `DropReason::ALL.len() <= DROP_REASON_SLOTS` at compile time and counts a drop
/// at its reason's index in `ALL`. Growing this changes the layout (bump LAYOUT_ID).
pub const DROP_REASON_SLOTS: usize = 8;

/// "loadedct" and the layout version; see `flow_table::layout::LAYOUT_ID` for why.
pub const LAYOUT_ID: u64 = 0x6c6f_6164_6564_0101;

#[repr(C, align(64))]
pub struct Header {
    /// 0 until the first mapper stores LAYOUT_ID.
    pub layout: AtomicU64,
}

/// One server's traffic through one worker, indexed by the server's flow table directory
/// slot, which every worker agrees on.
#[repr(C)]
pub struct ServerCounters {
    pub new_flows: AtomicU64,
    pub packets_to: AtomicU64,
    pub bytes_to: AtomicU64,
    pub packets_from: AtomicU64,
    pub bytes_from: AtomicU64,
}

/// Written by one worker only. Aligned so that no two workers write the same cache line.
#[repr(C, align(64))]
pub struct WorkerBlock {
    pub packets: AtomicU64,
    pub rewritten: AtomicU64,
    pub receive_overruns: AtomicU64,
    pub verdict_errors: AtomicU64,
    pub drops: [AtomicU64; DROP_REASON_SLOTS],
    pub servers: [ServerCounters; MAX_BACKENDS],
}

pub fn region_len(workers: usize) -> usize {
    size_of::<Header>() + workers * size_of::<WorkerBlock>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_documentation() {
        assert_eq!(size_of::<Header>(), 64);
        assert_eq!(size_of::<ServerCounters>(), 40);
        assert_eq!(size_of::<WorkerBlock>(), 10368);
        assert_eq!(size_of::<WorkerBlock>() % 64, 0);
        assert_eq!(region_len(2), 64 + 2 * 10368);
    }
}
