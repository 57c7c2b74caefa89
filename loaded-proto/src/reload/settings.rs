//! The live part of a config, as each child needs it.

use crate::balancing::{Backend, Strategy};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// What a worker applies at a reload: its servers and how it picks among them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancingSettings {
    /// The configured servers, IPv4 then IPv6, each in file order (`Config::backends`).
    pub backends: Vec<Backend>,
    /// Servers this reload took out of the configuration: their clients move at their next
    /// packet. Hot-plugged servers the worker knows and this list does not name stay.
    pub removed: Vec<IpAddr>,
    pub strategy: Strategy,
    pub flow_timeout: Duration,
}

impl BalancingSettings {
    pub fn new(config: &Config, removed: Vec<IpAddr>) -> BalancingSettings {
        BalancingSettings {
            backends: config.backends(),
            removed,
            strategy: config.strategy,
            flow_timeout: config.flow_timeout,
        }
    }
}

/// What the prober applies at a reload (and knows from its start: `withdrawn`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSettings {
    /// The configured servers, as in `BalancingSettings`.
    pub servers: Vec<Backend>,
    /// Every server a reload took out of the configuration since loaded started and no
    /// later reload put back: never hot-plugged again, even if it answers the broadcast.
    pub withdrawn: Vec<IpAddr>,
    pub port_alive: u16,
    pub check_cycle: Duration,
    pub check_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub broadcast: Option<Ipv4Addr>,
    pub broadcast6: Option<Ipv6Addr>,
}

impl HealthSettings {
    pub fn new(config: &Config, withdrawn: Vec<IpAddr>) -> HealthSettings {
        HealthSettings {
            servers: config.backends(),
            withdrawn,
            port_alive: config.port_alive,
            check_cycle: config.check_cycle,
            check_timeout: config.check_timeout,
            rise: config.rise,
            fall: config.fall,
            broadcast: config.broadcast,
            broadcast6: config.broadcast6,
        }
    }
}
