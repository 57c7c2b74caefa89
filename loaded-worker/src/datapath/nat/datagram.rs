//! Where the parts of an IP packet lie in the buffer: addresses, header checksum, and the
//! transport header past any IPv6 extension headers.
//!
//! Positions are kept as offsets into the whole queued buffer rather than as borrowed views,
//! so that one parse serves the rewrite that then mutates the buffer.

use std::net::IpAddr;
use std::ops::Range;

pub(super) use loaded_proto::wire::Family;
use loaded_proto::wire::{self, ipv4, ipv6};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Source,
    Destination,
}

/// How much of the packet the buffer must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Extent {
    /// All of it, as for a queued packet.
    Whole,
    /// The header at least, as for the packet an ICMP error quotes.
    Quoted,
}

/// Which part of the original datagram a packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fragment {
    /// All of it (an IPv6 atomic fragment included).
    Whole,
    /// The start, with the transport header; more fragments follow.
    First,
    /// A later part, without the transport header.
    Later,
}

impl Fragment {
    fn from_fields(offset: u16, more: bool) -> Fragment {
        match (offset, more) {
            (0, false) => Fragment::Whole,
            (0, true) => Fragment::First,
            _ => Fragment::Later,
        }
    }
}

/// A parsed IP header: enough to decide whether a packet is ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IpHeader {
    pub(super) family: Family,
    /// Where the header starts in the buffer.
    pub(super) start: usize,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    /// The IPv4 protocol, or the IPv6 header's next header.
    next_header: u8,
    /// After the IPv4 header with options, or the IPv6 fixed header, up to the end of the
    /// packet or of a quote.
    payload: Range<usize>,
    /// IPv4's fragment fields; IPv6 keeps them in an extension header.
    fragment: Fragment,
}

impl IpHeader {
    /// Parses the IP header that starts at `start` in `buffer`, which ends where the packet
    /// (or the quote holding it) ends.
    pub(super) fn parse(buffer: &[u8], start: usize, extent: Extent) -> wire::Result<IpHeader> {
        let bytes = buffer.get(start..).ok_or(wire::Error::Truncated)?;
        match bytes.first().map(|first| first >> 4) {
            None => Err(wire::Error::Truncated),
            Some(4) => Self::parse_v4(bytes, start, extent),
            Some(6) => Self::parse_v6(bytes, start, extent),
            Some(_) => Err(wire::Error::Malformed),
        }
    }

    fn parse_v4(bytes: &[u8], start: usize, extent: Extent) -> wire::Result<IpHeader> {
        let packet = match extent {
            Extent::Whole => ipv4::Packet::new_checked(bytes)?,
            Extent::Quoted => ipv4::Packet::new_checked_truncated(bytes)?,
        };
        let payload_start = start + packet.header_len();
        Ok(IpHeader {
            family: Family::V4,
            start,
            src: packet.src_addr().into(),
            dst: packet.dst_addr().into(),
            next_header: packet.protocol(),
            payload: payload_start..payload_start + packet.payload().len(),
            fragment: Fragment::from_fields(packet.fragment_offset(), packet.more_fragments()),
        })
    }

    fn parse_v6(bytes: &[u8], start: usize, extent: Extent) -> wire::Result<IpHeader> {
        let packet = match extent {
            Extent::Whole => ipv6::Packet::new_checked(bytes)?,
            Extent::Quoted => ipv6::Packet::new_checked_truncated(bytes)?,
        };
        let payload_start = start + ipv6::HEADER_LEN;
        Ok(IpHeader {
            family: Family::V6,
            start,
            src: packet.src_addr().into(),
            dst: packet.dst_addr().into(),
            next_header: packet.next_header(),
            payload: payload_start..payload_start + packet.payload().len(),
            fragment: Fragment::Whole,
        })
    }

    /// Where the address on `side` lies in the buffer.
    pub(super) fn address_field(&self, side: Side) -> Range<usize> {
        let field = match (self.family, side) {
            (Family::V4, Side::Source) => ipv4::field::SRC_ADDR,
            (Family::V4, Side::Destination) => ipv4::field::DST_ADDR,
            (Family::V6, Side::Source) => ipv6::field::SRC_ADDR,
            (Family::V6, Side::Destination) => ipv6::field::DST_ADDR,
        };
        self.start + field.start..self.start + field.end
    }

    /// Where the header checksum lies in the buffer; IPv6 has none.
    pub(super) fn header_checksum_field(&self) -> Option<Range<usize>> {
        match self.family {
            Family::V4 => Some(
                self.start + ipv4::field::CHECKSUM.start..self.start + ipv4::field::CHECKSUM.end,
            ),
            Family::V6 => None,
        }
    }

