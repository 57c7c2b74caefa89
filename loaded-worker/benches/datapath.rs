//! Cost of the per-packet work of a worker, without the kernel round trip: parsing, the
//! shared flow table (also filled with a million mappings) and the rewrite with its
//! checksum updates, the completion of an offloaded checksum over a whole GSO packet, and
//! the netlink reading and writing around each packet.
//!
//!     cargo bench -p loaded-worker --bench datapath

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use loaded_proto::balancing::{Backend, Stickiness, Strategy};
use loaded_proto::flow_table::SharedFlowTable;
use loaded_proto::wire::{checksum, ipv4, tcp};
use loaded_worker::counters::count_shared;
use loaded_worker::datapath::balancer::{Balancer, BalancerConfig};
use loaded_worker::datapath::flow::Vips;
use loaded_worker::datapath::nat::{complete_transport_checksum, rewrite, Outcome};
use loaded_worker::nfqueue::wire::{self, VerdictSpec, VERDICT_HEADER_MAX};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 1);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2);
const TCP_SEGMENT_LEN: usize = 20 + 100;

fn balancer(stickiness: Stickiness, capacity: usize) -> Balancer {
    let backends = (11..=13)
        .map(|n| Backend {
            addr: IpAddr::V4(Ipv4Addr::new(198, 19, 0, n)),
            weight: 1,
        })
        .chain((0x11..=0x13).map(|n| Backend {
            addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, n)),
            weight: 1,
        }))
        .collect();
    Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            stickiness,
            backends,
            flow_timeout: Duration::from_secs(300),
            maglev_seed: 0,
            hotplug_nets: Vec::new(),
        },
        SharedFlowTable::anonymous(capacity).expect("anonymous shared memory"),
    )
}

const PSH_ACK: u8 = 0x18;
const SYN: u8 = 0x02;

/// A TCP segment with 100 bytes of data and a correct checksum, after `header`.
fn tcp_segment(buffer: &mut [u8], src_port: u16, flags: u8, pseudo_header: u16) {
    buffer[12] = 5 << 4; // data offset: 20 bytes
    buffer[13] = flags;
    let mut segment = tcp::Packet::new_unchecked(buffer);
    segment.set_src_port(src_port);
    segment.set_dst_port(80);
    segment.fill_checksum(pseudo_header);
}

/// A segment of an established flow.
fn ipv4_tcp(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16) -> Vec<u8> {
    ipv4_tcp_of_len(src, dst, src_port, PSH_ACK, TCP_SEGMENT_LEN)
}

/// The first segment of a flow: only a SYN may create a mapping.
fn ipv4_syn(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16) -> Vec<u8> {
    ipv4_tcp_of_len(src, dst, src_port, SYN, TCP_SEGMENT_LEN)
}

fn ipv4_tcp_of_len(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    flags: u8,
    segment_len: usize,
) -> Vec<u8> {
    let mut packet = vec![0u8; 20 + segment_len];
    packet[0] = 0x45;
    packet[8] = 64;
    let mut ip = ipv4::Packet::new_unchecked(&mut packet[..]);
    ip.set_total_len((20 + segment_len) as u16);
    ip.set_protocol(6);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    let pseudo = checksum::pseudo_header_v4(src, dst, 6, segment_len as u16);
    tcp_segment(&mut packet[20..], src_port, flags, pseudo);
    packet
}

fn ipv6_tcp(src: Ipv6Addr, dst: Ipv6Addr, src_port: u16) -> Vec<u8> {
    ipv6_tcp_with(src, dst, src_port, PSH_ACK)
}

fn ipv6_syn(src: Ipv6Addr, dst: Ipv6Addr, src_port: u16) -> Vec<u8> {
    ipv6_tcp_with(src, dst, src_port, SYN)
}

fn ipv6_tcp_with(src: Ipv6Addr, dst: Ipv6Addr, src_port: u16, flags: u8) -> Vec<u8> {
    let mut packet = vec![0u8; 40 + TCP_SEGMENT_LEN];
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&(TCP_SEGMENT_LEN as u16).to_be_bytes());
    packet[6] = 6;
    packet[7] = 64;
    packet[8..24].copy_from_slice(&src.octets());
    packet[24..40].copy_from_slice(&dst.octets());
    let pseudo = checksum::pseudo_header_v6(src, dst, 6, TCP_SEGMENT_LEN as u32);
    tcp_segment(&mut packet[40..], src_port, flags, pseudo);
    packet
}

