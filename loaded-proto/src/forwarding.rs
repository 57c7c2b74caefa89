//! How packets are forwarded (`forward=`), and the packet marks that name a server in the
//! kernel-assisted mode.
//!
//! In kernel mode a worker sees only a connection's first packet and answers with a mark;
//! the master's nftables map turns the mark into the server's address (DNAT) and conntrack
//! does the rest. The mark is the server's slot in the shared flow table's backend
//! directory, which every process agrees on through the shared memory, plus one, under a
//! fixed tag in the high half: another program's marks cannot be mistaken for ours (its
//! high half differs), and 0 still means "no decision".

use serde::{Deserialize, Serialize};
use std::fmt;

/// Who rewrites the balanced packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// The worker rewrites every packet in both directions (NFQUEUE for all of them).
    #[default]
    Userspace,
    /// The worker decides a connection's first packet (a mark), nftables DNAT and
    /// conntrack forward the rest.
    Kernel,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forward::Userspace => "userspace",
            Forward::Kernel => "kernel",
        })
    }
}

/// The high half of every mark loaded gives ("LD").
pub const MARK_TAG: u32 = 0x4c44_0000;
/// The bits that say whether a mark (or a connection's mark) is loaded's.
pub const MARK_TAG_MASK: u32 = 0xffff_0000;
/// The low half: the directory slot plus one.
const SLOT_MASK: u32 = !MARK_TAG_MASK;

/// The mark naming the server in directory slot `slot`; `None` for a slot the low half
/// cannot hold (the directory is far smaller, so only a bug gets here).
pub fn mark_for_slot(slot: usize) -> Option<u32> {
    let low = u32::try_from(slot).ok()?.checked_add(1)?;
    (low <= SLOT_MASK).then_some(MARK_TAG | low)
}

/// The directory slot a mark names; `None` for 0, another program's mark, or our tag
/// without a slot.
pub fn slot_of_mark(mark: u32) -> Option<usize> {
    if mark & MARK_TAG_MASK != MARK_TAG {
        return None;
    }
    let low = mark & SLOT_MASK;
    (low != 0).then(|| (low - 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_carry_the_tag_and_the_slot_plus_one() {
        assert_eq!(mark_for_slot(0), Some(0x4c44_0001));
        assert_eq!(mark_for_slot(255), Some(0x4c44_0100));
        assert_eq!(mark_for_slot(0xfffe), Some(0x4c44_ffff));
        assert_eq!(mark_for_slot(0xffff), None, "the low half would wrap to 0");
        assert_eq!(mark_for_slot(usize::MAX), None);
    }

    #[test]
    fn every_slot_round_trips() {
        for slot in [0, 1, 2, 255, 256, 0xfffe] {
            let mark = mark_for_slot(slot).unwrap();
            assert_eq!(mark & MARK_TAG_MASK, MARK_TAG);
            assert_eq!(slot_of_mark(mark), Some(slot));
        }
    }

    #[test]
    fn other_marks_name_no_slot() {
        assert_eq!(slot_of_mark(0), None, "0 is no decision");
        assert_eq!(slot_of_mark(MARK_TAG), None, "our tag without a slot");
        assert_eq!(slot_of_mark(0x0000_0001), None, "someone else's mark");
        assert_eq!(slot_of_mark(0x4c45_0001), None, "another tag");
        assert_eq!(slot_of_mark(0xffff_ffff), None);
    }

    #[test]
    fn forward_is_shown_as_written_in_the_config() {
        assert_eq!(Forward::default(), Forward::Userspace);
        assert_eq!(Forward::Userspace.to_string(), "userspace");
        assert_eq!(Forward::Kernel.to_string(), "kernel");
    }
}
