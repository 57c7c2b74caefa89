//! The worker's `BackendSelector`: the shared flow table remembers which backend each flow
//! has, and the configured scheduler picks one for flows it does not know yet.
//!
//! Health changes touch only what they must: a backend going down gets no new mapping, and
//! each of its mappings is moved to a fresh pick at the flow's next packet; mappings to
//! healthy backends are never moved. Hot-plugged backends are appended.
//!
//! A reload (`reconfigure`) replaces the configured backends: kept ones keep their health
//! and their mappings, new ones start up, removed ones are treated like a backend that
//! went down (their mappings move at the flow's next packet), and the scheduler is
//! rebuilt for the new set. Whether a server was removed is recorded in the flow table's
//! directory by the master ("withdrawn"), so every worker, also one started later, agrees,
//! and a stale health message cannot bring a removed server back.

use super::flow::{BackendSelector, FlowKey, NoPick, Opening};
use super::scheduler::{self, BackendSet, Member, PickRequest, Scheduler, SharedState};
use loaded_proto::balancing::{Backend, IpNet, Stickiness, Strategy};
use loaded_proto::flow_table::{
    monotonic_seconds, BackendSlot, DirectoryFull, SharedFlowTable, TableKey, TableStats,
};
use loaded_proto::message::ServerOverrides;
use loaded_proto::reload::BalancingSettings;
use loaded_proto::wire::Family;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalancerConfig {
    pub strategy: Strategy,
    pub stickiness: Stickiness,
    /// Both families may be mixed: a flow only goes to a backend of its own family.
    pub backends: Vec<Backend>,
    /// Idle time after which a mapping counts as free.
    pub flow_timeout: Duration,
    /// The key of maglev's hashes (`Config::maglev_seed`), fixed for the process's life:
    /// a reload that changes it only takes effect at a restart.
    pub maglev_seed: u128,
    /// Where hot-plugged servers may be (RIP4, RIP6): the only servers besides the
    /// configured ones this worker adds, or trusts a mapping to.
    pub hotplug_nets: Vec<IpNet>,
}

pub struct Balancer {
    table: SharedFlowTable,
    backends: BackendSet,
    strategy: Strategy,
    scheduler: Box<dyn Scheduler>,
    stickiness: Stickiness,
    maglev_seed: u128,
    hotplug_nets: Vec<IpNet>,
    /// Packets that needed a pick when no backend of their family was up.
    no_backend: u64,
    /// The weights the config (or the hot-plug) gave, which an operator's weight replaces
    /// while it is set.
    configured_weights: HashMap<IpAddr, u32>,
    /// The operator's drains and weights (`loadedctl`), applied to every backend, also to
    /// those added later.
    overrides: ServerOverrides,
    /// The server the packet being decided goes to or comes from, for the counters: set by
    /// the selector calls of the rewrite (one per packet), taken by the packet loop.
    traffic: Cell<Option<ServerTraffic>>,
}

/// Which server a packet went to or came from, by directory slot (see `take_traffic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTraffic {
    pub slot: usize,
    pub direction: Direction,
    /// The packet made a mapping (a new client or flow, or one moved off a down server).
    pub new_flow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    FromServer,
}

/// Why a hot-plugged backend was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddRefused {
    /// The directory has no slot left for it.
    Full(DirectoryFull),
    /// A reload removed it from the configuration; only a later reload brings it back.
    Withdrawn,
    /// Not inside RIP4/RIP6: a prober that names it is broken or taken over.
    OutsideHotplugNets,
}

impl fmt::Display for AddRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddRefused::Full(full) => full.fmt(f),
            AddRefused::Withdrawn => f.write_str("a reload removed it from the configuration"),
            AddRefused::OutsideHotplugNets => {
                f.write_str("it is not configured and not inside RIP4/RIP6")
            }
        }
    }
}

impl std::error::Error for AddRefused {}

/// What a reload did to this worker's backends, for its log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub added: Vec<IpAddr>,
    pub removed: Vec<IpAddr>,
    /// Configured servers the directory had no slot for.
    pub left_out: Vec<IpAddr>,
    /// Every backend after the reload, hot-plugged ones included.
    pub backends: usize,
}

/// What this worker knows about the backends and has done with the table, for the log and
/// the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalancerStats {
    /// In member order (config order, then hot-plugs).
    pub backends: Vec<BackendStats>,
    /// This worker's share of the table's work.
    pub table: TableStats,
    pub no_backend: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendStats {
    pub addr: IpAddr,
    pub up: bool,
    /// Mappings across all workers, idle ones included until they are swept.
    pub live_mappings: u64,
}

impl Balancer {
    /// Every configured backend starts up. A backend the table has no directory slot left
    /// for (more than MAX_BACKENDS in the region's lifetime) is logged and left out.
    pub fn new(config: BalancerConfig, mut table: SharedFlowTable) -> Balancer {
        table.set_flow_timeout(config.flow_timeout);
        let mut balancer = Balancer {
            table,
            backends: BackendSet::default(),
            strategy: config.strategy,
            scheduler: scheduler::for_strategy(config.strategy, config.maglev_seed),
            stickiness: config.stickiness,
            maglev_seed: config.maglev_seed,
            hotplug_nets: config.hotplug_nets,
            no_backend: 0,
            configured_weights: HashMap::new(),
            overrides: ServerOverrides::default(),
            traffic: Cell::new(None),
        };
        for backend in config.backends {
            if let Err(e) = balancer.admit(backend) {
                log::error!("server {} left out: {e}", backend.addr);
            }
        }
        balancer.scheduler.backends_changed(&balancer.backends);
        balancer
    }

    /// Appends a hot-plugged backend, up. `Ok(false)`: it is already known, and keeps its
    /// weight and health. A backend a reload withdrew is refused: the message that names
    /// it predates the reload (the prober had not heard of it yet).
    pub fn add_backend(&mut self, backend: Backend) -> Result<bool, AddRefused> {
        if self.backends.position(backend.addr).is_some() {
            return Ok(false);
        }
        if !in_nets(&self.hotplug_nets, backend.addr) {
            return Err(AddRefused::OutsideHotplugNets);
        }
        let slot = self
            .table
            .register_backend(backend.addr)
            .map_err(AddRefused::Full)?;
        if self.table.is_withdrawn(slot) {
            return Err(AddRefused::Withdrawn);
        }
        let added = self.admit(backend).map_err(AddRefused::Full)?;
        if added {
            self.scheduler.backends_changed(&self.backends);
        }
        Ok(added)
    }

