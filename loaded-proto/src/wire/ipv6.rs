//! The IPv6 header (RFC 8200) and the walk over its extension headers to the upper layer.

use std::net::Ipv6Addr;

use super::{protocol, read_array, read_u16, write_u16, Error, Result};

pub mod field {
    use std::ops::Range;

    pub const VERSION_TRAFFIC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Fields of the extension headers the walk reads, from the start of each header.
pub mod extension_field {
    use std::ops::Range;

    pub const NEXT_HEADER: usize = 0;
    /// In 8-byte units beyond the first 8; in 4-byte units beyond the first 8 for AH.
    pub const LENGTH: usize = 1;
    pub const ROUTING_SEGMENTS_LEFT: usize = 3;
    pub const FRAGMENT_OFFSET_FLAGS: Range<usize> = 2..4;
}

pub const HEADER_LEN: usize = 40;
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The most extension headers walked. RFC 8200 expects at most one of each kind (two of
/// destination options); a longer chain is treated as malformed rather than followed.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A whole packet: the header and all of the payload length lie in the buffer. Bytes
    /// beyond the payload are allowed and ignored (see [`Packet::payload`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_checked_truncated(buffer)?;
        if HEADER_LEN + packet.payload_len() > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// A packet of which only a prefix holding the fixed header need be present, such as
    /// the packet an ICMPv6 error quotes.
    pub fn new_checked_truncated(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(packet)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_TRAFFIC_FLOW.start] >> 4
    }

    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN.start))
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(
            self.buffer.as_ref(),
            field::SRC_ADDR.start,
        ))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(
            self.buffer.as_ref(),
            field::DST_ADDR.start,
        ))
    }

    /// What follows the fixed header, up to the payload length or the end of a truncated
    /// buffer: extension headers, then the upper layer.
    pub fn payload(&self) -> &[u8] {
        let buffer = self.buffer.as_ref();
        let end = (HEADER_LEN + self.payload_len()).min(buffer.len());
        &buffer[HEADER_LEN..end]
    }

    /// Where the extension headers lead; see [`walk_extension_headers`].
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        walk_extension_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, len);
    }

    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        let buffer = self.buffer.as_mut();
        let end = end.min(buffer.len());
        &mut buffer[HEADER_LEN..end]
    }
}

/// What a fragment header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// In units of 8 bytes.
    pub offset: u16,
    pub more: bool,
}

/// Where the extension headers end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The next-header value that ended the walk: an upper-layer protocol, ESP (whose
    /// contents are opaque), or no-next-header.
    pub protocol: u8,
    /// Where the upper-layer header starts, from the start of the IPv6 payload.
    pub offset: usize,
    /// The fragment header, if there is one. After a fragment header with a non-zero
    /// offset the bytes are fragment data, not headers, so the walk stops there.
    pub fragment: Option<Fragment>,
    /// Segments left in a routing header. Non-zero: the destination address is a waypoint
    /// and not the one the upper-layer checksum covers.
    pub routing_segments_left: u8,
    /// An authentication header was walked past: its integrity check covers the addresses.
    pub authenticated: bool,
}

