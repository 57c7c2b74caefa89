//! Properties over generated packets. The central one: rewriting a packet gives exactly the
//! packet built from scratch with the new address, so every incrementally updated checksum
//! (IPv4 header, TCP, UDP, ICMPv6, and those of a quoted packet) equals a recomputation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::builder::{self, Shape, Transport};
use super::golden;
use super::support::*;
use crate::datapath::flow::{FlowKey, Opening, Vips};
use crate::datapath::nat::{rewrite, Outcome};
use loaded_proto::wire::protocol;

/// Four distinct addresses of one family.
#[derive(Clone, Debug)]
struct Hosts {
    client: IpAddr,
    vip: IpAddr,
    backend: IpAddr,
    router: IpAddr,
}

impl Hosts {
    fn is_v4(&self) -> bool {
        self.client.is_ipv4()
    }

    fn vips(&self) -> Vips {
        match self.vip {
            IpAddr::V4(vip) => Vips {
                v4: Some(vip),
                v6: None,
            },
            IpAddr::V6(vip) => Vips {
                v4: None,
                v6: Some(vip),
            },
        }
    }

    /// A selector that knows `backend` and sends every new flow to it.
    fn selector(&self) -> MockSelector {
        MockSelector {
            new_flow_backends: vec![self.backend],
            backends: vec![self.backend],
            ..MockSelector::default()
        }
    }
}

fn hosts() -> impl Strategy<Value = Hosts> {
    let v4 = any::<[Ipv4Addr; 4]>().prop_map(|addrs| addrs.map(IpAddr::V4));
    let v6 = any::<[Ipv6Addr; 4]>().prop_map(|addrs| addrs.map(IpAddr::V6));
    prop_oneof![v4, v6]
        .prop_filter("distinct addresses", |addrs| {
            (0..4).all(|i| (i + 1..4).all(|j| addrs[i] != addrs[j]))
        })
        .prop_map(|[client, vip, backend, router]| Hosts {
            client,
            vip,
            backend,
            router,
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..120)
}

/// TCP, UDP (with or without checksum; IPv6 callers force one), or an echo message. From a
/// client (`echo_request`), TCP is a SYN, which may open a flow.
fn transport(echo_request: bool) -> impl Strategy<Value = Transport> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), 0..=10u8, payload()).prop_map(
            move |(src_port, dst_port, option_words, payload)| Transport::Tcp {
                src_port,
                dst_port,
                syn: echo_request,
                option_words,
                payload,
            }
        ),
        (any::<u16>(), any::<u16>(), any::<bool>(), payload()).prop_map(
            |(src_port, dst_port, with_checksum, payload)| Transport::Udp {
                src_port,
                dst_port,
                with_checksum,
                payload,
            }
        ),
        (any::<u16>(), payload()).prop_map(move |(identifier, payload)| Transport::Echo {
            request: echo_request,
            identifier,
            payload,
        }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (0..=10u8, any::<bool>(), any::<bool>()).prop_map(
        |(option_words, hop_by_hop, destination_options)| Shape {
            option_words,
            hop_by_hop,
            destination_options,
            fragment: None,
        },
    )
}

/// IPv6 requires a UDP checksum: give it one.
fn for_family(transport: Transport, hosts: &Hosts) -> Transport {
    match transport {
        Transport::Udp {
            src_port,
            dst_port,
            payload,
            ..
        } if !hosts.is_v4() => Transport::Udp {
            src_port,
            dst_port,
            with_checksum: true,
            payload,
        },
        other => other,
    }
}

/// The length of the IP header and extension headers `shape` gives.
fn ip_headers_len(hosts: &Hosts, shape: &Shape) -> usize {
    if hosts.is_v4() {
        20 + 4 * usize::from(shape.option_words)
    } else {
        40 + 8 * (usize::from(shape.hop_by_hop) + usize::from(shape.destination_options))
    }
}

/// The client and VIP ports of a flow, from one of its packets.
fn ports(transport: &Transport, client_is_source: bool) -> (u16, u16) {
    match transport {
        Transport::Tcp {
            src_port, dst_port, ..
        }
        | Transport::Udp {
            src_port, dst_port, ..
        } => {
            if client_is_source {
                (*src_port, *dst_port)
            } else {
                (*dst_port, *src_port)
            }
        }
        Transport::Echo { identifier, .. } => (*identifier, 0),
        Transport::Icmp { .. } => (0, 0),
    }
}

