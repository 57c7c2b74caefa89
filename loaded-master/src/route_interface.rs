//! The interface the balancer reaches a real server through (`ip -o route get ADDR`), so
//! that without `private_NIC` the servers' replies are still queued only from the side
//! they live on: a packet from the public side with a server's source address must not be
//! rewritten to the VIP.

use crate::bounded_command::{self, CommandError};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

const IP: &str = "ip";
/// `ip route get` answers from the kernel's table at once; more means something is stuck.
const LIMIT: Duration = Duration::from_secs(5);

/// Why the interface toward a server is not known.
#[derive(Debug)]
pub enum RouteLookupError {
    /// `ip` could not be run to its end.
    Command(CommandError),
    /// The kernel has no route to it (`ip` failed, with its message).
    NoRoute { addr: IpAddr, message: String },
    /// `ip` answered without naming a device.
    NoDevice { addr: IpAddr, output: String },
}

impl fmt::Display for RouteLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteLookupError::Command(e) => e.fmt(f),
            RouteLookupError::NoRoute { addr, message } => {
                write!(f, "no route to {addr}: {}", message.trim())
            }
            RouteLookupError::NoDevice { addr, output } => {
                write!(
                    f,
                    "the route to {addr} names no interface: {}",
                    output.trim()
                )
            }
        }
    }
}

impl std::error::Error for RouteLookupError {}

/// The interface of the route to `addr`, as the kernel would send a packet there now.
pub fn interface_toward(addr: IpAddr) -> Result<String, RouteLookupError> {
    let args = ["-o", "route", "get", &addr.to_string()].map(String::from);
    let done =
        bounded_command::run_capturing(IP, &args, LIMIT).map_err(RouteLookupError::Command)?;
    if !done.status.success() {
        return Err(RouteLookupError::NoRoute {
            addr,
            message: done.stderr,
        });
    }
    device_of_route(&done.stdout).ok_or(RouteLookupError::NoDevice {
        addr,
        output: done.stdout,
    })
}

/// The device a line of `ip -o route get` names:
/// `198.19.0.11 dev br0 src 198.19.0.1 uid 0 \    cache`.
pub fn device_of_route(output: &str) -> Option<String> {
    let mut words = output.split_whitespace();
    words.find(|word| *word == "dev")?;
    words
        .next()
        .filter(|device| is_interface_name(device))
        .map(str::to_owned)
}

/// What the kernel accepts as an interface name (IFNAMSIZ, no slash or space), so that
/// nothing else ends up in an iptables command.
fn is_interface_name(name: &str) -> bool {
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_of_a_route_is_read_from_ip_route_get() {
        let cases = [
            (
                "198.19.0.11 dev br0 src 198.19.0.1 uid 0 \\    cache ",
                Some("br0"),
            ),
            (
                "fd00:19::11 from :: dev eth1 proto kernel src fd00:19::1 metric 256 pref medium",
                Some("eth1"),
            ),
            (
                "203.0.113.9 via 198.18.1.2 dev l0 src 198.18.1.1 uid 0 \\    cache ",
                Some("l0"),
            ),
            (
                "local 198.19.0.1 dev lo table local src 198.19.0.1 uid 0 \\    cache <local> ",
                Some("lo"),
            ),
            ("unreachable 10.0.0.1 uid 0", None),
            ("10.0.0.1 dev", None),
            ("", None),
        ];
        for (output, device) in cases {
            assert_eq!(device_of_route(output).as_deref(), device, "{output:?}");
        }
    }

    #[test]
    fn names_the_kernel_would_refuse_are_not_interfaces() {
        assert!(is_interface_name("eth0.100"));
        assert!(is_interface_name("br-private"));
        for bad in ["", ".", "..", "a/b", "a b", "eth0:1", "sixteen-chars-xx"] {
            assert!(!is_interface_name(bad), "{bad:?}");
        }
    }
}
