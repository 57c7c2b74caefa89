//! Cost of the per-packet work of a worker, without the kernel round trip: parsing, the
//! shared flow table and the rewrite with its checksum updates.
//!
//!     cargo bench -p loaded-worker --bench datapath

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use loaded_proto::balancing::{Backend, Stickiness, Strategy};
use loaded_worker::datapath::balancer::{Balancer, BalancerConfig};
use loaded_worker::datapath::flow::Vips;
use loaded_worker::datapath::flow_table::SharedFlowTable;
use loaded_worker::datapath::nat::{rewrite, Outcome};
use loaded_worker::datapath::wire::{checksum, ipv4, tcp};
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
        },
        SharedFlowTable::anonymous(capacity).expect("anonymous shared memory"),
    )
}

/// A TCP segment with 100 bytes of data and a correct checksum, after `header`.
fn tcp_segment(buffer: &mut [u8], src_port: u16, pseudo_header: u16) {
    buffer[12] = 5 << 4; // data offset: 20 bytes
    buffer[13] = 0x18; // PSH, ACK
    let mut segment = tcp::Packet::new_unchecked(buffer);
    segment.set_src_port(src_port);
    segment.set_dst_port(80);
    segment.fill_checksum(pseudo_header);
}

fn ipv4_tcp(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16) -> Vec<u8> {
    let mut packet = vec![0u8; 20 + TCP_SEGMENT_LEN];
    packet[0] = 0x45;
    packet[8] = 64;
    let mut ip = ipv4::Packet::new_unchecked(&mut packet[..]);
    ip.set_total_len((20 + TCP_SEGMENT_LEN) as u16);
    ip.set_protocol(6);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    let pseudo = checksum::pseudo_header_v4(src, dst, 6, TCP_SEGMENT_LEN as u16);
    tcp_segment(&mut packet[20..], src_port, pseudo);
    packet
}

fn ipv6_tcp(src: Ipv6Addr, dst: Ipv6Addr, src_port: u16) -> Vec<u8> {
    let mut packet = vec![0u8; 40 + TCP_SEGMENT_LEN];
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&(TCP_SEGMENT_LEN as u16).to_be_bytes());
    packet[6] = 6;
    packet[7] = 64;
    packet[8..24].copy_from_slice(&src.octets());
    packet[24..40].copy_from_slice(&dst.octets());
    let pseudo = checksum::pseudo_header_v6(src, dst, 6, TCP_SEGMENT_LEN as u32);
    tcp_segment(&mut packet[40..], src_port, pseudo);
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

    // Every packet a new flow: scheduler pick, insert, and (once full) eviction.
    let mut per_flow = balancer(Stickiness::Flow, 1 << 16);
    let mut port = 0u16;
    group.bench_function("ipv4_new_flow_each_packet", |b| {
        b.iter_batched_ref(
            || {
                port = port.wrapping_add(1);
                ipv4_tcp(CLIENT4, VIP4, port)
            },
            |p| assert_eq!(rewrite(p, &vips, &mut per_flow), Outcome::Rewritten),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_rewrite);
criterion_main!(benches);
