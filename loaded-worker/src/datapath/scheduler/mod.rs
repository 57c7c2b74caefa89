//! Who gets a new mapping: one small trait, one implementation per `Strategy`.
//!
//! A scheduler only chooses; the balancer records the choice in the shared flow table, and
//! a flow keeps its backend for as long as the mapping lives. Schedulers see the worker's
//! view of the backends ([`BackendSet`]) and the state all workers share ([`SharedState`]).

mod maglev;
mod round_robin;
mod weighted;

pub use maglev::{Maglev, LOOKUP_TABLE_SIZE};
pub use round_robin::RoundRobin;
pub use weighted::Weighted;

use loaded_proto::balancing::Strategy;
use loaded_proto::flow_table::TableKey;
use loaded_proto::wire::Family;
use std::collections::HashMap;
use std::net::IpAddr;

pub trait Scheduler: Send {
    /// The member of `backends` for a new mapping of a flow of `family`: an index of a live
    /// member of that family, or `None` when there is none.
    fn pick(&self, request: &PickRequest<'_>) -> Option<usize>;

    /// Told after every change of membership or health, before the next pick.
    fn backends_changed(&mut self, _backends: &BackendSet) {}
}

/// Everything a scheduler may base its choice on.
pub struct PickRequest<'a> {
    pub family: Family,
    /// The flow's key in the flow table (client address, or the 5-tuple, by stickiness).
    pub key: &'a TableKey,
    pub backends: &'a BackendSet,
    pub shared: &'a dyn SharedState,
}

/// What the workers share about the backends, kept in the flow table's region.
pub trait SharedState {
    /// Mappings to the backend in directory slot `slot`, across all workers.
    fn live_mappings(&self, slot: usize) -> u64;

    /// Takes the next round-robin turn of `family`; the first turn ever taken is 0.
    fn take_round_robin_turn(&self, family: Family) -> u64;
}

/// `maglev_seed` keys maglev's hashes (`Config::maglev_seed`); the others ignore it.
pub fn for_strategy(strategy: Strategy, maglev_seed: u128) -> Box<dyn Scheduler> {
    match strategy {
        Strategy::RoundRobin => Box::new(RoundRobin),
        Strategy::Weighted => Box::new(Weighted),
        Strategy::Maglev => Box::new(Maglev::new(maglev_seed)),
    }
}

/// A backend as this worker knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub addr: IpAddr,
    /// At least 1.
    pub weight: u32,
    pub up: bool,
    /// The flow table's directory slot of `addr`, which counts its mappings.
    pub slot: usize,
    /// Drained by the operator (`loadedctl drain`): no new clients, but unlike a down
    /// server its mapped clients stay.
    pub draining: bool,
}

impl Member {
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// Whether a new mapping may go to it: up and not drained.
    pub fn takes_new_clients(&self) -> bool {
        self.up && !self.draining
    }
}

/// The backends in the order the worker learned of them (config order, then hot-plugs).
#[derive(Clone, Debug, Default)]
pub struct BackendSet {
    members: Vec<Member>,
    by_addr: HashMap<IpAddr, usize>,
    /// Member index by directory slot, for the per-packet health check of a mapping.
    by_slot: Vec<Option<usize>>,
}

