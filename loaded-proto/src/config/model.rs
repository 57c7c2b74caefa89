//! The settings in effect, as every process of loaded sees them.

use super::cores::{choose_worker_cores, CoresError};
use super::duration::InConfig;
use crate::balancing::{Backend, IpNet, Stickiness, Strategy};
use crate::forwarding::Forward;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PORT_ALIVE: u16 = 80;
pub const DEFAULT_CHECK_CYCLE: Duration = Duration::from_secs(30);
/// The longest default check timeout; a short `check_cycle` gets less (see
/// `default_check_timeout`).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_NFQ_LEN: u32 = 8192;
pub const DEFAULT_MAX_FLOWS: u32 = 1 << 20;
pub const DEFAULT_FLOW_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_PIDFILE: &str = "/run/loaded.pid";
pub const DEFAULT_CHROOT: &str = "/var/run/empty";
pub const DEFAULT_USER: &str = "nobody";
pub const DEFAULT_LOG_SOCKET: &str = "/dev/log";
/// The group that may use the control socket besides root (`control_group=`).
pub const DEFAULT_CONTROL_GROUP: &str = "root";

/// The check timeout when the file sets none: 2 s, or half the cycle when that is
/// shorter. The original had no timeout setting and people set `check_cycle=1` or `2` for
/// fast failover; a fixed 2 s would not fit such a cycle and would refuse their files.
pub fn default_check_timeout(check_cycle: Duration) -> Duration {
    DEFAULT_CHECK_TIMEOUT.min(check_cycle / 2)
}

/// Who installs the NFQUEUE rules that send the VIP's packets to the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rules {
    /// loaded adds them at start and removes them at exit.
    Auto,
    /// The admin's own script does, as the original's sample scripts did.
    Manual,
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rules::Auto => "auto",
            Rules::Manual => "manual",
        })
    }
}

/// Values that only the original's shell scripts use (to set up addresses and routes).
/// loaded never acts on them; they are kept so `loaded-master -t` shows the whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSettings {
    pub vip4_net: Option<String>,
    pub vip6_net: Option<String>,
    pub ns: Option<String>,
    pub public_nic: Option<String>,
    pub private_gw: Option<String>,
}

/// A checked configuration: every cross-field rule of `validate` holds for what
/// `Config::parse` returns. `Config::default()` has no VIP, so it is only a starting point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub vip4: Option<Ipv4Addr>,
    pub vip6: Option<Ipv6Addr>,
    /// In file order; every address is IPv4.
    pub servers4: Vec<Backend>,
    /// In file order; every address is IPv6.
    pub servers6: Vec<Backend>,
    pub strategy: Strategy,
    pub stickiness: Stickiness,
    /// The key of maglev's hashes (server permutations and flow lookups). Unset: derived
    /// from the VIPs, see [`Config::maglev_seed`].
    pub maglev_seed: Option<u128>,
    /// Mappings the shared flow table holds, all families together.
    pub max_flows: u32,
    /// Idle time after which a mapping is forgotten.
    pub flow_timeout: Duration,
    /// Packets the kernel may hold per NFQUEUE before dropping.
    pub nfq_len: u32,
    /// Unset means the lowest CPU the master may run on (its affinity).
    pub first_core: Option<u16>,
    /// Unset means the end of the run of consecutive allowed CPUs from the first core.
    pub last_core: Option<u16>,
    pub rules: Rules,
    /// Who rewrites the balanced packets: the workers, or nftables with the workers'
    /// decision (kernel mode).
    pub forward: Forward,
    pub port_alive: u16,
    /// Time from the end of one round of checks to the start of the next.
    pub check_cycle: Duration,
    /// For each phase of a round (the pings, the connects); shorter than `check_cycle`.
    pub check_timeout: Duration,
    /// Successful checks in a row before a dead server takes clients again.
    pub rise: u32,
    /// Failed checks in a row before a live server is taken out.
    pub fall: u32,
    pub broadcast: Option<Ipv4Addr>,
    pub broadcast6: Option<Ipv6Addr>,
    pub failover: bool,
    /// Where real servers live; failover hot-plugs servers found in it.
    pub rip4: Option<IpNet>,
    pub rip6: Option<IpNet>,
    /// Interface for IPv6 link-local discovery (`broadcast6`).
    pub private_nic: Option<String>,
    pub pidfile: PathBuf,
    pub chroot: PathBuf,
    pub user: String,
    pub log_socket: PathBuf,
    /// Where the master listens for `loadedctl` (`control_socket=`).
    pub control_socket: PathBuf,
    /// The group (name or gid) the control socket is given; its members may use it.
    pub control_group: String,
    pub script: ScriptSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vip4: None,
            vip6: None,
            servers4: Vec::new(),
            servers6: Vec::new(),
            strategy: Strategy::RoundRobin,
            stickiness: Stickiness::Client,
            maglev_seed: None,
            max_flows: DEFAULT_MAX_FLOWS,
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            nfq_len: DEFAULT_NFQ_LEN,
            first_core: None,
            last_core: None,
            rules: Rules::Auto,
            forward: Forward::Userspace,
            port_alive: DEFAULT_PORT_ALIVE,
            check_cycle: DEFAULT_CHECK_CYCLE,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            broadcast: None,
            broadcast6: None,
            failover: false,
            rip4: None,
            rip6: None,
            private_nic: None,
            pidfile: PathBuf::from(DEFAULT_PIDFILE),
            chroot: PathBuf::from(DEFAULT_CHROOT),
            user: DEFAULT_USER.to_owned(),
            log_socket: PathBuf::from(DEFAULT_LOG_SOCKET),
            control_socket: PathBuf::from(crate::control::DEFAULT_SOCKET_PATH),
            control_group: DEFAULT_CONTROL_GROUP.to_owned(),
            script: ScriptSettings::default(),
        }
    }
}

