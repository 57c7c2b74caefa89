//! ICMP errors about a balanced flow. The error quotes a packet as its receiver saw it, so
//! the quote is translated along with the error: the client must recognise the packet it
//! got from the VIP, the backend the packet it sent. Otherwise path MTU discovery and
//! port unreachable reports are ignored by the TCP/UDP stacks they are meant for.

use std::net::IpAddr;

use crate::datapath::flow::{BackendSelector, FlowKey};
use loaded_proto::wire::icmpv4;

use super::datagram::{Datagram, Extent, Family, IpHeader, Side};
use super::transport::{classify_quoted, Transport};
use super::{patch, DropReason, Outcome};

/// An error to the VIP about a packet the balancer sent from it: forward it to the backend
/// that owns the flow, as if sent about the packet before its source became the VIP.
pub(super) fn rewrite_inbound(
    packet: &mut [u8],
    outer: &Datagram,
    selector: &impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let quoted = parse_quote(packet, outer)?;
    if quoted.header.src != outer.header.dst {
        return Err(DropReason::UnknownFlow);
    }
    let (client_port, vip_port) = match classify_quoted(packet, &quoted)? {
        Transport::Ports { src, dst } => (dst, src),
        // Outbound lets only echo replies leave from the VIP.
        Transport::EchoReply { identifier } => (identifier, 0),
        Transport::NoHeader => (0, 0),
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    let key = FlowKey {
        client: quoted.header.dst,
        vip: quoted.header.src,
        protocol: quoted.protocol,
        client_port,
        vip_port,
    };
    // An error must not create or refresh a mapping: anyone can send one.
    let backend = selector
        .existing_backend(&key)
        .filter(|backend| Family::of(*backend) == outer.family())
        .ok_or(DropReason::UnknownFlow)?;
    rewrite_error(
        packet,
        outer,
        Some(Side::Destination),
        &quoted,
        Side::Source,
        backend,
    )?;
    Ok(Outcome::Rewritten)
}

/// An error sent to a client by someone other than a server, the balancer itself above all
/// (fragmentation needed, time exceeded, packet too big towards a smaller MTU on the
/// servers' side), about a packet the client sent to the VIP: the quote shows the packet
/// after its rewrite, to the server. The quoted destination becomes `vip` again, so that
/// the client learns the path MTU of the VIP and never sees a server's address. Only when
/// the quoted flow's mapping names that server; anything else is not ours and passes
/// unchanged, as does an error whose quote does not parse.
pub(super) fn restore_vip_in_quote(
    packet: &mut [u8],
    outer: &Datagram,
    vip: IpAddr,
    selector: &impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let Ok(quoted) = parse_quote(packet, outer) else {
        return Ok(Outcome::NotOurs);
    };
    let (client, server) = (quoted.header.src, quoted.header.dst);
    // An error goes to the source of the packet it quotes.
    if client != outer.header.dst || !selector.is_backend(server) {
        return Ok(Outcome::NotOurs);
    }
    let (client_port, vip_port) = match classify_quoted(packet, &quoted) {
        Ok(Transport::Ports { src, dst }) => (src, dst),
        // Inbound lets only echo requests reach a backend.
        Ok(Transport::EchoRequest { identifier }) => (identifier, 0),
        Ok(Transport::NoHeader) => (0, 0),
        _ => return Ok(Outcome::NotOurs),
    };
    let key = FlowKey {
        client,
        vip,
        protocol: quoted.protocol,
        client_port,
        vip_port,
    };
    if selector.existing_backend(&key) != Some(server) {
        return Ok(Outcome::NotOurs);
    }
    rewrite_error(packet, outer, None, &quoted, Side::Destination, vip)?;
    Ok(Outcome::Rewritten)
}

/// An error from a backend about a packet a client sent to the VIP: make both the error
/// and the quoted destination the VIP.
pub(super) fn rewrite_outbound(
    packet: &mut [u8],
    outer: &Datagram,
    vip: IpAddr,
    selector: &impl BackendSelector,
) -> Result<Outcome, DropReason> {
    let quoted = parse_quote(packet, outer)?;
    match classify_quoted(packet, &quoted)? {
        // Inbound lets only echo requests reach a backend.
        Transport::Ports { .. } | Transport::EchoRequest { .. } | Transport::NoHeader => {}
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    if selector.is_backend(quoted.header.dst) {
        rewrite_error(
            packet,
            outer,
            Some(Side::Source),
            &quoted,
            Side::Destination,
            vip,
        )?;
    } else {
        // The quoted packet never went through the VIP; only the error's source changes.
        patch::translate(packet, outer, Side::Source, vip)?;
    }
    Ok(Outcome::Rewritten)
}

/// The packet quoted after the 8-byte ICMP header, which may be cut short anywhere after
/// its IP header and 8 bytes of transport header.
fn parse_quote(packet: &[u8], outer: &Datagram) -> Result<Datagram, DropReason> {
    let message = packet
        .get(..outer.transport.end)
        .ok_or(DropReason::Malformed)?;
    let start = outer.transport.start + icmpv4::field::DATA;
    let header =
        IpHeader::parse(message, start, Extent::Quoted).map_err(|_| DropReason::Malformed)?;
    if header.family != outer.family() {
        return Err(DropReason::Malformed);
    }
    header
        .locate_transport(message)
        .map_err(|_| DropReason::Malformed)
}

/// Replaces the address on `outer_side` of the error (if any) and on `quoted_side` of the
/// quote, and every checksum over them: quoted header and transport (as far as quoted), the
/// ICMP message (which covers the quote, and for ICMPv6 the pseudo-header) and the outer
/// header.
fn rewrite_error(
    packet: &mut [u8],
    outer: &Datagram,
    outer_side: Option<Side>,
    quoted: &Datagram,
    quoted_side: Side,
    new: IpAddr,
) -> Result<(), DropReason> {
    let quoted_header = patch::replace_address(packet, &quoted.header, quoted_side, new)?;
    let quoted_transport = patch::update_transport_checksum(packet, quoted, quoted_header.address)?;
    let mut message = quoted_header.of_header().and(quoted_transport);
    if let Some(side) = outer_side {
        let outer_header = patch::replace_address(packet, &outer.header, side, new)?;
        if outer.family() == Family::V6 {
            message = message.and(outer_header.address);
        }
    }
    // ICMPv6 has its checksum at the same place.
    let checksum = icmpv4::field::CHECKSUM;
    let field = outer.transport.start + checksum.start..outer.transport.start + checksum.end;
    patch::update_icmp_checksum(packet, field, message)?;
    Ok(())
}