    /// Applies a reload: the configured backends become `settings.backends` (in that
    /// order, with those weights), the ones in `settings.removed` go, hot-plugged ones not
    /// named stay (after the configured ones, in their order). A kept backend keeps its
    /// health, a new one starts up. Mappings are not touched here: those to kept backends
    /// stay, those to removed ones move at their next packet (see `is_down`).
    pub fn reconfigure(&mut self, settings: &BalancingSettings) -> Reconfigured {
        self.table.set_flow_timeout(settings.flow_timeout);
        let removed: HashSet<IpAddr> = settings.removed.iter().copied().collect();
        let old = std::mem::take(&mut self.backends);
        let mut done = Reconfigured::default();
        for backend in &settings.backends {
            let known = old.position(backend.addr).and_then(|index| old.get(index));
            let (up, slot) = match known {
                Some(member) => (member.up, member.slot),
                None => match self.table.register_backend(backend.addr) {
                    Ok(slot) => {
                        done.added.push(backend.addr);
                        (true, slot)
                    }
                    Err(DirectoryFull) => {
                        done.left_out.push(backend.addr);
                        continue;
                    }
                },
            };
            self.configured_weights.insert(backend.addr, backend.weight);
            self.backends.push(Member {
                addr: backend.addr,
                weight: backend.weight,
                up,
                slot,
                draining: false,
            });
        }
        for member in old.members() {
            if removed.contains(&member.addr) {
                if self.backends.position(member.addr).is_none() {
                    done.removed.push(member.addr);
                }
            } else {
                // A hot-plugged backend; `push` skips one the config now names.
                self.backends.push(*member);
            }
        }
        if settings.strategy != self.strategy {
            self.strategy = settings.strategy;
            self.scheduler = scheduler::for_strategy(settings.strategy, self.maglev_seed);
        }
        self.apply_overrides();
        self.scheduler.backends_changed(&self.backends);
        done.backends = self.backends.members().len();
        done
    }

    /// Records a health change; `false` if `addr` is not a backend.
    pub fn set_backend_up(&mut self, addr: IpAddr, up: bool) -> bool {
        match self.backends.set_up(addr, up) {
            None => false,
            Some(changed) => {
                if changed {
                    self.scheduler.backends_changed(&self.backends);
                }
                true
            }
        }
    }

    /// The operator's drains and weights, replacing the last ones: a drained backend gets
    /// no new mapping but keeps the ones it has; a weight replaces the configured one
    /// until a new set of overrides leaves it out.
    pub fn set_overrides(&mut self, overrides: ServerOverrides) {
        self.overrides = overrides;
        if self.apply_overrides() {
            self.scheduler.backends_changed(&self.backends);
        }
    }

    /// `true` if a backend's weight or drain changed.
    fn apply_overrides(&mut self) -> bool {
        let overrides = &self.overrides;
        let configured = &self.configured_weights;
        self.backends.apply_operator(|member| {
            let weight = overrides
                .weight_of(member.addr)
                .or_else(|| configured.get(&member.addr).copied())
                .unwrap_or(member.weight);
            (weight, overrides.is_drained(member.addr))
        })
    }

    /// The server of the packet just decided, if it went to or came from one; clears it.
    #[inline]
    pub fn take_traffic(&self) -> Option<ServerTraffic> {
        self.traffic.take()
    }

    /// Sweeps the `shard`-th of `shards` slices of the table for idle mappings; returns how
    /// many were removed. Call about once a second with a rotating shard.
    pub fn expire_idle(&mut self, shard: usize, shards: usize) -> usize {
        self.table.expire_idle(monotonic_seconds(), shard, shards)
    }

    pub fn stats(&self) -> BalancerStats {
        BalancerStats {
            backends: self
                .backends
                .members()
                .iter()
                .map(|member| BackendStats {
                    addr: member.addr,
                    up: member.up,
                    live_mappings: self.table.live_mappings(member.slot),
                })
                .collect(),
            table: self.table.stats(),
            no_backend: self.no_backend,
        }
    }

    fn admit(&mut self, backend: Backend) -> Result<bool, DirectoryFull> {
        if self.backends.position(backend.addr).is_some() {
            return Ok(false);
        }
        let slot = self.table.register_backend(backend.addr)?;
        self.configured_weights.insert(backend.addr, backend.weight);
        let added = self.backends.push(Member {
            addr: backend.addr,
            weight: backend.weight,
            up: true,
            slot,
            draining: false,
        });
        self.apply_overrides();
        Ok(added)
    }

    /// The flow's backend with its directory slot (what kernel mode marks packets with):
    /// the existing mapping, refreshed, or a fresh pick, exactly as `backend_for`. The slot
    /// comes from the shared table, so it is right even for a backend this worker has not
    /// heard of yet (hot-plugged, another worker mapped the flow first).
    pub fn backend_slot_for(
        &mut self,
        key: &FlowKey,
        opening: Opening,
    ) -> Result<BackendSlot, NoPick> {
        self.slot_at(key, opening, monotonic_seconds())
    }

    /// The server of a flow's first packet at `now`, whatever the reason if none (for
    /// tests).
    #[cfg(test)]
    fn backend_at(&mut self, flow: &FlowKey, now: u32) -> Option<IpAddr> {
        self.slot_at(flow, Opening::Opens, now)
            .ok()
            .map(|mapped| mapped.addr)
    }

