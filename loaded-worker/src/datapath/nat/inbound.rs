//! Packets from clients to the VIP: find the flow's backend and send the packet there.

use crate::datapath::flow::{BackendSelector, FlowKey};

use super::datagram::{Datagram, Family, Side};
use super::transport::{classify, Transport};
use super::{icmp_error, patch, DropReason, Outcome};

pub(super) fn rewrite(
    packet: &mut [u8],
    datagram: &Datagram,
    selector: &mut impl BackendSelector,
) -> Result<Outcome, DropReason> {
    if datagram.routing_segments_left != 0 {
        // The VIP is only a waypoint; the transport checksum covers the final destination,
        // which translating the VIP would not account for.
        return Err(DropReason::UnsupportedProtocol);
    }
    let (client_port, vip_port) = match classify(packet, datagram)? {
        Transport::Ports { src, dst } => (src, dst),
        Transport::EchoRequest { identifier } => (identifier, 0),
        Transport::NoHeader => (0, 0),
        Transport::IcmpError => return icmp_error::rewrite_inbound(packet, datagram, selector),
        // Neighbour discovery addresses the balancer's own interface, and must reach it.
        Transport::NeighborDiscovery => return Ok(Outcome::NotOurs),
        Transport::EchoReply { .. } | Transport::OtherIcmp | Transport::Unsupported => {
            return Err(DropReason::UnsupportedProtocol)
        }
    };
    let key = FlowKey {
        client: datagram.header.src,
        vip: datagram.header.dst,
        protocol: datagram.protocol,
        client_port,
        vip_port,
    };
    let backend = selector
        .backend_for(&key)
        .filter(|backend| Family::of(*backend) == datagram.family())
        .ok_or(DropReason::NoBackend)?;
    patch::translate(packet, datagram, Side::Destination, backend)?;
    Ok(Outcome::Rewritten)
}
