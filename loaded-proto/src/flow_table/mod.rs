//! The client-to-backend mappings, in one table in memory shared by all workers.
//!
//! The kernel spreads a flow's two directions, and ICMP errors about it, over different
//! workers, so every worker must see every mapping. The root master makes the region
//! ([`create_region`]) and hands the memfd to each worker, which maps it
//! ([`SharedFlowTable::map`]); the mappings thereby outlive a worker restart and have one
//! bound on memory.
//!
//! The table is set-associative: a keyed hash of the flow picks a bucket of
//! [`ENTRIES_PER_BUCKET`] entries, and a bucket lock guards them (see `bucket_lock` for
//! why a killed worker cannot block the others). A mapping idle for the flow timeout counts
//! as free; a full bucket evicts its least recently used mapping, so the table never holds
//! more than its capacity. Each worker sweeps a share of the buckets every second
//! ([`SharedFlowTable::expire_idle`]), so that the per-backend live counters, which
//! least-connections reads, follow the mappings that expire.
//!
//! Memory: [`BYTES_PER_ENTRY`] = 48 bytes per flow (40 bytes of entry, and the bucket's
//! lock, tags and times shared over its 8 entries), plus an 8320-byte header. The default
//! `max_flows` of 1 Mi flows takes 48 MiB (50,339,968 bytes) for the whole host, not per
//! worker.
//!
//! The hash seed lives in the region, chosen at random by the first process that maps it,
//! so the workers agree on buckets while clients cannot aim their keys at one bucket.

mod bucket;
mod bucket_lock;
mod clock;
mod directory;
mod identity;
mod key;
mod keyed_hash;
mod layout;
pub(crate) mod region;
#[cfg(test)]
mod tests;

use crate::wire::Family;
pub use bucket::{BackendSlot, BucketGuard, Displaced, Way};
pub use bucket_lock::{Busy, STALE_AFTER_SECS};
pub use clock::monotonic_seconds;
pub use directory::DirectoryFull;
pub use key::{FlowKey, TableKey};
pub use keyed_hash::{siphash13, HashKey};
pub use layout::{region_len, BYTES_PER_ENTRY, ENTRIES_PER_BUCKET, MAX_BACKENDS};
pub use region::create_region;

use bucket_lock::Acquired;
use layout::{bucket_count, Bucket, Header};
use region::SharedMemory;
use std::cell::Cell;
use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One worker's view of the shared table.
pub struct SharedFlowTable {
    region: SharedMemory,
    bucket_count: usize,
    hash_key: HashKey,
    flow_timeout_secs: u32,
    /// Our pid, for the lock words; read once, as getpid is a system call.
    pid: u32,
    stats: Cell<TableStats>,
}

/// What this worker's handle has done to the table since it was mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub inserted: u64,
    /// Mappings removed, or overwritten, after idling for the flow timeout.
    pub expired: u64,
    /// Live mappings overwritten because their bucket was full.
    pub evicted: u64,
    /// Mappings moved off a backend that went down.
    pub reassigned: u64,
    /// Bucket locks that were held by another worker when we wanted them.
    pub lock_waits: u64,
    /// Bucket locks taken over from a worker that held them for STALE_AFTER_SECS.
    pub lock_steals: u64,
    /// Lookups given up on because a bucket stayed locked; their packets were dropped.
    pub lock_busy: u64,
    /// Our locks that another worker stole while we were frozen.
    pub lock_lost: u64,
}

impl SharedFlowTable {
    /// Maps the region the master made with [`create_region`] for `capacity` flows.
    pub fn map(fd: BorrowedFd<'_>, capacity: usize) -> io::Result<SharedFlowTable> {
        SharedFlowTable::attach(SharedMemory::of_region(fd, capacity)?, capacity)
    }

    /// A table in anonymous shared memory: shared only with children forked later.
    pub fn anonymous(capacity: usize) -> io::Result<SharedFlowTable> {
        SharedFlowTable::attach(SharedMemory::anonymous(region_len(capacity))?, capacity)
    }

