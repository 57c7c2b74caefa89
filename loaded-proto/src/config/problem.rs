//! What is wrong with a config file, one variant per rule, each carrying what its message
//! needs. The file and line are `ConfigError`'s.

use super::duration::Human;
use super::line_error::LineError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

#[derive(Debug)]
pub enum ConfigProblem {
    /// The file cannot be read.
    Unreadable(io::Error),
    /// A line sets nothing (see `LineError`).
    Line(LineError),
    NoVip,
    /// A server of a family whose VIP is not set.
    ServerWithoutVip {
        server_key: &'static str,
        vip_key: &'static str,
        server: IpAddr,
    },
    /// A VIP with no server, and no hot-plug to find one.
    VipWithoutServers {
        vip_key: &'static str,
        vip: IpAddr,
        server_key: &'static str,
        rip_key: &'static str,
    },
    ServerIsVip {
        server_key: &'static str,
        vip_key: &'static str,
        server: IpAddr,
    },
    ServerListedTwice {
        server_key: &'static str,
        server: IpAddr,
        first_line: usize,
    },
    LastCoreBelowFirst {
        first: u16,
        last: u16,
        first_line: Option<usize>,
    },
    /// check_timeout is not shorter than check_cycle (`cycle_line`: None for the default).
    TimeoutNotShorterThanCycle {
        timeout: Duration,
        cycle: Duration,
        cycle_line: Option<usize>,
    },
    LinkLocalBroadcastWithoutNic {
        broadcast6: Ipv6Addr,
    },
    /// forward=kernel with rules=manual (`rules_line`: None for the default).
    KernelForwardWithManualRules {
        rules_line: Option<usize>,
    },
}

impl From<LineError> for ConfigProblem {
    fn from(e: LineError) -> Self {
        ConfigProblem::Line(e)
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Unreadable(e) => write!(f, "cannot read: {e}"),
            ConfigProblem::Line(e) => e.fmt(f),
            ConfigProblem::NoVip => write!(
                f,
                "neither VIP4 nor VIP6 is set; loaded needs at least one address to balance"
            ),
            ConfigProblem::ServerWithoutVip {
                server_key,
                vip_key,
                server,
            } => write!(
                f,
                "{server_key} {server} has no {vip_key} to serve; set {vip_key}"
            ),
            ConfigProblem::VipWithoutServers {
                vip_key,
                vip,
                server_key,
                rip_key,
            } => write!(
                f,
                "{vip_key} {vip} has no {server_key}; add {server_key} lines, \
                 or turn on failover and set {rip_key} so servers are found while running"
            ),
            ConfigProblem::ServerIsVip {
                server_key,
                vip_key,
                server,
            } => write!(f, "{server_key} {server} is the {vip_key} itself"),
            ConfigProblem::ServerListedTwice {
                server_key,
                server,
                first_line,
            } => write!(
                f,
                "{server_key} {server} is already listed on line {first_line}"
            ),
            ConfigProblem::LastCoreBelowFirst {
                first,
                last,
                first_line,
            } => {
                write!(f, "LAST_CORE={last} is below FIRST_CORE={first}")?;
                match first_line {
                    Some(line) => write!(f, " (line {line})"),
                    None => Ok(()),
                }
            }
            ConfigProblem::TimeoutNotShorterThanCycle {
                timeout,
                cycle,
                cycle_line,
            } => {
                let cycle_source = match cycle_line {
                    Some(line) => format!("line {line}"),
                    None => "the default".to_owned(),
                };
                write!(
                    f,
                    "check_timeout ({}) must be shorter than check_cycle ({}, {cycle_source}), \
                     or checks would overlap; shorten it, or leave it out for the default \
                     (half the cycle, at most 2 s)",
                    Human(*timeout),
                    Human(*cycle),
                )
            }
            ConfigProblem::LinkLocalBroadcastWithoutNic { broadcast6 } => write!(
                f,
                "broadcast6 {broadcast6} is link-local, so private_NIC must name the interface to send it on"
            ),
            ConfigProblem::KernelForwardWithManualRules { rules_line } => {
                write!(f, "forward=kernel needs rules=auto, not rules=manual")?;
                match rules_line {
                    Some(line) => write!(f, " (line {line})")?,
                    None => write!(f, " (the default of the original's scripts)")?,
                }
                write!(
                    f,
                    ": the master owns the nftables map that names the servers"
                )
            }
        }
    }
}

impl std::error::Error for ConfigProblem {}
