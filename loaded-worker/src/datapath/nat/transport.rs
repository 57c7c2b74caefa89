//! What a datagram's transport header says, as far as the rewrite decision goes.

use loaded_proto::wire::{icmpv4, icmpv6, protocol, tcp, udp};

use super::datagram::{Datagram, Family, Fragment};
use super::DropReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    /// TCP or UDP.
    Ports {
        src: u16,
        dst: u16,
    },
    EchoRequest {
        identifier: u16,
    },
    EchoReply {
        identifier: u16,
    },
    /// An ICMP error, which quotes the packet that caused it.
    IcmpError,
    NeighborDiscovery,
    /// Any other ICMP message.
    OtherIcmp,
    /// A later fragment of TCP, UDP or ICMP: its transport header is in the first one.
    NoHeader,
    /// A protocol the balancer does not translate.
    Unsupported,
}

/// Classifies the transport header of a queued packet, validating it.
pub(super) fn classify(packet: &[u8], datagram: &Datagram) -> Result<Transport, DropReason> {
    if !is_translated(datagram) {
        return Ok(Transport::Unsupported);
    }
    if datagram.fragment == Fragment::Later {
        return Ok(Transport::NoHeader);
    }
    let bytes = packet
        .get(datagram.transport.clone())
        .ok_or(DropReason::Malformed)?;
    let malformed = |_| DropReason::Malformed;
    match datagram.protocol {
        protocol::TCP => {
            let segment = tcp::Packet::new_checked(bytes).map_err(malformed)?;
            Ok(Transport::Ports {
                src: segment.src_port(),
                dst: segment.dst_port(),
            })
        }
        protocol::UDP => {
            let udp_header = match datagram.fragment {
                Fragment::First => udp::Packet::new_checked_first_fragment(bytes),
                _ => udp::Packet::new_checked(bytes),
            }
            .map_err(malformed)?;
            // IPv6 makes the UDP checksum mandatory (RFC 8200 8.1).
            if datagram.family() == Family::V6 && udp_header.checksum() == udp::NO_CHECKSUM {
                return Err(DropReason::Malformed);
            }
            Ok(Transport::Ports {
                src: udp_header.src_port(),
                dst: udp_header.dst_port(),
            })
        }
        _ => match datagram.family() {
            Family::V4 => {
                let message = icmpv4::Packet::new_checked(bytes).map_err(malformed)?;
                Ok(classify_icmp(
                    Family::V4,
                    message.message_type(),
                    message.echo_identifier(),
                ))
            }
            Family::V6 => {
                let message = icmpv6::Packet::new_checked(bytes).map_err(malformed)?;
                Ok(classify_icmp(
                    Family::V6,
                    message.message_type(),
                    message.echo_identifier(),
                ))
            }
        },
    }
}

/// Classifies the transport header of a packet quoted in an ICMP error, of which only the
/// first 8 bytes need be there (RFC 792 quotes no more).
pub(super) fn classify_quoted(packet: &[u8], quoted: &Datagram) -> Result<Transport, DropReason> {
    if !is_translated(quoted) {
        return Ok(Transport::Unsupported);
    }
    if quoted.fragment == Fragment::Later {
        return Ok(Transport::NoHeader);
    }
    let bytes = packet
        .get(quoted.transport.clone())
        .ok_or(DropReason::Malformed)?;
    let Some(&[b0, b1, b2, b3, b4, b5, _, _]) = bytes.get(..8) else {
        return Err(DropReason::Malformed);
    };
    // TCP's and UDP's ports, and ICMP's type and echo identifier, all lie in the first 8.
    match quoted.protocol {
        protocol::TCP | protocol::UDP => Ok(Transport::Ports {
            src: u16::from_be_bytes([b0, b1]),
            dst: u16::from_be_bytes([b2, b3]),
        }),
        _ => Ok(classify_icmp(
            quoted.family(),
            b0,
            u16::from_be_bytes([b4, b5]),
        )),
    }
}

/// Whether the protocol is one the balancer translates: TCP, UDP, or the family's ICMP.
fn is_translated(datagram: &Datagram) -> bool {
    matches!(datagram.protocol, protocol::TCP | protocol::UDP)
        || datagram.protocol == datagram.family().icmp_protocol()
}

fn classify_icmp(family: Family, message_type: u8, identifier: u16) -> Transport {
    match family {
        Family::V4 => match message_type {
            icmpv4::message::ECHO_REQUEST => Transport::EchoRequest { identifier },
            icmpv4::message::ECHO_REPLY => Transport::EchoReply { identifier },
            error if icmpv4::is_error(error) => Transport::IcmpError,
            _ => Transport::OtherIcmp,
        },
        Family::V6 => match message_type {
            icmpv6::message::ECHO_REQUEST => Transport::EchoRequest { identifier },
            icmpv6::message::ECHO_REPLY => Transport::EchoReply { identifier },
            error if icmpv6::is_error(error) => Transport::IcmpError,
            discovery if icmpv6::is_neighbor_discovery(discovery) => Transport::NeighborDiscovery,
            _ => Transport::OtherIcmp,
        },
    }
}
