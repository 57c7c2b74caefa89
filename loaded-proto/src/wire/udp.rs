//! The UDP header (RFC 768).

use super::{checksum, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// The checksum field value of an IPv4 datagram sent without a checksum. A computed
/// checksum of zero is sent as 0xffff instead.
pub const NO_CHECKSUM: u16 = 0;

/// A view of a UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A whole datagram in the buffer: its length field covers at least the header and at
    /// most the buffer. A shorter length than the buffer is allowed, as receivers trim.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_checked_header(buffer)?;
        if packet.len() > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// The first IP fragment of a datagram: only the header need be present, and the
    /// datagram must be longer than the fragment (more fragments follow).
    pub fn new_checked_first_fragment(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_checked_header(buffer)?;
        if packet.len() <= packet.buffer.as_ref().len() {
            return Err(Error::Malformed);
        }
        Ok(packet)
    }

    fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.len() < HEADER_LEN {
            return Err(Error::Malformed);
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

    /// The length field: header and payload of the whole datagram.
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    /// Never true of a checked view: the length covers at least the header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload up to the length field or the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        &bytes[HEADER_LEN..self.len().min(bytes.len())]
    }

    /// The checksum of a whole datagram, given the sum of its pseudo-header; never
    /// [`NO_CHECKSUM`].
    pub fn compute_checksum(&self, pseudo_header: u16) -> u16 {
        let bytes = self.buffer.as_ref();
        let datagram = &bytes[..self.len().min(bytes.len())];
        let without_field = checksum::sum_without(datagram, field::CHECKSUM);
        match !checksum::combine(pseudo_header, without_field) {
            NO_CHECKSUM => 0xffff,
            computed => computed,
        }
    }

    /// Whether the checksum is right, or absent ([`NO_CHECKSUM`], which only IPv4 allows).
    pub fn verify_checksum(&self, pseudo_header: u16) -> bool {
        self.checksum() == NO_CHECKSUM || self.compute_checksum(pseudo_header) == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
    const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    /// 5353 -> 53, 4 bytes of payload; checksum for CLIENT_V4 -> VIP_V4.
    const DATAGRAM_V4: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0xe6, 0xd4, 0xde, 0xad, 0xbe, 0xef,
    ];
    /// The same, checksum for CLIENT_V6 -> VIP_V6.
    const DATAGRAM_V6: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0xf1, 0x76, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn reads_golden_datagrams() {
        let v4 = Packet::new_checked(&DATAGRAM_V4[..]).unwrap();
        assert_eq!((v4.src_port(), v4.dst_port(), v4.len()), (5353, 53, 12));
        assert_eq!(v4.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let pseudo_v4 = checksum::pseudo_header_v4(CLIENT_V4, VIP_V4, 17, 12);
        assert!(v4.verify_checksum(pseudo_v4));
        assert_eq!(v4.compute_checksum(pseudo_v4), 0xe6d4);
        let v6 = Packet::new_checked(&DATAGRAM_V6[..]).unwrap();
        let pseudo_v6 = checksum::pseudo_header_v6(CLIENT_V6, VIP_V6, 17, 12);
        assert!(v6.verify_checksum(pseudo_v6));
        assert_eq!(v6.compute_checksum(pseudo_v6), 0xf176);
    }

    #[test]
    fn agrees_with_etherparse() {
        let (header, payload) = etherparse::UdpHeader::from_slice(&DATAGRAM_V4).unwrap();
        assert_eq!(
            header.calc_checksum_ipv4_raw(CLIENT_V4.octets(), VIP_V4.octets(), payload),
            Ok(0xe6d4)
        );
        let (header, payload) = etherparse::UdpHeader::from_slice(&DATAGRAM_V6).unwrap();
        assert_eq!(
            header.calc_checksum_ipv6_raw(CLIENT_V6.octets(), VIP_V6.octets(), payload),
            Ok(0xf176)
        );
    }

    #[test]
    fn zero_checksum_is_absent_and_never_computed() {
        let mut bytes = DATAGRAM_V4;
        bytes[6..8].fill(0);
        let datagram = Packet::new_checked(&bytes[..]).unwrap();
        assert!(datagram.verify_checksum(0x1234));
        // A pseudo-header sum that makes the computed checksum 0: sent as 0xffff.
        let data_sum = checksum::sum(&bytes);
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.fill_checksum(!data_sum);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(!data_sum));
    }

    #[test]
    fn trailing_bytes_beyond_length_are_ignored() {
        let mut bytes = DATAGRAM_V4.to_vec();
        bytes.extend_from_slice(&[0x55, 0x66]);
        let datagram = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(datagram.payload().len(), 4);
        let pseudo = checksum::pseudo_header_v4(CLIENT_V4, VIP_V4, 17, 12);
        assert!(datagram.verify_checksum(pseudo));
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        assert_eq!(
            Packet::new_checked(&DATAGRAM_V4[..7]),
            Err(Error::Truncated)
        );
        let mut below_header = DATAGRAM_V4;
        below_header[5] = 7;
        assert_eq!(
            Packet::new_checked(&below_header[..]),
            Err(Error::Malformed)
        );
        assert_eq!(
            Packet::new_checked(&DATAGRAM_V4[..11]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn first_fragment_needs_only_the_header() {
        assert!(Packet::new_checked_first_fragment(&DATAGRAM_V4[..8]).is_ok());
        // A datagram that ends in this fragment is not the first of several.
        assert_eq!(
            Packet::new_checked_first_fragment(&DATAGRAM_V4[..]),
            Err(Error::Malformed)
        );
        assert_eq!(
            Packet::new_checked_first_fragment(&DATAGRAM_V4[..7]),
            Err(Error::Truncated)
        );
    }
}
