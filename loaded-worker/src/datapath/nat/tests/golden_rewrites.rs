//! Each golden packet rewritten to its golden image, checksums verified by etherparse.

use std::net::IpAddr;

use super::golden::*;
use super::support::*;
use crate::datapath::flow::{FlowKey, Opening};
use crate::datapath::nat::{rewrite, Outcome};
use loaded_proto::wire::protocol::{ICMP, ICMPV6, TCP, UDP};
use loaded_proto::wire::{checksum, icmpv4, icmpv6, ipv4, ipv6};

fn assert_rewrites(before: &[u8], after: &[u8], selector: &mut MockSelector) {
    assert_checksums_valid(before);
    assert_checksums_valid(after);
    let mut packet = before.to_vec();
    assert_eq!(rewrite(&mut packet, &VIPS, selector), Outcome::Rewritten);
    assert_eq!(packet, after);
}

/// Rewrites a flow's first packet to the VIP; returns the keys the selector was asked for
/// a backend.
fn inbound(before: &[u8], after: &[u8]) -> Vec<FlowKey> {
    let mut selector = MockSelector::standard();
    assert_rewrites(before, after, &mut selector);
    assert!(selector.existing_backend_calls.borrow().is_empty());
    assert_eq!(selector.openings, vec![Opening::Opens]);
    selector.backend_for_calls
}

/// Rewrites a later packet of `flow`, whose mapping exists; returns what the selector was
/// told of the packet.
fn inbound_mid_flow(before: &[u8], after: &[u8], flow: FlowKey) -> Opening {
    let backend = if flow.client.is_ipv4() {
        IpAddr::V4(BACKEND4)
    } else {
        IpAddr::V6(BACKEND6)
    };
    let mut selector = MockSelector::no_new_flows().with_flow(flow, backend);
    assert_rewrites(before, after, &mut selector);
    assert_eq!(selector.backend_for_calls, vec![flow]);
    selector.openings[0]
}

/// Rewrites an ICMP error to the VIP about `flow`, mapped to its backend.
fn inbound_error(before: &[u8], after: &[u8], flow: FlowKey, backend: impl Into<IpAddr>) {
    let mut selector = MockSelector::no_new_flows().with_flow(flow, backend);
    assert_rewrites(before, after, &mut selector);
    assert!(
        selector.backend_for_calls.is_empty(),
        "errors create no flow"
    );
    assert_eq!(*selector.existing_backend_calls.borrow(), vec![flow]);
}

/// Rewrites a packet from a backend, which needs no flow lookup.
fn outbound(before: &[u8], after: &[u8]) {
    let mut selector = MockSelector::no_new_flows();
    assert_rewrites(before, after, &mut selector);
    assert!(selector.backend_for_calls.is_empty());
    assert!(selector.existing_backend_calls.borrow().is_empty());
}

#[test]
fn ipv4_tcp_syn() {
    let asked = inbound(&V4_TCP_SYN, &V4_TCP_SYN_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT4, VIP4, TCP, 40000, 80)]);
}

#[test]
fn ipv4_udp_with_checksum() {
    let asked = inbound(&V4_UDP, &V4_UDP_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT4, VIP4, UDP, 5353, 53)]);
}

#[test]
fn ipv4_udp_without_checksum_keeps_it_absent() {
    let asked = inbound(&V4_UDP_NO_CHECKSUM, &V4_UDP_NO_CHECKSUM_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT4, VIP4, UDP, 5353, 53)]);
    assert_eq!(&V4_UDP_NO_CHECKSUM_REWRITTEN[26..28], &[0, 0]);
}

#[test]
fn ipv4_with_options() {
    let flow = key(CLIENT4, VIP4, TCP, 40000, 80);
    let told = inbound_mid_flow(&V4_OPTIONS_TCP, &V4_OPTIONS_TCP_REWRITTEN, flow);
    assert_eq!(told, Opening::TcpNotSyn);
}

#[test]
fn ipv4_first_fragment_has_ports() {
    let asked = inbound(&V4_FIRST_FRAGMENT_UDP, &V4_FIRST_FRAGMENT_UDP_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT4, VIP4, UDP, 5353, 53)]);
}

#[test]
fn ipv4_later_fragment_has_no_ports() {
    let flow = key(CLIENT4, VIP4, UDP, 0, 0);
    let told = inbound_mid_flow(
        &V4_LATER_FRAGMENT_UDP,
        &V4_LATER_FRAGMENT_UDP_REWRITTEN,
        flow,
    );
    assert_eq!(told, Opening::LaterFragment);
}