    fn slot_at(
        &mut self,
        flow: &FlowKey,
        opening: Opening,
        now: u32,
    ) -> Result<BackendSlot, NoPick> {
        let key = TableKey::new(flow, self.stickiness);
        let key_hash = self.table.hash(&key);
        // A bucket locked by a live worker for longer than we wait: drop the packet rather
        // than guess, as a guess for an existing flow would reset its connection.
        let mut bucket = self
            .table
            .lock_bucket(key_hash, now)
            .map_err(|_| NoPick::Busy)?;
        let existing = bucket.find(&key);
        if let Some(way) = existing {
            let current = bucket.mapping(way);
            if !is_down(&self.backends, &self.hotplug_nets, &self.table, current) {
                bucket.touch(way);
                self.traffic.set(Some(ServerTraffic {
                    slot: current.slot,
                    direction: Direction::ToServer,
                    new_flow: false,
                }));
                return Ok(current);
            }
        }
        // A mapping that exists is the flow's, even when its server went down: moving it is
        // not creating one. Without one, only a flow's first packet may create it; maglev
        // still sends the others where a first packet would go (another balancer behind
        // ECMP may have seen the flow begin), but records nothing.
        let records = existing.is_some() || opening == Opening::Opens;
        if !records && self.strategy != Strategy::Maglev {
            return Err(NoPick::NoMapping);
        }
        let picked = pick(&self.table, &self.backends, self.scheduler.as_ref(), &key);
        let Some(fresh) = picked else {
            self.no_backend += 1;
            return Err(NoPick::NoServer);
        };
        self.traffic.set(Some(ServerTraffic {
            slot: fresh.slot,
            direction: Direction::ToServer,
            new_flow: records,
        }));
        if !records {
            return Ok(fresh);
        }
        match existing {
            Some(way) => bucket.reassign(way, fresh),
            None => {
                bucket.insert(&key, fresh);
            }
        }
        Ok(fresh)
    }

    fn existing_backend_at(&self, flow: &FlowKey, now: u32) -> Option<IpAddr> {
        let key = TableKey::new(flow, self.stickiness);
        let mapping = self.table.get(&key, now).ok()??;
        Some(mapping.addr)
    }
}

impl BackendSelector for Balancer {
    fn backend_for(&mut self, key: &FlowKey, opening: Opening) -> Result<IpAddr, NoPick> {
        self.slot_at(key, opening, monotonic_seconds())
            .map(|mapped| mapped.addr)
    }

    fn existing_backend(&self, key: &FlowKey) -> Option<IpAddr> {
        self.existing_backend_at(key, monotonic_seconds())
    }

    fn is_backend(&self, addr: IpAddr) -> bool {
        self.backends.position(addr).is_some()
    }

    fn is_sending_backend(&self, addr: IpAddr) -> bool {
        let Some(member) = self
            .backends
            .position(addr)
            .and_then(|i| self.backends.get(i))
        else {
            return false;
        };
        self.traffic.set(Some(ServerTraffic {
            slot: member.slot,
            direction: Direction::FromServer,
            new_flow: false,
        }));
        true
    }
}

/// Whether a mapping's backend is known to this worker and down, or withdrawn by a
/// reload. Another backend we do not know (hot-plugged, and another worker heard first)
/// is trusted: its mappings are healthy as far as we can tell, and those are never moved.
fn is_down(
    backends: &BackendSet,
    hotplug_nets: &[IpNet],
    table: &SharedFlowTable,
    mapped: BackendSlot,
) -> bool {
    let member = backends
        .at_slot(mapped.slot)
        .filter(|member| member.addr == mapped.addr)
        .or_else(|| backends.get(backends.position(mapped.addr)?));
    match member {
        Some(member) => !member.up,
        // Rare: only mappings to backends this worker does not have. A hot-plugged server
        // another worker heard of first is trusted; any other address was written by a
        // broken or taken-over worker, and the client gets a fresh pick.
        None => table.is_withdrawn(mapped.slot) || !in_nets(hotplug_nets, mapped.addr),
    }
}

fn in_nets(nets: &[IpNet], addr: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(addr))
}

/// Hot-plug allowed anywhere: for tests about other things.
#[cfg(test)]
pub fn anywhere() -> Vec<IpNet> {
    vec![
        IpNet {
            addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            prefix_len: 0,
        },
        IpNet {
            addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            prefix_len: 0,
        },
    ]
}

fn pick(
    table: &SharedFlowTable,
    backends: &BackendSet,
    scheduler: &dyn Scheduler,
    key: &TableKey,
) -> Option<BackendSlot> {
    let family = key.family();
    let index = scheduler.pick(&PickRequest {
        family,
        key,
        backends,
        shared: table,
    })?;
    let member = backends.get(index)?;
    // A scheduler's mistake must not send a flow to a dead server or across families.
    (member.takes_new_clients() && member.family() == family).then_some(BackendSlot {
        addr: member.addr,
        slot: member.slot,
    })
}

impl SharedState for SharedFlowTable {
    fn live_mappings(&self, slot: usize) -> u64 {
        SharedFlowTable::live_mappings(self, slot)
    }

    fn take_round_robin_turn(&self, family: Family) -> u64 {
        SharedFlowTable::take_round_robin_turn(self, family)
    }
}

#[cfg(test)]
mod tests_support {
    pub(super) use super::tests::{addr, client, new_balancer, T0, THREE, TIMEOUT};
}

#[cfg(test)]
mod tests {
    use super::*;
    use loaded_proto::flow_table::{create_region, MAX_BACKENDS};
    use std::net::Ipv4Addr;
    use std::os::fd::AsFd;

    pub(super) const T0: u32 = 10_000;
    const SEED: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
    pub(super) const TIMEOUT: u32 = 300;

    fn config(
        strategy: Strategy,
        stickiness: Stickiness,
        servers: &[(&str, u32)],
    ) -> BalancerConfig {
        BalancerConfig {
            strategy,
            stickiness,
            backends: servers
                .iter()
                .map(|(addr, weight)| Backend {
                    addr: addr.parse().unwrap(),
                    weight: *weight,
                })
                .collect(),
            flow_timeout: Duration::from_secs(TIMEOUT.into()),
            maglev_seed: SEED,
            hotplug_nets: crate::datapath::balancer::anywhere(),
        }
    }

    pub(super) fn new_balancer(
        strategy: Strategy,
        stickiness: Stickiness,
        servers: &[(&str, u32)],
    ) -> Balancer {
        balancer_on(
            SharedFlowTable::anonymous(4096).unwrap(),
            strategy,
            stickiness,
            servers,
        )
    }

