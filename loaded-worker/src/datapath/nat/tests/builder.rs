//! Builds packets from scratch, every checksum computed over the whole datagram, so that a
//! rewrite can be compared with the packet built with the new addresses in the first place.

use std::net::IpAddr;

use loaded_proto::wire::{checksum, icmpv4, icmpv6, ipv4, ipv6, protocol, tcp, udp};

#[derive(Clone, Debug)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        /// A SYN, which opens a flow, or else a segment with PSH and ACK.
        syn: bool,
        option_words: u8,
        payload: Vec<u8>,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        with_checksum: bool,
        payload: Vec<u8>,
    },
    Echo {
        request: bool,
        identifier: u16,
        payload: Vec<u8>,
    },
    /// Any other ICMP message: an error with its quote as `body`, neighbour discovery...
    Icmp {
        message_type: u8,
        code: u8,
        body: Vec<u8>,
    },
}

/// Optional parts of the IP header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    /// IPv4 options (NOPs), in 4-byte words.
    pub option_words: u8,
    pub hop_by_hop: bool,
    pub destination_options: bool,
    /// Offset in 8-byte units and more-fragments flag: IPv4 fields, or an IPv6 fragment
    /// header.
    pub fragment: Option<(u16, bool)>,
}

fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u16 {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            checksum::pseudo_header_v4(src, dst, protocol, len as u16)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            checksum::pseudo_header_v6(src, dst, protocol, len as u32)
        }
        _ => panic!("mixed families"),
    }
}

/// The protocol number and bytes of a whole transport datagram from `src` to `dst`.
pub fn transport(src: IpAddr, dst: IpAddr, spec: &Transport) -> (u8, Vec<u8>) {
    let icmp = if src.is_ipv4() {
        protocol::ICMP
    } else {
        protocol::ICMPV6
    };
    match spec {
        Transport::Tcp {
            src_port,
            dst_port,
            syn,
            option_words,
            payload,
        } => {
            let header_len = tcp::MIN_HEADER_LEN + 4 * usize::from(*option_words);
            let mut bytes = vec![0; header_len];
            bytes[tcp::field::DATA_OFFSET] = ((header_len / 4) as u8) << 4;
            bytes[tcp::field::FLAGS] = if *syn {
                tcp::flags::SYN
            } else {
                tcp::flags::ACK | tcp::flags::PSH
            };
            bytes[tcp::MIN_HEADER_LEN..].fill(1); // NOP options
            bytes.extend_from_slice(payload);
            let len = bytes.len();
            let mut segment = tcp::Packet::new_unchecked(&mut bytes[..]);
            segment.set_src_port(*src_port);
            segment.set_dst_port(*dst_port);
            segment.fill_checksum(pseudo_header(src, dst, protocol::TCP, len));
            (protocol::TCP, bytes)
        }
        Transport::Udp {
            src_port,
            dst_port,
            with_checksum,
            payload,
        } => {
            let mut bytes = vec![0; udp::HEADER_LEN];
            bytes.extend_from_slice(payload);
            let len = bytes.len();
            let mut datagram = udp::Packet::new_unchecked(&mut bytes[..]);
            datagram.set_src_port(*src_port);
            datagram.set_dst_port(*dst_port);
            datagram.set_len(len as u16);
            if *with_checksum {
                datagram.fill_checksum(pseudo_header(src, dst, protocol::UDP, len));
            }
            (protocol::UDP, bytes)
        }
        Transport::Echo {
            request,
            identifier,
            payload,
        } => {
            let message_type = match (src.is_ipv4(), request) {
                (true, true) => icmpv4::message::ECHO_REQUEST,
                (true, false) => icmpv4::message::ECHO_REPLY,
                (false, true) => icmpv6::message::ECHO_REQUEST,
                (false, false) => icmpv6::message::ECHO_REPLY,
            };
            let mut bytes = vec![message_type, 0, 0, 0];
            bytes.extend_from_slice(&identifier.to_be_bytes());
            bytes.extend_from_slice(&[0, 1]);
            bytes.extend_from_slice(payload);
            (icmp, with_icmp_checksum(src, dst, bytes))
        }
        Transport::Icmp {
            message_type,
            code,
            body,
        } => {
            let mut bytes = vec![*message_type, *code, 0, 0, 0, 0, 0, 0];
            let has_mtu = match src {
                IpAddr::V4(_) => (*message_type, *code) == (3, 4),
                IpAddr::V6(_) => *message_type == icmpv6::message::PACKET_TOO_BIG,
            };
            if has_mtu {
                bytes[6..8].copy_from_slice(&1280u16.to_be_bytes());
            }
            bytes.extend_from_slice(body);
            (icmp, with_icmp_checksum(src, dst, bytes))
        }
    }
}