fn rewritten(packet: &[u8], vips: &Vips, selector: &mut MockSelector) -> (Outcome, Vec<u8>) {
    let mut bytes = packet.to_vec();
    let outcome = rewrite(&mut bytes, vips, selector);
    (outcome, bytes)
}

/// An ICMP error from `src` to `dst` quoting the first `quote_len` bytes of `quoted`.
fn error(
    src: IpAddr,
    dst: IpAddr,
    (message_type, code): (u8, u8),
    quoted: &[u8],
    quote_len: usize,
    shape: &Shape,
) -> Vec<u8> {
    let body = quoted[..quote_len.min(quoted.len())].to_vec();
    let message = Transport::Icmp {
        message_type,
        code,
        body,
    };
    builder::packet(src, dst, &message, shape)
}

/// Whether a quote of `quote_len` bytes ends inside the quoted TCP checksum, which then
/// cannot be updated.
fn splits_tcp_checksum(transport: &Transport, quoted_headers_len: usize, quote_len: usize) -> bool {
    matches!(transport, Transport::Tcp { .. }) && quote_len == quoted_headers_len + 17
}

fn error_type(hosts: &Hosts, pick: usize) -> (u8, u8) {
    let types: &[(u8, u8)] = if hosts.is_v4() {
        &[(3, 4), (3, 3), (3, 1), (11, 0), (12, 0)]
    } else {
        &[(1, 4), (2, 0), (3, 0), (4, 0)]
    };
    types[pick % types.len()]
}

