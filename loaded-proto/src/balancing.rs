//! Balancing vocabulary shared by the config (which names it) and the datapath (which does it).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// How a new client is given a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Round robin over the live servers, starting at the first.
    RoundRobin,
    /// Least connections, weighted: the server with the fewest mappings per unit of weight.
    /// The original loaded called least-connections `weighted`.
    Weighted,
    /// Consistent hashing (Maglev), lookup table of 65537 slots.
    Maglev,
}

/// What a mapping is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stickiness {
    /// Every flow of a client address goes to the same server (the original's behaviour).
    Client,
    /// Each 5-tuple (protocol, client address and port, VIP port) is mapped on its own.
    Flow,
}

/// One real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub addr: IpAddr,
    /// Relative share of clients for `weighted` and `maglev`; at least 1.
    pub weight: u32,
}

/// An address prefix, as in `RIP4=198.19.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IpNet {
    pub fn contains(&self, other: IpAddr) -> bool {
        match (self.addr, other) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                prefix_matches(&net.octets(), &addr.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                prefix_matches(&net.octets(), &addr.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], addr: &[u8], prefix_len: u8) -> bool {
    let full_bytes = usize::from(prefix_len / 8);
    let rest_bits = prefix_len % 8;
    if net[..full_bytes] != addr[..full_bytes] {
        return false;
    }
    if rest_bits == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest_bits);
    net[full_bytes] & mask == addr[full_bytes] & mask
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::RoundRobin => "rr",
            Strategy::Weighted => "weighted",
            Strategy::Maglev => "maglev",
        })
    }
}

impl fmt::Display for Stickiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stickiness::Client => "client",
            Stickiness::Flow => "flow",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_contains() {
        let net = IpNet {
            addr: "198.19.0.0".parse().unwrap(),
            prefix_len: 23,
        };
        assert!(net.contains("198.19.1.255".parse().unwrap()));
        assert!(!net.contains("198.19.2.0".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        let net6 = IpNet {
            addr: "fd00:19::".parse().unwrap(),
            prefix_len: 64,
        };
        assert!(net6.contains("fd00:19::abcd".parse().unwrap()));
        assert!(!net6.contains("fd00:18::1".parse().unwrap()));
        let all = IpNet {
            addr: "0.0.0.0".parse().unwrap(),
            prefix_len: 0,
        };
        assert!(all.contains("198.18.0.1".parse().unwrap()));
    }
}
