//! `maglev`: consistent hashing after the Maglev paper (Eisenbud et al., NSDI 2016).
//!
//! Each server of a family gets a permutation of a lookup table of 65537 slots (a prime),
//! from two hashes of its address: an offset and a skip. Servers take turns claiming their
//! next preferred free slot until the table is full; a server of weight w takes w turns for
//! every turn of a server of weight 1. A flow's key hash then indexes the table.
//!
//! Two departures from the paper, both for stability:
//! - The turn order follows the servers' addresses, not the config order, so every worker
//!   builds the same table whatever order it learned of hot-plugged servers in.
//! - The table is populated for every configured server, up or down, and then the slots
//!   of the down ones are populated again among the live ones. A server going down moves
//!   exactly its own slots (the paper's rebuild also moves a few slots between survivors),
//!   and coming back restores the table as it was.
//!
//! Every hash here (a server's offset and skip, a flow's slot) is keyed by the config's
//! `maglev_seed` and nothing random: the same config builds the same table and sends a
//! flow to the same server in every worker, on every start and on every node (several
//! balancers behind ECMP must agree). The flow table's hash is not used: its key is random
//! per start, against hash flooding of its buckets. A flood of maglev's slots does no
//! harm (a slot is a choice, not a place to store), and the seed keeps the permutation
//! unguessable for operators who set a secret one.

use super::{BackendSet, Member, PickRequest, Scheduler};
use loaded_proto::flow_table::{siphash13, HashKey};
use loaded_proto::wire::Family;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// Slots of a lookup table; the paper's smaller size, ample for a few hundred servers.
pub const LOOKUP_TABLE_SIZE: usize = 65537;
const FREE: u16 = u16::MAX;
/// What each of the three hashes is for; its key is derived from the seed and this.
const OFFSET_DOMAIN: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SKIP_DOMAIN: u64 = 0x6d61_676c_6576_736b; // "maglevsk"
const FLOW_DOMAIN: u64 = 0x6d61_676c_6576_666c; // "maglevfl"

/// The keys of maglev's hashes, all from one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Keys {
    offset: HashKey,
    skip: HashKey,
    flow: HashKey,
}

impl Keys {
    fn new(seed: u128) -> Keys {
        let master = HashKey((seed >> 64) as u64, seed as u64);
        let derive = |domain: u64| {
            HashKey(
                siphash13(master, &[domain, 0]),
                siphash13(master, &[domain, 1]),
            )
        };
        Keys {
            offset: derive(OFFSET_DOMAIN),
            skip: derive(SKIP_DOMAIN),
            flow: derive(FLOW_DOMAIN),
        }
    }
}

/// Lookup tables per `Family::index`, each empty while the family has no live server.
#[derive(Clone, Debug)]
pub struct Maglev {
    keys: Keys,
    lookup: [Vec<u16>; 2],
}

impl Maglev {
    /// Tables are built at the first `backends_changed`.
    pub fn new(seed: u128) -> Maglev {
        Maglev {
            keys: Keys::new(seed),
            lookup: [Vec::new(), Vec::new()],
        }
    }

    /// The member the slot of `flow_hash` (a hash under `keys.flow`) belongs to.
    fn pick_by_hash(&self, family: Family, backends: &BackendSet, flow_hash: u64) -> Option<usize> {
        let table = &self.lookup[family.index()];
        let slot = (flow_hash % LOOKUP_TABLE_SIZE as u64) as usize;
        let index = usize::from(*table.get(slot)?);
        let member = backends.get(index)?;
        (member.takes_new_clients() && member.family() == family).then_some(index)
    }
}

impl Scheduler for Maglev {
    fn pick(&self, request: &PickRequest<'_>) -> Option<usize> {
        let flow_hash = request.key.keyed_hash(self.keys.flow);
        self.pick_by_hash(request.family, request.backends, flow_hash)
    }

    fn backends_changed(&mut self, backends: &BackendSet) {
        for family in Family::ALL {
            self.lookup[family.index()] = build_lookup_table(&self.keys, backends, family);
        }
    }
}

