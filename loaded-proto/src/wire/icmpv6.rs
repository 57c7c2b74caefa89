//! The ICMPv6 header (RFC 4443): echo, the errors that quote a packet, and the neighbour
//! discovery types (RFC 4861) that must be left alone.

use super::{checksum, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENTIFIER: Range<usize> = 4..6;
    pub const ECHO_SEQUENCE: Range<usize> = 6..8;
    /// The MTU of a packet too big message.
    pub const MTU: Range<usize> = 4..8;
    /// Where an error's quote of the offending packet starts.
    pub const DATA: usize = 8;
}

/// Type, code, checksum and the four bytes every message this datapath reads has
/// (echo, errors, and neighbour discovery messages all have them).
pub const HEADER_LEN: usize = 8;

pub mod message {
    pub const DESTINATION_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICITATION: u8 = 133;
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Whether messages of this type quote the packet that caused them.
pub fn is_error(message_type: u8) -> bool {
    matches!(
        message_type,
        message::DESTINATION_UNREACHABLE
            | message::PACKET_TOO_BIG
            | message::TIME_EXCEEDED
            | message::PARAMETER_PROBLEM
    )
}

/// Whether messages of this type are neighbour discovery, which works on the addresses
/// of the link and is never balanced.
pub fn is_neighbor_discovery(message_type: u8) -> bool {
    (message::ROUTER_SOLICITATION..=message::REDIRECT).contains(&message_type)
}

/// A view of an ICMPv6 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A message with at least its 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet::new_unchecked(buffer))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn message_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Meaningful for echo requests and replies.
    pub fn echo_identifier(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENTIFIER.start)
    }

    pub fn echo_sequence(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQUENCE.start)
    }

    /// Meaningful for packet too big.
    pub fn mtu(&self) -> u32 {
        u32::from_be_bytes(super::read_array(self.buffer.as_ref(), field::MTU.start))
    }

    /// What follows the header: echo data, or an error's quote.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The checksum of the message that fills the buffer, given the sum of its
    /// pseudo-header (which holds the buffer's length).
    pub fn compute_checksum(&self, pseudo_header: u16) -> u16 {
        let bytes = self.buffer.as_ref();
        let without_field = checksum::sum_without(bytes, field::CHECKSUM);
        !checksum::combine(pseudo_header, without_field)
    }

    pub fn verify_checksum(&self, pseudo_header: u16) -> bool {
        checksum::combine(pseudo_header, checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_message_type(&mut self, message_type: u8) {
        self.buffer.as_mut()[field::TYPE] = message_type;
    }

    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    pub fn set_echo_identifier(&mut self, identifier: u16) {
        write_u16(
            self.buffer.as_mut(),
            field::ECHO_IDENTIFIER.start,
            identifier,
        );
    }

    pub fn set_echo_sequence(&mut self, sequence: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQUENCE.start, sequence);
    }

    pub fn fill_checksum(&mut self, pseudo_header: u16) {
        let checksum = self.compute_checksum(pseudo_header);
        self.set_checksum(checksum);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    /// Echo request, identifier 0x1234, sequence 1, data "abcdefgh"; CLIENT -> VIP.
    const ECHO_REQUEST: [u8; 16] = [
        0x80, 0x00, 0x80, 0x46, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    fn pseudo_header() -> u16 {
        checksum::pseudo_header_v6(CLIENT, VIP, 58, ECHO_REQUEST.len() as u32)
    }

    #[test]
    fn reads_golden_echo_request() {
        let message = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(message.message_type(), message::ECHO_REQUEST);
        assert_eq!(message.code(), 0);
        assert_eq!(message.echo_identifier(), 0x1234);
        assert_eq!(message.echo_sequence(), 1);
        assert_eq!(message.data(), b"abcdefgh");
        assert!(message.verify_checksum(pseudo_header()));
        assert_eq!(message.compute_checksum(pseudo_header()), 0x8046);
    }

    #[test]
    fn agrees_with_etherparse() {
        let (header, payload) = etherparse::Icmpv6Header::from_slice(&ECHO_REQUEST).unwrap();
        assert_eq!(
            header
                .icmp_type
                .calc_checksum(CLIENT.octets(), VIP.octets(), payload),
            Ok(0x8046)
        );
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut bytes = ECHO_REQUEST;
        let mut message = Packet::new_checked(&mut bytes[..]).unwrap();
        message.set_message_type(message::PACKET_TOO_BIG);
        message.set_code(0);
        message.set_echo_identifier(0);
        message.data_mut()[0] = 0;
        assert!(!message.verify_checksum(pseudo_header()));
        message.fill_checksum(pseudo_header());
        assert!(message.verify_checksum(pseudo_header()));
        assert_eq!(message.mtu(), 1);
    }

    #[test]
    fn classifies_types() {
        for error in 1..=4 {
            assert!(is_error(error));
            assert!(!is_neighbor_discovery(error));
        }
        for discovery in 133..=137 {
            assert!(is_neighbor_discovery(discovery));
            assert!(!is_error(discovery));
        }
        for other in [0, 5, 128, 129, 130, 132, 138, 143] {
            assert!(!is_error(other) && !is_neighbor_discovery(other));
        }
    }

    #[test]
    fn rejects_short_messages() {
        assert_eq!(
            Packet::new_checked(&ECHO_REQUEST[..7]),
            Err(Error::Truncated)
        );
    }
}
