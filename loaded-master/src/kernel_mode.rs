//! The master's side of kernel mode (`forward=kernel`): it owns the nftables table (see
//! `nft`), keeps its maps in step with the servers, and forgets a dead server's
//! connections (see `conntrack`). The prober tells it of every change (`BackendChange`),
//! once the master's backend book has checked it (a server added outside RIP4/RIP6 ends
//! the prober before it gets here; see `backend_book`).

use crate::bounded_command::CommandError;
use crate::conntrack;
use crate::nft::{self, KernelTable, NftError};
use crate::server_slots::ServerSlots;
use loaded_proto::config::Config;
use loaded_proto::forwarding::mark_for_slot;
use loaded_proto::message::BackendUpdate;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

pub struct KernelForwarding {
    slots: ServerSlots,
    vip4: Option<Ipv4Addr>,
    vip6: Option<Ipv6Addr>,
    configured: HashSet<IpAddr>,
    /// Servers whose connections are forgotten once more at the given time; see
    /// `SECOND_FLUSH_AFTER`.
    second_flushes: Vec<(Instant, IpAddr)>,
    /// Servers a reload removed, for the log ("removed" rather than "down").
    removed: HashSet<IpAddr>,
}

/// The workers hear of a server going down from the prober directly, at about the time we
/// do. A connection whose first packet a worker decided in between was given the dead
/// server and would stay with it (a steady UDP stream never expires); forgetting its
/// connections once more, after the workers surely know, moves those too.
const SECOND_FLUSH_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum KernelModeError {
    /// A slot too large for a mark (the directory is far smaller: a bug).
    NoMark {
        addr: IpAddr,
        slot: usize,
    },
    Nft(NftError),
}

impl fmt::Display for KernelModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelModeError::NoMark { addr, slot } => {
                write!(f, "server {addr}: directory slot {slot} has no mark")
            }
            KernelModeError::Nft(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for KernelModeError {}

fn mark_of(addr: IpAddr, slot: usize) -> Result<u32, KernelModeError> {
    mark_for_slot(slot).ok_or(KernelModeError::NoMark { addr, slot })
}

impl KernelForwarding {
    /// `slots` must hold every configured server already.
    pub fn new(slots: ServerSlots, config: &Config) -> KernelForwarding {
        KernelForwarding {
            slots,
            vip4: config.vip4,
            vip6: config.vip6,
            configured: config.backends().iter().map(|b| b.addr).collect(),
            second_flushes: Vec::new(),
            removed: HashSet::new(),
        }
    }

    /// When `run_due` next has work: the caller's poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.second_flushes.iter().map(|(at, _)| *at).min()
    }

    /// Does the work that is due at `now`.
    pub fn run_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.second_flushes.iter().partition(|(at, _)| *at <= now);
        self.second_flushes = later;
        for (_, addr) in due {
            self.forget_connections(addr);
        }
    }

    /// The table for the servers known now.
    pub fn table(&self) -> Result<KernelTable, KernelModeError> {
        let servers = self
            .slots
            .known()
            .into_iter()
            .map(|(addr, slot)| Ok((mark_of(addr, slot)?, addr)))
            .collect::<Result<Vec<_>, KernelModeError>>()?;
        Ok(KernelTable {
            vip4: self.vip4,
            vip6: self.vip6,
            servers,
        })
    }

    /// Installs the table (replacing a leftover of a killed run); it stays until the
    /// returned guard is dropped.
    pub fn install(&self) -> Result<InstalledTable, KernelModeError> {
        self.table()?.install().map_err(KernelModeError::Nft)?;
        Ok(InstalledTable { _private: () })
    }

    /// Acts on a change the prober saw and the backend book accepted. Failures of the
    /// tools are logged, never fatal.
    pub fn on_change(&mut self, update: BackendUpdate) {
        match update {
            BackendUpdate::Added(backend) => self.add(backend.addr),
            BackendUpdate::Down(addr) => {
                self.forget_connections(addr);
                self.second_flushes
                    .push((Instant::now() + SECOND_FLUSH_AFTER, addr));
            }
            // Its old connections were forgotten when it went down; the healthy servers'
            // connections are never touched.
            BackendUpdate::Up(_) => {}
        }
    }

    /// A reload, before the workers hear of it: `config` is the new one (hot-plugs are
    /// checked against its servers), `added` get their map elements. A server configured
    /// again still has its element: slots and elements are never removed.
    pub fn reload_servers(&mut self, config: &Config, added: &[IpAddr]) {
        self.configured = config.backends().iter().map(|b| b.addr).collect();
        self.removed.retain(|addr| !self.configured.contains(addr));
        for addr in added {
            self.add(*addr);
        }
    }

    /// A reload, after the workers heard of it: the removed servers' connections are
    /// forgotten as a down server's are (now, and once more a little later), so that their
    /// clients are queued again at their next packet and move.
    pub fn forget_removed(&mut self, removed: &[IpAddr]) {
        for addr in removed {
            self.removed.insert(*addr);
            self.forget_connections(*addr);
            self.second_flushes
                .push((Instant::now() + SECOND_FLUSH_AFTER, *addr));
        }
    }

    fn add(&mut self, addr: IpAddr) {
        let slot = match self.slots.register(addr) {
            Ok(slot) => slot,
            Err(full) => {
                log::error!("server {addr} cannot be added: {full}");
                return;
            }
        };
        let added = mark_of(addr, slot)
            .and_then(|mark| nft::add_server(mark, addr).map_err(KernelModeError::Nft));
        match added {
            Ok(()) => log::info!("server {addr} added to the nftables map (slot {slot})"),
            Err(e) => log::error!("server {addr}: {e}"),
        }
    }

    fn forget_connections(&self, addr: IpAddr) {
        let Some(slot) = self.slots.slot(addr) else {
            log::warn!("the prober says {addr} is down, but it is no server of ours");
            return;
        };
        let why = if self.removed.contains(&addr) {
            "removed by a reload"
        } else {
            "down"
        };
        let forgotten =
            mark_of(addr, slot).map(|mark| (mark, conntrack::forget_server(addr, mark)));
        match forgotten {
            Ok((_, Ok(count))) => {
                log::info!("{count} connection(s) to {addr} forgotten: it is {why}")
            }
            Ok((mark, Err(e))) => log::error!(
                "server {addr} is {why}, but its connections (mark {mark:#x}) could not be forgotten: {e}"
            ),
            Err(e) => log::error!("{e}"),
        }
    }
}

