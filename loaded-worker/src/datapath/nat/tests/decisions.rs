//! Which packets are ours, which are dropped and why, and the keys the selector is asked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::builder::{self, Shape, Transport};
use super::golden::*;
use super::support::*;
use crate::datapath::flow::{Opening, Vips};
use crate::datapath::nat::{rewrite, DropReason, Outcome};
use loaded_proto::wire::{checksum, protocol, tcp};

fn run(packet: &[u8], vips: &Vips, selector: &mut MockSelector) -> (Outcome, Vec<u8>) {
    let mut bytes = packet.to_vec();
    let outcome = rewrite(&mut bytes, vips, selector);
    (outcome, bytes)
}

/// The outcome for a packet that must be left as it is.
fn unchanged(packet: &[u8], selector: &mut MockSelector) -> Outcome {
    let (outcome, bytes) = run(packet, &VIPS, selector);
    assert_eq!(bytes, packet, "the packet must be left unchanged");
    outcome
}

/// A SYN, which may open a flow.
fn tcp(src_port: u16, dst_port: u16) -> Transport {
    Transport::Tcp {
        src_port,
        dst_port,
        syn: true,
        option_words: 0,
        payload: b"data".to_vec(),
    }
}

fn udp(src_port: u16, dst_port: u16) -> Transport {
    Transport::Udp {
        src_port,
        dst_port,
        with_checksum: true,
        payload: b"query".to_vec(),
    }
}

fn icmp(message_type: u8, body: &[u8]) -> Transport {
    Transport::Icmp {
        message_type,
        code: 0,
        body: body.to_vec(),
    }
}

fn whole(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, transport: &Transport) -> Vec<u8> {
    builder::packet(src.into(), dst.into(), transport, &Shape::default())
}

#[test]
fn drop_reasons_have_counter_names() {
    let names: Vec<_> = DropReason::ALL.iter().map(|reason| reason.name()).collect();
    assert_eq!(
        names,
        [
            "malformed",
            "unsupported",
            "no_backend",
            "table_busy",
            "unknown_flow",
            "tcp_not_syn_unknown_flow",
            "fragment_unknown_flow"
        ]
    );
}

#[test]
fn traffic_between_others_is_not_ours() {
    let mut selector = MockSelector::standard();
    for packet in [
        whole(CLIENT4, ROUTER4, &tcp(40000, 80)),
        whole(ROUTER6, CLIENT6, &udp(53, 5353)),
        // From the VIP itself: the balancer host's own traffic.
        whole(VIP4, CLIENT4, &tcp(80, 40000)),
    ] {
        assert_eq!(unchanged(&packet, &mut selector), Outcome::NotOurs);
    }
    assert!(selector.backend_for_calls.is_empty());
}

#[test]
fn extension_headers_of_others_are_not_looked_at() {
    // A hop-by-hop header that runs past the packet.
    let packet = builder::ip(
        CLIENT6.into(),
        ROUTER6.into(),
        protocol::HOP_BY_HOP,
        &[protocol::TCP, 4, 0, 0],
        &Shape::default(),
    );
    let mut selector = MockSelector::standard();
    assert_eq!(unchanged(&packet, &mut selector), Outcome::NotOurs);
    let mut to_vip = packet;
    to_vip[24..40].copy_from_slice(&VIP6.octets());
    assert_eq!(
        unchanged(&to_vip, &mut selector),
        Outcome::Drop(DropReason::Malformed)
    );
}

#[test]
fn backend_traffic_without_a_vip_of_its_family_is_not_ours() {
    let only_v4 = Vips {
        v4: Some(VIP4),
        v6: None,
    };
    let packet = whole(BACKEND6, CLIENT6, &tcp(443, 40000));
    let (outcome, bytes) = run(&packet, &only_v4, &mut MockSelector::standard());
    assert_eq!((outcome, bytes), (Outcome::NotOurs, packet));
}

