//! The NAT rewrite: which queued packets are ours, and how they are rewritten in place.

use super::flow::{BackendSelector, Vips};

/// What to do with a queued packet after [`rewrite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not balancer traffic: accept it unchanged.
    NotOurs,
    /// Rewritten in place: accept the modified bytes.
    Rewritten,
    /// Balancer traffic that cannot be forwarded.
    Drop(DropReason),
}

/// Why a packet of balancer traffic is dropped; each is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    UnsupportedProtocol,
    NoBackend,
    UnknownFlow,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::Malformed,
        DropReason::UnsupportedProtocol,
        DropReason::NoBackend,
        DropReason::UnknownFlow,
    ];

    /// The name of the reason in counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedProtocol => "unsupported",
            DropReason::NoBackend => "no_backend",
            DropReason::UnknownFlow => "unknown_flow",
        }
    }
}

/// Decides and applies the rewrite of one queued IP packet, in place; its length never
/// changes.
pub fn rewrite(packet: &mut [u8], vips: &Vips, selector: &mut impl BackendSelector) -> Outcome {
    let _ = (packet, vips, selector);
    Outcome::NotOurs
}