    fn balancer_on(
        table: SharedFlowTable,
        strategy: Strategy,
        stickiness: Stickiness,
        servers: &[(&str, u32)],
    ) -> Balancer {
        Balancer::new(config(strategy, stickiness, servers), table)
    }

    pub(super) const THREE: [(&str, u32); 3] =
        [("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)];

    pub(super) fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn flow(client: IpAddr, client_port: u16) -> FlowKey {
        FlowKey {
            client,
            vip: if client.is_ipv4() {
                addr("198.18.0.1")
            } else {
                addr("fd00:18::1")
            },
            protocol: 6,
            client_port,
            vip_port: 80,
        }
    }

    pub(super) fn client(n: u32) -> FlowKey {
        flow(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n)), 40_000)
    }

    impl Balancer {
        fn expire_idle_at(&self, now: u32) -> usize {
            self.table.expire_idle(now, 0, 1)
        }
    }

    fn live_mappings(balancer: &Balancer) -> Vec<u64> {
        balancer
            .stats()
            .backends
            .iter()
            .map(|b| b.live_mappings)
            .collect()
    }

    #[test]
    fn round_robin_starts_at_the_first_server_and_is_shared_by_workers() {
        let fd = create_region(4096).unwrap();
        let mut workers = [(); 2].map(|_| {
            let table = SharedFlowTable::map(fd.as_fd(), 4096).unwrap();
            balancer_on(table, Strategy::RoundRobin, Stickiness::Client, &THREE)
        });
        let order: Vec<IpAddr> = (0..7)
            .map(|n| workers[n as usize % 2].backend_at(&client(n), T0).unwrap())
            .collect();
        let expected = [1, 2, 3, 1, 2, 3, 1].map(|n| addr(&format!("198.19.0.{n}")));
        assert_eq!(order, expected);
    }