fn with_icmp_checksum(src: IpAddr, dst: IpAddr, mut bytes: Vec<u8>) -> Vec<u8> {
    let len = bytes.len();
    if src.is_ipv4() {
        icmpv4::Packet::new_unchecked(&mut bytes[..]).fill_checksum();
    } else {
        let pseudo = pseudo_header(src, dst, protocol::ICMPV6, len);
        icmpv6::Packet::new_unchecked(&mut bytes[..]).fill_checksum(pseudo);
    }
    bytes
}

/// An IP packet carrying `payload` (all of a datagram, or a fragment of it).
pub fn ip(src: IpAddr, dst: IpAddr, protocol: u8, payload: &[u8], shape: &Shape) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let header_len = ipv4::MIN_HEADER_LEN + 4 * usize::from(shape.option_words);
            let mut bytes = vec![0; header_len];
            bytes[ipv4::field::VERSION_IHL] = 0x40 | (header_len / 4) as u8;
            bytes[ipv4::field::TTL] = 64;
            bytes[ipv4::MIN_HEADER_LEN..].fill(1);
            let (offset, more) = shape.fragment.unwrap_or((0, false));
            let flags_offset = offset | if more { 0x2000 } else { 0 };
            bytes[ipv4::field::FLAGS_FRAGMENT_OFFSET].copy_from_slice(&flags_offset.to_be_bytes());
            bytes.extend_from_slice(payload);
            let total_len = bytes.len() as u16;
            let mut packet = ipv4::Packet::new_unchecked(&mut bytes[..]);
            packet.set_total_len(total_len);
            packet.set_protocol(protocol);
            packet.set_src_addr(src);
            packet.set_dst_addr(dst);
            packet.fill_checksum();
            bytes
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut extensions = Vec::new();
            let mut next_header = protocol;
            // Built back to front: each header names the one after it.
            if let Some((offset, more)) = shape.fragment {
                let offset_flags = (offset << 3) | u16::from(more);
                let mut header = vec![next_header, 0];
                header.extend_from_slice(&offset_flags.to_be_bytes());
                header.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
                extensions.splice(0..0, header);
                next_header = protocol::FRAGMENT;
            }
            if shape.destination_options {
                extensions.splice(0..0, [next_header, 0, 1, 4, 0, 0, 0, 0]);
                next_header = protocol::DESTINATION_OPTIONS;
            }
            if shape.hop_by_hop {
                extensions.splice(0..0, [next_header, 0, 1, 4, 0, 0, 0, 0]);
                next_header = protocol::HOP_BY_HOP;
            }
            let mut bytes = vec![0; ipv6::HEADER_LEN];
            bytes[0] = 0x60;
            bytes[ipv6::field::HOP_LIMIT] = 64;
            bytes.extend_from_slice(&extensions);
            bytes.extend_from_slice(payload);
            let payload_len = (bytes.len() - ipv6::HEADER_LEN) as u16;
            let mut packet = ipv6::Packet::new_unchecked(&mut bytes[..]);
            packet.set_payload_len(payload_len);
            packet.set_next_header(next_header);
            packet.set_src_addr(src);
            packet.set_dst_addr(dst);
            bytes
        }
        _ => panic!("mixed families"),
    }
}

/// A whole, unfragmented packet.
pub fn packet(src: IpAddr, dst: IpAddr, spec: &Transport, shape: &Shape) -> Vec<u8> {
    let (protocol, bytes) = transport(src, dst, spec);
    ip(src, dst, protocol, &bytes, shape)
}