/// The installed nftables table, removed when this is dropped, whichever way the master
/// exits; a failure is logged, as there is nothing else to do then.
#[derive(Debug)]
pub struct InstalledTable {
    _private: (),
}

impl Drop for InstalledTable {
    fn drop(&mut self) {
        match nft::remove() {
            Ok(()) => log::info!("nftables table inet {} removed", nft::TABLE),
            Err(e) => log::error!("{e}"),
        }
    }
}

/// Userspace mode: removes a table left by a killed kernel-mode run (its NAT would confuse
/// the rewrite). Without nft installed there can be no such table, so that is no error.
pub fn remove_leftover_table() {
    match nft::remove() {
        Ok(()) => {}
        Err(NftError::Run {
            source: CommandError::Spawn { .. },
            ..
        }) => log::debug!("nft is not installed: no leftover kernel-mode table to remove"),
        Err(e) => log::warn!("{e}"),
    }
}

/// Kernel mode keeps one conntrack entry per connection (TIME_WAIT ones too); warn when the
/// kernel's limit is below what the flow table is sized for.
pub fn warn_if_conntrack_small(max_flows: u32) {
    let Ok(text) = std::fs::read_to_string(CONNTRACK_MAX) else {
        log::warn!("cannot read {CONNTRACK_MAX}: is conntrack available?");
        return;
    };
    if let Some(message) = conntrack_max_warning(&text, max_flows) {
        log::warn!("{message}");
    }
}

fn conntrack_max_warning(text: &str, max_flows: u32) -> Option<String> {
    let limit: u64 = text.trim().parse().ok()?;
    (limit < u64::from(max_flows)).then(|| {
        format!(
            "{CONNTRACK_MAX} is {limit}, below max_flows={max_flows}: in forward=kernel mode \
             every connection, TIME_WAIT ones included, needs an entry; new connections \
             are dropped once it is full"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::flow_table::create_region;
    use std::os::fd::AsFd;

    fn kernel_mode(text: &str) -> KernelForwarding {
        let config = Config::parse(text, "test.conf").unwrap().config;
        let region = create_region(4096).unwrap();
        let slots =
            ServerSlots::register_configured(region.as_fd(), 4096, &config.backends()).unwrap();
        KernelForwarding::new(slots, &config)
    }

    const CONFIG: &str = "VIP4=198.18.100.1\nVIP6=fd00:100::1\nserver4=198.19.0.11\n\
                          server6=fd00:19::11\nRIP4=198.19.0.0/24\nforward=kernel\n";

    #[test]
    fn the_table_names_every_configured_server_by_its_slot() {
        let table = kernel_mode(CONFIG).table().unwrap();
        assert_eq!(
            table.servers,
            [
                (0x4c44_0001, "198.19.0.11".parse().unwrap()),
                (0x4c44_0002, "fd00:19::11".parse().unwrap())
            ]
        );
        assert_eq!(table.vip4, Some("198.18.100.1".parse().unwrap()));
    }

    #[test]
    fn a_down_server_is_forgotten_again_once_the_workers_know() {
        let mut forwarding = kernel_mode(CONFIG);
        let start = Instant::now();
        assert_eq!(forwarding.next_deadline(), None);
        // Unknown to the master: only logged, but the second pass is still planned.
        let stranger: IpAddr = "198.19.0.99".parse().unwrap();
        forwarding.on_change(BackendUpdate::Down(stranger));
        let due = forwarding.next_deadline().unwrap();
        assert!(due >= start + SECOND_FLUSH_AFTER);
        forwarding.run_due(due - Duration::from_millis(1));
        assert_eq!(forwarding.next_deadline(), Some(due), "not yet");
        forwarding.run_due(due);
        assert_eq!(forwarding.next_deadline(), None);
        forwarding.on_change(BackendUpdate::Up(stranger));
        assert_eq!(
            forwarding.next_deadline(),
            None,
            "coming back touches nothing"
        );
    }

    #[test]
    fn conntrack_max_below_max_flows_is_worth_a_warning() {
        assert!(conntrack_max_warning("262144\n", 1 << 20)
            .unwrap()
            .contains("is 262144, below max_flows=1048576"));
        assert_eq!(conntrack_max_warning("2097152\n", 1 << 20), None);
        assert_eq!(conntrack_max_warning("garbage", 1 << 20), None);
    }
}
