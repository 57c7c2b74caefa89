//! Every kind of malformed packet of ours is dropped as such, and left untouched.

use super::builder::{self, Shape};
use super::golden::*;
use super::support::*;
use crate::datapath::nat::{rewrite, DropReason, Outcome};
use loaded_proto::wire::protocol;

/// A selector that knows the flows the golden ICMP errors quote, so that only the
/// malformation can make them fail.
fn selector() -> MockSelector {
    MockSelector::standard()
        .with_flow(key(CLIENT4, VIP4, protocol::TCP, 40000, 80), BACKEND4)
        .with_flow(key(CLIENT6, VIP6, protocol::TCP, 40000, 443), BACKEND6)
}

fn assert_malformed(case: &str, packet: &[u8]) {
    let mut bytes = packet.to_vec();
    let outcome = rewrite(&mut bytes, &VIPS, &mut selector());
    assert_eq!(outcome, Outcome::Drop(DropReason::Malformed), "{case}");
    assert_eq!(bytes, packet, "{case}: a dropped packet is left untouched");
}

/// A copy of `base` with `edit` applied.
fn edited(base: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = base.to_vec();
    edit(&mut bytes);
    bytes
}

fn set_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// `base` cut to `len` bytes, its IP length fields saying so.
fn cut(base: &[u8], len: usize) -> Vec<u8> {
    edited(base, |bytes| {
        bytes.truncate(len);
        match bytes[0] >> 4 {
            4 => set_u16(bytes, 2, len as u16),
            _ => set_u16(bytes, 4, (len - 40) as u16),
        }
    })
}

#[test]
fn short_buffers_and_bad_versions() {
    assert_malformed("empty", &[]);
    assert_malformed("one byte", &[0x45]);
    assert_malformed("partial IPv4 header", &V4_TCP_SYN[..19]);
    assert_malformed("partial IPv6 header", &V6_TCP_SYN[..39]);
    for version in [0x05, 0x55, 0x75, 0xf5] {
        assert_malformed("version", &edited(&V4_TCP_SYN, |b| b[0] = version));
    }
}

#[test]
fn bad_ipv4_lengths() {
    assert_malformed("IHL below 5", &edited(&V4_TCP_SYN, |b| b[0] = 0x44));
    assert_malformed(
        "IHL beyond buffer",
        &edited(&V4_TCP_SYN[..40], |b| b[0] = 0x4b),
    );
    assert_malformed(
        "total below IHL",
        &edited(&V4_TCP_SYN, |b| set_u16(b, 2, 19)),
    );
    assert_malformed(
        "total below options",
        &edited(&V4_OPTIONS_TCP, |b| set_u16(b, 2, 20)),
    );
    assert_malformed(
        "total beyond buffer",
        &edited(&V4_TCP_SYN, |b| set_u16(b, 2, 45)),
    );
}

