//! Kernel-assisted forwarding (`forward=kernel`): the worker decides, the kernel forwards.
//!
//! Only a connection's first packet is queued (the master's rule queues connections that
//! carry no loaded mark yet). The worker chooses the server exactly as in userspace mode,
//! through the same `Balancer` and shared flow table, and answers with a mark naming the
//! server's directory slot; it never touches the payload. The master's nftables rules save
//! the mark on the connection and DNAT it through a map from mark to server address;
//! conntrack then translates the rest of the connection, replies and ICMP errors included.

use super::balancer::Balancer;
use super::flow::Vips;
use super::nat::{self, DropReason, ToVip};
use loaded_proto::forwarding::mark_for_slot;

/// The verdict for one queued packet in kernel mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelDecision {
    /// Accept with this mark (`loaded_proto::forwarding`), payload unchanged.
    Mark(u32),
    /// Not balancer traffic (not to a VIP, or neighbour discovery): accept unchanged and
    /// unmarked. A server's reply lands here too should it ever be queued: conntrack
    /// translates replies in this mode.
    NotOurs,
    /// Balancer traffic that cannot be forwarded; counted like in userspace mode.
    Drop(DropReason),
}

/// Decides one queued packet. Parsing and validation are the NAT rewrite's own, so both
/// modes accept and refuse the same packets.
pub fn decide(packet: &[u8], vips: &Vips, balancer: &mut Balancer) -> KernelDecision {
    let (key, opening) = match nat::classify_to_vip(packet, vips) {
        Err(reason) => return KernelDecision::Drop(reason),
        Ok(None | Some(ToVip::NeighborDiscovery)) => return KernelDecision::NotOurs,
        // conntrack hands errors about a decided connection to its server itself (they are
        // RELATED and carry the connection's mark, so they are never queued); one that
        // reaches us is about no connection loaded decided.
        Ok(Some(ToVip::IcmpError)) => return KernelDecision::Drop(DropReason::UnknownFlow),
        Ok(Some(ToVip::Flow { key, opening })) => (key, opening),
    };
    let chosen = match balancer.backend_slot_for(&key, opening) {
        Ok(chosen) if chosen.addr.is_ipv4() == key.client.is_ipv4() => chosen,
        Ok(_) => return KernelDecision::Drop(DropReason::NoBackend),
        Err(no_pick) => return KernelDecision::Drop(DropReason::of_no_pick(no_pick, opening)),
    };
    match mark_for_slot(chosen.slot) {
        Some(mark) => KernelDecision::Mark(mark),
        None => KernelDecision::Drop(DropReason::NoBackend),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::balancer::BalancerConfig;
    use crate::datapath::nat::tests::golden;
    use loaded_proto::balancing::{Backend, Stickiness, Strategy};
    use loaded_proto::flow_table::SharedFlowTable;
    use loaded_proto::forwarding::slot_of_mark;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    /// The golden packets' addresses (nat/tests/support.rs).
    const VIPS: Vips = Vips {
        v4: Some(Ipv4Addr::new(203, 0, 113, 10)),
        v6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10)),
    };
    /// The golden replies come from 10.1.0.2; it is the third IPv4 server here.
    const SERVERS: [&str; 4] = ["10.1.0.1", "fd00:1::2", "10.1.0.2", "10.1.0.3"];

    fn balancer(strategy: Strategy, stickiness: Stickiness) -> Balancer {
        Balancer::new(
            BalancerConfig {
                strategy,
                stickiness,
                backends: SERVERS
                    .iter()
                    .map(|addr| Backend {
                        addr: addr.parse().unwrap(),
                        weight: 1,
                    })
                    .collect(),
                flow_timeout: Duration::from_secs(300),
                maglev_seed: 0,
                hotplug_nets: crate::datapath::balancer::anywhere(),
            },
            SharedFlowTable::anonymous(4096).unwrap(),
        )
    }

    fn slot_of(decision: KernelDecision) -> usize {
        match decision {
            KernelDecision::Mark(mark) => slot_of_mark(mark).expect("a mark of ours"),
            other => panic!("expected a mark, got {other:?}"),
        }
    }

    #[test]
    fn a_syn_to_the_vip_gets_the_mark_of_the_schedulers_pick() {
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Flow);
        // Directory slots follow registration (config) order; rr starts at the first IPv4.
        assert_eq!(
            decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer),
            KernelDecision::Mark(0x4c44_0001)
        );
        // The same flow again (a retransmitted SYN): the same server.
        assert_eq!(
            slot_of(decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer)),
            0
        );
        // Another flow: the next IPv4 server, slot 2 (slot 1 is the IPv6 one).
        assert_eq!(slot_of(decide(&golden::V4_UDP, &VIPS, &mut balancer)), 2);
        assert_eq!(
            slot_of(decide(&golden::V6_TCP_SYN, &VIPS, &mut balancer)),
            1
        );
        assert_eq!(
            slot_of(decide(&golden::V4_ECHO_REQUEST, &VIPS, &mut balancer)),
            3
        );
        assert_eq!(
            slot_of(decide(&golden::V6_ECHO_REQUEST, &VIPS, &mut balancer)),
            1
        );
    }

    #[test]
    fn every_packet_of_a_flow_gets_the_same_mark() {
        // UDP packets that arrive while the first is being decided are queued too; conntrack
        // merges them only if they carry the same mark.
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Flow);
        let first = decide(&golden::V4_UDP, &VIPS, &mut balancer);
        for _ in 0..5 {
            assert_eq!(decide(&golden::V4_UDP, &VIPS, &mut balancer), first);
        }
        assert_eq!(
            decide(&golden::V4_UDP_NO_CHECKSUM, &VIPS, &mut balancer),
            first
        );
    }

    #[test]
    fn the_mark_follows_health_like_the_rewrite() {
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Client);
        assert_eq!(
            slot_of(decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer)),
            0
        );
        balancer.set_backend_up("10.1.0.1".parse().unwrap(), false);
        // Moved at its next packet to a live IPv4 server (slot 2 or 3).
        let moved = slot_of(decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer));
        assert!([2, 3].contains(&moved), "{moved}");
        // Back up: the moved client stays where it is now.
        balancer.set_backend_up("10.1.0.1".parse().unwrap(), true);
        assert_eq!(
            slot_of(decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer)),
            moved
        );
        for server in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
            balancer.set_backend_up(server.parse().unwrap(), false);
        }
        assert_eq!(
            decide(&golden::V4_TCP_SYN, &VIPS, &mut balancer),
            KernelDecision::Drop(DropReason::NoBackend)
        );
    }

    #[test]
    fn replies_and_other_traffic_are_not_ours() {
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Flow);
        // conntrack translates replies; the worker never marks them.
        assert_eq!(
            decide(&golden::V4_OUTBOUND_SYN_ACK, &VIPS, &mut balancer),
            KernelDecision::NotOurs
        );
        assert_eq!(
            decide(&golden::V6_OUTBOUND_ECHO_REPLY, &VIPS, &mut balancer),
            KernelDecision::NotOurs
        );
        let elsewhere = Vips {
            v4: Some(Ipv4Addr::new(192, 0, 2, 99)),
            v6: None,
        };
        assert_eq!(
            decide(&golden::V4_TCP_SYN, &elsewhere, &mut balancer),
            KernelDecision::NotOurs
        );
        assert_eq!(balancer.stats().table.inserted, 0, "no mapping was made");
    }

    #[test]
    fn icmp_errors_that_reach_the_worker_are_about_no_decided_flow() {
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Flow);
        for error in [
            &golden::V4_FRAGMENTATION_NEEDED[..],
            &golden::V6_PACKET_TOO_BIG[..],
        ] {
            assert_eq!(
                decide(error, &VIPS, &mut balancer),
                KernelDecision::Drop(DropReason::UnknownFlow)
            );
        }
    }

    #[test]
    fn malformed_packets_are_dropped_and_never_mapped() {
        let mut balancer = balancer(Strategy::RoundRobin, Stickiness::Flow);
        for cut in [0, 1, 19, 30, 43] {
            assert_eq!(
                decide(&golden::V4_TCP_SYN[..cut], &VIPS, &mut balancer),
                KernelDecision::Drop(DropReason::Malformed),
                "cut at {cut}"
            );
        }
        let mut bad_version = golden::V4_TCP_SYN;
        bad_version[0] = 0x55;
        assert_eq!(
            decide(&bad_version, &VIPS, &mut balancer),
            KernelDecision::Drop(DropReason::Malformed)
        );
        // IPv6 UDP without a checksum is invalid (RFC 8200 8.1), as in userspace mode.
        let mut no_checksum = golden::V6_UDP;
        no_checksum[46..48].copy_from_slice(&[0, 0]);
        assert_eq!(
            decide(&no_checksum, &VIPS, &mut balancer),
            KernelDecision::Drop(DropReason::Malformed)
        );
        assert_eq!(balancer.stats().table.inserted, 0);
    }

    #[test]
    fn a_flow_never_gets_a_server_of_the_other_family() {
        let mut balancer = Balancer::new(
            BalancerConfig {
                strategy: Strategy::RoundRobin,
                stickiness: Stickiness::Flow,
                backends: vec![Backend {
                    addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
                    weight: 1,
                }],
                flow_timeout: Duration::from_secs(300),
                maglev_seed: 0,
                hotplug_nets: crate::datapath::balancer::anywhere(),
            },
            SharedFlowTable::anonymous(4096).unwrap(),
        );
        assert_eq!(
            decide(&golden::V6_TCP_SYN, &VIPS, &mut balancer),
            KernelDecision::Drop(DropReason::NoBackend)
        );
    }

    #[test]
    fn a_segment_without_syn_of_an_unknown_connection_is_dropped_unless_maglev() {
        // V4_OPTIONS_TCP carries PSH|ACK: a connection conntrack lost, or a forged ACK.
        let mut rr = balancer(Strategy::RoundRobin, Stickiness::Flow);
        assert_eq!(
            decide(&golden::V4_OPTIONS_TCP, &VIPS, &mut rr),
            KernelDecision::Drop(DropReason::TcpNotSynUnknownFlow)
        );
        assert_eq!(rr.stats().table.inserted, 0);
        let mut maglev = balancer(Strategy::Maglev, Stickiness::Flow);
        assert!(matches!(
            decide(&golden::V4_OPTIONS_TCP, &VIPS, &mut maglev),
            KernelDecision::Mark(_)
        ));
        assert_eq!(maglev.stats().table.inserted, 0);
    }
}
