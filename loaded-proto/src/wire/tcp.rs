//! The TCP header (RFC 9293).

use super::{checksum, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUMBER: Range<usize> = 4..8;
    pub const ACK_NUMBER: Range<usize> = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT_POINTER: Range<usize> = 18..20;
}

/// The header without options.
pub const MIN_HEADER_LEN: usize = 20;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A segment whose header, options included, lies in the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if packet.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn seq_number(&self) -> u32 {
        let bytes = self.buffer.as_ref();
        u32::from_be_bytes(super::read_array(bytes, field::SEQ_NUMBER.start))
    }

    pub fn ack_number(&self) -> u32 {
        let bytes = self.buffer.as_ref();
        u32::from_be_bytes(super::read_array(bytes, field::ACK_NUMBER.start))
    }

    /// The header length in bytes, options included (the data offset).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The flag bits of [`flags`].
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW.start)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The checksum of the segment that fills the whole buffer, given the sum of its
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
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    pub fn fill_checksum(&mut self, pseudo_header: u16) {
        let checksum = self.compute_checksum(pseudo_header);
        self.set_checksum(checksum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    /// SYN 40000 -> 80, seq 0x01020304, window 64240, MSS 1460; checksum for CLIENT -> VIP.
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x96, 0x59, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    fn pseudo_header(len: usize) -> u16 {
        checksum::pseudo_header_v4(CLIENT, VIP, 6, len as u16)
    }

    #[test]
    fn reads_golden_syn() {
        let segment = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(segment.src_port(), 40000);
        assert_eq!(segment.dst_port(), 80);
        assert_eq!(segment.seq_number(), 0x0102_0304);
        assert_eq!(segment.ack_number(), 0);
        assert_eq!(segment.header_len(), 24);
        assert_eq!(segment.flags(), flags::SYN);
        assert_eq!(segment.window(), 64240);
        assert_eq!(segment.checksum(), 0x9659);
        assert!(segment.payload().is_empty());
        assert!(segment.verify_checksum(pseudo_header(SYN.len())));
        assert_eq!(segment.compute_checksum(pseudo_header(SYN.len())), 0x9659);
    }

    #[test]
    fn agrees_with_etherparse() {
        let (header, _) = etherparse::TcpHeader::from_slice(&SYN).unwrap();
        assert_eq!(header.source_port, 40000);
        assert_eq!(header.destination_port, 80);
        assert_eq!(
            header.calc_checksum_ipv4_raw(CLIENT.octets(), VIP.octets(), &[]),
            Ok(0x9659)
        );
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut bytes = SYN;
        let mut segment = Packet::new_checked(&mut bytes[..]).unwrap();
        segment.set_src_port(1);
        segment.set_dst_port(2);
        assert!(!segment.verify_checksum(pseudo_header(24)));
        segment.fill_checksum(pseudo_header(24));
        assert!(segment.verify_checksum(pseudo_header(24)));
        assert_eq!((segment.src_port(), segment.dst_port()), (1, 2));
    }

    #[test]
    fn rejects_bad_data_offsets() {
        assert_eq!(Packet::new_checked(&SYN[..19]), Err(Error::Truncated));
        let mut short_offset = SYN;
        short_offset[field::DATA_OFFSET] = 0x40;
        assert_eq!(
            Packet::new_checked(&short_offset[..]),
            Err(Error::Malformed)
        );
        let mut long_offset = SYN;
        long_offset[field::DATA_OFFSET] = 0x70;
        assert_eq!(Packet::new_checked(&long_offset[..]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&SYN[..23]), Err(Error::Truncated));
    }
}