#[test]
fn ipv6_tcp_syn() {
    let asked = inbound(&V6_TCP_SYN, &V6_TCP_SYN_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT6, VIP6, TCP, 40000, 443)]);
}

#[test]
fn ipv6_udp() {
    let asked = inbound(&V6_UDP, &V6_UDP_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT6, VIP6, UDP, 5353, 53)]);
}

#[test]
fn ipv6_hop_by_hop_and_first_fragment() {
    let asked = inbound(
        &V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP,
        &V6_HOP_BY_HOP_FIRST_FRAGMENT_UDP_REWRITTEN,
    );
    assert_eq!(asked, vec![key(CLIENT6, VIP6, UDP, 5353, 53)]);
}

#[test]
fn ipv6_later_fragment_has_no_ports() {
    let told = inbound_mid_flow(
        &V6_HOP_BY_HOP_LATER_FRAGMENT_UDP,
        &V6_HOP_BY_HOP_LATER_FRAGMENT_UDP_REWRITTEN,
        key(CLIENT6, VIP6, UDP, 0, 0),
    );
    assert_eq!(told, Opening::LaterFragment);
}

#[test]
fn ipv4_echo_request_keeps_icmp_checksum() {
    let asked = inbound(&V4_ECHO_REQUEST, &V4_ECHO_REQUEST_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT4, VIP4, ICMP, 0x1234, 0)]);
    assert_eq!(&V4_ECHO_REQUEST[22..24], &V4_ECHO_REQUEST_REWRITTEN[22..24]);
}

#[test]
fn ipv6_echo_request() {
    let asked = inbound(&V6_ECHO_REQUEST, &V6_ECHO_REQUEST_REWRITTEN);
    assert_eq!(asked, vec![key(CLIENT6, VIP6, ICMPV6, 0x1234, 0)]);
}

#[test]
fn ipv4_fragmentation_needed_with_short_quote() {
    let flow = key(CLIENT4, VIP4, TCP, 40000, 80);
    inbound_error(
        &V4_FRAGMENTATION_NEEDED,
        &V4_FRAGMENTATION_NEEDED_REWRITTEN,
        flow,
        BACKEND4,
    );
}

#[test]
fn ipv4_fragmentation_needed_with_whole_quote() {
    let flow = key(CLIENT4, VIP4, TCP, 40000, 80);
    inbound_error(
        &V4_FRAGMENTATION_NEEDED_FULL_QUOTE,
        &V4_FRAGMENTATION_NEEDED_FULL_QUOTE_REWRITTEN,
        flow,
        BACKEND4,
    );
}

#[test]
fn ipv6_packet_too_big_with_truncated_quote() {
    let flow = key(CLIENT6, VIP6, TCP, 40000, 443);
    inbound_error(
        &V6_PACKET_TOO_BIG,
        &V6_PACKET_TOO_BIG_REWRITTEN,
        flow,
        BACKEND6,
    );
}

#[test]
fn ipv4_outbound_syn_ack() {
    outbound(&V4_OUTBOUND_SYN_ACK, &V4_OUTBOUND_SYN_ACK_REWRITTEN);
}

#[test]
fn ipv4_outbound_udp_without_checksum() {
    outbound(
        &V4_OUTBOUND_UDP_NO_CHECKSUM,
        &V4_OUTBOUND_UDP_NO_CHECKSUM_REWRITTEN,
    );
}

#[test]
fn ipv4_outbound_port_unreachable() {
    outbound(
        &V4_OUTBOUND_PORT_UNREACHABLE,
        &V4_OUTBOUND_PORT_UNREACHABLE_REWRITTEN,
    );
}

#[test]
fn ipv6_outbound_port_unreachable() {
    outbound(
        &V6_OUTBOUND_PORT_UNREACHABLE,
        &V6_OUTBOUND_PORT_UNREACHABLE_REWRITTEN,
    );
}

#[test]
fn ipv6_outbound_echo_reply() {
    outbound(&V6_OUTBOUND_ECHO_REPLY, &V6_OUTBOUND_ECHO_REPLY_REWRITTEN);
}

