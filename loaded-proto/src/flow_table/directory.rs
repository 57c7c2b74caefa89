//! The region's backend directory: which directory slot (and so which live counter) each
//! backend address owns.
//!
//! Workers learn of servers from their config and, later, from hot-plug messages; a worker
//! restarted after a hot-plug may see them in another order than its peers. Agreeing on
//! slots through the region itself makes that order irrelevant. Slots are claimed in order
//! and never freed, so a region knows at most MAX_BACKENDS addresses in its lifetime.
//!
//! A slot's state word: 0 free; CLAIMED with the second of the claim while its claimant
//! writes the address; READY with the family once the address may be read, and WITHDRAWN
//! while the server is out of the configuration (a reload removed it; only the master sets
//! and clears it). A withdrawn slot keeps its address: slots are never freed, and a server
//! configured again gets its old slot back.

use super::clock::monotonic_seconds;
use super::key::{address_from_words, address_words};
use super::layout::{DirectorySlot, MAX_BACKENDS};
use crate::wire::Family;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

const CLAIMED: u64 = 1 << 62;
const READY: u64 = 1 << 63;
const READY_V6: u64 = 1;
const WITHDRAWN: u64 = 1 << 1;
/// A claim this old was abandoned by a dead process: writing two words takes nanoseconds.
const ABANDONED_AFTER_SECS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectoryFull;

impl fmt::Display for DirectoryFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the flow table knows {MAX_BACKENDS} backends already, its maximum"
        )
    }
}

impl std::error::Error for DirectoryFull {}

/// The slot of `addr`, claiming the first free one if no slot has it yet.
pub fn register(
    slots: &[DirectorySlot; MAX_BACKENDS],
    addr: IpAddr,
) -> Result<usize, DirectoryFull> {
    let mut index = 0;
    while let Some(slot) = slots.get(index) {
        let state = slot.state.load(Ordering::Acquire);
        if state & READY != 0 {
            if ready_address(slot, state) == addr {
                return Ok(index);
            }
            index += 1;
        } else if state == 0 || is_abandoned(state) {
            let claim = CLAIMED | u64::from(monotonic_seconds());
            if slot
                .state
                .compare_exchange(state, claim, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let [high, low] = address_words(addr);
                slot.address[0].store(high, Ordering::Relaxed);
                slot.address[1].store(low, Ordering::Relaxed);
                let family = match Family::of(addr) {
                    Family::V4 => 0,
                    Family::V6 => READY_V6,
                };
                slot.state.store(READY | family, Ordering::Release);
                return Ok(index);
            }
            // Someone else claimed it first: look at what they put there.
        } else {
            // Claimed: the address is being written; it may be ours, so wait for it.
            std::thread::yield_now();
        }
    }
    Err(DirectoryFull)
}

/// Marks the ready slot `index` withdrawn or not; `false` if it holds no server.
pub fn set_withdrawn(slots: &[DirectorySlot; MAX_BACKENDS], index: usize, withdrawn: bool) -> bool {
    let Some(slot) = slots.get(index) else {
        return false;
    };
    if slot.state.load(Ordering::Acquire) & READY == 0 {
        return false;
    }
    if withdrawn {
        slot.state.fetch_or(WITHDRAWN, Ordering::AcqRel);
    } else {
        slot.state.fetch_and(!WITHDRAWN, Ordering::AcqRel);
    }
    true
}

/// Whether the server in slot `index` was withdrawn by a reload.
pub fn is_withdrawn(slots: &[DirectorySlot; MAX_BACKENDS], index: usize) -> bool {
    slots.get(index).is_some_and(|slot| {
        let state = slot.state.load(Ordering::Acquire);
        state & READY != 0 && state & WITHDRAWN != 0
    })
}

/// Whether a slot that is not READY may be claimed anew: its claim is old (the claimant
/// died), stamped in the future, or the word is no state we write at all. The last two
/// only a compromised process writes; treating them as abandoned keeps `register` from
/// waiting on them for ever, so every wait ends within ABANDONED_AFTER_SECS.
fn is_abandoned(state: u64) -> bool {
    if state & CLAIMED == 0 || state & !(CLAIMED | u64::from(u32::MAX)) != 0 {
        return true;
    }
    let claimed_at = state as u32;
    let now = monotonic_seconds();
    now.saturating_sub(claimed_at) >= ABANDONED_AFTER_SECS || claimed_at > now.saturating_add(1)
}

