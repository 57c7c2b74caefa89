//! `rr`: each new mapping goes to the next live server of its family, in configuration
//! order, starting at the first.
//!
//! The turn counter lives in the shared region, so the order is global across workers
//! rather than one interleaved rotation per worker. Counting turns modulo the live servers
//! (instead of walking a cursor over all servers and skipping dead ones) keeps the share
//! even while servers are down: a skipping cursor would hand a dead server's turns to the
//! server after it.

use super::{PickRequest, Scheduler};

#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobin;

impl Scheduler for RoundRobin {
    fn pick(&self, request: &PickRequest<'_>) -> Option<usize> {
        let live = request.backends.live(request.family).count() as u64;
        if live == 0 {
            return None;
        }
        let turn = request.shared.take_round_robin_turn(request.family) % live;
        request
            .backends
            .live(request.family)
            .nth(turn as usize)
            .map(|(index, _)| index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{picks, set_of, FakeShared};
    use super::*;
    use loaded_proto::wire::Family;

    #[test]
    fn starts_at_the_first_server_and_wraps() {
        let set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)]);
        let shared = FakeShared::default();
        let order = picks(&RoundRobin, &set, &shared, Family::V4, 7);
        let expected: Vec<Option<usize>> = [0, 1, 2, 0, 1, 2, 0].map(Some).into();
        assert_eq!(order, expected);
    }

    #[test]
    fn skips_servers_that_are_down() {
        let mut set = set_of(&[("198.19.0.1", 1), ("198.19.0.2", 1), ("198.19.0.3", 1)]);
        set.set_up("198.19.0.2".parse().unwrap(), false);
        let shared = FakeShared::default();
        let order = picks(&RoundRobin, &set, &shared, Family::V4, 4);
        let expected: Vec<Option<usize>> = [0, 2, 0, 2].map(Some).into();
        assert_eq!(order, expected);
    }

    #[test]
    fn only_servers_of_the_flows_family_take_turns() {
        let set = set_of(&[
            ("198.19.0.1", 1),
            ("fd00:19::1", 1),
            ("198.19.0.2", 1),
            ("fd00:19::2", 1),
        ]);
        let shared = FakeShared::default();
        let v6 = picks(&RoundRobin, &set, &shared, Family::V6, 3);
        let v4 = picks(&RoundRobin, &set, &shared, Family::V4, 3);
        assert_eq!(v6, [Some(1), Some(3), Some(1)]);
        assert_eq!(v4, [Some(0), Some(2), Some(0)]);
    }

    #[test]
    fn no_live_server_means_no_pick() {
        let mut set = set_of(&[("198.19.0.1", 1), ("fd00:19::1", 1)]);
        set.set_up("198.19.0.1".parse().unwrap(), false);
        let shared = FakeShared::default();
        assert_eq!(picks(&RoundRobin, &set, &shared, Family::V4, 1), [None]);
    }
}
