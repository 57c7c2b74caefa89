//! What the fuzz targets share: the balancer they rewrite with, and the steering of random
//! bytes towards the balancer's addresses.

use loaded_proto::balancing::{Backend, IpNet, Stickiness, Strategy};
use loaded_proto::flow_table::SharedFlowTable;
use loaded_worker::datapath::balancer::{Balancer, BalancerConfig};
use loaded_worker::datapath::flow::Vips;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x100, 0, 0, 0, 0, 0, 1);
pub const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0x11);

/// The servers' networks: hot-plug is allowed there (a mapping to 198.19.0.99 is trusted,
/// one to 10.0.0.1 is not).
pub const RIP4: IpNet = IpNet {
    addr: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 0)),
    prefix_len: 16,
};
pub const RIP6: IpNet = IpNet {
    addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0)),
    prefix_len: 64,
};

pub const VIPS: Vips = Vips {
    v4: Some(VIP4),
    v6: Some(VIP6),
};

/// A balancer over two servers of each family and a small table of its own: every input
/// starts from the same state, so that a crash reproduces from its input alone.
pub fn balancer() -> Balancer {
    let backends = [
        IpAddr::V4(SERVER4),
        IpAddr::V4(Ipv4Addr::new(198, 19, 0, 12)),
        IpAddr::V6(SERVER6),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0x12)),
    ]
    .into_iter()
    .map(|addr| Backend { addr, weight: 1 })
    .collect();
    Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            stickiness: Stickiness::Client,
            backends,
            flow_timeout: Duration::from_secs(300),
            maglev_seed: 0,
            hotplug_nets: vec![RIP4, RIP6],
        },
        SharedFlowTable::anonymous(256).expect("anonymous shared memory"),
    )
}

/// Writes a balancer address into the packet's header, as `mode` says (see the
/// packet_rewrite target); packets too short for that header are left alone.
pub fn steer(mode: u8, packet: &mut [u8]) {
    let (at, address): (usize, &[u8]) = match mode {
        1 => (16, &VIP4.octets()),
        2 => (12, &SERVER4.octets()),
        3 => (24, &VIP6.octets()),
        4 => (8, &SERVER6.octets()),
        _ => return,
    };
    if let Some(field) = packet.get_mut(at..at + address.len()) {
        field.copy_from_slice(address);
    }
}