/// Follows the extension headers in `payload` (the bytes after the fixed header), of which
/// the first is `next_header`, up to the upper layer.
///
/// Errors: `Truncated` if a header runs past `payload`, `Malformed` for a hop-by-hop header
/// other than first, or a chain longer than [`MAX_EXTENSION_HEADERS`].
pub fn walk_extension_headers(next_header: u8, payload: &[u8]) -> Result<UpperLayer> {
    let mut walked = UpperLayer {
        protocol: next_header,
        offset: 0,
        fragment: None,
        routing_segments_left: 0,
        authenticated: false,
    };
    for index in 0..=MAX_EXTENSION_HEADERS {
        let header = &payload[walked.offset.min(payload.len())..];
        let length_field = || {
            header
                .get(extension_field::LENGTH)
                .map(|&len| usize::from(len))
                .ok_or(Error::Truncated)
        };
        let len = match walked.protocol {
            protocol::HOP_BY_HOP if index != 0 => return Err(Error::Malformed),
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => {
                (length_field()? + 1) * 8
            }
            protocol::FRAGMENT => FRAGMENT_HEADER_LEN,
            protocol::AH => (length_field()? + 2) * 4,
            _ => return Ok(walked),
        };
        if index == MAX_EXTENSION_HEADERS {
            return Err(Error::Malformed);
        }
        if len > header.len() {
            return Err(Error::Truncated);
        }
        let kind = walked.protocol;
        walked.protocol = header[extension_field::NEXT_HEADER];
        walked.offset += len;
        match kind {
            protocol::AH => walked.authenticated = true,
            protocol::ROUTING => {
                walked.routing_segments_left = header[extension_field::ROUTING_SEGMENTS_LEFT];
            }
            protocol::FRAGMENT => {
                let offset_flags = read_u16(header, extension_field::FRAGMENT_OFFSET_FLAGS.start);
                let fragment = Fragment {
                    offset: offset_flags >> 3,
                    more: offset_flags & 1 != 0,
                };
                walked.fragment = Some(fragment);
                if fragment.offset != 0 {
                    return Ok(walked);
                }
            }
            _ => {}
        }
    }
    // The loop returns on every path by its last round.
    Err(Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

    /// A fixed header for `payload_len` bytes of `next_header`, 2001:db8:1::7 ->
    /// 2001:db8::10, hop limit 64, flow label 0x12345.
    fn header(next_header: u8, payload_len: u16) -> Vec<u8> {
        let mut bytes = vec![0x60, 0x01, 0x23, 0x45];
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(&[next_header, 64]);
        bytes.extend_from_slice(&SRC.octets());
        bytes.extend_from_slice(&DST.octets());
        bytes
    }

    /// Hop-by-hop (PadN), then a first fragment (offset 0, M set, id 0xdeadbeef), then
    /// 8 bytes of UDP header.
    const HOP_BY_HOP_FRAGMENT_UDP: [u8; 64] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x18, 0x00, 0x40, // version .. hop limit
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, // source
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x10, // destination
        0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // hop-by-hop: next fragment, PadN
        0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, // fragment: next UDP, offset 0, M
        0x13, 0x88, 0x00, 0x35, 0x05, 0xb4, 0x00, 0x00, // UDP header
    ];

    #[test]
    fn reads_golden_header_and_walks_to_udp() {
        let packet = Packet::new_checked(&HOP_BY_HOP_FRAGMENT_UDP[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.payload_len(), 24);
        assert_eq!(packet.next_header(), protocol::HOP_BY_HOP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert_eq!(
            packet.upper_layer(),
            Ok(UpperLayer {
                protocol: protocol::UDP,
                offset: 16,
                fragment: Some(Fragment {
                    offset: 0,
                    more: true
                }),
                routing_segments_left: 0,
                authenticated: false,
            })
        );
    }

    #[test]
    fn agrees_with_etherparse() {
        let (headers, _) = etherparse::Ipv6Header::from_slice(&HOP_BY_HOP_FRAGMENT_UDP).unwrap();
        let ours = Packet::new_checked(&HOP_BY_HOP_FRAGMENT_UDP[..]).unwrap();
        assert_eq!(ours.src_addr(), Ipv6Addr::from(headers.source));
        assert_eq!(ours.dst_addr(), Ipv6Addr::from(headers.destination));
        assert_eq!(ours.payload_len(), usize::from(headers.payload_length));
        let (extensions, upper, rest) = etherparse::Ipv6Extensions::from_slice(
            etherparse::IpNumber(ours.next_header()),
            ours.payload(),
        )
        .unwrap();
        let walked = ours.upper_layer().unwrap();
        assert_eq!(upper.0, walked.protocol);
        assert_eq!(ours.payload().len() - rest.len(), walked.offset);
        let fragment = extensions.fragment.unwrap();
        assert_eq!(
            fragment.fragment_offset.value(),
            walked.fragment.unwrap().offset
        );
        assert_eq!(fragment.more_fragments, walked.fragment.unwrap().more);
    }

    #[test]
    fn setters() {
        let mut bytes = HOP_BY_HOP_FRAGMENT_UDP;
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        let backend = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        packet.set_dst_addr(backend);
        packet.set_src_addr(DST);
        assert_eq!(packet.dst_addr(), backend);
        assert_eq!(packet.src_addr(), DST);
        assert_eq!(packet.payload_mut().len(), 24);
        assert_eq!(&bytes[24..40], &backend.octets());
    }

    #[test]
    fn payload_ignores_trailing_bytes() {
        let mut bytes = header(protocol::NO_NEXT_HEADER, 2);
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &[1, 2]);
    }

    #[test]
    fn rejects_bad_lengths_and_version() {
        assert_eq!(Packet::new_checked(&[][..]), Err(Error::Truncated));
        assert_eq!(
            Packet::new_checked(&HOP_BY_HOP_FRAGMENT_UDP[..39]),
            Err(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&HOP_BY_HOP_FRAGMENT_UDP[..63]),
            Err(Error::Truncated)
        );
        let mut v4 = HOP_BY_HOP_FRAGMENT_UDP;
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]), Err(Error::Malformed));
        assert!(Packet::new_checked_truncated(&HOP_BY_HOP_FRAGMENT_UDP[..40]).is_ok());
    }

    #[test]
    fn header_lengths_of_each_kind() {
        // Destination options of 16 bytes, routing of 24 (segments left 2), AH of 16, TCP.
        let mut payload = vec![protocol::ROUTING, 1];
        payload.resize(16, 0);
        payload.extend_from_slice(&[protocol::AH, 2, 0, 2]);
        payload.resize(16 + 24, 0);
        payload.extend_from_slice(&[protocol::TCP, 2]);
        payload.resize(16 + 24 + 16, 0);
        assert_eq!(
            walk_extension_headers(protocol::DESTINATION_OPTIONS, &payload),
            Ok(UpperLayer {
                protocol: protocol::TCP,
                offset: 56,
                fragment: None,
                routing_segments_left: 2,
                authenticated: true,
            })
        );
    }

    #[test]
    fn walk_stops_at_esp_and_no_next_header() {
        for end in [protocol::ESP, protocol::NO_NEXT_HEADER] {
            let payload = [end, 0, 0, 0, 0, 0, 0, 0];
            let walked = walk_extension_headers(protocol::DESTINATION_OPTIONS, &payload).unwrap();
            assert_eq!((walked.protocol, walked.offset), (end, 8));
        }
        // Nothing after no-next-header is read, even if it would not parse.
        assert_eq!(
            walk_extension_headers(protocol::NO_NEXT_HEADER, &[])
                .unwrap()
                .offset,
            0
        );
    }

    #[test]
    fn walk_stops_after_a_later_fragment() {
        // The bytes after a non-first fragment header are data, though they look like a
        // hop-by-hop header that runs past the buffer.
        let payload = [protocol::HOP_BY_HOP, 0, 0x05, 0xc8, 0, 0, 0, 1, 0x11, 0xff];
        assert_eq!(
            walk_extension_headers(protocol::FRAGMENT, &payload),
            Ok(UpperLayer {
                protocol: protocol::HOP_BY_HOP,
                offset: 8,
                fragment: Some(Fragment {
                    offset: 185,
                    more: false
                }),
                routing_segments_left: 0,
                authenticated: false,
            })
        );
    }

    #[test]
    fn walk_rejects_truncated_chains() {
        assert_eq!(
            walk_extension_headers(protocol::HOP_BY_HOP, &[]),
            Err(Error::Truncated)
        );
        assert_eq!(
            walk_extension_headers(protocol::HOP_BY_HOP, &[protocol::TCP, 0, 0, 0]),
            Err(Error::Truncated)
        );
        assert_eq!(
            walk_extension_headers(protocol::FRAGMENT, &[protocol::TCP, 0, 0, 0, 0, 0, 0]),
            Err(Error::Truncated)
        );
        // An AH claiming 12 bytes in 8.
        assert_eq!(
            walk_extension_headers(protocol::AH, &[protocol::TCP, 1, 0, 0, 0, 0, 0, 0]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn walk_rejects_misplaced_hop_by_hop() {
        let payload = [
            protocol::HOP_BY_HOP,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            protocol::TCP,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            walk_extension_headers(protocol::DESTINATION_OPTIONS, &payload),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn walk_is_bounded() {
        let chain = |headers: usize| {
            let mut payload = Vec::new();
            for index in 0..headers {
                let next = if index + 1 == headers {
                    protocol::UDP
                } else {
                    protocol::DESTINATION_OPTIONS
                };
                payload.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
            }
            walk_extension_headers(protocol::DESTINATION_OPTIONS, &payload)
        };
        assert_eq!(
            chain(MAX_EXTENSION_HEADERS).unwrap().offset,
            8 * MAX_EXTENSION_HEADERS
        );
        assert_eq!(chain(MAX_EXTENSION_HEADERS + 1), Err(Error::Malformed));
    }
}
