//! What a worker may do with one bucket while it holds the bucket's lock.
//!
//! Every entry field is read and written only under the lock, so Relaxed ordering suffices:
//! the lock's Acquire and Release order them. The one exception, the sweep's peek at tags
//! and times before locking, only decides whether locking is worth it.

use super::bucket_lock;
use super::clock::is_idle;
use super::key::{address_from_words, address_words, family_from_meta, TableKey, KEY_META_MASK};
use super::layout::{Bucket, Entry, ENTRIES_PER_BUCKET};
use super::SharedFlowTable;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Where the entry's backend slot sits in its meta word, above the key bits.
const SLOT_SHIFT: u32 = 48;

/// Where a mapping sends its flow: the backend address, and the directory slot that
/// counts the backend's mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendSlot {
    pub addr: IpAddr,
    pub slot: usize,
}

/// One of a bucket's entries, valid while its guard is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Way(usize);

/// What an insert had to overwrite to make room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Displaced {
    Nothing,
    /// A mapping idle for the flow timeout, which counts as free.
    Idle,
    /// The least recently used live mapping of a full bucket.
    Evicted(TableKey),
}

/// A locked bucket; the lock is released on drop.
pub struct BucketGuard<'t> {
    table: &'t SharedFlowTable,
    bucket: &'t Bucket,
    owner: u64,
    /// The fingerprint of the hash this guard was taken for; see `fingerprint`.
    tag: u16,
    now: u32,
}

/// The tag of a hash: its low 16 bits (the bucket index comes from the high ones), never 0,
/// which marks an empty way.
pub(super) fn fingerprint(hash: u64) -> u16 {
    (hash as u16).max(1)
}

impl<'t> BucketGuard<'t> {
    pub(super) fn new(
        table: &'t SharedFlowTable,
        bucket: &'t Bucket,
        owner: u64,
        tag: u16,
        now: u32,
    ) -> Self {
        BucketGuard {
            table,
            bucket,
            owner,
            tag,
            now,
        }
    }

    /// The live mapping of `key`, if the bucket has one that is not idle.
    pub fn find(&self, key: &TableKey) -> Option<Way> {
        let words = key.words();
        (0..ENTRIES_PER_BUCKET).map(Way).find(|&way| {
            self.bucket.tags[way.0].load(Relaxed) == self.tag
                && !self.is_idle(way)
                && self.stored_key_words(way) == words
        })
    }

    pub fn mapping(&self, way: Way) -> BackendSlot {
        let entry = self.entry(way);
        let meta = entry.meta.load(Relaxed);
        let words = [
            entry.backend[0].load(Relaxed),
            entry.backend[1].load(Relaxed),
        ];
        BackendSlot {
            addr: address_from_words(family_from_meta(meta), words),
            slot: (meta >> SLOT_SHIFT) as usize,
        }
    }

    /// Marks the mapping used now, postponing its expiry.
    pub fn touch(&mut self, way: Way) {
        self.bucket.last_used[way.0].store(self.now, Relaxed);
    }

    /// Points an existing mapping at another backend (its own went down).
    pub fn reassign(&mut self, way: Way, to: BackendSlot) {
        let old = self.mapping(way);
        self.table.release_slot(old.slot);
        self.write_backend(way, to);
        self.table.claim_slot(to.slot);
        self.touch(way);
        self.table.count(|stats| stats.reassigned += 1);
    }

    /// Adds a mapping for `key`, which `find` did not find. It takes, in order of
    /// preference: an idle entry of the same key, an empty way, any idle entry, and
    /// failing those the least recently used entry, which is evicted.
    pub fn insert(&mut self, key: &TableKey, to: BackendSlot) -> Displaced {
        debug_assert!(self.find(key).is_none(), "inserting a key that is mapped");
        let words = key.words();
        let way = (0..ENTRIES_PER_BUCKET)
            .map(Way)
            .min_by_key(|&way| self.reuse_preference(way, &words))
            .unwrap_or(Way(0));
        let displaced = self.clear(way);
        let entry = self.entry(way);
        entry.client[0].store(words[0], Relaxed);
        entry.client[1].store(words[1], Relaxed);
        entry.meta.store(words[2], Relaxed);
        self.write_backend(way, to);
        self.bucket.tags[way.0].store(self.tag, Relaxed);
        self.table.claim_slot(to.slot);
        self.touch(way);
        self.table.count(|stats| stats.inserted += 1);
        displaced
    }

