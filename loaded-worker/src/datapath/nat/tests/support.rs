//! A selector with a table of flows, the addresses of the golden packets, and an independent
//! checksum verifier.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};

use crate::datapath::flow::{BackendSelector, FlowKey, NoPick, Opening, Vips};
use loaded_proto::wire::icmpv4;

pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const BACKEND4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
pub const BACKEND6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xee, 0, 0, 0, 0, 1);

pub const VIPS: Vips = Vips {
    v4: Some(VIP4),
    v6: Some(VIP6),
};

/// Flows in a map. A flow's first packet goes to the first of `new_flow_backends` of its
/// family; any other packet of an unknown flow finds no mapping (as with rr or weighted).
#[derive(Debug, Default)]
pub struct MockSelector {
    pub flows: HashMap<FlowKey, IpAddr>,
    pub new_flow_backends: Vec<IpAddr>,
    pub backends: Vec<IpAddr>,
    pub backend_for_calls: Vec<FlowKey>,
    pub openings: Vec<Opening>,
    pub existing_backend_calls: RefCell<Vec<FlowKey>>,
}

impl MockSelector {
    /// BACKEND4 and BACKEND6 are the backends and take every new flow.
    pub fn standard() -> MockSelector {
        let backends = vec![IpAddr::V4(BACKEND4), IpAddr::V6(BACKEND6)];
        MockSelector {
            new_flow_backends: backends.clone(),
            backends,
            ..MockSelector::default()
        }
    }

    /// BACKEND4 and BACKEND6 are the backends, but none takes new flows.
    pub fn no_new_flows() -> MockSelector {
        MockSelector {
            new_flow_backends: Vec::new(),
            ..MockSelector::standard()
        }
    }

    pub fn with_flow(mut self, key: FlowKey, backend: impl Into<IpAddr>) -> MockSelector {
        self.flows.insert(key, backend.into());
        self
    }
}

impl BackendSelector for MockSelector {
    fn backend_for(&mut self, key: &FlowKey, opening: Opening) -> Result<IpAddr, NoPick> {
        self.backend_for_calls.push(*key);
        self.openings.push(opening);
        if let Some(backend) = self.flows.get(key) {
            return Ok(*backend);
        }
        if opening != Opening::Opens {
            return Err(NoPick::NoMapping);
        }
        let backend = *self
            .new_flow_backends
            .iter()
            .find(|backend| backend.is_ipv4() == key.client.is_ipv4())
            .ok_or(NoPick::NoServer)?;
        self.flows.insert(*key, backend);
        Ok(backend)
    }

    fn existing_backend(&self, key: &FlowKey) -> Option<IpAddr> {
        self.existing_backend_calls.borrow_mut().push(*key);
        self.flows.get(key).copied()
    }

    fn is_backend(&self, addr: IpAddr) -> bool {
        self.backends.contains(&addr)
    }
}

pub fn key(
    client: impl Into<IpAddr>,
    vip: impl Into<IpAddr>,
    protocol: u8,
    client_port: u16,
    vip_port: u16,
) -> FlowKey {
    FlowKey {
        client: client.into(),
        vip: vip.into(),
        protocol,
        client_port,
        vip_port,
    }
}

/// Recomputes with etherparse every checksum of a whole packet that lies in it: the IPv4
/// header, the transport (unless fragmented), and an ICMP error's quoted IPv4 header.
pub fn assert_checksums_valid(packet: &[u8]) {
    let headers = PacketHeaders::from_ip_slice(packet).expect("etherparse parses the packet");
    let payload = headers.payload.slice();
    match headers.net {
        Some(NetHeaders::Ipv4(ip, _)) => {
            assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header");
            match headers.transport {
                Some(TransportHeader::Tcp(tcp)) => {
                    assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(&ip, payload).unwrap());
                }
                Some(TransportHeader::Udp(udp)) if udp.checksum != 0 => {
                    assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
                }
                Some(TransportHeader::Icmpv4(icmp)) => {
                    assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(payload), "ICMP");
                    if icmpv4::is_error(packet[ip.header_len()]) {
                        let (quoted, _) = etherparse::Ipv4Header::from_slice(payload).unwrap();
                        assert_eq!(quoted.header_checksum, quoted.calc_header_checksum());
                    }
                }
                _ => {}
            }
        }
        Some(NetHeaders::Ipv6(ip, _)) => match headers.transport {
            Some(TransportHeader::Tcp(tcp)) => {
                assert_eq!(tcp.checksum, tcp.calc_checksum_ipv6(&ip, payload).unwrap());
            }
            Some(TransportHeader::Udp(udp)) => {
                assert_eq!(udp.checksum, udp.calc_checksum_ipv6(&ip, payload).unwrap());
            }
            Some(TransportHeader::Icmpv6(icmp)) => {
                let checksum = icmp
                    .icmp_type
                    .calc_checksum(ip.source, ip.destination, payload)
                    .unwrap();
                assert_eq!(icmp.checksum, checksum, "ICMPv6");
            }
            _ => {}
        },
        other => panic!("not an IP packet: {other:?}"),
    }
}
