//! Packets from clients to the VIP: find the flow's backend and send the packet there.

use crate::datapath::flow::{BackendSelector, FlowKey, NoPick};

use super::datagram::{Datagram, Family, Side};
use super::transport::{classify, Transport};
use super::{icmp_error, patch, DropReason, Outcome};

/// What a packet to the VIP is, before any rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToVip {
    /// A client's packet of the flow `FlowKey`; it needs that flow's backend.
    Flow(FlowKey),
    /// An ICMP error about a packet the balancer sent from the VIP.
    IcmpError,
    /// Neighbour discovery for the balancer's own interface: not balanced.
    NeighborDiscovery,
}

/// Classifies a packet to the VIP (validating its transport header) without changing it.
pub(super) fn classify_to_vip(packet: &[u8], datagram: &Datagram) -> Result<ToVip, DropReason> {
    if datagram.routing_segments_left != 0 {
        // The VIP is only a waypoint; the transport checksum covers the final destination,
        // which translating the VIP would not account for.
        return Err(DropReason::UnsupportedProtocol);
    }
    if datagram.authenticated {
        // AH's integrity check covers the destination address: the server would discard
        // the rewritten packet, so it is dropped here, as documented.
        return Err(DropReason::UnsupportedProtocol);
    }
    let (client_port, vip_port) = match classify(packet, datagram)? {
        Transport::Ports { src, dst } => (src, dst),
        Transport::EchoRequest { identifier } => (identifier, 0),
        Transport::NoHeader => (0, 0),
        Transport::IcmpError => return Ok(ToVip::IcmpError),
        // Neighbour discovery addresses the balancer's own interface, and must reach it.
        Transport::NeighborDiscovery => return Ok(ToVip::NeighborDiscovery),
        Transport::EchoReply { .. } | Transport::OtherIcmp | Transport::Unsupported => {
            return Err(DropReason::UnsupportedProtocol)
        }
    };
    Ok(ToVip::Flow(FlowKey {
        client: datagram.header.src,
        vip: datagram.header.dst,
        protocol: datagram.protocol,
        client_port,
        vip_port,
    }))
}

pub(super) fn rewrite(
    packet: &mut [u8],
    datagram: &Datagram,
    selector: &mut impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let key = match classify_to_vip(packet, datagram)? {
        ToVip::Flow(key) => key,
        ToVip::IcmpError => return icmp_error::rewrite_inbound(packet, datagram, selector),
        ToVip::NeighborDiscovery => return Ok(Outcome::NotOurs),
    };
    let backend = selector
        .backend_for(&key)
        .map_err(|no_pick| match no_pick {
            NoPick::NoServer => DropReason::NoBackend,
            NoPick::Busy => DropReason::TableBusy,
        })?;
    if Family::of(backend) != datagram.family() {
        return Err(DropReason::NoBackend);
    }
    patch::translate(packet, datagram, Side::Destination, backend)?;
    Ok(Outcome::Rewritten)
}
