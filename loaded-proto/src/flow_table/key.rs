//! What a mapping is keyed on, and how keys and addresses are packed into table words.

use super::keyed_hash::{siphash13, HashKey};
use crate::balancing::Stickiness;
use crate::wire::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A client's flow to a VIP, as seen on the client side of the balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub client: IpAddr,
    pub vip: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// The client's TCP/UDP port or ICMP echo identifier; 0 where the packet has none
    /// (a non-first fragment).
    pub client_port: u16,
    /// The VIP's TCP/UDP port; 0 for ICMP and non-first fragments.
    pub vip_port: u16,
}

/// A flow as the table sees it: the parts that the stickiness ignores are zero, so that
/// with `Stickiness::Client` every flow of a client finds the same mapping.
///
/// The VIP address is not part of the key: there is at most one VIP per family, and the
/// family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableKey {
    client: IpAddr,
    protocol: u8,
    client_port: u16,
    vip_port: u16,
}

/// Bits of the key's meta word; the bits above belong to the entry, not the key.
const VIP_PORT_SHIFT: u32 = 0;
const CLIENT_PORT_SHIFT: u32 = 16;
const PROTOCOL_SHIFT: u32 = 32;
const FAMILY_SHIFT: u32 = 40;
pub(super) const KEY_META_MASK: u64 = (1 << 48) - 1;

impl TableKey {
    pub fn new(flow: &FlowKey, stickiness: Stickiness) -> TableKey {
        match stickiness {
            Stickiness::Client => TableKey::client(flow.client),
            Stickiness::Flow => TableKey {
                client: flow.client,
                protocol: flow.protocol,
                client_port: flow.client_port,
                vip_port: flow.vip_port,
            },
        }
    }

    /// The key every flow of `client` shares under `Stickiness::Client`.
    pub fn client(client: IpAddr) -> TableKey {
        TableKey {
            client,
            protocol: 0,
            client_port: 0,
            vip_port: 0,
        }
    }

    pub fn family(&self) -> Family {
        Family::of(self.client)
    }

    /// SipHash-1-3 of the key under `key`: the flow table's with its region's random key,
    /// maglev's with the key from its config.
    pub fn keyed_hash(&self, key: HashKey) -> u64 {
        siphash13(key, &self.words())
    }

    /// The client address and the meta word, as the entry stores them and the hash reads
    /// them.
    pub(super) fn words(&self) -> [u64; 3] {
        let [high, low] = address_words(self.client);
        let family_bit = match self.family() {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        let meta = u64::from(self.vip_port) << VIP_PORT_SHIFT
            | u64::from(self.client_port) << CLIENT_PORT_SHIFT
            | u64::from(self.protocol) << PROTOCOL_SHIFT
            | family_bit << FAMILY_SHIFT;
        [high, low, meta]
    }

    /// The inverse of `words`, for whatever bits a stored entry holds.
    pub(super) fn from_words(high: u64, low: u64, meta: u64) -> TableKey {
        TableKey {
            client: address_from_words(family_from_meta(meta), [high, low]),
            protocol: (meta >> PROTOCOL_SHIFT) as u8,
            client_port: (meta >> CLIENT_PORT_SHIFT) as u16,
            vip_port: (meta >> VIP_PORT_SHIFT) as u16,
        }
    }
}

/// The family of the key a meta word was made from.
pub(super) fn family_from_meta(meta: u64) -> Family {
    if meta >> FAMILY_SHIFT & 1 == 0 {
        Family::V4
    } else {
        Family::V6
    }
}

/// An address as two words, high then low; IPv4 sits in the low word.
pub(super) fn address_words(addr: IpAddr) -> [u64; 2] {
    let bits = match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    [(bits >> 64) as u64, bits as u64]
}

pub(super) fn address_from_words(family: Family, [high, low]: [u64; 2]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(low as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(u128::from(high) << 64 | u128::from(low))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client: &str, client_port: u16) -> FlowKey {
        let client: IpAddr = client.parse().unwrap();
        FlowKey {
            client,
            vip: if client.is_ipv4() {
                "198.18.0.1".parse().unwrap()
            } else {
                "fd00:18::1".parse().unwrap()
            },
            protocol: 6,
            client_port,
            vip_port: 443,
        }
    }

    #[test]
    fn client_stickiness_ignores_ports_and_protocol() {
        let a = TableKey::new(&flow("203.0.113.7", 1000), Stickiness::Client);
        let b = TableKey::new(&flow("203.0.113.7", 2000), Stickiness::Client);
        assert_eq!(a, b);
        assert_eq!(a, TableKey::client("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn flow_stickiness_keeps_the_five_tuple_apart() {
        let a = TableKey::new(&flow("203.0.113.7", 1000), Stickiness::Flow);
        let b = TableKey::new(&flow("203.0.113.7", 2000), Stickiness::Flow);
        assert_ne!(a, b);
        assert_ne!(a.words(), b.words());
    }

    #[test]
    fn words_round_trip_for_both_families() {
        for (client, port) in [
            ("203.0.113.7", 1000),
            ("2001:db8::7", 65535),
            ("0.0.0.0", 0),
        ] {
            let key = TableKey::new(&flow(client, port), Stickiness::Flow);
            let [high, low, meta] = key.words();
            assert_eq!(meta & !KEY_META_MASK, 0);
            assert_eq!(TableKey::from_words(high, low, meta), key);
        }
    }

    #[test]
    fn families_never_share_a_key() {
        // ::cbff:7107 has the same low 32 bits as 203.255.113.7.
        let v4 = TableKey::client("203.255.113.7".parse().unwrap());
        let v6 = TableKey::client("::cbff:7107".parse().unwrap());
        assert_eq!(v4.words()[..2], v6.words()[..2]);
        assert_ne!(v4.words(), v6.words());
    }
}