impl Config {
    /// All real servers: IPv4 first, then IPv6, each in file order. Datapath slot numbers
    /// follow this order, so it must not change between processes.
    pub fn backends(&self) -> Vec<Backend> {
        self.servers4
            .iter()
            .chain(&self.servers6)
            .copied()
            .collect()
    }

    /// The key maglev hashes with: `maglev_seed` if set, else one derived from the VIPs
    /// alone. Never random: every node and every start with the same config must build the
    /// same tables and send a flow to the same server (several balancers behind ECMP).
    /// The derived key is no secret (anyone who knows the VIPs can compute it); operators
    /// who want an unguessable permutation set the same `maglev_seed` on every node.
    pub fn maglev_seed(&self) -> u128 {
        self.maglev_seed
            .unwrap_or_else(|| derived_maglev_seed(self.vip4, self.vip6))
    }

    /// Applies `-4` / `-6`: keeps only the families asked for. The maglev seed derived
    /// from both VIPs is kept, so a node run with `-4` picks what one without does.
    pub fn restrict_family(&mut self, v4: bool, v6: bool) -> Result<(), FamilyError> {
        self.maglev_seed = Some(self.maglev_seed());
        if !v4 {
            self.vip4 = None;
            self.servers4.clear();
            self.rip4 = None;
            self.broadcast = None;
        }
        if !v6 {
            self.vip6 = None;
            self.servers6.clear();
            self.rip6 = None;
            self.broadcast6 = None;
        }
        if self.vip4.is_none() && self.vip6.is_none() {
            return Err(match (v4, v6) {
                (true, false) => FamilyError::NoVip4,
                (false, true) => FamilyError::NoVip6,
                _ => FamilyError::NoFamilyLeft,
            });
        }
        Ok(())
    }