    /// Follows IPv6 extension headers (a no-op for IPv4) to the transport header.
    pub(super) fn locate_transport(self, buffer: &[u8]) -> wire::Result<Datagram> {
        match self.family {
            Family::V4 => Ok(Datagram {
                protocol: self.next_header,
                transport: self.payload.clone(),
                fragment: self.fragment,
                routing_segments_left: 0,
                authenticated: false,
                header: self,
            }),
            Family::V6 => {
                let payload = buffer
                    .get(self.payload.clone())
                    .ok_or(wire::Error::Truncated)?;
                let upper = ipv6::walk_extension_headers(self.next_header, payload)?;
                let fragment = upper.fragment.map_or(Fragment::Whole, |fragment| {
                    Fragment::from_fields(fragment.offset, fragment.more)
                });
                Ok(Datagram {
                    protocol: upper.protocol,
                    transport: self.payload.start + upper.offset..self.payload.end,
                    fragment,
                    routing_segments_left: upper.routing_segments_left,
                    authenticated: upper.authenticated,
                    header: self,
                })
            }
        }
    }
}

/// A parsed IP header and where its transport header lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Datagram {
    pub(super) header: IpHeader,
    /// The transport protocol (or whatever ended the IPv6 extension headers).
    pub(super) protocol: u8,
    /// From the transport header to the end of the packet or of the quote holding it.
    pub(super) transport: Range<usize>,
    pub(super) fragment: Fragment,
    /// Non-zero: the IPv6 destination is a waypoint of a routing header, not the address
    /// the transport checksum covers.
    pub(super) routing_segments_left: u8,
    /// IPv6 AH covers the addresses: a rewritten packet would fail its check.
    pub(super) authenticated: bool,
}

impl Datagram {
    pub(super) fn family(&self) -> Family {
        self.header.family
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::nat::tests::golden;

    fn locate(packet: &[u8]) -> Datagram {
        IpHeader::parse(packet, 0, Extent::Whole)
            .and_then(|header| header.locate_transport(packet))
            .unwrap()
    }

    #[test]
    fn locates_ipv4_options_and_transport() {
        let datagram = locate(&golden::V4_OPTIONS_TCP);
        assert_eq!(datagram.family(), Family::V4);
        assert_eq!(datagram.protocol, wire::protocol::TCP);
        assert_eq!(datagram.transport, 24..golden::V4_OPTIONS_TCP.len());
        assert_eq!(datagram.fragment, Fragment::Whole);
        assert_eq!(datagram.header.address_field(Side::Destination), 16..20);
        assert_eq!(datagram.header.header_checksum_field(), Some(10..12));
    }

    #[test]
    fn locates_ipv6_transport_past_extension_headers() {
        let datagram = locate(&golden::V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP);
        assert_eq!(datagram.family(), Family::V6);
        assert_eq!(datagram.protocol, wire::protocol::UDP);
        assert_eq!(datagram.transport, 56..80);
        assert_eq!(datagram.fragment, Fragment::First);
        assert_eq!(datagram.header.address_field(Side::Source), 8..24);
        assert_eq!(datagram.header.header_checksum_field(), None);
        let later = locate(&golden::V6_HOP_BY_HOP_LATER_FRAGMENT_UDP);
        assert_eq!(later.fragment, Fragment::Later);
    }

    #[test]
    fn ipv4_fragment_positions() {
        assert_eq!(
            locate(&golden::V4_FIRST_FRAGMENT_UDP).fragment,
            Fragment::First
        );
        assert_eq!(
            locate(&golden::V4_LATER_FRAGMENT_UDP).fragment,
            Fragment::Later
        );
    }

    #[test]
    fn quoted_header_ends_with_the_quote() {
        let packet = &golden::V4_FRAGMENTATION_NEEDED;
        let quote_start = 20 + 8;
        let header = IpHeader::parse(packet, quote_start, Extent::Quoted).unwrap();
        let datagram = header.locate_transport(packet).unwrap();
        assert_eq!(datagram.transport, quote_start + 20..packet.len());
        assert_eq!(
            IpHeader::parse(packet, quote_start, Extent::Whole),
            Err(wire::Error::Truncated)
        );
    }

    #[test]
    fn start_beyond_buffer_is_truncated() {
        assert_eq!(
            IpHeader::parse(&[0x45], 2, Extent::Quoted),
            Err(wire::Error::Truncated)
        );
        assert_eq!(
            IpHeader::parse(&[], 0, Extent::Whole),
            Err(wire::Error::Truncated)
        );
        assert_eq!(
            IpHeader::parse(&[0x55; 40], 0, Extent::Whole),
            Err(wire::Error::Malformed)
        );
    }
}