#[test]
fn neighbor_discovery_passes_unchanged() {
    let mut selector = MockSelector::standard();
    for message_type in 133..=137 {
        let transport = icmp(message_type, &VIP6.octets());
        for packet in [
            whole(CLIENT6, VIP6, &transport),
            whole(BACKEND6, CLIENT6, &transport),
        ] {
            assert_eq!(unchanged(&packet, &mut selector), Outcome::NotOurs);
        }
    }
    assert!(selector.backend_for_calls.is_empty());
}

#[test]
fn no_backend_for_a_new_flow() {
    let mut selector = MockSelector::no_new_flows();
    assert_eq!(
        unchanged(&V4_TCP_SYN, &mut selector),
        Outcome::Drop(DropReason::NoBackend)
    );
    assert_eq!(
        unchanged(&V6_UDP, &mut selector),
        Outcome::Drop(DropReason::NoBackend)
    );
}

#[test]
fn backend_of_the_other_family_is_no_backend() {
    let flow = key(CLIENT4, VIP4, protocol::TCP, 40000, 80);
    let mut selector = MockSelector::no_new_flows().with_flow(flow, BACKEND6);
    assert_eq!(
        unchanged(&V4_TCP_SYN, &mut selector),
        Outcome::Drop(DropReason::NoBackend)
    );
}

