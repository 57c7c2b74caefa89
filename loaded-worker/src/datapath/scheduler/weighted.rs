//! `weighted`: least connections, weighted. A new mapping goes to the live server of its
//! family with the fewest live mappings per unit of weight, counting the new one:
//! the minimum of (live + 1) / weight, ties to the earlier server.
//!
//! Counting the new mapping makes sequential picks a weighted round robin (weights 3, 2, 1
//! give 3, 2, 1 of every 6 new flows) instead of always starting with the heaviest server.
//! The live counts come from the shared region, so they cover every worker's mappings.

use super::{Member, PickRequest, Scheduler};

#[derive(Clone, Copy, Debug, Default)]
pub struct Weighted;

impl Scheduler for Weighted {
    fn pick(&self, request: &PickRequest<'_>) -> Option<usize> {
        let load = |member: &Member| Load {
            mappings_with_new: u128::from(request.shared.live_mappings(member.slot)) + 1,
            weight: u128::from(member.weight.max(1)),
        };
        let mut best: Option<(usize, Load)> = None;
        for (index, member) in request.backends.live(request.family) {
            let candidate = load(member);
            let lightest_so_far = match &best {
                None => true,
                Some((_, lightest)) => candidate.is_lighter_than(lightest),
            };
            if lightest_so_far {
                best = Some((index, candidate));
            }
        }
        best.map(|(index, _)| index)
    }
}

struct Load {
    mappings_with_new: u128,
    weight: u128,
}

impl Load {
    /// Compares the ratios by cross-multiplying: exact, with no float rounding to break
    /// ties unevenly. u128 holds any product of a u64 count and a u32 weight.
    fn is_lighter_than(&self, other: &Load) -> bool {
        self.mappings_with_new * other.weight < other.mappings_with_new * self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{picks, set_of, FakeShared};
    use super::*;
    use loaded_proto::wire::Family;

    fn spread(order: &[Option<usize>], members: usize) -> Vec<usize> {
        (0..members)
            .map(|index| {
                order
                    .iter()
                    .filter(|&&picked| picked == Some(index))
                    .count()
            })
            .collect()
    }

    #[test]
    fn sixty_flows_split_thirty_twenty_ten_for_weights_three_two_one() {
        let set = set_of(&[("198.19.0.1", 3), ("198.19.0.2", 2), ("198.19.0.3", 1)]);
        let shared = FakeShared::default();
        let order = picks(&Weighted, &set, &shared, Family::V4, 60);
        assert_eq!(spread(&order, 3), [30, 20, 10]);
        // Interleaved, not in runs: each block of six is a full weighted round.
        assert_eq!(spread(&order[..6], 3), [3, 2, 1]);
    }

    #[test]
    fn equal_weights_tie_to_the_first_server() {
        let set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1)]);
        let shared = FakeShared::default();
        assert_eq!(
            picks(&Weighted, &set, &shared, Family::V4, 3),
            [Some(0), Some(1), Some(0)]
        );
    }

    #[test]
    fn mappings_of_other_workers_count() {
        let set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1)]);
        let shared = FakeShared::default();
        shared.live[0].set(5);
        let order = picks(&Weighted, &set, &shared, Family::V4, 5);
        assert_eq!(spread(&order, 2), [0, 5]);
        assert_eq!(picks(&Weighted, &set, &shared, Family::V4, 1), [Some(0)]);
    }

    #[test]
    fn down_servers_and_other_families_are_never_picked() {
        let mut set = set_of(&[("198.19.0.1", 9), ("fd00:19::1", 9), ("198.19.0.2", 1)]);
        set.set_up("198.19.0.1".parse().unwrap(), false);
        let shared = FakeShared::default();
        let order = picks(&Weighted, &set, &shared, Family::V4, 4);
        assert_eq!(order, [Some(2); 4]);
        set.set_up("198.19.0.2".parse().unwrap(), false);
        assert_eq!(picks(&Weighted, &set, &shared, Family::V4, 1), [None]);
    }
}
