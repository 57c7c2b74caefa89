//! The ICMP header (RFC 792): echo and the errors that quote a packet.

use super::{checksum, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENTIFIER: Range<usize> = 4..6;
    pub const ECHO_SEQUENCE: Range<usize> = 6..8;
    /// Where an error's quote of the offending packet starts.
    pub const DATA: usize = 8;
}

/// Type, code, checksum and the four bytes every message this datapath reads has.
pub const HEADER_LEN: usize = 8;

pub mod message {
    pub const ECHO_REPLY: u8 = 0;
    pub const DESTINATION_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// The destination unreachable code of path MTU discovery (RFC 1191).
pub const CODE_FRAGMENTATION_NEEDED: u8 = 4;

/// Whether messages of this type quote the packet that caused them.
pub fn is_error(message_type: u8) -> bool {
    matches!(
        message_type,
        message::DESTINATION_UNREACHABLE | message::TIME_EXCEEDED | message::PARAMETER_PROBLEM
    )
}

/// A view of an ICMP message.
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

    /// What follows the header: echo data, or an error's quote.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// The checksum of the message that fills the buffer; it covers no addresses.
    pub fn compute_checksum(&self) -> u16 {
        let bytes = self.buffer.as_ref();
        !checksum::sum_without(bytes, field::CHECKSUM)
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
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

    pub fn fill_checksum(&mut self) {
        let checksum = self.compute_checksum();
        self.set_checksum(checksum);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo request, identifier 0x1234, sequence 1, data "abcdefgh".
    const ECHO_REQUEST: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn reads_golden_echo_request() {
        let message = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(message.message_type(), message::ECHO_REQUEST);
        assert_eq!(message.code(), 0);
        assert_eq!(message.echo_identifier(), 0x1234);
        assert_eq!(message.echo_sequence(), 1);
        assert_eq!(message.data(), b"abcdefgh");
        assert!(message.verify_checksum());
        assert_eq!(message.compute_checksum(), 0x5435);
        assert!(!is_error(message.message_type()));
    }

    #[test]
    fn agrees_with_etherparse() {
        let (header, payload) = etherparse::Icmpv4Header::from_slice(&ECHO_REQUEST).unwrap();
        assert_eq!(header.checksum, 0x5435);
        assert_eq!(header.icmp_type.calc_checksum(payload), 0x5435);
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut bytes = ECHO_REQUEST;
        let mut message = Packet::new_checked(&mut bytes[..]).unwrap();
        message.set_message_type(message::ECHO_REPLY);
        message.set_echo_identifier(7);
        assert!(!message.verify_checksum());
        message.fill_checksum();
        assert!(message.verify_checksum());
        message.data_mut()[0] = b'z';
        message.set_code(1);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(bytes[8], b'z');
    }

    #[test]
    fn errors_are_the_quoting_types() {
        for error in [3, 11, 12] {
            assert!(is_error(error));
        }
        for other in [0, 4, 5, 8, 13] {
            assert!(!is_error(other));
        }
    }

    #[test]
    fn rejects_short_messages() {
        assert_eq!(
            Packet::new_checked(&ECHO_REQUEST[..7]),
            Err(Error::Truncated)
        );
        assert!(Packet::new_checked(&ECHO_REQUEST[..8]).is_ok());
    }
}
