//! The host's own addresses. The balancer sits on the servers' network, so it may answer
//! its own broadcast (always so for ff02::1); were it to run a service on `port_alive`, it
//! would otherwise add itself as a real server and loop the VIP's traffic back to itself.

use nix::ifaddrs::getifaddrs;
use std::collections::HashSet;
use std::io;
use std::net::IpAddr;

/// Read through netlink each time it is asked: addresses come and go while loaded runs.
pub fn local_addresses() -> io::Result<HashSet<IpAddr>> {
    let mut local = HashSet::new();
    for interface in getifaddrs()? {
        let Some(address) = interface.address else {
            continue;
        };
        if let Some(v4) = address.as_sockaddr_in() {
            local.insert(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            local.insert(IpAddr::V6(v6.ip()));
        }
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_local() {
        let local = local_addresses().unwrap();
        assert!(local.contains(&IpAddr::from([127, 0, 0, 1])), "{local:?}");
    }
}