/// An error the balancer sent a client about `flow`, quoting the packet after its rewrite
/// to `backend`: with the flow mapped to `backend` the quote gets the VIP back; without a
/// mapping, or with one to another server, the error passes unchanged.
fn local_error(before: &[u8], after: &[u8], flow: FlowKey, backend: IpAddr, other: IpAddr) {
    let mut selector = MockSelector::no_new_flows().with_flow(flow, backend);
    assert_rewrites(before, after, &mut selector);
    assert!(
        selector.backend_for_calls.is_empty(),
        "errors create no flow"
    );
    assert_eq!(*selector.existing_backend_calls.borrow(), vec![flow]);
    for mut selector in [
        MockSelector::no_new_flows(),
        MockSelector::no_new_flows().with_flow(flow, other),
    ] {
        selector.backends.push(other);
        let mut packet = before.to_vec();
        assert_eq!(rewrite(&mut packet, &VIPS, &mut selector), Outcome::NotOurs);
        assert_eq!(packet, before);
    }
}

#[test]
fn ipv4_fragmentation_needed_from_the_balancer_gets_the_vip_back_in_its_quote() {
    let flow = key(CLIENT4, VIP4, TCP, 40000, 80);
    let other = IpAddr::from([10, 1, 0, 3]);
    local_error(
        &V4_LOCAL_FRAGMENTATION_NEEDED,
        &V4_LOCAL_FRAGMENTATION_NEEDED_RESTORED,
        flow,
        BACKEND4.into(),
        other,
    );
    // Read back with the views: the outer header is the balancer's own, the quote the
    // client's packet to the VIP, with the MTU the client must learn.
    let outer = ipv4::Packet::new_checked(&V4_LOCAL_FRAGMENTATION_NEEDED_RESTORED[..]).unwrap();
    assert_eq!(outer.src_addr(), ROUTER4);
    assert_eq!(outer.dst_addr(), CLIENT4);
    let error = icmpv4::Packet::new_checked(outer.payload()).unwrap();
    assert_eq!((error.message_type(), error.code()), (3, 4));
    assert!(error.verify_checksum());
    assert_eq!(&outer.payload()[6..8], &1280u16.to_be_bytes());
    let quoted = ipv4::Packet::new_checked_truncated(error.data()).unwrap();
    assert_eq!((quoted.src_addr(), quoted.dst_addr()), (CLIENT4, VIP4));
    assert!(quoted.verify_checksum());
}

#[test]
fn ipv6_packet_too_big_from_the_balancer_gets_the_vip_back_in_its_quote() {
    let flow = key(CLIENT6, VIP6, TCP, 40000, 443);
    let other = IpAddr::from(std::net::Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 3));
    local_error(
        &V6_LOCAL_PACKET_TOO_BIG,
        &V6_LOCAL_PACKET_TOO_BIG_RESTORED,
        flow,
        BACKEND6.into(),
        other,
    );
    let outer = ipv6::Packet::new_checked(&V6_LOCAL_PACKET_TOO_BIG_RESTORED[..]).unwrap();
    assert_eq!((outer.src_addr(), outer.dst_addr()), (ROUTER6, CLIENT6));
    let error = icmpv6::Packet::new_checked(outer.payload()).unwrap();
    assert_eq!(error.message_type(), icmpv6::message::PACKET_TOO_BIG);
    assert_eq!(error.mtu(), 1280);
    let length = outer.payload().len() as u32;
    let pseudo_header = checksum::pseudo_header_v6(ROUTER6, CLIENT6, ICMPV6, length);
    assert!(error.verify_checksum(pseudo_header));
    let quoted = ipv6::Packet::new_checked_truncated(error.data()).unwrap();
    assert_eq!((quoted.src_addr(), quoted.dst_addr()), (CLIENT6, VIP6));
}

#[test]
fn an_error_not_sent_to_the_quoted_packets_source_passes_unchanged() {
    // The quote's source is the client, the error goes elsewhere (forged, or misrouted).
    let mut packet = V4_LOCAL_FRAGMENTATION_NEEDED.to_vec();
    packet[16..20].copy_from_slice(&ROUTER4.octets());
    let flow = key(CLIENT4, VIP4, TCP, 40000, 80);
    let mut selector = MockSelector::no_new_flows().with_flow(flow, BACKEND4);
    let before = packet.clone();
    assert_eq!(rewrite(&mut packet, &VIPS, &mut selector), Outcome::NotOurs);
    assert_eq!(packet, before);
}
