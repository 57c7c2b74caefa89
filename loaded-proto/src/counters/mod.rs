//! Exact traffic counters that outlive a worker restart, in one memory region shared by the
//! master and the workers.
//!
//! The region holds one block per worker number (see `layout.rs`). A worker writes only its own
//! block, so an increment is a relaxed load and a relaxed store to a cache line no other
//! process writes: no locked read-modify-write, no contention, nothing the datapath can
//! measure (see `benches/counters.rs`). The master reads every block and sums them; each
//! counter it reads is exact as of that load (counters are read one at a time, so a sum is
//! not one instant's snapshot of all of them, which a scraper does not need).
//!
//! # How the master and the workers use it (`loaded-master/src/supervisor.rs`, `loaded-worker/src/counters.rs`)
//!
//! - The master, at start, beside the flow table: `create_region(workers)` with the number
//!   of workers it will run, and `SharedCounters::map` of that fd for itself. It hands the
//!   same fd to each worker with its start message, as it does the flow table's.
//! - A worker maps it with `WorkerCounters::map(fd, workers, its_number)` and counts from
//!   its packet loop: `count_packet` for each verdict, `count_rewritten`, `count_drop` at
//!   the reason's index in `DropReason::ALL` (the worker checks at compile time that
//!   `DropReason::ALL.len() <= DROP_REASON_SLOTS`, and a test checks that the names match
//!   [`DROP_REASON_NAMES`]), `add_receive_overruns` and `add_verdict_errors` from each
//!   burst summary, and per server, by the backend's flow table directory slot:
//!   `count_new_flow` when a mapping is made, `count_to_server` and `count_from_server`
//!   with the packet's length on each rewrite. Its per-minute log line can stay on its
//!   own `Totals`.
//!   Mapping it takes no system call the worker does not already make for the flow table
//!   (fstat, fcntl F_GET_SEALS, mmap), so its seccomp list stays as it is.
//! - A restarted worker maps the same region and block and goes on from the values there.
//!   The master starts the replacement only after it has reaped the old process, so a
//!   block never has two writers.
//! - For `status`/`metrics` the master takes `SharedCounters::worker_statuses` (packets,
//!   overruns, verdict errors per worker), `SharedCounters::sum().drop_counts()`, and from
//!   the same sum each configured server's `servers[slot]`, its slot the one
//!   `SharedFlowTable::register_backend` gave it (which also gives `live_mappings(slot)`,
//!   the server's active mappings).

mod layout;

pub use layout::{region_len, DROP_REASON_SLOTS, LAYOUT_ID};

use crate::control::{DropCount, WorkerStatus};
use crate::flow_table::region::{create_sealed, SharedMemory};
use crate::flow_table::MAX_BACKENDS;
use layout::{Header, WorkerBlock};
use nix::sys::stat::fstat;
use std::io;
use std::mem::size_of;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The worker's drop reasons by index, as named in logs and metrics: the same order as
/// `loaded-worker`'s `DropReason::ALL`.
pub const DROP_REASON_NAMES: [&str; 7] = [
    "malformed",
    "unsupported",
    "no_backend",
    "table_busy",
    "unknown_flow",
    "tcp_not_syn_unknown_flow",
    "fragment_unknown_flow",
];

const _: () = assert!(DROP_REASON_NAMES.len() <= DROP_REASON_SLOTS);

/// Creates the zero-filled region for `workers` blocks, sealed against resizing.
pub fn create_region(workers: usize) -> io::Result<OwnedFd> {
    create_sealed(c"loaded-counters", region_len(workers))
}

/// A worker's traffic through one server, as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerTotals {
    pub new_flows: u64,
    pub packets_to: u64,
    pub bytes_to: u64,
    pub packets_from: u64,
    pub bytes_from: u64,
}

/// One block as read, or the sum of several.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTotals {
    pub packets: u64,
    pub rewritten: u64,
    pub receive_overruns: u64,
    pub verdict_errors: u64,
    /// By the reason's index (see DROP_REASON_NAMES).
    pub drops: [u64; DROP_REASON_SLOTS],
    /// By flow table directory slot.
    pub servers: Vec<ServerTotals>,
}

impl Default for BlockTotals {
    fn default() -> Self {
        BlockTotals {
            packets: 0,
            rewritten: 0,
            receive_overruns: 0,
            verdict_errors: 0,
            drops: [0; DROP_REASON_SLOTS],
            servers: vec![ServerTotals::default(); MAX_BACKENDS],
        }
    }
}

