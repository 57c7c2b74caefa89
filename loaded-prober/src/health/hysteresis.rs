//! Rise/fall hysteresis: one lost packet must not take a server out of service, and one
//! lucky answer must not put a broken one back.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
    /// The first result of a server assumed in service was good: nothing changes, but it
    /// has now been checked.
    Confirmed,
}

/// One server's health and its current streak of equal results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHealth {
    health: Health,
    successes: u32,
    failures: u32,
    /// Whether any result was recorded yet.
    observed: bool,
}

impl ServerHealth {
    /// A configured server: in service from the start, as in the original, so that a
    /// restart of the prober does not empty the pool for `rise` cycles. Its first result
    /// decides at once, without hysteresis: before it the prober knows nothing (the workers
    /// keep their last state until its first snapshot), and a server that is down when the
    /// prober (re)starts must not get new clients for `fall` more rounds.
    pub fn in_service() -> Self {
        Self::starting(Health::Up, false)
    }

    /// A server whose state the master's backend book knows (checked by an earlier life
    /// of the prober): normal hysteresis from that state, so a restart flaps nothing.
    pub fn known(up: bool) -> Self {
        Self::starting(if up { Health::Up } else { Health::Down }, true)
    }

    /// A host found by the broadcast: it has to earn its place with `rise` good checks.
    pub fn candidate() -> Self {
        Self::starting(Health::Down, true)
    }

    fn starting(health: Health, observed: bool) -> Self {
        ServerHealth {
            health,
            successes: 0,
            failures: 0,
            observed,
        }
    }

    pub fn is_up(&self) -> bool {
        self.health == Health::Up
    }

    /// Counts one check result; returns the change of state it caused, if any.
    /// A `rise` or `fall` of 0 acts as 1: a state change needs at least one result.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        if !self.observed {
            self.observed = true;
            if !ok {
                self.failures = 1;
                self.health = Health::Down;
                return Some(Transition::WentDown);
            }
            self.successes = 1;
            return Some(Transition::Confirmed);
        }
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.health == Health::Down && self.successes >= rise.max(1) {
                self.health = Health::Up;
                return Some(Transition::WentUp);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.health == Health::Up && self.failures >= fall.max(1) {
                self.health = Health::Down;
                return Some(Transition::WentDown);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut ServerHealth, results: &[bool], rise: u32, fall: u32) -> Vec<Transition> {
        results
            .iter()
            .filter_map(|&ok| state.record(ok, rise, fall))
            .collect()
    }

    #[test]
    fn configured_servers_start_up_and_candidates_down() {
        assert!(ServerHealth::in_service().is_up());
        assert!(!ServerHealth::candidate().is_up());
    }

    /// A configured server whose first check succeeded.
    fn seen_up() -> ServerHealth {
        let mut state = ServerHealth::in_service();
        assert_eq!(state.record(true, 2, 3), Some(Transition::Confirmed));
        state
    }

    #[test]
    fn the_first_result_of_a_configured_server_decides_at_once() {
        let mut state = ServerHealth::in_service();
        assert_eq!(state.record(false, 2, 3), Some(Transition::WentDown));
        assert_eq!(state.record(true, 2, 3), None, "back up needs rise results");
        assert_eq!(state.record(true, 2, 3), Some(Transition::WentUp));
        let mut state = ServerHealth::in_service();
        assert_eq!(
            state.record(true, 2, 3),
            Some(Transition::Confirmed),
            "up and already in service"
        );
        assert!(state.is_up());
        assert_eq!(state.record(true, 2, 3), None, "confirmed once");
    }

    #[test]
    fn a_known_state_changes_only_by_hysteresis() {
        let mut down = ServerHealth::known(false);
        assert!(!down.is_up());
        assert_eq!(
            down.record(true, 2, 3),
            None,
            "one good result is not enough"
        );
        assert_eq!(down.record(true, 2, 3), Some(Transition::WentUp));
        let mut up = ServerHealth::known(true);
        assert!(up.is_up());
        assert_eq!(up.record(true, 2, 3), None, "no confirmation needed");
        assert_eq!(up.record(false, 2, 3), None, "one bad result is not enough");
        assert_eq!(up.record(false, 2, 3), None);
        assert_eq!(up.record(false, 2, 3), Some(Transition::WentDown));
    }

    #[test]
    fn goes_down_after_exactly_fall_failures() {
        let mut state = seen_up();
        assert_eq!(state.record(false, 2, 3), None);
        assert_eq!(state.record(false, 2, 3), None);
        assert_eq!(state.record(false, 2, 3), Some(Transition::WentDown));
        assert_eq!(
            state.record(false, 2, 3),
            None,
            "already down: no new event"
        );
        assert!(!state.is_up());
    }

    #[test]
    fn comes_back_after_exactly_rise_successes() {
        let mut state = ServerHealth::candidate();
        assert_eq!(state.record(true, 2, 3), None);
        assert_eq!(state.record(true, 2, 3), Some(Transition::WentUp));
        assert_eq!(state.record(true, 2, 3), None);
        assert!(state.is_up());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut state = seen_up();
        let events = feed(&mut state, &[false, false, true, false, false], 2, 3);
        assert!(events.is_empty());
        assert_eq!(state.record(false, 2, 3), Some(Transition::WentDown));
    }

    #[test]
    fn a_failure_resets_the_success_streak() {
        let mut state = ServerHealth::candidate();
        let events = feed(&mut state, &[true, false, true, false, true], 2, 3);
        assert!(events.is_empty());
        assert_eq!(state.record(true, 2, 3), Some(Transition::WentUp));
    }

    #[test]
    fn alternating_results_never_change_state() {
        let flapping: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        for start in [seen_up(), ServerHealth::candidate()] {
            for pattern in [&flapping[..], &flapping[1..]] {
                let mut state = start.clone();
                assert!(feed(&mut state, pattern, 2, 3).is_empty());
                assert_eq!(state.is_up(), start.is_up());
            }
        }
    }

    #[test]
    fn short_bursts_below_the_thresholds_never_change_state() {
        // Two failures then one success, over and over: never three failures in a row.
        let pattern: Vec<bool> = (0..99).map(|i| i % 3 == 2).collect();
        let mut up = seen_up();
        assert!(feed(&mut up, &pattern, 2, 3).is_empty());
        assert!(up.is_up());
    }

    #[test]
    fn full_cycle_down_then_up() {
        let mut state = seen_up();
        let events = feed(&mut state, &[false, false, true, true], 2, 2);
        assert_eq!(events, [Transition::WentDown, Transition::WentUp]);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut state = seen_up();
        assert_eq!(state.record(false, 0, 0), Some(Transition::WentDown));
        assert_eq!(state.record(true, 0, 0), Some(Transition::WentUp));
    }
}