    /// The cores that get a worker, which are also the NFQUEUE numbers: FIRST_CORE to
    /// LAST_CORE within `allowed`, the CPUs the master may run on (see `cores`).
    pub fn worker_cores(&self, allowed: &[u16]) -> Result<RangeInclusive<u16>, CoresError> {
        choose_worker_cores(self.first_core, self.last_core, allowed)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_optional(f, "VIP4", self.vip4)?;
        write_optional(f, "VIP6", self.vip6)?;
        for (key, servers) in [("server4", &self.servers4), ("server6", &self.servers6)] {
            if servers.is_empty() {
                writeln!(f, "# no {key}")?;
            }
            for server in servers {
                writeln!(f, "{key}={} weight={}", server.addr, server.weight)?;
            }
        }
        writeln!(f, "strategy={}", self.strategy)?;
        writeln!(f, "stickiness={}", self.stickiness)?;
        match self.maglev_seed {
            Some(seed) => writeln!(f, "maglev_seed={seed:032x}")?,
            None => writeln!(
                f,
                "# maglev_seed not set: derived from the VIPs, {:032x}",
                self.maglev_seed()
            )?,
        }
        writeln!(f, "max_flows={}", self.max_flows)?;
        writeln!(f, "flow_timeout={}", self.flow_timeout.as_secs())?;
        writeln!(f, "nfq_len={}", self.nfq_len)?;
        write_core(f, "FIRST_CORE", self.first_core, "the lowest allowed CPU")?;
        write_core(
            f,
            "LAST_CORE",
            self.last_core,
            "the end of the allowed CPUs from there",
        )?;
        writeln!(f, "rules={}", self.rules)?;
        writeln!(f, "forward={}", self.forward)?;
        writeln!(f, "port_alive={}", self.port_alive)?;
        writeln!(f, "check_cycle={}", InConfig(self.check_cycle))?;
        writeln!(f, "check_timeout={}", InConfig(self.check_timeout))?;
        writeln!(f, "rise={}", self.rise)?;
        writeln!(f, "fall={}", self.fall)?;
        write_optional(f, "broadcast", self.broadcast)?;
        write_optional(f, "broadcast6", self.broadcast6)?;
        writeln!(f, "failover={}", if self.failover { "yes" } else { "no" })?;
        write_optional(f, "RIP4", self.rip4)?;
        write_optional(f, "RIP6", self.rip6)?;
        write_text(f, "private_NIC", self.private_nic.as_deref())?;
        write_text(f, "pidfile", Some(&self.pidfile.to_string_lossy()))?;
        write_text(f, "chroot", Some(&self.chroot.to_string_lossy()))?;
        write_text(f, "user", Some(&self.user))?;
        write_text(f, "log_socket", Some(&self.log_socket.to_string_lossy()))?;
        write_text(
            f,
            "control_socket",
            Some(&self.control_socket.to_string_lossy()),
        )?;
        write_text(f, "control_group", Some(&self.control_group))?;
        let script = &self.script;
        write_text(f, "VIP4net", script.vip4_net.as_deref())?;
        write_text(f, "VIP6net", script.vip6_net.as_deref())?;
        write_text(f, "NS", script.ns.as_deref())?;
        write_text(f, "public_NIC", script.public_nic.as_deref())?;
        write_text(f, "private_GW", script.private_gw.as_deref())
    }
}

/// A fixed constant ("loadedmaglevseed") mixed with the VIPs, each with a word that says
/// whether it is set, so that no VIP differs from an all-zero one.
fn derived_maglev_seed(vip4: Option<Ipv4Addr>, vip6: Option<Ipv6Addr>) -> u128 {
    let v6 = vip6.map_or(0, u128::from);
    let words = [
        vip4.map_or(0, |v4| 1 << 32 | u64::from(u32::from(v4))),
        u64::from(vip6.is_some()),
        (v6 >> 64) as u64,
        v6 as u64,
    ];
    let (mut high, mut low) = (0x6c6f_6164_6564_6d61_u64, 0x676c_6576_7365_6564_u64);
    for word in words {
        high = splitmix64(high ^ word);
        low = splitmix64(low.wrapping_add(word) ^ high);
    }
    u128::from(high) << 64 | u128::from(low)
}

/// The finalizer of SplitMix64: a bijection that spreads every input bit over the output.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Unset settings are shown as comments so the listing still parses as a config file.
fn write_optional(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    value: Option<impl fmt::Display>,
) -> fmt::Result {
    match value {
        Some(value) => writeln!(f, "{key}={value}"),
        None => writeln!(f, "# {key} not set"),
    }
}

fn write_core(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    core: Option<u16>,
    default: &str,
) -> fmt::Result {
    match core {
        Some(core) => writeln!(f, "{key}={core}"),
        None => writeln!(f, "# {key} not set: {default}"),
    }
}

fn write_text(f: &mut fmt::Formatter<'_>, key: &str, value: Option<&str>) -> fmt::Result {
    match value {
        Some(value) => writeln!(f, "{key}={}", quoted_if_needed(value)),
        None => writeln!(f, "# {key} not set"),
    }
}

/// Quotes what the parser would otherwise cut at a comment or trim.
fn quoted_if_needed(value: &str) -> String {
    // A quote anywhere: the parser takes quotes only around the whole value. (A value with
    // both kinds cannot be written; the parser never produces one.)
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '#' || c == '"' || c == '\'');
    if !needs_quotes {
        value.to_owned()
    } else if value.contains('"') {
        format!("'{value}'")
    } else {
        format!("\"{value}\"")
    }
}

/// Why `-4`/`-6` leave nothing to balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyError {
    /// `-4`, but the file sets no VIP4.
    NoVip4,
    /// `-6`, but the file sets no VIP6.
    NoVip6,
    /// Neither family was kept.
    NoFamilyLeft,
}