impl BackendSet {
    /// Appends `member`; `false` if its address is already a member.
    pub fn push(&mut self, member: Member) -> bool {
        if self.by_addr.contains_key(&member.addr) {
            return false;
        }
        let index = self.members.len();
        self.by_addr.insert(member.addr, index);
        if self.by_slot.len() <= member.slot {
            self.by_slot.resize(member.slot + 1, None);
        }
        self.by_slot[member.slot] = Some(index);
        self.members.push(Member {
            weight: member.weight.max(1),
            ..member
        });
        true
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn get(&self, index: usize) -> Option<&Member> {
        self.members.get(index)
    }

    pub fn position(&self, addr: IpAddr) -> Option<usize> {
        self.by_addr.get(&addr).copied()
    }

    /// The member whose directory slot is `slot`.
    pub fn at_slot(&self, slot: usize) -> Option<&Member> {
        let index = (*self.by_slot.get(slot)?)?;
        self.members.get(index)
    }

    /// Sets the health of `addr`; `Some(changed)` if it is a member.
    pub fn set_up(&mut self, addr: IpAddr, up: bool) -> Option<bool> {
        let member = &mut self.members[*self.by_addr.get(&addr)?];
        let changed = member.up != up;
        member.up = up;
        Some(changed)
    }

    /// Sets every member's weight and drain to what `operator` says (the operator's
    /// overrides over the configured weights); `true` if any changed.
    pub fn apply_operator(&mut self, operator: impl Fn(&Member) -> (u32, bool)) -> bool {
        let mut changed = false;
        for member in &mut self.members {
            let (weight, draining) = operator(member);
            let weight = weight.max(1);
            changed |= member.weight != weight || member.draining != draining;
            member.weight = weight;
            member.draining = draining;
        }
        changed
    }

    /// The members of `family` that take new clients (up, not drained), with their
    /// indices, in member order.
    pub fn live(&self, family: Family) -> impl Iterator<Item = (usize, &Member)> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter(move |(_, member)| member.takes_new_clients() && member.family() == family)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A backend set and shared state without a flow table, for the schedulers' tests.

    use super::*;
    use std::cell::Cell;

    pub fn set_of(members: &[(&str, u32)]) -> BackendSet {
        let mut set = BackendSet::default();
        for (slot, (addr, weight)) in members.iter().enumerate() {
            set.push(Member {
                addr: addr.parse().unwrap(),
                weight: *weight,
                up: true,
                slot,
                draining: false,
            });
        }
        set
    }

    #[derive(Default)]
    pub struct FakeShared {
        pub live: [Cell<u64>; 8],
        pub turns: [Cell<u64>; 2],
    }

    impl SharedState for FakeShared {
        fn live_mappings(&self, slot: usize) -> u64 {
            self.live[slot].get()
        }

        fn take_round_robin_turn(&self, family: Family) -> u64 {
            let turn = &self.turns[family.index()];
            turn.replace(turn.get() + 1)
        }
    }

    /// Picks for `count` new flows of `family`, counting each pick as a live mapping.
    pub fn picks(
        scheduler: &dyn Scheduler,
        set: &BackendSet,
        shared: &FakeShared,
        family: Family,
        count: u64,
    ) -> Vec<Option<usize>> {
        (0..count)
            .map(|n| {
                let client = match family {
                    Family::V4 => IpAddr::from((n as u32).to_be_bytes()),
                    Family::V6 => IpAddr::from(u128::from(n).to_be_bytes()),
                };
                let picked = scheduler.pick(&PickRequest {
                    family,
                    key: &TableKey::client(client),
                    backends: set,
                    shared,
                });
                if let Some(index) = picked {
                    let live = &shared.live[set.members()[index].slot];
                    live.set(live.get() + 1);
                }
                picked
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::set_of;
    use super::*;

    #[test]
    fn a_member_is_added_once() {
        let mut set = set_of(&[("198.19.0.1", 1)]);
        let again = Member {
            addr: "198.19.0.1".parse().unwrap(),
            weight: 5,
            up: true,
            slot: 9,
            draining: false,
        };
        assert!(!set.push(again));
        assert_eq!(set.members().len(), 1);
        assert_eq!(set.members()[0].weight, 1);
    }

    #[test]
    fn live_members_are_of_one_family_and_up() {
        let mut set = set_of(&[("198.19.0.1", 1), ("fd00:19::1", 1), ("198.19.0.2", 1)]);
        assert_eq!(set.set_up("198.19.0.1".parse().unwrap(), false), Some(true));
        assert_eq!(
            set.set_up("198.19.0.1".parse().unwrap(), false),
            Some(false)
        );
        assert_eq!(set.set_up("198.19.0.9".parse().unwrap(), false), None);
        let v4: Vec<usize> = set.live(Family::V4).map(|(index, _)| index).collect();
        assert_eq!(v4, [2]);
        let v6: Vec<usize> = set.live(Family::V6).map(|(index, _)| index).collect();
        assert_eq!(v6, [1]);
        assert_eq!(
            set.at_slot(1).map(|m| m.addr),
            Some("fd00:19::1".parse().unwrap())
        );
    }

    #[test]
    fn a_drained_member_is_not_live_but_keeps_its_health() {
        let mut set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1)]);
        let drained: IpAddr = "198.19.0.1".parse().unwrap();
        let changed = set.apply_operator(|member| (member.weight + 1, member.addr == drained));
        assert!(changed);
        assert!(!set.apply_operator(|member| (member.weight, member.addr == drained)));
        let v4: Vec<usize> = set.live(Family::V4).map(|(index, _)| index).collect();
        assert_eq!(v4, [1]);
        assert!(set.members()[0].up, "drained is not down");
        assert_eq!(set.members()[1].weight, 2);
    }

    #[test]
    fn a_zero_weight_counts_as_one() {
        let set = set_of(&[("198.19.0.1", 0)]);
        assert_eq!(set.members()[0].weight, 1);
    }
}
