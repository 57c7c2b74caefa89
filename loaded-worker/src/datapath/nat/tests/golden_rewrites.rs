//! Each golden packet rewritten to its golden image, checksums verified by etherparse.

use std::net::IpAddr;

use super::golden::*;
use super::support::*;
use crate::datapath::flow::{FlowKey, Opening};
use crate::datapath::nat::{rewrite, Outcome};
use loaded_proto::wire::protocol::{ICMP, ICMPV6, TCP, UDP};

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