    fn attach(region: SharedMemory, capacity: usize) -> io::Result<SharedFlowTable> {
        assert_eq!(region.len(), region_len(capacity));
        let mut table = SharedFlowTable {
            region,
            bucket_count: bucket_count(capacity),
            hash_key: HashKey(0, 0),
            flow_timeout_secs: crate::config::DEFAULT_FLOW_TIMEOUT.as_secs() as u32,
            pid: std::process::id(),
            stats: Cell::default(),
        };
        table.hash_key = identity::adopt(&table.header().identity)?;
        Ok(table)
    }

    /// Mappings the table can hold: `capacity` rounded up to whole buckets.
    pub fn capacity(&self) -> usize {
        self.bucket_count * ENTRIES_PER_BUCKET
    }

    /// Sets how long a mapping may idle before it counts as free (at least a second).
    pub fn set_flow_timeout(&mut self, timeout: Duration) {
        self.flow_timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1);
    }

    pub fn flow_timeout_secs(&self) -> u32 {
        self.flow_timeout_secs
    }

    /// The keyed hash of `key`, the same in every worker of this region but random per
    /// region (against hash flooding). It picks the bucket and nothing else: a choice that
    /// must be the same on every start and every node (maglev's) hashes with its own key.
    pub fn hash(&self, key: &TableKey) -> u64 {
        key.keyed_hash(self.hash_key)
    }

    /// Locks the bucket of `hash` (from [`hash`](Self::hash)). `now` is
    /// [`monotonic_seconds`], which the guard uses for idleness and last-used times (the
    /// lock itself reads the clock for its own stamp).
    pub fn lock_bucket(&self, hash: u64, now: u32) -> Result<BucketGuard<'_>, Busy> {
        // The high bits, scaled onto the bucket count: no modulo, any count.
        let index = ((u128::from(hash) * self.bucket_count as u128) >> 64) as usize;
        self.lock(&self.buckets()[index], bucket::fingerprint(hash), now)
    }

    /// The backend of `key`'s live mapping, without refreshing it.
    pub fn get(&self, key: &TableKey, now: u32) -> Result<Option<BackendSlot>, Busy> {
        let guard = self.lock_bucket(self.hash(key), now)?;
        Ok(guard.find(key).map(|way| guard.mapping(way)))
    }

    /// Removes the idle mappings of the `shard`-th of `shards` equal slices of the table;
    /// returns how many. Called about once a second by each worker for a rotating shard,
    /// so idle mappings stop counting as live for least-connections.
    pub fn expire_idle(&self, now: u32, shard: usize, shards: usize) -> usize {
        let shards = shards.max(1);
        let shard = shard % shards;
        let start = self.bucket_count * shard / shards;
        let end = self.bucket_count * (shard + 1) / shards;
        let mut expired = 0;
        for bucket in &self.buckets()[start..end] {
            if !bucket::has_idle(bucket, now, self.flow_timeout_secs) {
                continue;
            }
            // A busy bucket waits for the next sweep.
            if let Ok(mut guard) = self.lock(bucket, 0, now) {
                expired += guard.clear_idle();
            }
        }
        expired
    }

    /// The directory slot of backend `addr`, the same in every worker of this region.
    pub fn register_backend(&self, addr: IpAddr) -> Result<usize, DirectoryFull> {
        directory::register(&self.header().directory, addr)
    }

    /// Marks the server in directory slot `slot` as removed from the configuration by a
    /// reload (`true`) or configured again (`false`); only the master calls this. Every
    /// worker, also one started later, then treats the server's mappings as a down
    /// server's and refuses to add it back from a stale health message. `false` if the
    /// slot holds no server.
    pub fn set_withdrawn(&self, slot: usize, withdrawn: bool) -> bool {
        directory::set_withdrawn(&self.header().directory, slot, withdrawn)
    }

    /// Whether the server in `slot` was withdrawn by a reload (see `set_withdrawn`).
    pub fn is_withdrawn(&self, slot: usize) -> bool {
        directory::is_withdrawn(&self.header().directory, slot)
    }

    /// Mappings (idle ones not yet swept included) to the backend in `slot`, across all
    /// workers.
    pub fn live_mappings(&self, slot: usize) -> u64 {
        self.header()
            .live
            .get(slot)
            .map_or(0, |live| live.load(Ordering::Relaxed))
    }

    /// Takes the next round-robin turn of `family`, counted across all workers from 0.
    pub fn take_round_robin_turn(&self, family: Family) -> u64 {
        self.header().cursors.round_robin[family.index()].fetch_add(1, Ordering::Relaxed)
    }

    pub fn stats(&self) -> TableStats {
        self.stats.get()
    }

    fn lock<'t>(&'t self, bucket: &'t Bucket, tag: u16, now: u32) -> Result<BucketGuard<'t>, Busy> {
        let held = bucket_lock::acquire(&bucket.lock, self.pid).inspect_err(|_| {
            self.count(|stats| {
                stats.lock_waits += 1;
                stats.lock_busy += 1;
            })
        })?;
        match held.how {
            Acquired::AtOnce => {}
            Acquired::AfterWaiting => self.count(|stats| stats.lock_waits += 1),
            Acquired::Stolen => self.count(|stats| {
                stats.lock_waits += 1;
                stats.lock_steals += 1;
            }),
        }
        Ok(BucketGuard::new(self, bucket, held.owner, tag, now))
    }

    fn claim_slot(&self, slot: usize) {
        if let Some(live) = self.header().live.get(slot) {
            live.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release_slot(&self, slot: usize) {
        if let Some(live) = self.header().live.get(slot) {
            saturating_decrement(live);
        }
    }

    fn count(&self, update: impl FnOnce(&mut TableStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned, so aligned for Header, and region_len bytes
        // long (asserted in attach), which starts with a Header. Header is made of atomics
        // only: every bit pattern, all-zero included, is a valid value, and the changes
        // other processes make through atomic instructions are what atomics' interior
        // mutability allows behind a shared reference. The borrow of `self` keeps the
        // mapping alive for as long as the reference.
        unsafe { self.region.start().cast::<Header>().as_ref() }
    }

    /// Marks every bucket as held by the live-looking process `pid`, as if it were in the
    /// middle of an update: what a worker sees when another one stalls (tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn hold_every_bucket_for_test(&self, pid: u32) {
        for bucket in self.buckets() {
            bucket.lock.store(
                bucket_lock::owner_word(pid, monotonic_seconds()),
                Ordering::Relaxed,
            );
        }
    }

    fn buckets(&self) -> &[Bucket] {
        // SAFETY: the buckets follow the Header, whose size is a multiple of Bucket's
        // alignment, in a page-aligned mapping of exactly size_of::<Header>() plus
        // bucket_count buckets (region_len). As for `header`, Bucket is atomics only,
        // valid for any bytes and shared safely, and `self` keeps the mapping alive.
        unsafe {
            let first = self
                .region
                .start()
                .add(size_of::<Header>())
                .cast::<Bucket>();
            std::slice::from_raw_parts(first.as_ptr(), self.bucket_count)
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl SharedFlowTable {
    /// Occupied entries, counted by walking every bucket without locks: only for tests
    /// that have stopped writing.
    pub fn occupied(&self) -> usize {
        self.buckets()
            .iter()
            .map(|b| bucket::occupied_slots(b).count())
            .sum()
    }

    /// Panics unless every backend's live counter equals its occupied entries.
    pub fn assert_live_counters_match_entries(&self) {
        let mut counted = vec![0u64; MAX_BACKENDS];
        for slot in self.buckets().iter().flat_map(bucket::occupied_slots) {
            counted[slot] += 1;
        }
        let counters: Vec<u64> = (0..MAX_BACKENDS)
            .map(|slot| self.live_mappings(slot))
            .collect();
        assert_eq!(counters, counted, "live counters drifted from the entries");
    }
}

/// Counters never go below zero: a worker killed between changing an entry and its
/// counter can leave one off by one, and a wrapped counter would starve its backend.
fn saturating_decrement(counter: &AtomicU64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}