    #[test]
    fn round_robin_skips_servers_that_are_down() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        assert!(balancer.set_backend_up(addr("198.19.0.2"), false));
        let order: Vec<IpAddr> = (0..4)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        assert_eq!(
            order,
            ["198.19.0.1", "198.19.0.3", "198.19.0.1", "198.19.0.3"].map(addr)
        );
    }

    #[test]
    fn weighted_splits_sixty_new_flows_thirty_twenty_ten() {
        let servers = [("198.19.0.1", 3), ("198.19.0.2", 2), ("198.19.0.3", 1)];
        let mut balancer = new_balancer(Strategy::Weighted, Stickiness::Client, &servers);
        for n in 0..60 {
            balancer.backend_at(&client(n), T0).unwrap();
        }
        assert_eq!(live_mappings(&balancer), [30, 20, 10]);
        balancer.table.assert_live_counters_match_entries();
    }

    #[test]
    fn client_stickiness_keeps_all_flows_of_a_client_together() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        let client = addr("203.0.113.7");
        let first = balancer.backend_at(&flow(client, 1000), T0);
        assert_eq!(balancer.backend_at(&flow(client, 2000), T0), first);
        let udp = FlowKey {
            protocol: 17,
            ..flow(client, 3000)
        };
        assert_eq!(balancer.backend_at(&udp, T0), first);
        assert_eq!(live_mappings(&balancer), [1, 0, 0]);
    }

    #[test]
    fn flow_stickiness_maps_each_flow_on_its_own() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Flow, &THREE);
        let client = addr("203.0.113.7");
        let first = balancer.backend_at(&flow(client, 1000), T0);
        let second = balancer.backend_at(&flow(client, 2000), T0);
        assert_ne!(first, second);
        assert_eq!(balancer.backend_at(&flow(client, 1000), T0), first);
        assert_eq!(live_mappings(&balancer), [1, 1, 0]);
    }

    #[test]
    fn existing_backend_neither_creates_nor_refreshes() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        assert_eq!(balancer.existing_backend_at(&client(1), T0), None);
        assert_eq!(balancer.stats().table.inserted, 0);
        let mapped = balancer.backend_at(&client(1), T0);
        assert_eq!(balancer.existing_backend_at(&client(1), T0 + 200), mapped);
        assert_eq!(balancer.existing_backend_at(&client(1), T0 + TIMEOUT), None);
    }

    #[test]
    fn backend_for_refreshes_the_mapping() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        let mapped = balancer.backend_at(&client(1), T0);
        assert_eq!(balancer.backend_at(&client(1), T0 + 200), mapped);
        assert_eq!(
            balancer.existing_backend_at(&client(1), T0 + TIMEOUT + 100),
            mapped
        );
        assert_eq!(balancer.stats().table.inserted, 1);
    }

    #[test]
    fn a_down_backend_loses_its_flows_at_their_next_packet_and_no_others() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        let before: Vec<IpAddr> = (0..6)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        balancer.set_backend_up(addr("198.19.0.2"), false);
        // Until its next packet, the flow still belongs to its server (for ICMP errors).
        assert_eq!(
            balancer.existing_backend_at(&client(1), T0 + 1),
            Some(addr("198.19.0.2"))
        );
        for n in 0..6 {
            let after = balancer.backend_at(&client(n), T0 + 1).unwrap();
            if before[n as usize] == addr("198.19.0.2") {
                assert_ne!(after, addr("198.19.0.2"));
            } else {
                assert_eq!(after, before[n as usize]);
            }
        }
        assert_eq!(live_mappings(&balancer)[1], 0);
        assert_eq!(balancer.stats().table.reassigned, 2);
        balancer.table.assert_live_counters_match_entries();
        // Back up: the moved flows stay where they are now.
        balancer.set_backend_up(addr("198.19.0.2"), true);
        assert_ne!(
            balancer.backend_at(&client(1), T0 + 2),
            Some(addr("198.19.0.2"))
        );
    }

    #[test]
    fn with_no_live_backend_there_is_no_answer() {
        let mut balancer = new_balancer(Strategy::Weighted, Stickiness::Client, &THREE[..1]);
        let mapped = balancer.backend_at(&client(1), T0);
        assert!(mapped.is_some());
        balancer.set_backend_up(addr("198.19.0.1"), false);
        assert_eq!(balancer.backend_at(&client(1), T0), None);
        assert_eq!(balancer.backend_at(&client(2), T0), None);
        assert_eq!(balancer.stats().no_backend, 2);
        balancer.set_backend_up(addr("198.19.0.1"), true);
        assert_eq!(balancer.backend_at(&client(1), T0), mapped);
    }

    #[test]
    fn a_flow_only_goes_to_a_backend_of_its_family() {
        for strategy in [Strategy::RoundRobin, Strategy::Weighted, Strategy::Maglev] {
            let servers = [
                ("198.19.0.1", 1),
                ("fd00:19::1", 1),
                ("198.19.0.2", 1),
                ("fd00:19::2", 1),
            ];
            let mut balancer = new_balancer(strategy, Stickiness::Flow, &servers);
            for port in 0..20 {
                let v4 = balancer
                    .backend_at(&flow(addr("203.0.113.7"), port), T0)
                    .unwrap();
                let v6 = balancer
                    .backend_at(&flow(addr("2001:db8::7"), port), T0)
                    .unwrap();
                assert!(v4.is_ipv4() && v6.is_ipv6(), "{strategy}");
            }
            let mut v4_only = new_balancer(strategy, Stickiness::Client, &THREE);
            assert_eq!(v4_only.backend_at(&flow(addr("2001:db8::7"), 1), T0), None);
        }
    }

    #[test]
    fn a_busy_bucket_is_told_apart_from_no_server() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        balancer.table.hold_every_bucket_for_test(1);
        assert_eq!(
            balancer.backend_for(&client(1), Opening::Opens),
            Err(NoPick::Busy)
        );
        assert_eq!(balancer.stats().no_backend, 0);
        let mut none_up = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        for (server, _) in THREE {
            none_up.set_backend_up(addr(server), false);
        }
        assert_eq!(
            none_up.backend_for(&client(1), Opening::Opens),
            Err(NoPick::NoServer)
        );
    }

    fn rip(text: &str, prefix_len: u8) -> Vec<IpNet> {
        vec![IpNet {
            addr: addr(text),
            prefix_len,
        }]
    }

    #[test]
    fn only_servers_inside_rip_are_hot_plugged() {
        let mut settings = config(Strategy::RoundRobin, Stickiness::Client, &THREE);
        settings.hotplug_nets = rip("198.19.0.0", 24);
        let mut balancer = Balancer::new(settings, SharedFlowTable::anonymous(1024).unwrap());
        let outside = Backend {
            addr: addr("10.9.9.9"),
            weight: 1,
        };
        assert_eq!(
            balancer.add_backend(outside),
            Err(AddRefused::OutsideHotplugNets)
        );
        assert!(!balancer.is_backend(outside.addr));
        let inside = Backend {
            addr: addr("198.19.0.9"),
            weight: 1,
        };
        assert_eq!(balancer.add_backend(inside), Ok(true));
    }

    #[test]
    fn a_mapping_to_an_address_outside_rip_is_not_trusted() {
        let fd = create_region(4096).unwrap();
        // Worker A was told (by a broken prober, or it is itself taken over) of servers
        // anywhere, and maps two clients while its configured server is down.
        let mut a = balancer_on(
            SharedFlowTable::map(fd.as_fd(), 4096).unwrap(),
            Strategy::RoundRobin,
            Stickiness::Client,
            &[("198.19.0.1", 1)],
        );
        a.set_backend_up(addr("198.19.0.1"), false);
        for hot in ["10.9.9.9", "198.19.0.9"] {
            a.add_backend(Backend {
                addr: addr(hot),
                weight: 1,
            })
            .unwrap();
        }
        a.set_backend_up(addr("198.19.0.9"), false);
        assert_eq!(a.backend_at(&client(1), T0), Some(addr("10.9.9.9")));
        a.set_backend_up(addr("198.19.0.9"), true);
        a.set_backend_up(addr("10.9.9.9"), false);
        assert_eq!(a.backend_at(&client(2), T0), Some(addr("198.19.0.9")));
        // Worker B knows only its config and RIP: it moves the first client, keeps the
        // second (a hot-plug it has not heard of yet).
        let mut settings = config(
            Strategy::RoundRobin,
            Stickiness::Client,
            &[("198.19.0.1", 1)],
        );
        settings.hotplug_nets = rip("198.19.0.0", 24);
        let mut b = Balancer::new(settings, SharedFlowTable::map(fd.as_fd(), 4096).unwrap());
        assert_eq!(b.backend_at(&client(1), T0), Some(addr("198.19.0.1")));
        assert_eq!(b.backend_at(&client(2), T0), Some(addr("198.19.0.9")));
    }

    #[test]
    fn is_backend_knows_configured_and_hot_plugged_servers() {
        let mut balancer = new_balancer(
            Strategy::RoundRobin,
            Stickiness::Client,
            &[("198.19.0.1", 1), ("fd00:19::1", 1)],
        );
        assert!(balancer.is_backend(addr("198.19.0.1")));
        assert!(balancer.is_backend(addr("fd00:19::1")));
        assert!(!balancer.is_backend(addr("198.19.0.9")));
        assert!(!balancer.set_backend_up(addr("198.19.0.9"), false));
        let hot = Backend {
            addr: addr("198.19.0.9"),
            weight: 1,
        };
        assert_eq!(balancer.add_backend(hot), Ok(true));
        assert_eq!(balancer.add_backend(hot), Ok(false));
        assert!(balancer.is_backend(addr("198.19.0.9")));
        // Appended: its turn comes after the first server.
        let order: Vec<IpAddr> = (0..3)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        assert_eq!(order, ["198.19.0.1", "198.19.0.9", "198.19.0.1"].map(addr));
    }

    fn settings(
        servers: &[(&str, u32)],
        removed: &[&str],
        strategy: Strategy,
    ) -> BalancingSettings {
        let config = config(strategy, Stickiness::Client, servers);
        BalancingSettings {
            backends: config.backends,
            removed: removed.iter().map(|a| addr(a)).collect(),
            strategy,
            flow_timeout: config.flow_timeout,
        }
    }

    /// What the master does before it tells the workers of a removal or a return.
    fn set_withdrawn(balancer: &Balancer, server: &str, withdrawn: bool) {
        let slot = balancer.table.register_backend(addr(server)).unwrap();
        assert!(balancer.table.set_withdrawn(slot, withdrawn));
    }

    #[test]
    fn a_reload_keeps_the_mappings_of_kept_servers_and_moves_those_of_removed_ones() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        let before: Vec<IpAddr> = (0..30)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        set_withdrawn(&balancer, "198.19.0.2", true);
        let done = balancer.reconfigure(&settings(
            &[("198.19.0.1", 3), ("198.19.0.3", 1), ("198.19.0.4", 1)],
            &["198.19.0.2"],
            Strategy::RoundRobin,
        ));
        assert_eq!(done.added, [addr("198.19.0.4")]);
        assert_eq!(done.removed, [addr("198.19.0.2")]);
        assert_eq!(done.backends, 3);
        assert!(!balancer.is_backend(addr("198.19.0.2")));
        // Until its next packet, a moved flow still belongs to its server (ICMP errors).
        assert_eq!(
            balancer.existing_backend_at(&client(1), T0 + 1),
            Some(addr("198.19.0.2"))
        );
        for n in 0..30 {
            let after = balancer.backend_at(&client(n), T0 + 1).unwrap();
            if before[n as usize] == addr("198.19.0.2") {
                assert_ne!(after, addr("198.19.0.2"), "client {n} not moved");
            } else {
                assert_eq!(
                    after, before[n as usize],
                    "client {n} of a kept server moved"
                );
            }
        }
        // New clients reach the new server; none reaches the removed one.
        let fresh: Vec<IpAddr> = (100..106)
            .map(|n| balancer.backend_at(&client(n), T0 + 2).unwrap())
            .collect();
        assert!(fresh.contains(&addr("198.19.0.4")), "{fresh:?}");
        assert!(!fresh.contains(&addr("198.19.0.2")), "{fresh:?}");
        balancer.table.assert_live_counters_match_entries();
    }

    #[test]
    fn a_reload_keeps_health_and_hot_plugs_and_applies_weights_and_strategy() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        balancer.set_backend_up(addr("198.19.0.3"), false);
        let hot = Backend {
            addr: addr("198.19.0.9"),
            weight: 1,
        };
        balancer.add_backend(hot).unwrap();
        balancer.reconfigure(&settings(
            &[("198.19.0.3", 1), ("198.19.0.1", 3), ("198.19.0.5", 2)],
            &["198.19.0.2"],
            Strategy::Weighted,
        ));
        let members: Vec<(IpAddr, u32, bool)> = balancer
            .backends
            .members()
            .iter()
            .map(|m| (m.addr, m.weight, m.up))
            .collect();
        assert_eq!(
            members,
            [
                (addr("198.19.0.3"), 1, false),
                (addr("198.19.0.1"), 3, true),
                (addr("198.19.0.5"), 2, true),
                (addr("198.19.0.9"), 1, true),
            ]
        );
        // Weighted now: 3, 2, 1 of every six new clients (3 is down).
        for n in 0..60 {
            balancer.backend_at(&client(n), T0).unwrap();
        }
        let live: Vec<u64> = live_mappings(&balancer);
        assert_eq!(live, [0, 30, 20, 10]);
    }

    #[test]
    fn a_withdrawn_server_is_not_brought_back_by_a_stale_hot_plug_but_by_a_reload() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        set_withdrawn(&balancer, "198.19.0.2", true);
        balancer.reconfigure(&settings(
            &[("198.19.0.1", 1), ("198.19.0.3", 1)],
            &["198.19.0.2"],
            Strategy::RoundRobin,
        ));
        let stale = Backend {
            addr: addr("198.19.0.2"),
            weight: 1,
        };
        assert_eq!(balancer.add_backend(stale), Err(AddRefused::Withdrawn));
        assert!(!balancer.is_backend(stale.addr));
        // A worker started after the reload agrees, from the directory alone.
        set_withdrawn(&balancer, "198.19.0.2", false);
        balancer.reconfigure(&settings(&THREE, &[], Strategy::RoundRobin));
        assert!(balancer.is_backend(stale.addr));
        let order: Vec<IpAddr> = (0..3)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        assert!(order.contains(&stale.addr), "{order:?}");
    }

    #[test]
    fn maglev_builds_the_same_table_for_the_same_set_whatever_led_to_it() {
        use crate::datapath::scheduler::Maglev;
        let target = [("198.19.0.4", 1), ("198.19.0.3", 1), ("198.19.0.1", 2)];
        let table_of = |balancer: &Balancer| {
            let mut maglev = Maglev::new(SEED);
            maglev.backends_changed(&balancer.backends);
            maglev.owners_by_address(&balancer.backends, Family::V4)
        };
        let fresh = new_balancer(Strategy::Maglev, Stickiness::Client, &target);
        // Reloaded from three servers: one removed, one added, one reweighted.
        let mut reloaded = new_balancer(Strategy::Maglev, Stickiness::Client, &THREE);
        reloaded.reconfigure(&settings(
            &[("198.19.0.1", 2), ("198.19.0.3", 1), ("198.19.0.4", 1)],
            &["198.19.0.2"],
            Strategy::Maglev,
        ));
        // Another path: added first, then removed and reweighted, from rr.
        let mut other = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE[1..]);
        other.reconfigure(&settings(
            &[("198.19.0.4", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)],
            &[],
            Strategy::RoundRobin,
        ));
        other.reconfigure(&settings(&target, &["198.19.0.2"], Strategy::Maglev));
        let expected = table_of(&fresh);
        assert_eq!(
            expected.len(),
            crate::datapath::scheduler::LOOKUP_TABLE_SIZE
        );
        assert_eq!(table_of(&reloaded), expected);
        assert_eq!(table_of(&other), expected);
    }

    /// The servers of 100 clients (and of 100 IPv6 flows) on a fresh table.
    fn maglev_assignment(seed: u128, servers: &[(&str, u32)]) -> (u64, Vec<IpAddr>) {
        let table = SharedFlowTable::anonymous(4096).unwrap();
        let table_hash = table.hash(&TableKey::client(addr("203.0.113.7")));
        let mut config = config(Strategy::Maglev, Stickiness::Flow, servers);
        config.maglev_seed = seed;
        let mut balancer = Balancer::new(config, table);
        let v4 = (0..100).map(|n| flow(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n)), 40_000));
        let v6 = (0..100).map(|n| flow(addr("2001:db8::7"), 1000 + n as u16));
        let servers = v4
            .chain(v6)
            .map(|flow| balancer.backend_at(&flow, T0).unwrap())
            .collect();
        (table_hash, servers)
    }

    #[test]
    fn maglev_picks_the_same_servers_on_every_start_and_node_for_one_seed() {
        let servers = [
            ("198.19.0.1", 1),
            ("198.19.0.2", 2),
            ("198.19.0.3", 1),
            ("fd00:19::1", 1),
            ("fd00:19::2", 1),
        ];
        // Another node, or this one after a restart: a fresh table with its own random
        // seed, and the servers listed in another order.
        let reordered = [servers[4], servers[2], servers[0], servers[3], servers[1]];
        let (hash_a, first) = maglev_assignment(SEED, &servers);
        let (hash_b, second) = maglev_assignment(SEED, &reordered);
        assert_ne!(
            hash_a, hash_b,
            "the flow tables' seeds are random per table"
        );
        assert_eq!(first, second);
        // Both families and several servers are in play.
        let distinct: HashSet<&IpAddr> = first.iter().collect();
        assert_eq!(distinct.len(), 5, "{distinct:?}");
        // Another seed: another permutation.
        let (_, other) = maglev_assignment(SEED ^ 1 << 100, &servers);
        let differ = first.iter().zip(&other).filter(|(a, b)| a != b).count();
        assert!(differ > 20, "only {differ} of 200 flows differ");
    }

    #[test]
    fn backends_beyond_the_directory_are_refused() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &[]);
        for n in 0..MAX_BACKENDS as u32 {
            let backend = Backend {
                addr: IpAddr::V4(Ipv4Addr::from(0xc613_0000 + n)),
                weight: 1,
            };
            assert_eq!(balancer.add_backend(backend), Ok(true));
        }
        let one_too_many = Backend {
            addr: addr("10.0.0.1"),
            weight: 1,
        };
        assert_eq!(
            balancer.add_backend(one_too_many),
            Err(AddRefused::Full(DirectoryFull))
        );
        assert!(!balancer.is_backend(one_too_many.addr));
    }

    #[test]
    fn maglev_moves_only_the_clients_of_a_failed_server() {
        // Roomy enough that no bucket overflows.
        let table = SharedFlowTable::anonymous(1 << 15).unwrap();
        let mut balancer = balancer_on(table, Strategy::Maglev, Stickiness::Client, &THREE);
        let clients = 3000;
        let before: Vec<IpAddr> = (0..clients)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        // Consistent: mappings forgotten and made again land where they were.
        let later = T0 + TIMEOUT;
        assert_eq!(balancer.expire_idle_at(later), clients as usize);
        for n in 0..clients {
            assert_eq!(
                balancer.backend_at(&client(n), later),
                Some(before[n as usize])
            );
        }
        balancer.set_backend_up(addr("198.19.0.3"), false);
        let mut moved = 0;
        for n in 0..clients {
            let after = balancer.backend_at(&client(n), later + 1).unwrap();
            if before[n as usize] == addr("198.19.0.3") {
                moved += 1;
                assert_ne!(after, addr("198.19.0.3"));
            } else {
                assert_eq!(after, before[n as usize]);
            }
        }
        assert!((800..1200).contains(&moved), "{moved} of {clients} moved");
    }

    #[test]
    fn counters_never_drift_through_expiry_eviction_and_replacement() {
        // Small enough to evict often; health flaps to force replacements.
        let table = SharedFlowTable::anonymous(32).unwrap();
        let servers = [
            ("198.19.0.1", 2),
            ("198.19.0.2", 1),
            ("198.19.0.3", 1),
            ("fd00:19::1", 1),
        ];
        let mut balancer = balancer_on(table, Strategy::Weighted, Stickiness::Flow, &servers);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut now = T0;
        for round in 0..5000 {
            // Busy spells evict, quiet ones let mappings idle.
            now += if round % 1000 < 500 {
                random(2)
            } else {
                random(60)
            } as u32;
            match random(20) {
                0 => {
                    let server = servers[random(4) as usize].0;
                    balancer.set_backend_up(addr(server), random(2) == 0);
                }
                1 => {
                    balancer.table.expire_idle(now, round % 4, 4);
                }
                _ => {
                    let client = if random(2) == 0 {
                        addr("203.0.113.7")
                    } else {
                        addr("2001:db8::7")
                    };
                    balancer.backend_at(&flow(client, random(100) as u16), now);
                }
            }
        }
        let stats = balancer.stats().table;
        assert!(
            stats.evicted > 0 && stats.expired > 0 && stats.reassigned > 0,
            "{stats:?}"
        );
        balancer.table.assert_live_counters_match_entries();
        let total: u64 = live_mappings(&balancer).iter().sum();
        assert_eq!(total as usize, balancer.table.occupied());
    }

    #[test]
    fn only_a_flows_first_packet_makes_a_mapping_and_later_ones_follow_it() {
        for strategy in [Strategy::RoundRobin, Strategy::Weighted] {
            let mut balancer = new_balancer(strategy, Stickiness::Flow, &THREE);
            for opening in [Opening::TcpNotSyn, Opening::LaterFragment] {
                assert_eq!(
                    balancer.slot_at(&client(1), opening, T0),
                    Err(NoPick::NoMapping)
                );
            }
            assert_eq!(balancer.stats().table.inserted, 0, "{strategy:?}");
            assert_eq!(live_mappings(&balancer), [0, 0, 0]);
            let first = balancer.backend_at(&client(1), T0);
            let later = balancer.slot_at(&client(1), Opening::TcpNotSyn, T0 + 1);
            assert_eq!(later.ok().map(|mapped| mapped.addr), first);
            assert_eq!(balancer.stats().table.inserted, 1);
        }
    }

    #[test]
    fn maglev_sends_a_packet_of_an_unknown_flow_where_its_first_would_go_without_a_mapping() {
        let mut balancer = new_balancer(Strategy::Maglev, Stickiness::Flow, &THREE);
        let unrecorded: Vec<IpAddr> = (0..30)
            .map(|n| {
                balancer
                    .slot_at(&client(n), Opening::TcpNotSyn, T0)
                    .unwrap()
                    .addr
            })
            .collect();
        assert_eq!(balancer.stats().table.inserted, 0);
        assert_eq!(live_mappings(&balancer), [0, 0, 0]);
        let opened: Vec<IpAddr> = (0..30)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        assert_eq!(unrecorded, opened);
        let distinct: HashSet<&IpAddr> = opened.iter().collect();
        assert_eq!(distinct.len(), 3, "{distinct:?}");
    }

    #[test]
    fn a_later_packet_moves_its_mapping_off_a_server_that_went_down() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Flow, &THREE);
        let first = balancer.backend_at(&client(1), T0).unwrap();
        balancer.set_backend_up(first, false);
        let moved = balancer
            .slot_at(&client(1), Opening::TcpNotSyn, T0 + 1)
            .unwrap();
        assert_ne!(moved.addr, first);
        assert_eq!(balancer.stats().table.reassigned, 1);
        assert_eq!(
            balancer.existing_backend_at(&client(1), T0 + 2),
            Some(moved.addr)
        );
    }
}