#[cfg(test)]
impl Maglev {
    /// The lookup table of `family` as server addresses: comparable between workers whose
    /// member lists differ in order.
    pub(crate) fn owners_by_address(&self, backends: &BackendSet, family: Family) -> Vec<IpAddr> {
        self.lookup[family.index()]
            .iter()
            .map(|&member| backends.members()[usize::from(member)].addr)
            .collect()
    }
}

/// A server's place in the population: its permutation and weight.
struct Candidate {
    member: u16,
    up: bool,
    weight: u32,
    offset: u64,
    skip: u64,
}

impl Candidate {
    fn new(keys: &Keys, member: usize, server: &Member) -> Candidate {
        let words = address_words(server.addr);
        Candidate {
            member: member as u16,
            // A drained server's slots go to the others, as a down server's do.
            up: server.takes_new_clients(),
            weight: server.weight.max(1),
            offset: siphash13(keys.offset, &words) % LOOKUP_TABLE_SIZE as u64,
            skip: siphash13(keys.skip, &words) % (LOOKUP_TABLE_SIZE as u64 - 1) + 1,
        }
    }

    /// The `n`-th slot of this server's permutation; every slot once for n below the
    /// table size, as the skip is non-zero and the size prime.
    fn preference(&self, n: u64) -> usize {
        ((self.offset + n * self.skip) % LOOKUP_TABLE_SIZE as u64) as usize
    }
}

fn address_words(addr: IpAddr) -> [u64; 3] {
    let (family, bits) = match addr {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6, u128::from(v6)),
    };
    [family, (bits >> 64) as u64, bits as u64]
}

/// From the sorted set of servers: neither config order nor hot-plug order matters.
fn build_lookup_table(keys: &Keys, backends: &BackendSet, family: Family) -> Vec<u16> {
    let mut servers: Vec<(&Member, usize)> = backends
        .members()
        .iter()
        .enumerate()
        .filter(|(_, member)| member.family() == family)
        .map(|(index, member)| (member, index))
        .collect();
    if !servers.iter().any(|(member, _)| member.takes_new_clients()) {
        return Vec::new();
    }
    servers.sort_by_key(|(member, _)| member.addr);
    let candidates: Vec<Candidate> = servers
        .iter()
        .map(|&(member, index)| Candidate::new(keys, index, member))
        .collect();

    let mut table = vec![FREE; LOOKUP_TABLE_SIZE];
    populate(&mut table, &candidates.iter().collect::<Vec<_>>());
    let down: Vec<u16> = candidates
        .iter()
        .filter(|c| !c.up)
        .map(|c| c.member)
        .collect();
    if !down.is_empty() {
        for owner in table.iter_mut().filter(|owner| down.contains(owner)) {
            *owner = FREE;
        }
        populate(
            &mut table,
            &candidates.iter().filter(|c| c.up).collect::<Vec<_>>(),
        );
    }
    table
}

/// Lets `candidates` claim the free slots of `table` in weighted turns, each its next
/// preferred free slot, until none is free.
fn populate(table: &mut [u16], candidates: &[&Candidate]) {
    let mut free = table.iter().filter(|&&owner| owner == FREE).count();
    let mut tried = vec![0u64; candidates.len()];
    let mut turns = WeightedTurns::new(candidates.iter().map(|c| c.weight));
    while free > 0 {
        let turn = turns.next_turn();
        let candidate = candidates[turn];
        // Terminates: slots are only ever filled, so while one is free, some slot of the
        // permutation not yet tried is free.
        loop {
            let slot = candidate.preference(tried[turn]);
            tried[turn] += 1;
            if table[slot] == FREE {
                table[slot] = candidate.member;
                free -= 1;
                break;
            }
        }
    }
}

/// Whose turn it is: the candidate with the fewest turns per unit of weight, counting the
/// turn it would take, ties to the earlier candidate. Equal weights give plain rotation, as
/// in the paper.
struct WeightedTurns {
    queue: BinaryHeap<Reverse<Turn>>,
}

