//! The keys loaded knows, and the range each number may take.

use super::line::Dialect;
use std::ops::RangeInclusive;
use std::time::Duration;

pub const MAX_FLOWS_RANGE: RangeInclusive<u64> = 1024..=(1 << 26);
pub const FLOW_TIMEOUT_RANGE: RangeInclusive<u64> = 1..=86_400;
pub const NFQ_LEN_RANGE: RangeInclusive<u64> = 1..=u32::MAX as u64;
/// Cores double as NFQUEUE numbers; 1024 is far beyond any machine this runs on.
pub const CORE_RANGE: RangeInclusive<u64> = 0..=1023;
pub const PORT_RANGE: RangeInclusive<u64> = 1..=65_535;
/// Sub-second cycles are allowed for fast failover; below 100 ms a round of pings and
/// connects to every server would run nearly back to back.
pub const CHECK_CYCLE_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(86_400);
/// 10 ms is still longer than a connect on the same LAN takes.
pub const CHECK_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(3_600);
pub const RISE_FALL_RANGE: RangeInclusive<u64> = 1..=100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Vip4,
    Vip6,
    Server4,
    Server6,
    Strategy,
    Stickiness,
    MaglevSeed,
    MaxFlows,
    FlowTimeout,
    NfqLen,
    FirstCore,
    LastCore,
    Rules,
    Forward,
    PortAlive,
    CheckCycle,
    CheckTimeout,
    Rise,
    Fall,
    Broadcast,
    Broadcast6,
    Failover,
    Rip4,
    Rip6,
    PrivateNic,
    Pidfile,
    Chroot,
    User,
    LogSocket,
    ControlSocket,
    ControlGroup,
    Vip4Net,
    Vip6Net,
    Ns,
    PublicNic,
    PrivateGw,
}

/// Spelt as in the original, case and all, so old files keep working.
const NAMES: &[(&str, Key)] = &[
    ("VIP4", Key::Vip4),
    ("VIP6", Key::Vip6),
    ("server4", Key::Server4),
    ("server6", Key::Server6),
    ("strategy", Key::Strategy),
    ("stickiness", Key::Stickiness),
    ("maglev_seed", Key::MaglevSeed),
    ("max_flows", Key::MaxFlows),
    ("flow_timeout", Key::FlowTimeout),
    ("nfq_len", Key::NfqLen),
    ("FIRST_CORE", Key::FirstCore),
    ("LAST_CORE", Key::LastCore),
    ("rules", Key::Rules),
    ("forward", Key::Forward),
    ("port_alive", Key::PortAlive),
    ("check_cycle", Key::CheckCycle),
    ("check_timeout", Key::CheckTimeout),
    ("rise", Key::Rise),
    ("fall", Key::Fall),
    ("broadcast", Key::Broadcast),
    ("broadcast6", Key::Broadcast6),
    ("failover", Key::Failover),
    ("RIP4", Key::Rip4),
    ("RIP6", Key::Rip6),
    ("private_NIC", Key::PrivateNic),
    ("pidfile", Key::Pidfile),
    ("chroot", Key::Chroot),
    ("user", Key::User),
    ("log_socket", Key::LogSocket),
    ("control_socket", Key::ControlSocket),
    ("control_group", Key::ControlGroup),
    ("VIP4net", Key::Vip4Net),
    ("VIP6net", Key::Vip6Net),
    ("NS", Key::Ns),
    ("public_NIC", Key::PublicNic),
    ("private_GW", Key::PrivateGw),
];

impl Key {
    pub fn from_name(name: &str) -> Option<Key> {
        NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, key)| *key)
    }

    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, key)| *key == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }

    pub fn all_names() -> Vec<&'static str> {
        NAMES.iter().map(|(name, _)| *name).collect()
    }

    /// The servers are lists; setting anything else twice is a contradiction.
    pub fn is_repeatable(self) -> bool {
        matches!(self, Key::Server4 | Key::Server6)
    }

    /// Keys only the original's scripts act on. `private_NIC` is one of them in a script,
    /// but in our own files it names the interface for IPv6 discovery.
    pub fn is_script_only(self, dialect: Dialect) -> bool {
        match self {
            Key::Vip4Net | Key::Vip6Net | Key::Ns | Key::PublicNic | Key::PrivateGw => true,
            Key::PrivateNic => dialect == Dialect::Shell,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let names = Key::all_names();
        for name in &names {
            assert_eq!(Key::from_name(name).unwrap().name(), *name);
            assert_eq!(
                names.iter().filter(|other| *other == name).count(),
                1,
                "{name}"
            );
        }
        assert_eq!(Key::from_name("vip4"), None, "keys are case-sensitive");
    }
}
