//! Packets from clients to the VIP: find the flow's backend and send the packet there.

use crate::datapath::flow::{BackendSelector, FlowKey, Opening};
use loaded_proto::wire::{protocol, tcp};

use super::datagram::{Datagram, Family, Side};
use super::transport::{classify, Transport};
use super::{icmp_error, patch, DropReason, Outcome};

/// What a packet to the VIP is, before any rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToVip {
    /// A client's packet of the flow `key`; it needs that flow's backend, and may create
    /// the flow's mapping only if it opens the flow.
    Flow { key: FlowKey, opening: Opening },
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
    let (client_port, vip_port, opening) = match classify(packet, datagram)? {
        Transport::Ports { src, dst } => (src, dst, port_opening(packet, datagram)?),
        Transport::EchoRequest { identifier } => (identifier, 0, Opening::Opens),
        Transport::NoHeader => (0, 0, Opening::LaterFragment),
        Transport::IcmpError => return Ok(ToVip::IcmpError),
        // Neighbour discovery addresses the balancer's own interface, and must reach it.
        Transport::NeighborDiscovery => return Ok(ToVip::NeighborDiscovery),
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
    Ok(ToVip::Flow { key, opening })
}

/// Whether a TCP or UDP packet (whole, or a first fragment) may open its flow: any UDP
/// datagram may, a TCP segment only as a SYN without ACK.
fn port_opening(packet: &[u8], datagram: &Datagram) -> Result<Opening, DropReason> {
    if datagram.protocol != protocol::TCP {
        return Ok(Opening::Opens);
    }
    let flags = *packet
        .get(datagram.transport.start + tcp::field::FLAGS)
        .ok_or(DropReason::Malformed)?;
    Ok(match flags & (tcp::flags::SYN | tcp::flags::ACK) {
        tcp::flags::SYN => Opening::Opens,
        _ => Opening::TcpNotSyn,
    })
}

pub(super) fn rewrite(
    packet: &mut [u8],
    datagram: &Datagram,
    selector: &mut impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let (key, opening) = match classify_to_vip(packet, datagram)? {
        ToVip::Flow { key, opening } => (key, opening),
        ToVip::IcmpError => return icmp_error::rewrite_inbound(packet, datagram, selector),
        ToVip::NeighborDiscovery => return Ok(Outcome::NotOurs),
    };
    let backend = selector
        .backend_for(&key, opening)
        .map_err(|no_pick| DropReason::of_no_pick(no_pick, opening))?;
    if Family::of(backend) != datagram.family() {
        return Err(DropReason::NoBackend);
    }
    patch::translate(packet, datagram, Side::Destination, backend)?;
    Ok(Outcome::Rewritten)
}