/// Failures are reported with their minimal input; no regression file is written.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn inbound_rewrite_equals_packet_built_for_the_backend(
        hosts in hosts(),
        transport in transport(true),
        shape in shape(),
    ) {
        let transport = for_family(transport, &hosts);
        let before = builder::packet(hosts.client, hosts.vip, &transport, &shape);
        let after = builder::packet(hosts.client, hosts.backend, &transport, &shape);
        assert_checksums_valid(&before);
        let mut selector = hosts.selector();
        let (outcome, bytes) = rewritten(&before, &hosts.vips(), &mut selector);
        prop_assert_eq!(outcome, Outcome::Rewritten);
        prop_assert_eq!(&bytes, &after);
        assert_checksums_valid(&bytes);
        let (client_port, vip_port) = ports(&transport, true);
        let (protocol, _) = builder::transport(hosts.client, hosts.vip, &transport);
        let expected_key = FlowKey {
            client: hosts.client,
            vip: hosts.vip,
            protocol,
            client_port,
            vip_port,
        };
        prop_assert_eq!(selector.backend_for_calls, vec![expected_key]);
        prop_assert_eq!(selector.openings, vec![Opening::Opens]);
    }

    #[test]
    fn outbound_rewrite_equals_packet_built_from_the_vip(
        hosts in hosts(),
        transport in transport(false),
        shape in shape(),
    ) {
        let transport = for_family(transport, &hosts);
        let before = builder::packet(hosts.backend, hosts.client, &transport, &shape);
        let after = builder::packet(hosts.vip, hosts.client, &transport, &shape);
        let (outcome, bytes) = rewritten(&before, &hosts.vips(), &mut hosts.selector());
        prop_assert_eq!(outcome, Outcome::Rewritten);
        prop_assert_eq!(&bytes, &after);
        assert_checksums_valid(&bytes);
    }

    #[test]
    fn fragments_rewrite_equals_fragments_built_for_the_other_address(
        hosts in hosts(),
        transport in transport(true),
        shape in shape(),
        cut in any::<prop::sample::Index>(),
        later_start in any::<prop::sample::Index>(),
        outbound in any::<bool>(),
    ) {
        let transport = for_family(transport, &hosts);
        // Backends answer echo requests; they do not send them.
        let transport = match transport {
            Transport::Echo { identifier, payload, .. } => Transport::Echo {
                request: !outbound,
                identifier,
                payload,
            },
            other => other,
        };
        let (before_src, before_dst, after_src, after_dst) = if outbound {
            (hosts.backend, hosts.client, hosts.vip, hosts.client)
        } else {
            (hosts.client, hosts.vip, hosts.client, hosts.backend)
        };
        let (protocol, before) = builder::transport(before_src, before_dst, &transport);
        let (_, after) = builder::transport(after_src, after_dst, &transport);
        // The first fragment holds the transport header and ends on an 8-byte boundary
        // before the end; a later one starts on an 8-byte boundary past the transport
        // header (one overlapping it would be a tiny-fragment attack, RFC 1858).
        let header_len = match &transport {
            Transport::Tcp { option_words, .. } => 20 + 4 * usize::from(*option_words),
            _ => 8,
        };
        let first_units = header_len.div_ceil(8);
        let all_units = before.len().div_ceil(8);
        prop_assume!(first_units < all_units);
        let first_len = 8 * (first_units + cut.index(all_units - first_units));
        prop_assume!(first_len < before.len());
        let later_offset = first_units + later_start.index(all_units - first_units);
        let later_start = 8 * later_offset;
        // With stickiness=client the later fragment finds the mapping its first fragment
        // made for the client; the mock maps flows, so the later one's is made here.
        let later_key = FlowKey { client: hosts.client, vip: hosts.vip, protocol, client_port: 0, vip_port: 0 };
        let mut selector = hosts.selector().with_flow(later_key, hosts.backend);
        for (fragment, range) in [
            ((0, true), 0..first_len),
            ((later_offset as u16, false), later_start..before.len()),
        ] {
            let shape = Shape { fragment: Some(fragment), ..shape };
            let packet = builder::ip(before_src, before_dst, protocol, &before[range.clone()], &shape);
            let expected = builder::ip(after_src, after_dst, protocol, &after[range], &shape);
            let (outcome, bytes) = rewritten(&packet, &hosts.vips(), &mut selector);
            prop_assert_eq!(outcome, Outcome::Rewritten);
            prop_assert_eq!(bytes, expected);
        }
        if !outbound {
            let (client_port, vip_port) = ports(&transport, true);
            let keys: Vec<_> = selector
                .backend_for_calls
                .iter()
                .map(|key| (key.protocol, key.client_port, key.vip_port))
                .collect();
            prop_assert_eq!(keys, vec![(protocol, client_port, vip_port), (protocol, 0, 0)]);
            // The first fragment opened the flow, the later one followed its mapping.
            prop_assert_eq!(selector.openings, vec![Opening::Opens, Opening::LaterFragment]);
        }
    }

    #[test]
    fn inbound_error_rewrite_equals_error_built_about_the_backend(
        hosts in hosts(),
        transport in transport(false),
        quoted_shape in shape(),
        outer_shape in shape(),
        quote_extra in any::<prop::sample::Index>(),
        pick in any::<usize>(),
    ) {
        let transport = for_family(transport, &hosts);
        let quoted_before = builder::packet(hosts.vip, hosts.client, &transport, &quoted_shape);
        let quoted_after = builder::packet(hosts.backend, hosts.client, &transport, &quoted_shape);
        let minimum = ip_headers_len(&hosts, &quoted_shape) + 8;
        let quote_len = minimum + quote_extra.index(quoted_before.len() - minimum + 1);
        prop_assume!(!splits_tcp_checksum(&transport, minimum - 8, quote_len));
        let kind = error_type(&hosts, pick);
        let before = error(hosts.router, hosts.vip, kind, &quoted_before, quote_len, &outer_shape);
        let after = error(hosts.router, hosts.backend, kind, &quoted_after, quote_len, &outer_shape);
        let (protocol, _) = builder::transport(hosts.vip, hosts.client, &transport);
        let (client_port, vip_port) = ports(&transport, false);
        let flow = FlowKey { client: hosts.client, vip: hosts.vip, protocol, client_port, vip_port };
        let mut selector = MockSelector::default().with_flow(flow, hosts.backend);
        let (outcome, bytes) = rewritten(&before, &hosts.vips(), &mut selector);
        prop_assert_eq!(outcome, Outcome::Rewritten);
        prop_assert_eq!(&bytes, &after);
        assert_checksums_valid(&bytes);
        prop_assert_eq!(selector.existing_backend_calls.into_inner(), vec![flow]);
        prop_assert!(selector.backend_for_calls.is_empty());
    }

    #[test]
    fn outbound_error_rewrite_equals_error_built_about_the_vip(
        hosts in hosts(),
        transport in transport(true),
        quoted_shape in shape(),
        outer_shape in shape(),
        quote_extra in any::<prop::sample::Index>(),
        pick in any::<usize>(),
    ) {
        let transport = for_family(transport, &hosts);
        let quoted_before = builder::packet(hosts.client, hosts.backend, &transport, &quoted_shape);
        let quoted_after = builder::packet(hosts.client, hosts.vip, &transport, &quoted_shape);
        let minimum = ip_headers_len(&hosts, &quoted_shape) + 8;
        let quote_len = minimum + quote_extra.index(quoted_before.len() - minimum + 1);
        prop_assume!(!splits_tcp_checksum(&transport, minimum - 8, quote_len));
        let kind = error_type(&hosts, pick);
        let before = error(hosts.backend, hosts.client, kind, &quoted_before, quote_len, &outer_shape);
        let after = error(hosts.vip, hosts.client, kind, &quoted_after, quote_len, &outer_shape);
        let (outcome, bytes) = rewritten(&before, &hosts.vips(), &mut hosts.selector());
        prop_assert_eq!(outcome, Outcome::Rewritten);
        prop_assert_eq!(&bytes, &after);
        assert_checksums_valid(&bytes);
    }
}

