//! The bytes of the shared region, as `repr(C)` structs of atomics.
//!
//! Every field is an atomic integer, and all-zero bytes are the empty table: a freshly
//! truncated memfd needs no initialisation. The two identity words are filled in by the
//! first process that maps the region (`SharedFlowTable::map`), with a compare-and-swap from
//! zero, so whoever comes first needs no coordination with the others.
//!
//! ```text
//! Header (8320 bytes)
//!   Identity   layout id, hash seed (2 words)            one cache line
//!   Cursors    round-robin cursor per family             one cache line
//!   directory  MAX_BACKENDS x (state, address)           which backend owns which slot
//!   live       MAX_BACKENDS x live-mapping count         indexed by directory slot
//! Bucket x bucket_count(capacity), 384 bytes each
//!   lock, tag per way, last-used second per way          one cache line
//!   ENTRIES_PER_BUCKET x Entry (client, key meta + slot, backend address)
//! ```

use std::mem::size_of;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};

/// Ways per bucket: a lookup compares 8 tags in one cache line.
pub const ENTRIES_PER_BUCKET: usize = 8;

/// Backends that can ever be known to one region (its lifetime is the master's). Slots are
/// handed out in the region's directory and never reused, so counters and cursors mean the
/// same to every worker whatever order it learned of the servers in.
pub const MAX_BACKENDS: usize = 256;

/// Written into a fresh region by its first user; anything else there is a region laid out
/// by another build, which must not be read with this one's offsets.
/// "loaded" followed by the layout version.
pub const LAYOUT_ID: u64 = 0x6c6f_6164_6564_0001;

#[repr(C, align(64))]
pub struct Identity {
    /// 0 until the first mapper stores LAYOUT_ID.
    pub layout: AtomicU64,
    /// The SipHash key; each word is 0 until the first mapper stores a random non-zero one.
    pub seed: [AtomicU64; 2],
}

/// Contended by every new mapping under `rr`, so it does not share a line with the identity,
/// which every worker only reads.
#[repr(C, align(64))]
pub struct Cursors {
    /// Turns taken so far, per `Family::index`.
    pub round_robin: [AtomicU64; 2],
}

#[repr(C)]
pub struct DirectorySlot {
    /// 0 free; see `directory` for the claimed and ready encodings.
    pub state: AtomicU64,
    /// The backend address as `key::address_words`.
    pub address: [AtomicU64; 2],
}

#[repr(C, align(64))]
pub struct Header {
    pub identity: Identity,
    pub cursors: Cursors,
    pub directory: [DirectorySlot; MAX_BACKENDS],
    /// Occupied entries (idle ones included until swept or reused) per directory slot.
    pub live: [AtomicU64; MAX_BACKENDS],
}

#[repr(C, align(64))]
pub struct Bucket {
    /// 0 unlocked, else the owner's pid and the second it took the lock (`bucket_lock`).
    pub lock: AtomicU64,
    /// Per way: 0 empty, else a 16-bit fingerprint of the key's hash, so that a lookup
    /// reads an entry's key only when its fingerprint matches.
    pub tags: [AtomicU16; ENTRIES_PER_BUCKET],
    /// Per way: second of CLOCK_MONOTONIC_COARSE of the last packet.
    pub last_used: [AtomicU32; ENTRIES_PER_BUCKET],
    /// Keeps the entries off the header line.
    pub _spare: AtomicU64,
    pub entries: [Entry; ENTRIES_PER_BUCKET],
}

#[repr(C)]
pub struct Entry {
    /// Client address as `key::address_words`.
    pub client: [AtomicU64; 2],
    /// Key bits (`key::KEY_META_MASK`) and, above them, the backend's directory slot.
    pub meta: AtomicU64,
    /// The backend address itself, in the key's family.
    pub backend: [AtomicU64; 2],
}

/// Bytes of table memory per flow: the bucket, with its lock, tags and times, shared out
/// over its ways. 48 bytes; a test keeps this figure true.
pub const BYTES_PER_ENTRY: usize = size_of::<Bucket>() / ENTRIES_PER_BUCKET;

/// Buckets for at least `capacity` entries.
pub fn bucket_count(capacity: usize) -> usize {
    capacity.div_ceil(ENTRIES_PER_BUCKET).max(1)
}

pub fn region_len(capacity: usize) -> usize {
    size_of::<Header>() + bucket_count(capacity) * size_of::<Bucket>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::align_of;

    #[test]
    fn sizes_match_the_documentation() {
        assert_eq!(size_of::<Entry>(), 40);
        assert_eq!(size_of::<Bucket>(), 384);
        assert_eq!(std::mem::offset_of!(Bucket, entries), 64);
        assert_eq!(BYTES_PER_ENTRY, 48);
        assert_eq!(size_of::<Header>(), 8320);
        assert_eq!(size_of::<Header>() % align_of::<Bucket>(), 0);
    }

    #[test]
    fn default_max_flows_needs_48_mib() {
        let default_max_flows = crate::config::DEFAULT_MAX_FLOWS as usize;
        assert_eq!(region_len(default_max_flows), 8320 + 48 * 1024 * 1024);
    }

    #[test]
    fn capacity_rounds_up_to_whole_buckets() {
        assert_eq!(bucket_count(0), 1);
        assert_eq!(bucket_count(8), 1);
        assert_eq!(bucket_count(9), 2);
        assert_eq!(region_len(9) - region_len(8), size_of::<Bucket>());
    }
}