#[test]
fn bad_ipv6_lengths() {
    assert_malformed(
        "payload beyond buffer",
        &edited(&V6_TCP_SYN, |b| set_u16(b, 4, 33)),
    );
    assert_malformed(
        "hop-by-hop beyond buffer",
        &edited(&V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP, |b| b[41] = 9),
    );
    assert_malformed(
        "no room for the extension",
        &cut(&V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP, 45),
    );
    assert_malformed(
        "hop-by-hop not first",
        &edited(&V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP, |b| {
            b[40] = protocol::HOP_BY_HOP
        }),
    );
    let chain = |headers: usize| {
        let mut payload = Vec::new();
        for index in 1..=headers {
            let next = if index == headers {
                protocol::NO_NEXT_HEADER
            } else {
                protocol::DESTINATION_OPTIONS
            };
            payload.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        let shape = Shape::default();
        builder::ip(
            CLIENT6.into(),
            VIP6.into(),
            protocol::DESTINATION_OPTIONS,
            &payload,
            &shape,
        )
    };
    assert_malformed("chain beyond the bound", &chain(9));
    // Eight is within the bound: it ends in no next header, which is merely unsupported.
    let mut within = chain(8);
    let outcome = rewrite(&mut within, &VIPS, &mut selector());
    assert_eq!(outcome, Outcome::Drop(DropReason::UnsupportedProtocol));
}

#[test]
fn bad_tcp_headers() {
    let data_offset = 20 + 12;
    assert_malformed(
        "data offset 4",
        &edited(&V4_TCP_SYN, |b| b[data_offset] = 0x40),
    );
    assert_malformed(
        "data offset beyond",
        &edited(&V4_TCP_SYN, |b| b[data_offset] = 0x70),
    );
    assert_malformed("truncated TCP", &cut(&V4_TCP_SYN, 20 + 19));
    assert_malformed(
        "IPv6 data offset 0",
        &edited(&V6_TCP_SYN, |b| b[40 + 12] = 0),
    );
    assert_malformed("truncated IPv6 TCP", &cut(&V6_TCP_SYN, 40 + 8));
    assert_malformed(
        "outbound data offset",
        &edited(&V4_OUTBOUND_SYN_ACK, |b| b[32] = 0x30),
    );
    // A first fragment must hold the transport header.
    let first = Shape {
        fragment: Some((0, true)),
        ..Shape::default()
    };
    let partial = builder::ip(CLIENT4.into(), VIP4.into(), protocol::TCP, &[0; 16], &first);
    assert_malformed("first fragment without TCP header", &partial);
}

#[test]
fn bad_udp_headers() {
    let length = 20 + 4;
    assert_malformed(
        "length below header",
        &edited(&V4_UDP, |b| set_u16(b, length, 7)),
    );
    assert_malformed(
        "length beyond packet",
        &edited(&V4_UDP, |b| set_u16(b, length, 15)),
    );
    assert_malformed("truncated UDP", &cut(&V4_UDP, 20 + 7));
    assert_malformed(
        "IPv6 length beyond",
        &edited(&V6_UDP, |b| set_u16(b, 44, 100)),
    );
    assert_malformed(
        "IPv6 without checksum",
        &edited(&V6_UDP, |b| set_u16(b, 46, 0)),
    );
    assert_malformed(
        "first fragment holding the whole datagram",
        &edited(&V4_FIRST_FRAGMENT_UDP, |b| set_u16(b, length, 24)),
    );
}

#[test]
fn bad_icmp_messages() {
    assert_malformed("truncated echo", &cut(&V4_ECHO_REQUEST, 20 + 7));
    assert_malformed("truncated ICMPv6 echo", &cut(&V6_ECHO_REQUEST, 40 + 4));
    assert_malformed(
        "error without quote",
        &cut(&V4_FRAGMENTATION_NEEDED, 20 + 8),
    );
}

#[test]
fn quotes_too_short_or_inconsistent() {
    let quote = 20 + 8;
    assert_malformed(
        "quote of 7 transport bytes",
        &cut(&V4_FRAGMENTATION_NEEDED, quote + 27),
    );
    assert_malformed(
        "quote cut in its IP header",
        &cut(&V4_FRAGMENTATION_NEEDED, quote + 19),
    );
    assert_malformed(
        "quoted IHL below 5",
        &edited(&V4_FRAGMENTATION_NEEDED, |b| b[quote] = 0x44),
    );
    assert_malformed(
        "quoted IHL beyond the quote",
        &edited(&V4_FRAGMENTATION_NEEDED, |b| b[quote] = 0x48),
    );
    assert_malformed(
        "quoted total below IHL",
        &edited(&V4_FRAGMENTATION_NEEDED, |b| set_u16(b, quote + 2, 19)),
    );
    assert_malformed(
        "quoted IPv6 in ICMP",
        &edited(&V4_FRAGMENTATION_NEEDED, |b| b[quote] = 0x60),
    );
    let quote6 = 40 + 8;
    assert_malformed(
        "ICMPv6 quote of 7 bytes",
        &cut(&V6_PACKET_TOO_BIG, quote6 + 47),
    );
    assert_malformed(
        "ICMPv6 quote of a header",
        &cut(&V6_PACKET_TOO_BIG, quote6 + 39),
    );
    assert_malformed(
        "quoted IPv4 in ICMPv6",
        &edited(&V6_PACKET_TOO_BIG, |b| b[quote6] = 0x45),
    );
    assert_malformed(
        "quoted extension chain beyond the quote",
        &edited(&V6_PACKET_TOO_BIG, |b| {
            b[quote6 + 6] = protocol::DESTINATION_OPTIONS
        }),
    );
    assert_malformed(
        "outbound error quote too short",
        &cut(&V4_OUTBOUND_PORT_UNREACHABLE, quote + 27),
    );
}