/// The address of a READY slot; `state` is its state word, loaded with Acquire.
fn ready_address(slot: &DirectorySlot, state: u64) -> IpAddr {
    let family = if state & READY_V6 != 0 {
        Family::V6
    } else {
        Family::V4
    };
    let words = [
        slot.address[0].load(Ordering::Relaxed),
        slot.address[1].load(Ordering::Relaxed),
    ];
    address_from_words(family, words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn empty_directory() -> Box<[DirectorySlot; MAX_BACKENDS]> {
        Box::new(std::array::from_fn(|_| DirectorySlot {
            state: Default::default(),
            address: Default::default(),
        }))
    }

    #[test]
    fn an_address_keeps_its_slot_whoever_asks() {
        let directory = empty_directory();
        let a: IpAddr = "198.19.0.1".parse().unwrap();
        let b: IpAddr = "fd00:19::1".parse().unwrap();
        assert_eq!(register(&directory, a), Ok(0));
        assert_eq!(register(&directory, b), Ok(1));
        assert_eq!(register(&directory, a), Ok(0));
        assert_eq!(register(&directory, b), Ok(1));
    }

    #[test]
    fn families_with_equal_bits_get_their_own_slots() {
        let directory = empty_directory();
        assert_eq!(register(&directory, "0.0.0.1".parse().unwrap()), Ok(0));
        assert_eq!(register(&directory, "::1".parse().unwrap()), Ok(1));
    }

    #[test]
    fn a_full_directory_refuses_new_addresses_only() {
        let directory = empty_directory();
        for n in 0..MAX_BACKENDS as u32 {
            assert_eq!(
                register(&directory, Ipv4Addr::from(n + 1).into()),
                Ok(n as usize)
            );
        }
        assert_eq!(
            register(&directory, "10.0.0.1".parse().unwrap()),
            Err(DirectoryFull)
        );
        assert_eq!(register(&directory, Ipv4Addr::from(3).into()), Ok(2));
    }

    #[test]
    fn a_withdrawn_slot_keeps_its_address_and_comes_back() {
        let directory = empty_directory();
        let a: IpAddr = "198.19.0.1".parse().unwrap();
        let b: IpAddr = "fd00:19::1".parse().unwrap();
        assert_eq!(register(&directory, a), Ok(0));
        assert_eq!(register(&directory, b), Ok(1));
        assert!(!set_withdrawn(&directory, 2, true), "free slot");
        assert!(set_withdrawn(&directory, 1, true));
        assert!(is_withdrawn(&directory, 1) && !is_withdrawn(&directory, 0));
        assert_eq!(register(&directory, b), Ok(1), "same slot, same family");
        assert!(
            is_withdrawn(&directory, 1),
            "registering does not reinstate"
        );
        assert!(set_withdrawn(&directory, 1, false));
        assert!(!is_withdrawn(&directory, 1));
        assert_eq!(register(&directory, b), Ok(1));
    }

    #[test]
    fn an_abandoned_claim_is_taken_over() {
        let directory = empty_directory();
        let long_ago = monotonic_seconds().saturating_sub(ABANDONED_AFTER_SECS);
        directory[0]
            .state
            .store(CLAIMED | u64::from(long_ago), Ordering::Relaxed);
        assert_eq!(register(&directory, "198.19.0.1".parse().unwrap()), Ok(0));
    }

    #[test]
    fn claims_stamped_in_the_future_and_odd_words_do_not_hold_register() {
        let future = u64::from(monotonic_seconds() + 1000);
        for odd in [CLAIMED | future, 0x1234, CLAIMED | 1 << 40] {
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let directory = empty_directory();
                directory[0].state.store(odd, Ordering::Relaxed);
                let _ = done.send(register(&directory, "198.19.0.1".parse().unwrap()));
            });
            let result = finished.recv_timeout(std::time::Duration::from_secs(5));
            assert_eq!(result, Ok(Ok(0)), "state word {odd:#x}");
        }
    }
}