impl BlockTotals {
    fn add(&mut self, other: &BlockTotals) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.rewritten = self.rewritten.wrapping_add(other.rewritten);
        self.receive_overruns = self.receive_overruns.wrapping_add(other.receive_overruns);
        self.verdict_errors = self.verdict_errors.wrapping_add(other.verdict_errors);
        for (sum, n) in self.drops.iter_mut().zip(other.drops) {
            *sum = sum.wrapping_add(n);
        }
        for (sum, n) in self.servers.iter_mut().zip(&other.servers) {
            sum.new_flows = sum.new_flows.wrapping_add(n.new_flows);
            sum.packets_to = sum.packets_to.wrapping_add(n.packets_to);
            sum.bytes_to = sum.bytes_to.wrapping_add(n.bytes_to);
            sum.packets_from = sum.packets_from.wrapping_add(n.packets_from);
            sum.bytes_from = sum.bytes_from.wrapping_add(n.bytes_from);
        }
    }
}

impl BlockTotals {
    /// Drops per reason for the status, every reason in order, zeros included.
    pub fn drop_counts(&self) -> Vec<DropCount> {
        DROP_REASON_NAMES
            .iter()
            .zip(self.drops)
            .map(|(reason, packets)| DropCount {
                reason: (*reason).to_owned(),
                packets,
            })
            .collect()
    }
}

/// The whole region, for reading (the master).
pub struct SharedCounters {
    memory: SharedMemory,
    workers: usize,
}

impl SharedCounters {
    /// Maps the region the master made with [`create_region`] for `workers` blocks.
    pub fn map(fd: BorrowedFd<'_>, workers: usize) -> io::Result<SharedCounters> {
        let expected = region_len(workers);
        let actual = fstat(fd)?.st_size;
        if u64::try_from(actual).ok() != Some(expected as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "counters region is {actual} bytes, but {expected} are needed for \
                     {workers} workers: it was made for another count or by another version"
                ),
            ));
        }
        SharedCounters::attach(SharedMemory::of_sealed(fd, expected)?, workers)
    }

    /// Counters in anonymous shared memory: shared only with children forked later.
    pub fn anonymous(workers: usize) -> io::Result<SharedCounters> {
        SharedCounters::attach(SharedMemory::anonymous(region_len(workers))?, workers)
    }

    fn attach(memory: SharedMemory, workers: usize) -> io::Result<SharedCounters> {
        assert_eq!(memory.len(), region_len(workers));
        let counters = SharedCounters { memory, workers };
        let layout = &counters.header().layout;
        match layout.compare_exchange(0, LAYOUT_ID, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(counters),
            Err(LAYOUT_ID) => Ok(counters),
            Err(other) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("counters region has layout {other:#x}, this build reads {LAYOUT_ID:#x}"),
            )),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned and at least region_len(workers) bytes long,
        // which starts with a Header; all its bytes are atomics, valid at any value, and
        // they live as long as `self`.
        unsafe { self.memory.start().cast::<Header>().as_ref() }
    }

    fn block_ptr(&self, worker: usize) -> Option<NonNull<WorkerBlock>> {
        if worker >= self.workers {
            return None;
        }
        let offset = size_of::<Header>() + worker * size_of::<WorkerBlock>();
        // SAFETY: `worker < workers`, so the block lies inside the mapping (region_len),
        // and the offset keeps the 64-byte alignment WorkerBlock needs (Header and
        // WorkerBlock are whole cache lines, the mapping page-aligned).
        Some(unsafe { self.memory.start().add(offset).cast::<WorkerBlock>() })
    }

    fn block(&self, worker: usize) -> Option<&WorkerBlock> {
        // SAFETY: as in block_ptr; a block is all atomics, valid at any value, borrowed no
        // longer than the mapping.
        self.block_ptr(worker)
            .map(|block| unsafe { block.as_ref() })
    }

    /// Worker `worker`'s block as it is now; `None` past the last worker.
    pub fn read(&self, worker: usize) -> Option<BlockTotals> {
        self.block(worker).map(read_block)
    }

    /// Each worker's totals for the status.
    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        (0..self.workers)
            .filter_map(|worker| {
                let block = self.read(worker)?;
                Some(WorkerStatus {
                    worker: u32::try_from(worker).ok()?,
                    packets: block.packets,
                    receive_overruns: block.receive_overruns,
                    verdict_errors: block.verdict_errors,
                })
            })
            .collect()
    }

    /// Every block added up.
    pub fn sum(&self) -> BlockTotals {
        let mut sum = BlockTotals::default();
        for worker in 0..self.workers {
            if let Some(block) = self.read(worker) {
                sum.add(&block);
            }
        }
        sum
    }

    /// The writer of `worker`'s block; `None` past the last worker.
    pub fn into_worker(self, worker: usize) -> Option<WorkerCounters> {
        let block = self.block_ptr(worker)?;
        Some(WorkerCounters {
            _memory: self.memory,
            block,
        })
    }
}