    /// Removes every idle mapping of the bucket; returns how many.
    pub(super) fn clear_idle(&mut self) -> usize {
        let mut cleared = 0;
        for way in (0..ENTRIES_PER_BUCKET).map(Way) {
            if self.is_occupied(way) && self.is_idle(way) {
                self.clear(way);
                cleared += 1;
            }
        }
        cleared
    }

    /// Lower is better; among live entries, the least recently used.
    fn reuse_preference(&self, way: Way, words: &[u64; 3]) -> (u8, u32) {
        if !self.is_occupied(way) {
            (1, 0)
        } else if self.is_idle(way) {
            let same_key = self.bucket.tags[way.0].load(Relaxed) == self.tag
                && self.stored_key_words(way) == *words;
            (if same_key { 0 } else { 2 }, 0)
        } else {
            (3, self.bucket.last_used[way.0].load(Relaxed))
        }
    }

    /// Empties a way, keeping the backend's live counter equal to its occupied entries.
    fn clear(&mut self, way: Way) -> Displaced {
        if !self.is_occupied(way) {
            return Displaced::Nothing;
        }
        let displaced = if self.is_idle(way) {
            Displaced::Idle
        } else {
            let [high, low, meta] = self.stored_key_words(way);
            Displaced::Evicted(TableKey::from_words(high, low, meta))
        };
        self.table.release_slot(self.mapping(way).slot);
        self.bucket.tags[way.0].store(0, Relaxed);
        match displaced {
            Displaced::Evicted(_) => self.table.count(|stats| stats.evicted += 1),
            _ => self.table.count(|stats| stats.expired += 1),
        }
        displaced
    }

    fn write_backend(&self, way: Way, to: BackendSlot) {
        let entry = self.entry(way);
        let [high, low] = address_words(to.addr);
        entry.backend[0].store(high, Relaxed);
        entry.backend[1].store(low, Relaxed);
        let key_meta = entry.meta.load(Relaxed) & KEY_META_MASK;
        entry
            .meta
            .store(key_meta | (to.slot as u64) << SLOT_SHIFT, Relaxed);
    }

    fn stored_key_words(&self, way: Way) -> [u64; 3] {
        let entry = self.entry(way);
        [
            entry.client[0].load(Relaxed),
            entry.client[1].load(Relaxed),
            entry.meta.load(Relaxed) & KEY_META_MASK,
        ]
    }

    fn is_occupied(&self, way: Way) -> bool {
        self.bucket.tags[way.0].load(Relaxed) != 0
    }

    fn is_idle(&self, way: Way) -> bool {
        let last_used = self.bucket.last_used[way.0].load(Relaxed);
        is_idle(last_used, self.now, self.table.flow_timeout_secs())
    }

    fn entry(&self, way: Way) -> &'t Entry {
        &self.bucket.entries[way.0]
    }
}

impl Drop for BucketGuard<'_> {
    fn drop(&mut self) {
        if !bucket_lock::release(&self.bucket.lock, self.owner) {
            self.table.count(|stats| stats.lock_lost += 1);
        }
    }
}

/// Whether a sweep would find anything to clear, judged without the lock.
pub(super) fn has_idle(bucket: &Bucket, now: u32, timeout: u32) -> bool {
    (0..ENTRIES_PER_BUCKET).any(|way| {
        bucket.tags[way].load(Relaxed) != 0
            && is_idle(bucket.last_used[way].load(Relaxed), now, timeout)
    })
}

/// The directory slots of a bucket's occupied entries, read without the lock (tests only).
#[cfg(any(test, feature = "test-support"))]
pub(super) fn occupied_slots(bucket: &Bucket) -> impl Iterator<Item = usize> + '_ {
    (0..ENTRIES_PER_BUCKET)
        .filter(|&way| bucket.tags[way].load(Relaxed) != 0)
        .map(|way| (bucket.entries[way].meta.load(Relaxed) >> SLOT_SHIFT) as usize)
}
