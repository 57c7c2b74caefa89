//! Completing a transport checksum that the sending stack left to the NIC.
//!
//! A packet from a local stack with checksum offload (a veth peer, or GSO packets the
//! kernel hands us whole) carries in its TCP or UDP checksum field only the sum of the
//! pseudo-header; the NIC would add the rest. Once a verdict returns a payload, the kernel
//! takes the field as final, so an incremental update of that partial sum would leave a
//! wrong checksum on the wire. After a rewrite of such a packet, the checksum is computed
//! over the whole segment instead.

use std::net::IpAddr;

use loaded_proto::wire::checksum::{combine, pseudo_header_v4, pseudo_header_v6, sum_without};
use loaded_proto::wire::{protocol, tcp, udp};

use super::datagram::{Extent, Fragment, IpHeader};
use super::DropReason;

/// Writes the full TCP or UDP checksum of the (already rewritten) packet. Other protocols,
/// and fragments (offload never produces them), are left as they are.
pub fn complete_transport_checksum(packet: &mut [u8]) -> Result<(), DropReason> {
    let malformed = |_| DropReason::Malformed;
    let header = IpHeader::parse(packet, 0, Extent::Whole).map_err(malformed)?;
    let datagram = header.locate_transport(packet).map_err(malformed)?;
    if datagram.fragment != Fragment::Whole {
        return Ok(());
    }
    let field = match datagram.protocol {
        protocol::TCP => tcp::field::CHECKSUM,
        protocol::UDP => udp::field::CHECKSUM,
        _ => return Ok(()),
    };
    let segment = packet
        .get(datagram.transport.clone())
        .ok_or(DropReason::Malformed)?;
    if segment.len() < field.end {
        return Err(DropReason::Malformed);
    }
    let pseudo_header = match (datagram.header.src, datagram.header.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let length = u16::try_from(segment.len()).map_err(|_| DropReason::Malformed)?;
            pseudo_header_v4(src, dst, datagram.protocol, length)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let length = u32::try_from(segment.len()).map_err(|_| DropReason::Malformed)?;
            pseudo_header_v6(src, dst, datagram.protocol, length)
        }
        _ => return Err(DropReason::Malformed),
    };
    let mut checksum = !combine(pseudo_header, sum_without(segment, field.clone()));
    if datagram.protocol == protocol::UDP && checksum == udp::NO_CHECKSUM {
        // Zero would mean "no checksum" (RFC 768).
        checksum = 0xffff;
    }
    let at = datagram.transport.start + field.start;
    packet[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::nat::tests::golden;

    /// Puts a partial checksum (the pseudo-header's sum, as an offloading stack does) into
    /// a copy of a golden packet whose checksum is right.
    fn with_partial_checksum(packet: &[u8], checksum_at: usize, pseudo_sum: u16) -> Vec<u8> {
        let mut partial = packet.to_vec();
        partial[checksum_at..checksum_at + 2].copy_from_slice(&pseudo_sum.to_be_bytes());
        partial
    }

    #[test]
    fn completes_ipv4_tcp_and_ipv6_udp_checksums() {
        for (packet, checksum_at) in [
            (&golden::V4_TCP_SYN[..], 20 + 16),
            (&golden::V4_TCP_SYN_REWRITTEN[..], 20 + 16),
            (&golden::V6_UDP[..], 40 + 6),
            (&golden::V6_UDP_REWRITTEN[..], 40 + 6),
        ] {
            let mut partial = with_partial_checksum(packet, checksum_at, 0x1234);
            complete_transport_checksum(&mut partial).unwrap();
            assert_eq!(partial, packet, "the golden packet's own checksum is back");
        }
    }

    #[test]
    fn icmp_is_left_alone_and_garbage_is_malformed() {
        let mut echo = golden::V4_ECHO_REQUEST.to_vec();
        complete_transport_checksum(&mut echo).unwrap();
        assert_eq!(echo, golden::V4_ECHO_REQUEST);
        assert_eq!(
            complete_transport_checksum(&mut [0x45, 0, 0]),
            Err(DropReason::Malformed)
        );
    }
}
