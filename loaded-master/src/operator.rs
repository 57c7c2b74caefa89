//! The operator's run-time changes to the servers (`loadedctl drain`, `undrain`,
//! `weight`): kept by the master, which outlives every child, and sent whole to the
//! workers (`ServerOverrides`) after each change, to a worker before it turns Ready, and
//! after each reload.
//!
//! A reload keeps them for the servers it keeps (configured or hot-plugged) and forgets
//! them for the servers it removes: an operator's drain is for maintenance now, and a
//! weight set by hand wins over the file's until loaded restarts (the file's weight of a
//! kept server is what a restart brings back).

use loaded_proto::message::ServerOverrides;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct OperatorState {
    drained: BTreeSet<IpAddr>,
    weights: BTreeMap<IpAddr, u32>,
}

impl OperatorState {
    /// `false` if it was drained already.
    pub fn drain(&mut self, server: IpAddr) -> bool {
        self.drained.insert(server)
    }

    /// `false` if it was not drained.
    pub fn undrain(&mut self, server: IpAddr) -> bool {
        self.drained.remove(&server)
    }

    pub fn set_weight(&mut self, server: IpAddr, weight: u32) {
        self.weights.insert(server, weight);
    }

    pub fn is_drained(&self, server: IpAddr) -> bool {
        self.drained.contains(&server)
    }

    pub fn weight_of(&self, server: IpAddr) -> Option<u32> {
        self.weights.get(&server).copied()
    }

    /// Forgets the servers `keeps` says no to; returns them, for the log.
    pub fn retain(&mut self, keeps: impl Fn(IpAddr) -> bool) -> Vec<IpAddr> {
        let forgotten: BTreeSet<IpAddr> = self
            .drained
            .iter()
            .chain(self.weights.keys())
            .copied()
            .filter(|server| !keeps(*server))
            .collect();
        self.drained.retain(|server| !forgotten.contains(server));
        self.weights.retain(|server, _| !forgotten.contains(server));
        forgotten.into_iter().collect()
    }

    /// What the workers are told.
    pub fn overrides(&self) -> ServerOverrides {
        ServerOverrides {
            drained: self.drained.iter().copied().collect(),
            weights: self.weights.iter().map(|(s, w)| (*s, *w)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn drains_and_weights_are_sent_whole() {
        let mut state = OperatorState::default();
        assert!(state.drain(addr("198.19.0.12")));
        assert!(!state.drain(addr("198.19.0.12")));
        state.set_weight(addr("fd00:19::11"), 7);
        state.set_weight(addr("fd00:19::11"), 8);
        assert_eq!(
            state.overrides(),
            ServerOverrides {
                drained: vec![addr("198.19.0.12")],
                weights: vec![(addr("fd00:19::11"), 8)],
            }
        );
        assert!(state.undrain(addr("198.19.0.12")));
        assert!(!state.undrain(addr("198.19.0.12")));
        assert!(state.overrides().drained.is_empty());
    }

    #[test]
    fn a_reload_forgets_only_the_servers_it_removes() {
        let mut state = OperatorState::default();
        state.drain(addr("198.19.0.11"));
        state.drain(addr("198.19.0.12"));
        state.set_weight(addr("198.19.0.12"), 3);
        state.set_weight(addr("198.19.0.13"), 4);
        let kept = [addr("198.19.0.11"), addr("198.19.0.13")];
        let forgotten = state.retain(|server| kept.contains(&server));
        assert_eq!(forgotten, [addr("198.19.0.12")]);
        assert!(state.is_drained(addr("198.19.0.11")));
        assert_eq!(state.weight_of(addr("198.19.0.12")), None);
        assert_eq!(state.weight_of(addr("198.19.0.13")), Some(4));
    }
}