impl std::fmt::Display for FamilyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FamilyError::NoVip4 => "IPv4 only was asked for, but no VIP4 is set",
            FamilyError::NoVip6 => "IPv6 only was asked for, but no VIP6 is set",
            FamilyError::NoFamilyLeft => "neither IPv4 nor IPv6 is left to balance",
        })
    }
}

impl std::error::Error for FamilyError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(addr: &str, weight: u32) -> Backend {
        Backend {
            addr: addr.parse().unwrap(),
            weight,
        }
    }

    fn dual_stack() -> Config {
        Config {
            vip4: Some("198.18.0.10".parse().unwrap()),
            vip6: Some("fd00:18::10".parse().unwrap()),
            servers4: vec![backend("198.19.0.1", 1), backend("198.19.0.2", 3)],
            servers6: vec![backend("fd00:19::1", 1)],
            ..Config::default()
        }
    }

    #[test]
    fn backends_are_v4_then_v6_in_file_order() {
        let addrs: Vec<String> = dual_stack()
            .backends()
            .iter()
            .map(|b| b.addr.to_string())
            .collect();
        assert_eq!(addrs, ["198.19.0.1", "198.19.0.2", "fd00:19::1"]);
    }

    #[test]
    fn restricting_to_one_family_drops_the_other() {
        let mut config = dual_stack();
        config.restrict_family(false, true).unwrap();
        assert_eq!(config.vip4, None);
        assert!(config.servers4.is_empty());
        assert_eq!(config.servers6.len(), 1);

        let mut config = dual_stack();
        config.restrict_family(true, false).unwrap();
        assert_eq!(config.vip6, None);
        assert!(config.servers6.is_empty());
        assert_eq!(config.backends().len(), 2);
    }

    #[test]
    fn restricting_to_one_family_keeps_the_maglev_seed() {
        let both = dual_stack();
        let mut v4_only = dual_stack();
        v4_only.restrict_family(true, false).unwrap();
        assert_eq!(v4_only.maglev_seed(), both.maglev_seed());
    }

    #[test]
    fn restricting_to_a_missing_family_is_an_error() {
        let mut config = dual_stack();
        config.vip6 = None;
        config.servers6.clear();
        let error = config.restrict_family(false, true).unwrap_err();
        assert_eq!(error, FamilyError::NoVip6);
        assert_eq!(
            error.to_string(),
            "IPv6 only was asked for, but no VIP6 is set"
        );
        assert!(dual_stack().restrict_family(false, false).is_err());
        assert!(dual_stack().restrict_family(true, true).is_ok());
    }

    #[test]
    fn worker_cores_default_to_all_online() {
        let mut config = dual_stack();
        let four = [0, 1, 2, 3];
        assert_eq!(config.worker_cores(&four), Ok(0..=3));
        assert_eq!(config.worker_cores(&[2, 3]), Ok(2..=3));
        config.first_core = Some(1);
        assert_eq!(config.worker_cores(&four), Ok(1..=3));
        config.last_core = Some(2);
        assert_eq!(config.worker_cores(&four), Ok(1..=2));
        config.first_core = Some(5);
        config.last_core = None;
        assert!(config.worker_cores(&four).is_err());
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        assert_eq!(quoted_if_needed("eth0"), "eth0");
        assert_eq!(quoted_if_needed("/var/lib/my dir"), "\"/var/lib/my dir\"");
        assert_eq!(quoted_if_needed("a#b"), "\"a#b\"");
        assert_eq!(quoted_if_needed("say \"hi\""), "'say \"hi\"'");
        assert_eq!(quoted_if_needed(""), "\"\"");
    }

    #[test]
    fn display_lists_defaults_and_weights() {
        let listing = dual_stack().to_string();
        for line in [
            "VIP4=198.18.0.10",
            "server4=198.19.0.2 weight=3",
            "server6=fd00:19::1 weight=1",
            "strategy=rr",
            "stickiness=client",
            "max_flows=1048576",
            "flow_timeout=300",
            "nfq_len=8192",
            "# FIRST_CORE not set: the lowest allowed CPU",
            "rules=auto",
            "forward=userspace",
            "port_alive=80",
            "check_cycle=30",
            "check_timeout=2",
            "rise=2",
            "fall=3",
            "failover=no",
            "pidfile=/run/loaded.pid",
            "chroot=/var/run/empty",
            "user=nobody",
            "log_socket=/dev/log",
            "control_socket=/run/loaded/control.sock",
            "control_group=root",
        ] {
            assert!(
                listing.lines().any(|l| l == line),
                "{line:?} missing from\n{listing}"
            );
        }
    }
}