#[test]
fn an_existing_flow_keeps_its_backend() {
    let other_backend = Ipv4Addr::new(10, 1, 0, 3);
    let flow = key(CLIENT4, VIP4, protocol::TCP, 40000, 80);
    let mut selector = MockSelector::standard().with_flow(flow, other_backend);
    let (outcome, bytes) = run(&V4_TCP_SYN, &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    assert_eq!(&bytes[16..20], &other_backend.octets());
    assert_checksums_valid(&bytes);
}

#[test]
fn icmp_error_about_an_unknown_flow() {
    let mut selector = MockSelector::standard();
    for packet in [
        &V4_FRAGMENTATION_NEEDED[..],
        &V4_FRAGMENTATION_NEEDED_FULL_QUOTE,
        &V6_PACKET_TOO_BIG,
    ] {
        assert_eq!(
            unchanged(packet, &mut selector),
            Outcome::Drop(DropReason::UnknownFlow)
        );
    }
    assert!(
        selector.backend_for_calls.is_empty(),
        "errors create no flow"
    );
    assert_eq!(selector.existing_backend_calls.borrow().len(), 3);
}

#[test]
fn icmp_error_about_a_packet_not_from_the_vip() {
    let quote = whole(ROUTER4, CLIENT4, &udp(53, 5353));
    let error = whole(ROUTER4, VIP4, &icmp(3, &quote));
    let flow = key(CLIENT4, ROUTER4, protocol::UDP, 5353, 53);
    let mut selector = MockSelector::standard().with_flow(flow, BACKEND4);
    assert_eq!(
        unchanged(&error, &mut selector),
        Outcome::Drop(DropReason::UnknownFlow)
    );
}

#[test]
fn icmp_error_quoting_an_echo_reply_uses_its_identifier() {
    let echo_reply = Transport::Echo {
        request: false,
        identifier: 77,
        payload: b"ping".to_vec(),
    };
    let quote = whole(VIP4, CLIENT4, &echo_reply);
    let error = whole(ROUTER4, VIP4, &icmp(11, &quote));
    let flow = key(CLIENT4, VIP4, protocol::ICMP, 77, 0);
    let mut selector = MockSelector::no_new_flows().with_flow(flow, BACKEND4);
    let (outcome, bytes) = run(&error, &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    let expected_quote = whole(BACKEND4, CLIENT4, &echo_reply);
    assert_eq!(bytes, whole(ROUTER4, BACKEND4, &icmp(11, &expected_quote)));
}

#[test]
fn icmp_error_quoting_a_later_fragment_has_no_ports() {
    let later = Shape {
        fragment: Some((100, true)),
        ..Shape::default()
    };
    // Four bytes of fragment data: less than a transport header, and none is needed.
    let quote = builder::ip(
        VIP4.into(),
        CLIENT4.into(),
        protocol::UDP,
        &[1, 2, 3, 4],
        &later,
    );
    let error = whole(ROUTER4, VIP4, &icmp(11, &quote));
    let flow = key(CLIENT4, VIP4, protocol::UDP, 0, 0);
    let mut selector = MockSelector::no_new_flows().with_flow(flow, BACKEND4);
    let (outcome, bytes) = run(&error, &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    let expected_quote = builder::ip(
        BACKEND4.into(),
        CLIENT4.into(),
        protocol::UDP,
        &[1, 2, 3, 4],
        &later,
    );
    assert_eq!(bytes, whole(ROUTER4, BACKEND4, &icmp(11, &expected_quote)));
}

#[test]
fn other_protocols_to_the_vip_are_unsupported() {
    let mut selector = MockSelector::standard();
    let gre = 47;
    let sctp = 132;
    for protocol in [gre, sctp, protocol::ESP] {
        for (client, vip) in [
            (IpAddr::from(CLIENT4), IpAddr::from(VIP4)),
            (CLIENT6.into(), VIP6.into()),
        ] {
            let packet = builder::ip(client, vip, protocol, &[0; 16], &Shape::default());
            assert_eq!(
                unchanged(&packet, &mut selector),
                Outcome::Drop(DropReason::UnsupportedProtocol)
            );
        }
    }
    // Extension headers that end in no next header; the other family's ICMP.
    let nothing = builder::ip(
        CLIENT6.into(),
        VIP6.into(),
        protocol::DESTINATION_OPTIONS,
        &[protocol::NO_NEXT_HEADER, 0, 1, 4, 0, 0, 0, 0],
        &Shape::default(),
    );
    let icmpv4_in_v6 = builder::ip(
        CLIENT6.into(),
        VIP6.into(),
        protocol::ICMP,
        &[8; 16],
        &Shape::default(),
    );
    for packet in [nothing, icmpv4_in_v6] {
        assert_eq!(
            unchanged(&packet, &mut selector),
            Outcome::Drop(DropReason::UnsupportedProtocol)
        );
    }
    assert!(selector.backend_for_calls.is_empty());
}

#[test]
fn other_icmp_types_to_the_vip_are_unsupported() {
    let mut selector = MockSelector::standard();
    let echo_reply = 0;
    let redirect = 5;
    let timestamp = 13;
    for message_type in [echo_reply, redirect, timestamp] {
        let packet = whole(CLIENT4, VIP4, &icmp(message_type, &[0; 12]));
        assert_eq!(
            unchanged(&packet, &mut selector),
            Outcome::Drop(DropReason::UnsupportedProtocol)
        );
    }
    let echo_reply_v6 = 129;
    let listener_query = 130;
    for message_type in [echo_reply_v6, listener_query] {
        let packet = whole(CLIENT6, VIP6, &icmp(message_type, &[0; 16]));
        assert_eq!(
            unchanged(&packet, &mut selector),
            Outcome::Drop(DropReason::UnsupportedProtocol)
        );
    }
}

#[test]
fn vip_as_a_routing_waypoint_is_unsupported() {
    let (_, segment) = builder::transport(CLIENT6.into(), VIP6.into(), &tcp(40000, 80));
    let routing = |segments_left: u8| {
        let mut payload = vec![protocol::TCP, 2, 4, segments_left, 0, 0, 0, 0];
        payload.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        payload.extend_from_slice(&segment);
        builder::ip(
            CLIENT6.into(),
            VIP6.into(),
            protocol::ROUTING,
            &payload,
            &Shape::default(),
        )
    };
    let mut selector = MockSelector::standard();
    assert_eq!(
        unchanged(&routing(1), &mut selector),
        Outcome::Drop(DropReason::UnsupportedProtocol)
    );
    let (outcome, bytes) = run(&routing(0), &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    assert_checksums_valid(&bytes);
}

#[test]
fn ipv6_authentication_header_to_the_vip_is_dropped_as_documented() {
    let (_, segment) = builder::transport(CLIENT6.into(), VIP6.into(), &tcp(40000, 80));
    // AH of 16 bytes (payload length field 2: (2 + 2) * 4), then TCP.
    let mut payload = vec![protocol::TCP, 2, 0, 0];
    payload.resize(16, 0);
    payload.extend_from_slice(&segment);
    let packet = builder::ip(
        CLIENT6.into(),
        VIP6.into(),
        protocol::AH,
        &payload,
        &Shape::default(),
    );
    let mut selector = MockSelector::standard();
    assert_eq!(
        unchanged(&packet, &mut selector),
        Outcome::Drop(DropReason::UnsupportedProtocol)
    );
}

#[test]
fn backends_only_answer_echo() {
    let mut selector = MockSelector::standard();
    let echo_request = Transport::Echo {
        request: true,
        identifier: 1,
        payload: Vec::new(),
    };
    for packet in [
        whole(BACKEND4, CLIENT4, &echo_request),
        whole(BACKEND6, CLIENT6, &echo_request),
        whole(BACKEND4, CLIENT4, &icmp(13, &[0; 12])),
        builder::ip(
            BACKEND4.into(),
            CLIENT4.into(),
            47,
            &[0; 8],
            &Shape::default(),
        ),
    ] {
        assert_eq!(
            unchanged(&packet, &mut selector),
            Outcome::Drop(DropReason::UnsupportedProtocol)
        );
    }
}

#[test]
fn backend_error_about_a_packet_not_to_a_backend_changes_only_the_source() {
    let quote = whole(CLIENT4, ROUTER4, &udp(5353, 53));
    let error = whole(BACKEND4, CLIENT4, &icmp(11, &quote));
    let (outcome, bytes) = run(&error, &VIPS, &mut MockSelector::standard());
    assert_eq!(outcome, Outcome::Rewritten);
    assert_eq!(bytes, whole(VIP4, CLIENT4, &icmp(11, &quote)));
}

#[test]
fn a_backend_reaching_the_vip_is_a_client() {
    let packet = whole(BACKEND4, VIP4, &tcp(40000, 80));
    let mut selector = MockSelector::standard();
    let (outcome, bytes) = run(&packet, &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    assert_eq!(bytes, whole(BACKEND4, BACKEND4, &tcp(40000, 80)));
    assert_eq!(
        selector.backend_for_calls,
        vec![key(BACKEND4, VIP4, protocol::TCP, 40000, 80)]
    );
}

#[test]
fn trailing_bytes_beyond_the_ip_length_are_ignored() {
    for (before, after) in [
        (&V4_TCP_SYN[..], &V4_TCP_SYN_REWRITTEN[..]),
        (&V6_UDP, &V6_UDP_REWRITTEN),
        (&V4_FRAGMENTATION_NEEDED, &V4_FRAGMENTATION_NEEDED_REWRITTEN),
    ] {
        let trailer = [0xaa, 0xbb, 0xcc];
        let flow = key(CLIENT4, VIP4, protocol::TCP, 40000, 80);
        let mut selector = MockSelector::standard().with_flow(flow, BACKEND4);
        let (outcome, bytes) = run(&[before, &trailer].concat(), &VIPS, &mut selector);
        assert_eq!(outcome, Outcome::Rewritten);
        assert_eq!(bytes, [after, &trailer].concat());
    }
}

#[test]
fn a_later_fragment_may_carry_less_than_a_transport_header() {
    let later = Shape {
        fragment: Some((3, false)),
        ..Shape::default()
    };
    for (client, vip, backend) in [
        (
            IpAddr::from(CLIENT4),
            IpAddr::from(VIP4),
            IpAddr::from(BACKEND4),
        ),
        (CLIENT6.into(), VIP6.into(), BACKEND6.into()),
    ] {
        for data in [&[][..], &[1, 2, 3]] {
            let packet = builder::ip(client, vip, protocol::TCP, data, &later);
            let mut selector =
                MockSelector::standard().with_flow(key(client, vip, protocol::TCP, 0, 0), backend);
            let (outcome, bytes) = run(&packet, &VIPS, &mut selector);
            assert_eq!(outcome, Outcome::Rewritten);
            assert_eq!(
                bytes,
                builder::ip(client, backend, protocol::TCP, data, &later)
            );
        }
    }
}

/// A TCP segment with these flags and a little data.
fn tcp_with_flags(flags: u8) -> Vec<u8> {
    let mut packet = whole(CLIENT4, VIP4, &tcp(40000, 80));
    // The flags share a 16-bit word with the data offset.
    let word_at = 20 + tcp::field::DATA_OFFSET;
    let old = u16::from_be_bytes([packet[word_at], packet[word_at + 1]]);
    packet[word_at + 1] = flags;
    let new = u16::from_be_bytes([packet[word_at], packet[word_at + 1]]);
    let checksum_at = 20 + tcp::field::CHECKSUM.start;
    let sum = u16::from_be_bytes([packet[checksum_at], packet[checksum_at + 1]]);
    let patched = checksum::Delta::of_word(old, new).apply(sum);
    packet[checksum_at..checksum_at + 2].copy_from_slice(&patched.to_be_bytes());
    assert_checksums_valid(&packet);
    packet
}

#[test]
fn only_a_syn_without_ack_opens_a_tcp_flow() {
    use tcp::flags::{ACK, FIN, PSH, RST, SYN};
    for flags in [ACK, PSH | ACK, SYN | ACK, RST, RST | ACK, FIN | ACK, 0] {
        let mut selector = MockSelector::standard();
        assert_eq!(
            unchanged(&tcp_with_flags(flags), &mut selector),
            Outcome::Drop(DropReason::TcpNotSynUnknownFlow),
            "flags {flags:#04x}"
        );
        assert_eq!(selector.openings, vec![Opening::TcpNotSyn]);
        assert!(
            selector.flows.is_empty(),
            "flags {flags:#04x} made a mapping"
        );
    }
    for flags in [SYN, SYN | PSH, SYN | FIN] {
        let mut selector = MockSelector::standard();
        let (outcome, _) = run(&tcp_with_flags(flags), &VIPS, &mut selector);
        assert_eq!(outcome, Outcome::Rewritten, "flags {flags:#04x}");
        assert_eq!(selector.openings, vec![Opening::Opens]);
        assert_eq!(selector.flows.len(), 1);
    }
}

#[test]
fn a_later_segment_follows_the_mapping_its_syn_made() {
    let mut selector = MockSelector::standard();
    let (outcome, _) = run(&tcp_with_flags(tcp::flags::SYN), &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    // No server takes new flows any more: the ACK still reaches the SYN's.
    selector.new_flow_backends.clear();
    let (outcome, bytes) = run(&tcp_with_flags(tcp::flags::ACK), &VIPS, &mut selector);
    assert_eq!(outcome, Outcome::Rewritten);
    assert_eq!(&bytes[16..20], &BACKEND4.octets());
    assert_eq!(selector.openings, vec![Opening::Opens, Opening::TcpNotSyn]);
}

#[test]
fn udp_and_echo_requests_open_flows_and_later_fragments_do_not() {
    let later = Shape {
        fragment: Some((3, false)),
        ..Shape::default()
    };
    let echo = Transport::Echo {
        request: true,
        identifier: 7,
        payload: b"ping".to_vec(),
    };
    for (client, vip) in [
        (IpAddr::from(CLIENT4), IpAddr::from(VIP4)),
        (CLIENT6.into(), VIP6.into()),
    ] {
        for opener in [
            whole(client, vip, &udp(5353, 53)),
            whole(client, vip, &echo),
        ] {
            let mut selector = MockSelector::standard();
            let (outcome, _) = run(&opener, &VIPS, &mut selector);
            assert_eq!(outcome, Outcome::Rewritten);
            assert_eq!(selector.openings, vec![Opening::Opens]);
        }
        for protocol in [protocol::UDP, protocol::TCP] {
            let packet = builder::ip(client, vip, protocol, &[1; 16], &later);
            let mut selector = MockSelector::standard();
            assert_eq!(
                unchanged(&packet, &mut selector),
                Outcome::Drop(DropReason::FragmentUnknownFlow)
            );
            assert!(selector.flows.is_empty());
        }
    }
}