fn bench_rewrite(c: &mut Criterion) {
    let vips = Vips {
        v4: Some(VIP4),
        v6: Some(VIP6),
    };
    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Elements(1));

    let mut sticky = balancer(Stickiness::Client, 1 << 16);
    let to_vip4 = ipv4_tcp(CLIENT4, VIP4, 40000);
    let to_vip6 = ipv6_tcp(CLIENT6, VIP6, 40000);
    // The clients' mappings exist: their connections began with a SYN.
    for mut syn in [
        ipv4_syn(CLIENT4, VIP4, 40000),
        ipv6_syn(CLIENT6, VIP6, 40000),
    ] {
        assert_eq!(rewrite(&mut syn, &vips, &mut sticky), Outcome::Rewritten);
    }
    for (name, packet) in [
        ("ipv4_to_vip_known_client", &to_vip4),
        ("ipv6_to_vip_known_client", &to_vip6),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || packet.clone(),
                |p| assert_eq!(rewrite(p, &vips, &mut sticky), Outcome::Rewritten),
                BatchSize::SmallInput,
            )
        });
    }

    let reply4 = ipv4_tcp(Ipv4Addr::new(198, 19, 0, 11), CLIENT4, 80);
    group.bench_function("ipv4_reply_from_server", |b| {
        b.iter_batched_ref(
            || reply4.clone(),
            |p| assert_eq!(rewrite(p, &vips, &mut sticky), Outcome::Rewritten),
            BatchSize::SmallInput,
        )
    });

    // The same with the shared counters a worker keeps for loadedctl (what the packet loop
    // does per packet): compare with the lines above.
    let counters = loaded_proto::counters::SharedCounters::anonymous(1)
        .expect("anonymous shared memory")
        .into_worker(0)
        .expect("block 0");
    for (name, packet) in [
        ("ipv4_to_vip_known_client_counted", &to_vip4),
        ("ipv4_reply_from_server_counted", &reply4),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || packet.clone(),
                |p| {
                    let outcome = rewrite(p, &vips, &mut sticky);
                    count_shared(&counters, outcome, sticky.take_traffic(), p.len());
                    assert_eq!(outcome, Outcome::Rewritten)
                },
                BatchSize::SmallInput,
            )
        });
    }

    // Every packet a new flow: scheduler pick, insert, and (once full) eviction.
    let mut per_flow = balancer(Stickiness::Flow, 1 << 16);
    let mut port = 0u16;
    group.bench_function("ipv4_new_flow_each_packet", |b| {
        b.iter_batched_ref(
            || {
                port = port.wrapping_add(1);
                ipv4_syn(CLIENT4, VIP4, port)
            },
            |p| assert_eq!(rewrite(p, &vips, &mut per_flow), Outcome::Rewritten),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Lookups of known flows when the table holds a million of them: the cost of cache misses
/// in a table of 48 MiB.
fn bench_million_flows(c: &mut Criterion) {
    const FLOWS: u32 = 1 << 20;
    let vips = Vips {
        v4: Some(VIP4),
        v6: None,
    };
    let client = |i: u32| {
        let [_, b, c, d] = i.to_be_bytes();
        (Ipv4Addr::new(10, b, c, d), 40000 + (i % 7) as u16)
    };
    // Room for every flow: buckets fill unevenly, so twice the flows.
    let mut table = balancer(Stickiness::Flow, 2 * FLOWS as usize);
    for i in 0..FLOWS {
        let (src, port) = client(i);
        let mut packet = ipv4_syn(src, VIP4, port);
        rewrite(&mut packet, &vips, &mut table);
    }
    let mut group = c.benchmark_group("flow_table_1m");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    group.bench_function("ipv4_to_vip_known_flow", |b| {
        b.iter_batched_ref(
            || {
                // A stride that visits the flows in an order unrelated to their insertion.
                i = i.wrapping_add(0x9e37_79b9) % FLOWS;
                let (src, port) = client(i);
                // A SYN (a retransmitted one): the few flows the fill evicted from a full
                // bucket are mapped again, as any of their packets did before only a
                // flow's first packet could create a mapping.
                ipv4_syn(src, VIP4, port)
            },
            |p| assert_eq!(rewrite(p, &vips, &mut table), Outcome::Rewritten),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The work around each packet that is not the rewrite: a whole GSO packet's checksum, and
/// reading a queued packet's message and writing its verdict's header.
fn bench_queue_io(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_io");
    let gso = ipv4_tcp_of_len(CLIENT4, VIP4, 40000, PSH_ACK, 65000);
    group.throughput(Throughput::Bytes(gso.len() as u64));
    group.bench_function("complete_checksum_64k_gso_packet", |b| {
        b.iter_batched_ref(
            || gso.clone(),
            |p| complete_transport_checksum(p).unwrap(),
            BatchSize::SmallInput,
        )
    });

    group.throughput(Throughput::Elements(1));
    let packet = ipv4_tcp(CLIENT4, VIP4, 40000);
    let message = queued_message(7, &packet);
    group.bench_function("read_queued_packet_and_write_verdict", |b| {
        let mut header = [0u8; VERDICT_HEADER_MAX];
        b.iter(|| {
            let (_, parsed) = wire::messages(&message).next().unwrap().unwrap();
            let queued = parsed.queued_packet().unwrap().unwrap();
            VerdictSpec {
                queue: 0,
                id: queued.id,
                verdict: wire::Verdict::Accept,
                mark: None,
                payload_len: Some(queued.payload.len()),
            }
            .encode_header(&mut header)
        })
    });
    group.finish();
}

/// A NFQNL_MSG_PACKET as the kernel sends it: packet header, mark, SKB_INFO and the packet.
fn queued_message(id: u32, packet: &[u8]) -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut attr = |kind: u16, value: &[u8]| {
        attrs.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&kind.to_ne_bytes());
        attrs.extend_from_slice(value);
        attrs.resize(wire::align(attrs.len()), 0);
    };
    let mut header = id.to_be_bytes().to_vec();
    header.extend_from_slice(&[0x08, 0x00, 0]);
    attr(wire::queue::ATTR_PACKET_HDR, &header);
    attr(wire::queue::ATTR_MARK, &[0; 4]);
    attr(
        wire::queue::ATTR_SKB_INFO,
        &wire::queue::SKB_CSUMNOTREADY.to_be_bytes(),
    );
    attr(wire::queue::ATTR_PAYLOAD, packet);
    let len = (wire::nlmsg::HEADER_LEN + wire::nfgen::HEADER_LEN + attrs.len()) as u32;
    let mut message = len.to_ne_bytes().to_vec();
    message.extend_from_slice(&wire::queue::MSG_PACKET.to_ne_bytes());
    message.extend_from_slice(&[0; 10]);
    message.extend_from_slice(&[2, 0, 0, 0]);
    message.extend_from_slice(&attrs);
    message
}

criterion_group!(benches, bench_rewrite, bench_million_flows, bench_queue_io);
criterion_main!(benches);