struct Turn {
    turns_with_this: u64,
    weight: u64,
    candidate: usize,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        let ours = u128::from(self.turns_with_this) * u128::from(other.weight);
        let theirs = u128::from(other.turns_with_this) * u128::from(self.weight);
        ours.cmp(&theirs).then(self.candidate.cmp(&other.candidate))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Turn {}

impl WeightedTurns {
    fn new(weights: impl Iterator<Item = u32>) -> WeightedTurns {
        let queue = weights
            .enumerate()
            .map(|(candidate, weight)| {
                Reverse(Turn {
                    turns_with_this: 1,
                    weight: u64::from(weight.max(1)),
                    candidate,
                })
            })
            .collect();
        WeightedTurns { queue }
    }

    /// Callers hold at least one candidate.
    fn next_turn(&mut self) -> usize {
        let Some(Reverse(mut turn)) = self.queue.pop() else {
            unreachable!("populate is never called without candidates");
        };
        let candidate = turn.candidate;
        turn.turns_with_this += 1;
        self.queue.push(Reverse(turn));
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{set_of, FakeShared};
    use super::*;
    use loaded_proto::flow_table::TableKey;

    const SEED: u128 = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff;

    fn maglev_for(set: &BackendSet) -> Maglev {
        let mut maglev = Maglev::new(SEED);
        maglev.backends_changed(set);
        maglev
    }

    fn owners(maglev: &Maglev, family: Family) -> &[u16] {
        &maglev.lookup[family.index()]
    }

    fn shares(table: &[u16], members: usize) -> Vec<f64> {
        (0..members)
            .map(|m| {
                table
                    .iter()
                    .filter(|&&owner| usize::from(owner) == m)
                    .count() as f64
                    / table.len() as f64
            })
            .collect()
    }

    /// Key hashes as the flow table makes them: well spread 64-bit values.
    fn key_hashes(count: u64) -> impl Iterator<Item = u64> {
        (0..count).map(|n| siphash13(HashKey(1, 2), &[n]))
    }

    fn pick(maglev: &Maglev, set: &BackendSet, family: Family, key_hash: u64) -> Option<usize> {
        maglev.pick_by_hash(family, set, key_hash)
    }

    fn pick_client(maglev: &Maglev, set: &BackendSet, client: IpAddr) -> Option<usize> {
        maglev.pick(&PickRequest {
            family: Family::of(client),
            key: &TableKey::client(client),
            backends: set,
            shared: &FakeShared::default(),
        })
    }

    #[test]
    fn the_seed_alone_decides_and_another_seed_decides_otherwise() {
        let set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)]);
        let clients: Vec<IpAddr> = (0..100u32)
            .map(|n| IpAddr::from((0xcb00_7100 + n).to_be_bytes()))
            .collect();
        let assignment = |maglev: &Maglev| -> Vec<Option<usize>> {
            clients
                .iter()
                .map(|&client| pick_client(maglev, &set, client))
                .collect()
        };
        let first = assignment(&maglev_for(&set));
        assert_eq!(assignment(&maglev_for(&set)), first);
        let mut other = Maglev::new(SEED ^ 1);
        other.backends_changed(&set);
        assert_ne!(
            owners(&other, Family::V4),
            owners(&maglev_for(&set), Family::V4)
        );
        let moved = assignment(&other)
            .iter()
            .zip(&first)
            .filter(|(a, b)| a != b)
            .count();
        // Two independent assignments to three servers agree on about a third.
        assert!((40..90).contains(&moved), "{moved} of 100 differ");
    }

    #[test]
    fn equal_weights_share_the_table_evenly() {
        let set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)]);
        let maglev = maglev_for(&set);
        for share in shares(owners(&maglev, Family::V4), 3) {
            assert!((share - 1.0 / 3.0).abs() < 0.001, "{share}");
        }
    }

    #[test]
    fn keys_follow_the_weights_within_a_few_percent() {
        let set = set_of(&[("198.19.0.1", 3), ("198.19.0.2", 2), ("198.19.0.3", 1)]);
        let maglev = maglev_for(&set);
        let table_shares = shares(owners(&maglev, Family::V4), 3);
        let mut hits = [0u64; 3];
        let keys = 300_000;
        for hash in key_hashes(keys) {
            hits[pick(&maglev, &set, Family::V4, hash).unwrap()] += 1;
        }
        for (member, expected) in [3.0 / 6.0, 2.0 / 6.0, 1.0 / 6.0].into_iter().enumerate() {
            let key_share = hits[member] as f64 / keys as f64;
            assert!(
                (table_shares[member] - expected).abs() / expected < 0.01,
                "{table_shares:?}"
            );
            assert!((key_share - expected).abs() / expected < 0.03, "{hits:?}");
        }
    }

    #[test]
    fn a_server_going_down_moves_only_its_own_keys() {
        let mut set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)]);
        let all_up = set.clone();
        let before = maglev_for(&set);
        set.set_up("198.19.0.2".parse().unwrap(), false);
        let after = maglev_for(&set);
        let mut moved = 0;
        let keys = 100_000;
        for hash in key_hashes(keys) {
            let was = pick(&before, &all_up, Family::V4, hash);
            let is = pick(&after, &set, Family::V4, hash);
            assert_ne!(is, Some(1));
            if was != Some(1) {
                assert_eq!(is, was, "a key of a live server moved");
            } else {
                moved += 1;
            }
        }
        let moved_share = moved as f64 / keys as f64;
        assert!((moved_share - 1.0 / 3.0).abs() < 0.02, "{moved_share}");
        // The freed slots are shared out evenly between the two survivors.
        let survivors = shares(owners(&after, Family::V4), 3);
        assert!(
            (survivors[0] - 0.5).abs() < 0.01 && (survivors[2] - 0.5).abs() < 0.01,
            "{survivors:?}"
        );
    }

    #[test]
    fn a_server_coming_back_restores_the_table() {
        let mut set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 2), ("198.19.0.3", 1)]);
        let original = maglev_for(&set);
        set.set_up("198.19.0.3".parse().unwrap(), false);
        let mut maglev = maglev_for(&set);
        set.set_up("198.19.0.3".parse().unwrap(), true);
        maglev.backends_changed(&set);
        assert_eq!(owners(&maglev, Family::V4), owners(&original, Family::V4));
    }

    #[test]
    fn the_table_depends_on_the_servers_not_their_order() {
        let forward = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 2), ("198.19.0.3", 1)]);
        let backward = set_of(&[("198.19.0.3", 1), ("198.19.0.2", 2), ("198.19.0.1", 1)]);
        let (a, b) = (maglev_for(&forward), maglev_for(&backward));
        let addresses = |maglev: &Maglev, set: &BackendSet| -> Vec<IpAddr> {
            owners(maglev, Family::V4)
                .iter()
                .map(|&m| set.members()[usize::from(m)].addr)
                .collect()
        };
        assert_eq!(addresses(&a, &forward), addresses(&b, &backward));
    }

    #[test]
    fn each_family_has_its_own_table() {
        let mut set = set_of(&[("198.19.0.1", 1), ("fd00:19::1", 1), ("fd00:19::2", 1)]);
        let maglev = maglev_for(&set);
        for hash in key_hashes(1000) {
            assert_eq!(pick(&maglev, &set, Family::V4, hash), Some(0));
            assert!(matches!(pick(&maglev, &set, Family::V6, hash), Some(1 | 2)));
        }
        set.set_up("198.19.0.1".parse().unwrap(), false);
        let maglev = maglev_for(&set);
        assert!(owners(&maglev, Family::V4).is_empty());
        assert_eq!(pick(&maglev, &set, Family::V4, 12345), None);
    }

    #[test]
    fn weighted_turns_interleave_by_weight() {
        let mut turns = WeightedTurns::new([3, 2, 1].into_iter());
        let order: Vec<usize> = (0..6).map(|_| turns.next_turn()).collect();
        assert_eq!(order, [0, 1, 0, 0, 1, 2]);
    }
}
