//! The IPv4 header (RFC 791), options included through the IHL.

use std::net::Ipv4Addr;

use super::{checksum, read_array, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const VERSION_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENTIFICATION: Range<usize> = 4..6;
    pub const FLAGS_FRAGMENT_OFFSET: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// The header without options.
pub const MIN_HEADER_LEN: usize = 20;

const MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A whole packet: the header and all of the total length lie in the buffer. Bytes
    /// beyond the total length are allowed and ignored (see [`Packet::payload`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_checked_truncated(buffer)?;
        if packet.total_len() > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// A packet of which only a prefix holding the header need be present, such as the
    /// packet an ICMP error quotes.
    pub fn new_checked_truncated(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 || packet.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if packet.header_len() > len {
            return Err(Error::Truncated);
        }
        if packet.total_len() < packet.header_len() {
            return Err(Error::Malformed);
        }
        Ok(packet)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_IHL] >> 4
    }

    /// The header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VERSION_IHL] & 0x0f) * 4
    }

    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::TOTAL_LEN.start))
    }

    pub fn more_fragments(&self) -> bool {
        self.flags_fragment_offset() & MORE_FRAGMENTS != 0
    }

    /// The fragment offset in units of 8 bytes.
    pub fn fragment_offset(&self) -> u16 {
        self.flags_fragment_offset() & FRAGMENT_OFFSET_MASK
    }

    fn flags_fragment_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAGMENT_OFFSET.start)
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// What follows the header, up to the total length or the end of a truncated buffer.
    pub fn payload(&self) -> &[u8] {
        let buffer = self.buffer.as_ref();
        let end = self.total_len().min(buffer.len());
        &buffer[self.header_len()..end]
    }

    /// The header checksum a sender would compute for this header.
    pub fn compute_checksum(&self) -> u16 {
        !checksum::sum_without(self.header(), field::CHECKSUM)
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::TOTAL_LEN.start, len);
    }

    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    /// Sets the source address alone; the header checksum is the caller's business.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address alone; the header checksum is the caller's business.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn fill_checksum(&mut self) {
        let checksum = self.compute_checksum();
        self.set_checksum(checksum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = self.total_len();
        let buffer = self.buffer.as_mut();
        let end = end.min(buffer.len());
        &mut buffer[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 192.0.2.1 -> 198.51.100.2, TTL 64, UDP, 8 bytes of payload, DF set.
    const PLAIN: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3c, 0x66, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x02, // header
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, // payload
    ];

    /// The same with a Router Alert option (IHL 6), a second fragment (offset 185 = 1480
    /// bytes, MF set) and two trailing bytes beyond the total length.
    const WITH_OPTIONS: [u8; 34] = [
        0x46, 0x00, 0x00, 0x20, 0x12, 0x34, 0x20, 0xb9, 0x40, 0x11, 0xc6, 0xa4, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x02, 0x94, 0x04, 0x00, 0x00, // header with option
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, // payload
        0x99, 0x99, // trailing
    ];

    #[test]
    fn reads_golden_header() {
        let packet = Packet::new_checked(&PLAIN[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 28);
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), 17);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert!(!packet.more_fragments());
        assert_eq!(packet.fragment_offset(), 0);
        assert_eq!(packet.payload(), &PLAIN[20..]);
        assert!(packet.verify_checksum());
        assert_eq!(packet.compute_checksum(), 0x3c66);
    }

    #[test]
    fn options_fragment_fields_and_trailing_bytes() {
        let packet = Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert!(packet.more_fragments());
        assert_eq!(packet.fragment_offset(), 185);
        assert_eq!(packet.payload(), &WITH_OPTIONS[24..32]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn agrees_with_etherparse() {
        for bytes in [&PLAIN[..], &WITH_OPTIONS[..32]] {
            let ours = Packet::new_checked(bytes).unwrap();
            let (theirs, _) = etherparse::Ipv4Header::from_slice(bytes).unwrap();
            assert_eq!(ours.header_len(), theirs.header_len());
            assert_eq!(ours.src_addr(), Ipv4Addr::from(theirs.source));
            assert_eq!(ours.dst_addr(), Ipv4Addr::from(theirs.destination));
            assert_eq!(ours.fragment_offset(), theirs.fragment_offset.value());
            assert_eq!(ours.more_fragments(), theirs.more_fragments);
            assert_eq!(ours.checksum(), theirs.calc_header_checksum());
        }
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut bytes = PLAIN;
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        packet.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(&bytes[12..20], &[10, 0, 0, 1, 10, 0, 0, 2]);
    }

    #[test]
    fn rejects_bad_lengths_and_version() {
        assert_eq!(Packet::new_checked(&[][..]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&PLAIN[..19]), Err(Error::Truncated));
        let mut v6 = PLAIN;
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]), Err(Error::Malformed));
        let mut short_ihl = PLAIN;
        short_ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&short_ihl[..]), Err(Error::Malformed));
        let mut long_ihl = PLAIN;
        long_ihl[0] = 0x48; // 32 bytes of header in a 28-byte buffer
        assert_eq!(Packet::new_checked(&long_ihl[..]), Err(Error::Truncated));
        let mut total_below_header = PLAIN;
        total_below_header[3] = 19;
        assert_eq!(
            Packet::new_checked(&total_below_header[..]),
            Err(Error::Malformed)
        );
        let mut total_beyond_buffer = PLAIN;
        total_beyond_buffer[3] = 29;
        assert_eq!(
            Packet::new_checked(&total_beyond_buffer[..]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn truncated_view_accepts_a_prefix() {
        let packet = Packet::new_checked_truncated(&PLAIN[..24]).unwrap();
        assert_eq!(packet.total_len(), 28);
        assert_eq!(packet.payload(), &PLAIN[20..24]);
        assert_eq!(
            Packet::new_checked_truncated(&PLAIN[..19]),
            Err(Error::Truncated)
        );
    }
}
