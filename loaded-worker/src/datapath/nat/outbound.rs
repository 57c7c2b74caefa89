//! Packets from backends to clients: make them come from the VIP.

use std::net::IpAddr;

use crate::datapath::flow::BackendSelector;

use super::datagram::{Datagram, Side};
use super::transport::{classify, Transport};
use super::{icmp_error, patch, DropReason, Outcome};

/// Rewrites a packet from a backend to come from `vip`, of the packet's family.
pub(super) fn rewrite(
    packet: &mut [u8],
    datagram: &Datagram,
    vip: IpAddr,
    selector: &impl BackendSelector,
) -> Result<Outcome, DropReason> {
    match classify(packet, datagram)? {
        Transport::Ports { .. } | Transport::EchoReply { .. } | Transport::NoHeader => {}
        Transport::IcmpError => {
            return icmp_error::rewrite_outbound(packet, datagram, vip, selector)
        }
        Transport::NeighborDiscovery => return Ok(Outcome::NotOurs),
        // A backend's own echo request would be answered to the VIP with an echo reply,
        // which inbound cannot map back; other messages have no flow at all.
        Transport::EchoRequest { .. } | Transport::OtherIcmp | Transport::Unsupported => {
            return Err(DropReason::UnsupportedProtocol)
        }
    }
    patch::translate(packet, datagram, Side::Source, vip)?;
    Ok(Outcome::Rewritten)
}