#[cfg(test)]
mod operator_tests {
    //! The operator's drains and weights (`loadedctl drain`, `weight`).

    use super::tests_support::*;
    use super::*;

    fn drained(servers: &[&str]) -> ServerOverrides {
        ServerOverrides {
            drained: servers.iter().map(|s| addr(s)).collect(),
            weights: Vec::new(),
        }
    }

    #[test]
    fn a_drained_server_keeps_its_clients_and_gets_no_new_ones_until_undrained() {
        for strategy in [Strategy::RoundRobin, Strategy::Weighted, Strategy::Maglev] {
            let mut balancer = new_balancer(strategy, Stickiness::Client, &THREE);
            let before: Vec<IpAddr> = (0..30)
                .map(|n| balancer.backend_at(&client(n), T0).unwrap())
                .collect();
            assert!(before.contains(&addr("198.19.0.2")), "{strategy}");
            balancer.set_overrides(drained(&["198.19.0.2"]));
            // Every existing client stays where it was, the drained server's too.
            for (n, server) in before.iter().enumerate() {
                assert_eq!(
                    balancer.backend_at(&client(n as u32), T0 + 1),
                    Some(*server),
                    "{strategy}"
                );
            }
            let during: Vec<IpAddr> = (100..160)
                .map(|n| balancer.backend_at(&client(n), T0 + 1).unwrap())
                .collect();
            assert!(!during.contains(&addr("198.19.0.2")), "{strategy}");
            balancer.set_overrides(ServerOverrides::default());
            let after: Vec<IpAddr> = (200..260)
                .map(|n| balancer.backend_at(&client(n), T0 + 2).unwrap())
                .collect();
            assert!(after.contains(&addr("198.19.0.2")), "{strategy}");
        }
    }