/// The golden packets, as starting points for mutation.
const GOLDEN: [&[u8]; 20] = [
    &golden::V4_TCP_SYN,
    &golden::V4_UDP,
    &golden::V4_UDP_NO_CHECKSUM,
    &golden::V4_OPTIONS_TCP,
    &golden::V6_TCP_SYN,
    &golden::V6_UDP,
    &golden::V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP,
    &golden::V6_HOP_BY_HOP_LATER_FRAGMENT_UDP,
    &golden::V4_FIRST_FRAGMENT_UDP,
    &golden::V4_LATER_FRAGMENT_UDP,
    &golden::V4_ECHO_REQUEST,
    &golden::V6_ECHO_REQUEST,
    &golden::V4_FRAGMENTATION_NEEDED,
    &golden::V4_FRAGMENTATION_NEEDED_FULL_QUOTE,
    &golden::V6_PACKET_TOO_BIG,
    &golden::V4_OUTBOUND_SYN_ACK,
    &golden::V4_OUTBOUND_PORT_UNREACHABLE,
    &golden::V6_OUTBOUND_PORT_UNREACHABLE,
    &golden::V6_OUTBOUND_ECHO_REPLY,
    &golden::V4_OUTBOUND_UDP_NO_CHECKSUM,
];

/// Rewrites arbitrary bytes: must not panic, and must leave bytes it does not rewrite as
/// they were.
fn rewrite_anything(packet: &[u8]) -> Result<(), TestCaseError> {
    let mut selector = MockSelector::standard()
        .with_flow(key(CLIENT4, VIP4, protocol::TCP, 40000, 80), BACKEND4)
        .with_flow(key(CLIENT6, VIP6, protocol::TCP, 40000, 443), BACKEND6);
    let mut bytes = packet.to_vec();
    let outcome = rewrite(&mut bytes, &VIPS, &mut selector);
    if outcome != Outcome::Rewritten {
        prop_assert_eq!(&bytes[..], packet);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x00, 0xff]),
        rest in prop::collection::vec(any::<u8>(), 0..160),
    ) {
        let mut packet = vec![first];
        packet.extend_from_slice(&rest);
        rewrite_anything(&packet)?;
    }

    #[test]
    fn mutated_packets_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        keep in any::<prop::sample::Index>(),
    ) {
        let mut packet = GOLDEN[which.index(GOLDEN.len())].to_vec();
        for (at, value) in mutations {
            let at = at.index(packet.len());
            packet[at] = value;
        }
        packet.truncate(1 + keep.index(packet.len()));
        rewrite_anything(&packet)?;
    }
}
