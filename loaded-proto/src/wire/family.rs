//! The IP version a packet, an address or a server belongs to. A flow is only ever mapped to
//! a server of its own family, and each family has its own firewall tool and ICMP.

use super::protocol;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Position in per-family arrays.
    pub fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// The protocol number of this family's ICMP.
    pub fn icmp_protocol(self) -> u8 {
        match self {
            Family::V4 => protocol::ICMP,
            Family::V6 => protocol::ICMPV6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn family_of_an_address_and_its_icmp() {
        assert_eq!(Family::of(IpAddr::V4(Ipv4Addr::LOCALHOST)), Family::V4);
        assert_eq!(Family::of(IpAddr::V6(Ipv6Addr::LOCALHOST)), Family::V6);
        assert_eq!(Family::V4.icmp_protocol(), 1);
        assert_eq!(Family::V6.icmp_protocol(), 58);
        assert_eq!(Family::ALL.map(Family::index), [0, 1]);
    }
}