    #[test]
    fn with_every_server_drained_there_is_no_pick() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        balancer.set_overrides(drained(&["198.19.0.1", "198.19.0.2", "198.19.0.3"]));
        assert_eq!(
            balancer.slot_at(&client(1), Opening::Opens, T0),
            Err(NoPick::NoServer)
        );
    }

    #[test]
    fn an_operators_weight_replaces_the_configured_one_until_it_is_dropped() {
        let mut balancer = new_balancer(Strategy::Weighted, Stickiness::Client, &THREE);
        balancer.set_overrides(ServerOverrides {
            drained: Vec::new(),
            weights: vec![(addr("198.19.0.1"), 4)],
        });
        let picks: Vec<IpAddr> = (0..60)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        let count = |server: &str| picks.iter().filter(|p| **p == addr(server)).count();
        assert_eq!(
            [
                count("198.19.0.1"),
                count("198.19.0.2"),
                count("198.19.0.3")
            ],
            [40, 10, 10]
        );
        // A reload keeps the operator's weight; dropping it brings the configured one back.
        balancer.reconfigure(&BalancingSettings {
            strategy: Strategy::Weighted,
            backends: THREE
                .iter()
                .map(|(a, w)| Backend {
                    addr: addr(a),
                    weight: *w,
                })
                .collect(),
            removed: Vec::new(),
            flow_timeout: Duration::from_secs(TIMEOUT.into()),
        });
        assert_eq!(balancer.backends.members()[0].weight, 4);
        balancer.set_overrides(ServerOverrides::default());
        assert_eq!(balancer.backends.members()[0].weight, 1);
    }

    #[test]
    fn a_hot_plugged_server_gets_the_overrides_set_before_it_came() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        balancer.set_overrides(drained(&["198.19.0.9"]));
        let hot = Backend {
            addr: addr("198.19.0.9"),
            weight: 1,
        };
        assert_eq!(balancer.add_backend(hot), Ok(true));
        let picks: Vec<IpAddr> = (0..8)
            .map(|n| balancer.backend_at(&client(n), T0).unwrap())
            .collect();
        assert!(!picks.contains(&addr("198.19.0.9")));
    }

    #[test]
    fn the_traffic_of_a_packet_names_its_server_and_whether_it_made_a_mapping() {
        let mut balancer = new_balancer(Strategy::RoundRobin, Stickiness::Client, &THREE);
        assert_eq!(balancer.take_traffic(), None);
        balancer.backend_at(&client(1), T0).unwrap();
        let first = balancer.take_traffic().unwrap();
        assert_eq!((first.slot, first.new_flow), (0, true));
        assert_eq!(first.direction, Direction::ToServer);
        assert_eq!(balancer.take_traffic(), None, "taken");
        balancer.backend_at(&client(1), T0).unwrap();
        assert!(!balancer.take_traffic().unwrap().new_flow);
        assert!(balancer.is_sending_backend(addr("198.19.0.3")));
        let reply = balancer.take_traffic().unwrap();
        assert_eq!((reply.slot, reply.direction), (2, Direction::FromServer));
        assert!(balancer.is_backend(addr("198.19.0.3")));
        assert_eq!(balancer.take_traffic(), None, "is_backend notes nothing");
    }
}
