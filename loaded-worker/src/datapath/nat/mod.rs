//! The NAT rewrite: which queued packets are ours, and how they are rewritten in place.
//!
//! Inbound packets (to the VIP) get the flow's backend as destination, outbound packets
//! (from a backend) the VIP as source; ICMP errors also have the packet they quote
//! translated. Checksums are updated incrementally, and nothing is allocated.

mod datagram;
mod icmp_error;
mod inbound;
mod offload;
mod outbound;
mod patch;
mod transport;

#[cfg(test)]
pub(crate) mod tests;

use std::net::IpAddr;

pub use self::offload::complete_transport_checksum;

use self::datagram::{Extent, Family, IpHeader};
use super::flow::{BackendSelector, NoPick, Opening, Vips};
pub use inbound::ToVip;

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
    /// Lengths or fields that do not add up.
    Malformed,
    /// A protocol or ICMP type the balancer does not translate.
    UnsupportedProtocol,
    /// No backend is available for a new flow.
    NoBackend,
    /// The flow's table bucket stayed busy (see `NoPick::Busy`).
    TableBusy,
    /// An ICMP error quotes a flow that has no mapping.
    UnknownFlow,
    /// A TCP segment other than a SYN of a flow that has no mapping.
    TcpNotSynUnknownFlow,
    /// A later fragment of a flow that has no mapping.
    FragmentUnknownFlow,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::Malformed,
        DropReason::UnsupportedProtocol,
        DropReason::NoBackend,
        DropReason::TableBusy,
        DropReason::UnknownFlow,
        DropReason::TcpNotSynUnknownFlow,
        DropReason::FragmentUnknownFlow,
    ];

    /// Why a client's packet that got no server is dropped.
    pub fn of_no_pick(no_pick: NoPick, opening: Opening) -> DropReason {
        match (no_pick, opening) {
            (NoPick::NoServer, _) => DropReason::NoBackend,
            (NoPick::Busy, _) => DropReason::TableBusy,
            (NoPick::NoMapping, Opening::LaterFragment) => DropReason::FragmentUnknownFlow,
            // `Opens` never lacks a mapping; counted with TCP should a selector say so.
            (NoPick::NoMapping, Opening::TcpNotSyn | Opening::Opens) => {
                DropReason::TcpNotSynUnknownFlow
            }
        }
    }

    /// The reason's place in `ALL` (declared in that order), which is its counter's in the
    /// shared counters.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The name of the reason in counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedProtocol => "unsupported",
            DropReason::NoBackend => "no_backend",
            DropReason::TableBusy => "table_busy",
            DropReason::UnknownFlow => "unknown_flow",
            DropReason::TcpNotSynUnknownFlow => "tcp_not_syn_unknown_flow",
            DropReason::FragmentUnknownFlow => "fragment_unknown_flow",
        }
    }
}

/// Decides and applies the rewrite of one queued IP packet, in place; its length never
/// changes. Bytes beyond the IP packet's own length are ignored.
pub fn rewrite(packet: &mut [u8], vips: &Vips, selector: &mut impl BackendSelector) -> Outcome {
    match decide_and_rewrite(packet, vips, selector) {
        Ok(outcome) => outcome,
        Err(reason) => Outcome::Drop(reason),
    }
}

/// Where a queued packet is going, for the kernel-assisted mode, which decides but never
/// rewrites: `Ok(None)` for a packet not addressed to a VIP. Uses the same parsing and
/// validation as [`rewrite`], so both modes accept and refuse the same packets.
pub fn classify_to_vip(packet: &[u8], vips: &Vips) -> Result<Option<ToVip>, DropReason> {
    let malformed = |_| DropReason::Malformed;
    let header = IpHeader::parse(packet, 0, Extent::Whole).map_err(malformed)?;
    if !vips.contains(header.dst) {
        return Ok(None);
    }
    let datagram = header.locate_transport(packet).map_err(malformed)?;
    inbound::classify_to_vip(packet, &datagram).map(Some)
}

fn decide_and_rewrite(
    packet: &mut [u8],
    vips: &Vips,
    selector: &mut impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let malformed = |_| DropReason::Malformed;
    let header = IpHeader::parse(packet, 0, Extent::Whole).map_err(malformed)?;
    if vips.contains(header.dst) {
        let datagram = header.locate_transport(packet).map_err(malformed)?;
        return inbound::rewrite(packet, &datagram, selector);
    }
    let vip = match header.family {
        Family::V4 => vips.v4.map(IpAddr::V4),
        Family::V6 => vips.v6.map(IpAddr::V6),
    };
    match vip {
        Some(vip) if selector.is_sending_backend(header.src) => {
            let datagram = header.locate_transport(packet).map_err(malformed)?;
            outbound::rewrite(packet, &datagram, vip, selector)
        }
        Some(vip) => restore_vip_in_error(packet, header, vip, selector),
        None => Ok(Outcome::NotOurs),
    }
}

/// Traffic neither to the VIP nor from a server: ours only if it is an ICMP error to a
/// client that quotes one of its packets to the VIP after the rewrite (queued from OUTPUT:
/// the balancer's own errors). Anything else, malformed included, is not our business.
fn restore_vip_in_error(
    packet: &mut [u8],
    header: IpHeader,
    vip: IpAddr,
    selector: &impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let Ok(datagram) = header.locate_transport(packet) else {
        return Ok(Outcome::NotOurs);
    };
    if datagram.protocol != datagram.family().icmp_protocol() {
        return Ok(Outcome::NotOurs);
    }
    match transport::classify(packet, &datagram) {
        Ok(transport::Transport::IcmpError) => {
            icmp_error::restore_vip_in_quote(packet, &datagram, vip, selector)
        }
        _ => Ok(Outcome::NotOurs),
    }
}
