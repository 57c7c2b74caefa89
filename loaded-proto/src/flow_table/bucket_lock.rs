//! The per-bucket lock, shared by processes that can be killed while holding it.
//!
//! The lock word holds the owner's pid and the second (CLOCK_MONOTONIC_COARSE) it was
//! taken. A critical section is a few dozen instructions, so a waiter spins briefly, then
//! yields a few times. If the lock is still held after that, the holder is either dead or
//! frozen (SIGKILL or SIGSTOP in the middle, or a long preemption):
//!
//! - held for [`STALE_AFTER_SECS`] or more: the waiter steals it. A dead holder must never
//!   block its bucket for longer; the entries are plain atomic words, so a half-done
//!   update leaves at worst one wrong mapping and a live counter off by one, never unsafe
//!   memory.
//! - held more recently: the waiter gives up and the packet is handled without the table
//!   (counted). Guessing a backend for a flow we cannot look up would send its packets to a
//!   server that resets the connection; a drop lets the client retransmit.
//!
//! Liveness is judged by age rather than by probing the pid: the pid may be reused, and
//! probing needs a system call on the slow path of every packet for that bucket. The age
//! comes from reading the clock here, at the lock, rather than from the caller's idea of
//! now: a caller delayed between its clock reading and the lock would otherwise look like
//! an old holder.

use super::clock::monotonic_seconds;
use std::sync::atomic::{AtomicU64, Ordering};

/// A lock held this long (in whole seconds of a coarse clock, so at least this minus one)
/// belongs to a dead or frozen process.
pub const STALE_AFTER_SECS: u32 = 2;
const SPINS: u32 = 1 << 10;
const YIELDS: u32 = 8;

/// How a lock was obtained, for the contention counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    AtOnce,
    AfterWaiting,
    /// From a holder that held it for STALE_AFTER_SECS.
    Stolen,
}

/// The lock stayed held by a live-looking owner for longer than we wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// A held lock: release it with `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub owner: u64,
    pub how: Acquired,
}

/// The word that marks `pid` as the owner since `now`; never 0, as no pid is.
pub fn owner_word(pid: u32, now: u32) -> u64 {
    u64::from(pid.max(1)) << 32 | u64::from(now)
}

fn held_since(word: u64) -> u32 {
    word as u32
}

pub fn acquire(lock: &AtomicU64, pid: u32) -> Result<Held, Busy> {
    acquire_with_clock(lock, pid, monotonic_seconds)
}

fn acquire_with_clock(lock: &AtomicU64, pid: u32, clock: impl Fn() -> u32) -> Result<Held, Busy> {
    let owner = owner_word(pid, clock());
    let held = |how| Ok(Held { owner, how });
    if try_take(lock, owner) {
        return held(Acquired::AtOnce);
    }
    for attempt in 0..SPINS + YIELDS {
        if attempt < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        // Read before the CAS so waiters do not steal the line from the holder.
        if lock.load(Ordering::Relaxed) == 0 && try_take(lock, owner) {
            return held(Acquired::AfterWaiting);
        }
    }
    let holder = lock.load(Ordering::Relaxed);
    if holder == 0 {
        return if try_take(lock, owner) {
            held(Acquired::AfterWaiting)
        } else {
            Err(Busy)
        };
    }
    let now = clock();
    if is_stale(held_since(holder), now) {
        // Stamped with the time of the theft, so the next waiter does not steal it at once.
        let owner = owner_word(pid, now);
        if lock
            .compare_exchange(holder, owner, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Held {
                owner,
                how: Acquired::Stolen,
            });
        }
    }
    Err(Busy)
}

/// Whether a lock taken at `since` may be stolen at `now`: held for STALE_AFTER_SECS, or
/// stamped in the future. Every process reads the same system-wide clock, so a stamp ahead
/// of it by more than the second a reading may straddle was not written by an honest
/// holder (a compromised worker could write one to block a bucket for ever).
fn is_stale(since: u32, now: u32) -> bool {
    now.saturating_sub(since) >= STALE_AFTER_SECS || since > now.saturating_add(1)
}

fn try_take(lock: &AtomicU64, owner: u64) -> bool {
    lock.compare_exchange(0, owner, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Releases the lock if it is still ours. `false`: it was stolen while we were frozen, and
/// the thief's hold must not be broken.
pub fn release(lock: &AtomicU64, owner: u64) -> bool {
    lock.compare_exchange(owner, 0, Ordering::Release, Ordering::Relaxed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u32) -> impl Fn() -> u32 {
        move || second
    }

    #[test]
    fn a_free_lock_is_taken_and_released() {
        let lock = AtomicU64::new(0);
        let held = acquire_with_clock(&lock, 42, at(100)).unwrap();
        assert_eq!(
            held,
            Held {
                owner: owner_word(42, 100),
                how: Acquired::AtOnce
            }
        );
        assert_eq!(lock.load(Ordering::Relaxed), held.owner);
        assert!(release(&lock, held.owner));
        assert_eq!(lock.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_recently_taken_lock_is_not_stolen() {
        let other = owner_word(7, 100);
        let lock = AtomicU64::new(other);
        assert_eq!(acquire_with_clock(&lock, 42, at(101)), Err(Busy));
        assert_eq!(lock.load(Ordering::Relaxed), other);
    }

    #[test]
    fn a_lock_held_by_a_dead_process_is_stolen() {
        let lock = AtomicU64::new(owner_word(7, 100));
        let now = 100 + STALE_AFTER_SECS;
        let held = acquire_with_clock(&lock, 42, at(now)).unwrap();
        assert_eq!(
            held,
            Held {
                owner: owner_word(42, now),
                how: Acquired::Stolen
            }
        );
        assert_eq!(lock.load(Ordering::Relaxed), held.owner);
    }

    #[test]
    fn a_lock_stamped_in_the_future_is_stolen() {
        let lock = AtomicU64::new(owner_word(7, 200));
        let held = acquire_with_clock(&lock, 42, at(100)).unwrap();
        assert_eq!(held.how, Acquired::Stolen);
        // A stamp one second ahead is a clock reading that straddled a tick: honest.
        let honest = owner_word(7, 101);
        let lock = AtomicU64::new(honest);
        assert_eq!(acquire_with_clock(&lock, 42, at(100)), Err(Busy));
        assert_eq!(lock.load(Ordering::Relaxed), honest);
    }

    #[test]
    fn a_robbed_owner_does_not_release_the_thief() {
        let victim = owner_word(7, 100);
        let thief = owner_word(42, 103);
        let lock = AtomicU64::new(thief);
        assert!(!release(&lock, victim));
        assert_eq!(lock.load(Ordering::Relaxed), thief);
    }

    #[test]
    fn a_lock_released_while_waiting_is_taken() {
        let lock = std::sync::Arc::new(AtomicU64::new(owner_word(7, monotonic_seconds())));
        let releaser = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.store(0, Ordering::Release))
        };
        let held = loop {
            match acquire(&lock, 42) {
                Ok(held) => break held,
                Err(Busy) => continue,
            }
        };
        releaser.join().unwrap();
        assert_ne!(held.how, Acquired::Stolen);
    }
}