/// One worker's block, for writing. There must be one writer per block (one worker, one
/// thread: the type is not Sync), since an increment is a load and a store, not an atomic
/// add; every other process only reads it.
pub struct WorkerCounters {
    /// Keeps `block` mapped.
    _memory: SharedMemory,
    block: NonNull<WorkerBlock>,
}

// SAFETY: the mapping is process-wide memory, not tied to the thread that made it; the
// type stays !Sync, so one thread at a time writes through it.
unsafe impl Send for WorkerCounters {}

/// One writer's increment: no other process writes this word, so a plain load and store
/// (no lock prefix) is exact, and Relaxed suffices as nothing else is published with it.
#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// A block as it is now (each counter read once, relaxed: a writer may be counting).
fn read_block(block: &WorkerBlock) -> BlockTotals {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    BlockTotals {
        packets: load(&block.packets),
        rewritten: load(&block.rewritten),
        receive_overruns: load(&block.receive_overruns),
        verdict_errors: load(&block.verdict_errors),
        drops: std::array::from_fn(|i| load(&block.drops[i])),
        servers: block
            .servers
            .iter()
            .map(|server| ServerTotals {
                new_flows: load(&server.new_flows),
                packets_to: load(&server.packets_to),
                bytes_to: load(&server.bytes_to),
                packets_from: load(&server.packets_from),
                bytes_from: load(&server.bytes_from),
            })
            .collect(),
    }
}

impl WorkerCounters {
    /// Maps the master's region and takes block `worker` of its `workers`.
    pub fn map(fd: BorrowedFd<'_>, workers: usize, worker: usize) -> io::Result<WorkerCounters> {
        SharedCounters::map(fd, workers)?
            .into_worker(worker)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("worker {worker} has no block in a counters region for {workers}"),
                )
            })
    }

    #[inline(always)]
    fn block(&self) -> &WorkerBlock {
        // SAFETY: `block` points inside `_memory`'s mapping (checked by block_ptr), which
        // lives as long as `self`; a block is all atomics, valid at any value.
        unsafe { self.block.as_ref() }
    }

    /// This worker's block as it is now (its own log lines are derived from it).
    pub fn read(&self) -> BlockTotals {
        read_block(self.block())
    }

    /// A packet given a verdict.
    #[inline]
    pub fn count_packet(&self) {
        bump(&self.block().packets, 1);
    }

    #[inline]
    pub fn count_rewritten(&self) {
        bump(&self.block().rewritten, 1);
    }

    /// A packet dropped for the reason at `reason` in `DropReason::ALL`; an index past
    /// DROP_REASON_SLOTS is not counted (the worker's compile-time check rules it out).
    #[inline]
    pub fn count_drop(&self, reason: usize) {
        if let Some(counter) = self.block().drops.get(reason) {
            bump(counter, 1);
        }
    }

    #[inline]
    pub fn add_receive_overruns(&self, n: u64) {
        bump(&self.block().receive_overruns, n);
    }

    #[inline]
    pub fn add_verdict_errors(&self, n: u64) {
        bump(&self.block().verdict_errors, n);
    }

    /// A mapping made to the server in directory slot `slot`. Slots past MAX_BACKENDS
    /// (none exist) are not counted.
    #[inline]
    pub fn count_new_flow(&self, slot: usize) {
        if let Some(server) = self.block().servers.get(slot) {
            bump(&server.new_flows, 1);
        }
    }

    /// A packet of `bytes` forwarded to the server in slot `slot`.
    #[inline]
    pub fn count_to_server(&self, slot: usize, bytes: u64) {
        if let Some(server) = self.block().servers.get(slot) {
            bump(&server.packets_to, 1);
            bump(&server.bytes_to, bytes);
        }
    }

    /// A packet of `bytes` from the server in slot `slot`, sent on from the VIP.
    #[inline]
    pub fn count_from_server(&self, slot: usize, bytes: u64) {
        if let Some(server) = self.block().servers.get(slot) {
            bump(&server.packets_from, 1);
            bump(&server.bytes_from, bytes);
        }
    }
}

#[cfg(test)]
mod tests;
